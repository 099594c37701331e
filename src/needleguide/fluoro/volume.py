"""From a labelled patient to X-ray basis volumes (soft-tissue and bone equivalent).

Every tissue's X-ray material (tissue table ``material`` + ``density_g_cm3``) is written as
a two-material basis: per gram it attenuates like ``a`` g of ICRU-44 soft tissue plus ``b``
g of ICRU-44 cortical bone (least squares on μ/ρ(E), 20–120 keV, weighted by a typical
fluoroscopy spectrum behind the patient). A voxel therefore holds two equivalent densities
(g/cm³), and a ray's line integrals give two areal densities (g/cm²) — the inputs of the
beam-hardening table.

Cortex (*assumption*, labels unchanged): bone voxels within ``cortex_mm`` of non-bone
become cortical bone at ``max(label density, cortex_density)``; the interior keeps the
label's mass (density lowered so that the label's mean density stays the table's, clamped
to [1.0, table]) as cancellous bone (ICRU-46 spongiosa). This gives end-plates, the
pedicle ring ("eye") and laminar edges their radiographic cortical line.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage

from needleguide.anatomy.patient import Patient
from needleguide.anatomy.tissues import TissueTable
from needleguide.fluoro.materials import basis_decomposition, mass_attenuation

BASIS = ("soft_tissue", "cortical_bone")


@lru_cache(maxsize=1)
def _weighting() -> tuple[np.ndarray, np.ndarray]:
    """Energies and weights of a 70 kVp, 3 mm Al + 0.1 mm Cu beam behind 20 cm of water."""
    from needleguide.fluoro.spectra import tube_spectrum

    s = tube_spectrum(70.0, 0.5, 0.1)
    e = np.maximum(s.energies_kev, 1.0)
    w = s.fluence_per_mas_1m * np.exp(-mass_attenuation("water", e) * 20.0)
    keep = (e >= 20.0) & (w > 0)
    return e[keep], w[keep]


@lru_cache(maxsize=64)
def material_basis(material: str) -> tuple[float, float]:
    """(a, b): grams of soft-tissue and cortical-bone basis per gram of ``material``."""
    if material == "air":
        return 0.0, 0.0
    e, w = _weighting()
    return basis_decomposition(material, e, w, BASIS)


def basis_luts(tissues: TissueTable) -> tuple[np.ndarray, np.ndarray]:
    """Two 256-entry tables label → soft-equivalent and bone-equivalent density (g/cm³)."""
    soft = np.zeros(256, np.float32)
    bone = np.zeros(256, np.float32)
    for t in tissues:
        a, b = material_basis(t.material)
        soft[t.label] = a * t.density_g_cm3
        bone[t.label] = b * t.density_g_cm3
    return soft, bone


def mu_lut(tissues: TissueTable, energy_kev: float) -> np.ndarray:
    """256-entry table label → μ (1/mm) at one energy (monoenergetic, for benchmarks)."""
    out = np.zeros(256, np.float32)
    for t in tissues:
        if t.material != "air":
            out[t.label] = mass_attenuation(t.material, energy_kev) * t.density_g_cm3 / 10.0
    return out


SHELL_CODE = 128  # material code of a bone label's cortical shell: label + 128


def basis_volume(patient: Patient, cortex_mm: float = 1.0,
                 cortex_density_g_cm3: float = 1.85) -> tuple[np.ndarray, np.ndarray]:
    """Material codes (uint8, shape of the labels) and their table (256, 2) of soft- and
    bone-equivalent densities (g/cm³). Code = label, or label + 128 for the cortical shell
    of bone (see module docstring)."""
    labels = patient.labels
    tissues = patient.tissues
    soft_lut, bone_lut = basis_luts(tissues)
    lut = np.zeros((256, 2), np.float32)
    lut[:, 0] = soft_lut
    lut[:, 1] = bone_lut
    codes = np.asarray(labels, dtype=np.uint8).copy()
    bone_ids = [t.label for t in tissues if t.is_bone and t.label < SHELL_CODE]
    if cortex_mm <= 0 or not bone_ids:
        return codes, lut
    is_bone = np.isin(labels, bone_ids)
    if not is_bone.any():
        return codes, lut
    sl = ndimage.find_objects(is_bone.astype(np.uint8))[0]
    sl = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in sl)
    sub = is_bone[sl]
    # shell: bone voxels within cortex_mm of non-bone (erosion by an ellipsoid of radius
    # cortex_mm in voxel units; at least one voxel)
    sp = np.asarray(patient.spacing_mm, float)
    rad = np.maximum(np.round(cortex_mm / sp), 1).astype(int)
    grid = np.ogrid[tuple(slice(-r, r + 1) for r in rad)]
    ball = sum((g * s_ / cortex_mm) ** 2 for g, s_ in zip(grid, sp, strict=True)) <= 1.0 + 1e-9
    if ball.sum() <= 1:
        ball = ndimage.generate_binary_structure(3, 1)
    core = ndimage.binary_erosion(sub, structure=ball, border_value=1)
    shell = sub & ~core
    lab = codes[sl]
    n_all = np.bincount(lab[sub], minlength=256)
    n_shell = np.bincount(lab[shell], minlength=256)
    ca, cb = material_basis("cortical_bone")
    pa, pb = material_basis("cancellous_bone")
    for lid in bone_ids:
        n, ns = int(n_all[lid]), int(n_shell[lid])
        if n == 0:
            continue
        rho = tissues[lid].density_g_cm3
        rho_c = max(rho, cortex_density_g_cm3)
        ni = n - ns
        rho_i = float(np.clip((rho * n - rho_c * ns) / ni, 1.0, rho)) if ni else rho
        lut[lid] = (pa * rho_i, pb * rho_i)
        lut[lid + SHELL_CODE] = (ca * rho_c, cb * rho_c)
    lab[shell] += SHELL_CODE
    return codes, lut
