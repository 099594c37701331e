"""Hounsfield units → X-ray materials: the material decomposition of a CT voxel.

A CT number h is the voxel's linear attenuation at the scanner's effective energy relative
to water: h = 1000 (μ/μ_water − 1). ``CT_EFFECTIVE_KEV`` (70 keV, *assumption*: a 120 kVp
scanner's effective energy lies at 60–75 keV) fixes the scale. Between anchor materials
the voxel is a volume mixture of the two neighbours that reproduces h exactly at that
energy (as DeepDRR segments air / soft tissue / bone and scales density with HU; here the
mixture also follows the spectrum, since each component keeps its own composition):

    air (−999 HU) ↔ adipose (ICRU-44, −76) ↔ soft tissue (ICRU-44, +53) ↔ cortical bone
    (ICRU-44 at 1.92 g/cm³, +1559); above that, cortical bone at a density scaled with h;
    from ``METAL_HU`` (2500) up, stainless steel (CT clips metal at 3071: its true density
    is unknown, so a voxel that bright is taken as solid steel).

Where the label map says bone, the lower partner above the marrow's CT number (−11 HU) is
marrow — half adipose, half soft tissue by volume, the mean of red and yellow marrow —
instead of soft tissue: cancellous bone at 150–400 HU becomes 10–26 % cortical bone in
marrow (1.08–1.29 g/cm³; ICRU-46 spongiosa is 1.18), the marrow/bone mixtures of Schneider
et al. (Phys Med Biol 2000). Elsewhere (enhanced vessels, organs) the partner stays soft
tissue. Each mixture is written in the two-material basis
of :mod:`needleguide.fluoro.volume` (soft-tissue- and bone-equivalent densities, g/cm³).

Volumes carry uint16 codes: codes below ``HU_CODE0`` are tissue labels (read through the
tissue table), code ``HU_CODE0 + (h + 1024)`` is the CT number h (1 HU steps,
−1024 … 3071) and ``HU_BONE_CODE0 + (h + 1024)`` the same in bone.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from needleguide.fluoro.materials import density_g_cm3, mass_attenuation

CT_EFFECTIVE_KEV = 70.0
HU_MIN, HU_MAX = -1024, 3071
HU_CODE0 = 256
N_HU = HU_MAX - HU_MIN + 1
HU_BONE_CODE0 = HU_CODE0 + N_HU
N_CODES = HU_BONE_CODE0 + N_HU
METAL_HU = 2500.0
AIR_HU = -990.0  # at or below: air (code 0, nothing to project)
ANCHORS = ("air", "adipose", "soft_tissue", "cortical_bone")


def hu_of(material: str, density: float | None = None,
          energy_kev: float = CT_EFFECTIVE_KEV) -> float:
    """CT number (HU) of ``material`` at ``density`` (g/cm³, default nominal)."""
    rho = density_g_cm3(material) if density is None else float(density)
    mu_w = float(mass_attenuation("water", energy_kev))
    return 1000.0 * (float(mass_attenuation(material, energy_kev)) * rho / mu_w - 1.0)


@lru_cache(maxsize=2)
def hu_basis_table(bone: bool = False) -> np.ndarray:
    """(HU_MAX − HU_MIN + 1, 2) float32: soft- and bone-equivalent densities (g/cm³) of
    the CT number HU_MIN + i (see module docstring); ``bone``: the table of voxels the
    label map calls bone (marrow ↔ cortical bone above the marrow's CT number)."""
    from needleguide.fluoro.volume import material_basis

    h = np.arange(HU_MIN, HU_MAX + 1, dtype=float)
    out = np.zeros((h.size, 2), np.float64)
    anchors = [(hu_of(m), density_g_cm3(m), np.array(material_basis(m))) for m in ANCHORS]
    for (h1, r1, b1), (h2, r2, b2) in zip(anchors[:-1], anchors[1:], strict=True):
        sel = (h >= h1) & (h < h2)
        v = ((h[sel] - h1) / (h2 - h1))[:, None]
        out[sel] = (1.0 - v) * r1 * b1 + v * r2 * b2
    hc, rc, bc = anchors[-1]
    if bone:
        # marrow: half adipose, half soft tissue by volume (= the mixture table at its HU)
        (hf, rf, bf), (hs, rs, bs) = anchors[1], anchors[2]
        hm = 0.5 * (hf + hs)
        dens_m = 0.5 * (rf * bf + rs * bs)
        sel = (h >= hm) & (h < hc)
        v = ((h[sel] - hm) / (hc - hm))[:, None]
        out[sel] = (1.0 - v) * dens_m + v * rc * bc
    dense = (h >= hc) & (h < METAL_HU)
    out[dense] = (rc * (1000.0 + h[dense]) / (1000.0 + hc))[:, None] * bc
    out[h >= METAL_HU] = density_g_cm3("steel") * np.array(material_basis("steel"))
    out[h <= AIR_HU] = 0.0
    return out.astype(np.float32)


def hu_codes(hu: np.ndarray, bone: np.ndarray | None = None) -> np.ndarray:
    """uint16 material codes of a HU volume (air → 0); voxels where ``bone`` is true get
    the bone table's codes (``HU_BONE_CODE0 + h + 1024``)."""
    h = np.clip(np.rint(np.nan_to_num(hu, nan=-1000.0)), HU_MIN, HU_MAX)
    codes = (h - HU_MIN + HU_CODE0).astype(np.uint16)
    if bone is not None:
        codes[bone] += np.uint16(HU_BONE_CODE0 - HU_CODE0)
    codes[h <= AIR_HU] = 0
    return codes
