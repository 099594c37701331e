"""Which compartment the needle tip is in: the label at the tip plus the labels around it.

``classify_tip`` weighs the tissue at the tip (half the vote) and a Gaussian-weighted
neighbourhood within ``radius_mm`` (the other half), maps tissues to compartments, drops
shares below ``min_fraction`` and renormalises: a tip deep in epidural fat is 100%
epidural, a tip on the wall of an epidural vein splits (e.g. 70% epidural + 30% venous).
Bone, air, metal and membranes (dura) do not vote: they hold no injectate.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.anatomy.tissues import TissueTable
from needleguide.errors import UserError


class Compartment(StrEnum):
    EPIDURAL = "epidural"
    ARTERIAL = "intravascular_arterial"
    VENOUS = "intravascular_venous"
    INTRATHECAL = "intrathecal"
    FACET = "intra_articular_facet"
    SIJ = "intra_articular_sij"
    HIP = "intra_articular_hip"
    SOFT_TISSUE = "soft_tissue"
    PERINEURAL = "perineural"

    @property
    def vascular(self) -> bool:
        return self in (Compartment.ARTERIAL, Compartment.VENOUS)

    @property
    def articular(self) -> bool:
        return self in (Compartment.FACET, Compartment.SIJ, Compartment.HIP)


_BY_NAME: dict[str, Compartment] = {
    "epidural_fat": Compartment.EPIDURAL,
    "foramen": Compartment.EPIDURAL,
    "sacral_hiatus": Compartment.EPIDURAL,
    "sacral_foramen": Compartment.EPIDURAL,
    "csf": Compartment.INTRATHECAL,
    "spinal_cord": Compartment.INTRATHECAL,
    "facet_joint_space": Compartment.FACET,
    "sij_space": Compartment.SIJ,
    "hip_capsule": Compartment.HIP,
    "hip_cartilage": Compartment.HIP,
    "epidural_venous_plexus": Compartment.VENOUS,
    "ivc": Compartment.VENOUS,
    "internal_jugular": Compartment.VENOUS,
}
_NO_VOTE_GROUPS = {"bone", "air", "metal"}
_NO_VOTE_NAMES = {"dura"}
_SOFT_GROUPS = {"muscle", "fat", "skin", "organ", "ligament", "cartilage"}


def compartment_of_tissue(tissues: TissueTable, label: int) -> Compartment | None:
    """The compartment injectate enters from a tip in tissue ``label`` (None: it holds none)."""
    t = tissues[int(label)]
    if t.name in _BY_NAME:
        return _BY_NAME[t.name]
    if t.group in _NO_VOTE_GROUPS or t.name in _NO_VOTE_NAMES:
        return None
    if t.group == "vessel":
        venous = "vein" in t.name or "venous" in t.name
        return Compartment.VENOUS if venous else Compartment.ARTERIAL
    if t.group == "neural":
        return Compartment.PERINEURAL
    if t.group in _SOFT_GROUPS or t.group == "fluid":
        return Compartment.SOFT_TISSUE
    return None


def compartment_lut(tissues: TissueTable) -> np.ndarray:
    """256-entry table: label -> index into ``list(Compartment)``, −1 for no compartment."""
    comps = list(Compartment)
    lut = np.full(256, -1, dtype=np.int16)
    for t in tissues:
        c = compartment_of_tissue(tissues, t.label)
        if c is not None:
            lut[t.label] = comps.index(c)
    return lut


def compartment_labels(tissues: TissueTable, compartment: Compartment) -> list[int]:
    """Tissue labels that belong to ``compartment``."""
    return [t.label for t in tissues if compartment_of_tissue(tissues, t.label) == compartment]


def classify_tip(patient: Patient, tip_mm, radius_mm: float = 1.5, min_fraction: float = 0.1,
                 spacing_mm: float = 0.5) -> dict[Compartment, float]:
    """Compartment shares (summing to 1) for a needle tip at ``tip_mm`` (RAS mm).

    The tissue at the tip carries half of the vote, a Gaussian-weighted (σ = radius/2)
    ball of ``radius_mm`` the other half, on a local grid re-rendered at ``spacing_mm``.
    Raises :class:`UserError` when nothing around the tip can hold injectate (bone, air).
    """
    tip = np.asarray(tip_mm, dtype=float).reshape(3)
    size = 2.0 * radius_mm + 2.0 * spacing_mm
    roi = patient.roi(tip, size, spacing_mm)
    n = np.array(roi.shape)
    ijk = np.stack(np.meshgrid(*[np.arange(k) for k in n], indexing="ij"), axis=-1)
    pts = ijk.reshape(-1, 3) @ roi.VoxelToPatient[:3, :3].T + roi.VoxelToPatient[:3, 3]
    r2 = np.sum((pts - tip) ** 2, axis=1)
    sigma = max(radius_mm / 2.0, 1e-6)
    w = np.where(r2 <= radius_mm**2, np.exp(-r2 / (2 * sigma**2)), 0.0)
    comps = list(Compartment)
    cidx = compartment_lut(patient.tissues)[roi.labels.reshape(-1)]
    vote = cidx >= 0
    shares = np.zeros(len(comps))
    wsum = float(w[vote].sum())
    if wsum > 0:
        shares += 0.5 * np.bincount(cidx[vote], weights=w[vote], minlength=len(comps)) / wsum
    tip_label = int(patient.label_at(tip[None])[0])
    tip_comp = compartment_of_tissue(patient.tissues, tip_label)
    if tip_comp is not None:
        shares[comps.index(tip_comp)] += 0.5
    if shares.sum() <= 0:
        raise UserError(f"tip_mm: {np.round(tip, 1).tolist()} is in "
                        f"{patient.tissues[tip_label].name}: nothing around it holds injectate")
    shares /= shares.sum()
    shares[shares < min(min_fraction, shares.max())] = 0.0
    shares /= shares.sum()
    return {comps[i]: float(shares[i]) for i in np.flatnonzero(shares)}
