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
pedicle ring ("eye") and laminar edges their radiographic cortical line. The interior
is not one value: its density carries a trabecular texture (``anatomy.bone``),
written as CT numbers (:mod:`needleguide.fluoro.hu_materials`).

An imported CT (``patient.hu``) is rendered from its Hounsfield units instead: every voxel
inside the body (label ≠ 0) is a CT-number code; labels add only what HU cannot say (the
``metal`` label is steel). Codes are uint16 (see ``hu_materials``).

Anatomy beyond the volume's cranial and caudal ends (a CT covers only part of the trunk) is
extended with soft tissue: ``extend_mm`` of slices repeating the end slice's (smoothed)
body outline filled uniformly with its mean attenuation (bone counted as soft tissue), so
the cone beam never sees a black cut-off and the extension draws no streaks.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

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
TEXTURE_HU = 80.0  # σ of the trabecular density texture (HU, *assumption*)
EXTEND_MM = 120.0  # soft-tissue extension beyond the volume's z ends (mm)
EXTEND_BLUR_MM = 10.0  # smoothing of the extension's body outline (mm)


def code_lut(tissues: TissueTable) -> np.ndarray:
    """(N_CODES, 2) float32: soft- and bone-equivalent densities (g/cm³) of every code:
    tissue labels (< 128), their cortical shells (label + 128) and CT numbers (outside
    and inside bone, see ``hu_materials``)."""
    from needleguide.fluoro.hu_materials import HU_BONE_CODE0, HU_CODE0, N_CODES, hu_basis_table

    lut = np.zeros((N_CODES, 2), np.float32)
    soft_lut, bone_lut = basis_luts(tissues)
    lut[:256, 0] = soft_lut
    lut[:256, 1] = bone_lut
    lut[HU_CODE0:HU_BONE_CODE0] = hu_basis_table()
    lut[HU_BONE_CODE0:] = hu_basis_table(bone=True)
    return lut


def basis_volume(patient: Patient, cortex_mm: float = 1.0,
                 cortex_density_g_cm3: float = 1.85, texture_hu: float = TEXTURE_HU,
                 extend_mm: float = EXTEND_MM, seed: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Material codes (uint16), their table (N_CODES, 2) of soft- and bone-equivalent
    densities (g/cm³), and the codes' VoxelToPatient (the volume may be extended along
    axis 2, see the module docstring). A patient with ``hu`` is rendered from its CT
    numbers; otherwise code = label, label + 128 for the cortical shell of bone, and a
    textured CT-number code inside bone."""
    from needleguide.fluoro.hu_materials import hu_codes

    tissues = patient.tissues
    lut = code_lut(tissues)
    hu = getattr(patient, "hu", None)
    if hu is not None:
        from needleguide.anatomy.bone import bone_ids

        codes = hu_codes(hu, bone=np.isin(patient.labels, bone_ids(tissues)))
        codes[patient.labels == 0] = 0  # outside the body: the scanner's table, blankets
        if "metal" in tissues:
            codes[patient.labels == tissues.label("metal")] = tissues.label("metal")
    else:
        codes = _label_codes(patient, lut, cortex_mm, cortex_density_g_cm3, texture_hu,
                             patient.meta.get("seed", 0) if seed is None else seed)
    codes, aff = _extend(codes, patient, lut, extend_mm)
    return codes, lut, aff


def _label_codes(patient: Patient, lut: np.ndarray, cortex_mm: float,
                 cortex_density_g_cm3: float, texture_hu: float, seed: int) -> np.ndarray:
    from needleguide.anatomy.bone import bone_ids, cortical_shell, trabecular_texture
    from needleguide.fluoro.hu_materials import HU_BONE_CODE0, HU_MAX, HU_MIN, hu_of

    labels = patient.labels
    tissues = patient.tissues
    codes = np.asarray(labels, dtype=np.uint16).copy()
    found = cortical_shell(labels, tissues, patient.spacing_mm, cortex_mm)
    if found is None:
        return codes
    sl, sub, shell = found
    lab = codes[sl]
    n_all = np.bincount(labels[sl][sub], minlength=256)
    n_shell = np.bincount(labels[sl][shell], minlength=256)
    ca, cb = material_basis("cortical_bone")
    interior_hu = np.zeros(256, np.float32)
    for lid in bone_ids(tissues):
        n, ns = int(n_all[lid]), int(n_shell[lid])
        if n == 0:
            continue
        rho = tissues[lid].density_g_cm3
        rho_c = max(rho, cortex_density_g_cm3)
        ni = n - ns
        rho_i = float(np.clip((rho * n - rho_c * ns) / ni, 1.0, rho)) if ni else rho
        interior_hu[lid] = hu_of("cancellous_bone", rho_i)
        lut[lid + SHELL_CODE] = (ca * rho_c, cb * rho_c)
    inner = sub & ~shell
    h = interior_hu[labels[sl][inner]]
    if texture_hu > 0:
        h = h + texture_hu * trabecular_texture(sub.shape, patient.spacing_mm, seed)[inner]
    lab[shell] += SHELL_CODE
    lab[inner] = (np.clip(np.rint(h), HU_MIN, HU_MAX) - HU_MIN + HU_BONE_CODE0
                  ).astype(np.uint16)
    return codes


def _extend(codes: np.ndarray, patient: Patient, lut: np.ndarray,
            extend_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Pad axis 2 at each end whose slice holds body with ``extend_mm`` of uniform soft
    tissue: that slice's body outline (smoothed by ``EXTEND_BLUR_MM``) filled with its mean
    attenuation (bone → soft tissue). Returns codes and their VoxelToPatient."""
    from needleguide.fluoro.hu_materials import HU_CODE0, HU_MIN, hu_of

    aff = np.asarray(patient.VoxelToPatient, float)
    if extend_mm <= 0 or codes.shape[2] < 2:
        return codes, aff
    dz = float(np.linalg.norm(aff[:3, 2]))
    n = int(np.ceil(extend_mm / dz))
    soft = np.uint16(int(round(hu_of("soft_tissue"))) - HU_MIN + HU_CODE0)
    bony = lut[:, 1] > 0.3 * np.maximum(lut[:, 0] + lut[:, 1], 1e-6)  # bone-dominated codes

    from scipy import ndimage

    # μ at 60 keV of every code, and the soft-tissue-table CT numbers that reproduce it
    mu = lut[:, 0] * float(mass_attenuation(BASIS[0], 60.0)) \
        + lut[:, 1] * float(mass_attenuation(BASIS[1], 60.0))
    h_grid = np.arange(-989, int(round(hu_of("soft_tissue"))) + 1)
    mu_grid = mu[h_grid - HU_MIN + HU_CODE0]
    sig = EXTEND_BLUR_MM / np.linalg.norm(aff[:3, :2], axis=0)

    def cap(sl: np.ndarray) -> np.ndarray | None:
        """The end slice as uniform soft tissue: its body outline (smoothed) filled with
        the slice's mean attenuation (bone counted as soft tissue), as CT numbers: no
        in-plane detail, so the extension draws no streaks in tilted views."""
        body = sl != 0
        if not body.any():
            return None
        c = sl.copy()
        c[bony[c]] = soft
        mean_mu = float(np.mean(mu[c[body]]))
        body = ndimage.gaussian_filter(body.astype(float), sig) >= 0.5
        h = float(np.interp(mean_mu, mu_grid, h_grid))
        out = np.zeros(sl.shape, np.uint16)
        out[body] = np.uint16(int(round(h)) - HU_MIN + HU_CODE0)
        return out

    lo, hi = cap(codes[:, :, 0]), cap(codes[:, :, -1])
    if lo is None and hi is None:
        return codes, aff
    parts = []
    n_lo = n if lo is not None else 0
    if lo is not None:
        parts.append(np.repeat(lo[:, :, None], n, axis=2))
    parts.append(codes)
    if hi is not None:
        parts.append(np.repeat(hi[:, :, None], n, axis=2))
    out = np.concatenate(parts, axis=2)
    shift = np.eye(4)
    shift[2, 3] = -n_lo
    return out, aff @ shift
