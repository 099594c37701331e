"""Bone structure below the label map: the cortical shell and the trabecular texture.

Shared by the fluoroscope's volume builder (X-ray densities) and the synthetic CT (HU), so
both draw the same cortex and the same trabecular pattern.

- Cortical shell (*assumption*, labels unchanged): bone voxels within ``cortex_mm`` of
  non-bone (erosion by an ellipsoid of that radius in voxel units, at least one voxel).
- Trabecular texture: seeded white noise low-passed with correlation lengths
  ``TEXTURE_MM`` — longer along axis 2, the vertical trabeculae of vertebral bodies —
  computed on a periodic tile and repeated (zero mean, unit σ).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from needleguide.anatomy.tissues import TissueTable

TEXTURE_MM = (0.8, 0.8, 2.5)  # correlation lengths (mm): in-plane, along the axis


def bone_ids(tissues: TissueTable) -> list[int]:
    """Label ids of the bone tissues (< 128: codes above are shells)."""
    return [t.label for t in tissues if t.is_bone and t.label < 128]


def cortical_shell(labels: np.ndarray, tissues: TissueTable, spacing_mm,
                   cortex_mm: float = 1.0
                   ) -> tuple[tuple[slice, ...], np.ndarray, np.ndarray] | None:
    """(bounding slices of the bone, bone mask, shell mask) within those slices, or None
    when there is no bone or ``cortex_mm`` is 0."""
    ids = bone_ids(tissues)
    if cortex_mm <= 0 or not ids:
        return None
    is_bone = np.isin(labels, ids)
    if not is_bone.any():
        return None
    sl = ndimage.find_objects(is_bone.astype(np.uint8))[0]
    sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
    sub = is_bone[sl]
    sp = np.asarray(spacing_mm, float)
    rad = np.maximum(np.round(cortex_mm / sp), 1).astype(int)
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in rad)]
    ball = sum((g * s_ / cortex_mm) ** 2 for g, s_ in zip(grid, sp, strict=True)) <= 1.0 + 1e-9
    if ball.sum() <= 1:
        ball = ndimage.generate_binary_structure(3, 1)
    core = ndimage.binary_erosion(sub, structure=ball, border_value=1)
    return sl, sub, sub & ~core


def trabecular_texture(shape: tuple[int, ...], spacing_mm, seed: int,
                       tile: int = 48) -> np.ndarray:
    """Zero-mean, unit-σ float32 density texture on a volume of ``shape`` (see module)."""
    sp = np.asarray(spacing_mm, float)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x7EB])
    t = rng.standard_normal((tile, tile, tile)).astype(np.float32)
    sig = np.maximum(np.asarray(TEXTURE_MM) / sp, 0.5)
    t = ndimage.gaussian_filter(t, sig, mode="wrap")
    t = (t - t.mean()) / max(float(t.std()), 1e-6)
    reps = [int(np.ceil(n / tile)) for n in shape]
    return np.tile(t, reps)[: shape[0], : shape[1], : shape[2]]
