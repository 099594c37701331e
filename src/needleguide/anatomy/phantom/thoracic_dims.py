"""Thoracic morphometry (T1–T12), ribs, and the numbering variants of the whole spine.

Vertebrae (mm, degrees): rounded typical adult values after Panjabi MM et al., "Thoracic
human vertebrae. Quantitative three-dimensional anatomy", Spine 1991;16(8):888–901 (end-
plate width / depth, body height, pedicle height, canal, spinous length, transverse span:
read as a smooth trend from T1 to T12, not transcribed entry by entry) and Kaur K et al.
2016 (pedicle width T1 9.3, T4 4.5, T12 8.3 mm; transverse process length T1 23.5, T7
31.2, T12 12.1 mm). T11 and T12 are the lumbar phantom's (anthropometry.py). Disc heights
4.5 mm (upper) to 6.5 mm (T10–T11) and the spinous slope (steepest, ~45°, at T5–T8) are
*assumptions* of the usual textbook shape. Level pitch (body + disc) T3 ≈ 21.5 mm … T10 ≈
28 mm (the thoracic 21–29 mm).

Ribs: half width of each rib ring (chest half width at that rib, without the shoulder
girdle), the drop of its anterior end below its head, where it ends (angle from the
posterior midline, 180° = anterior midline) and its radius. *Assumptions* after standard
anatomy: rib 1 short, broad and steep under the clavicle; ribs 8–10 end at the costal
margin; 11 and 12 float, the 12th short (≈ 10–12 cm).

Variants (per seed, ``draw_variants``; EVIDENCE.md §9, abstract-level rates):
lumbosacral transitional vertebrae 16 % (Tang 2014, n = 5,860: 15.8 %), split 10 %
sacralised L5 / 6 % lumbarised S1 (published splits disagree: 17.2 / 1.7 % Uçar 2013,
4.1 / 5.8 % Australian cohort, 2.7 / 6.2 % Nakajima 2014: a middle value); six lumbar
vertebrae 2.7 % (Rabau 2021); 11 rib pairs 5.8 % (Yan 2018); 13 rib pairs (a lumbar rib
on L1) 5.8 % (Nakajima 2014, lumbar ribs). The lumbosacral and the rib variants are drawn
independently; within each, one at most.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from needleguide.anatomy.phantom.anthropometry import VERTEBRAE, VertebraDims, scaled_dims

# name, EPW, EPD, VBH, PDW, PDH, PD angle, SCW, SCD, SPL, SP height, TPW, disc, facet,
# spinous slope
_THORACIC = (
    ("T1", 27.0, 17.5, 15.5, 9.3, 9.5, 25.0, 21.0, 14.5, 32.0, 10.0, 75.0, 4.5, 70.0, 30.0),
    ("T2", 27.5, 18.5, 16.5, 7.5, 10.5, 18.0, 18.0, 15.0, 33.0, 10.0, 72.0, 4.5, 70.0, 35.0),
    ("T3", 28.0, 20.0, 17.0, 5.5, 11.0, 12.0, 17.0, 15.5, 33.0, 10.5, 70.0, 4.5, 70.0, 38.0),
    ("T4", 28.5, 22.0, 17.5, 4.8, 11.5, 10.0, 16.0, 15.5, 35.0, 10.5, 68.0, 4.5, 70.0, 42.0),
    ("T5", 29.5, 24.0, 18.0, 4.7, 12.0, 8.0, 15.5, 15.5, 36.0, 11.0, 66.0, 4.8, 70.0, 45.0),
    ("T6", 30.5, 25.5, 18.5, 4.9, 12.5, 7.0, 15.5, 15.5, 37.0, 11.0, 65.0, 5.0, 70.0, 45.0),
    ("T7", 31.5, 26.5, 19.0, 5.2, 13.0, 6.0, 15.5, 15.5, 37.0, 11.5, 64.0, 5.3, 70.0, 45.0),
    ("T8", 32.5, 27.5, 19.5, 5.8, 13.5, 5.0, 16.0, 15.5, 36.0, 12.0, 62.0, 5.6, 70.0, 40.0),
    ("T9", 33.5, 28.5, 20.5, 6.3, 14.0, 5.0, 16.5, 16.0, 35.0, 12.5, 60.0, 6.0, 70.0, 35.0),
    ("T10", 35.0, 29.5, 21.5, 7.0, 15.0, 5.0, 17.5, 16.5, 34.0, 13.0, 58.0, 6.3, 65.0, 28.0),
)

THORACIC: dict[str, VertebraDims] = {r[0]: VertebraDims(*r) for r in _THORACIC}
THORACIC.update({n: replace(VERTEBRAE[n], spinous_tilt_deg=20.0 if n == "T11" else 12.0)
                 for n in ("T11", "T12")})


@dataclass(frozen=True)
class RibShape:
    """One rib pair: ring half width (mm), anterior drop (mm), end angle (deg from the
    posterior midline), tube radius (mm)."""

    half_width: float
    drop: float
    end_deg: float
    radius: float


RIBS: dict[int, RibShape] = {
    1: RibShape(52.0, 32.0, 150.0, 4.6), 2: RibShape(82.0, 52.0, 152.0, 4.0),
    3: RibShape(102.0, 66.0, 155.0, 3.9), 4: RibShape(114.0, 76.0, 155.0, 3.9),
    5: RibShape(122.0, 84.0, 155.0, 3.9), 6: RibShape(127.0, 90.0, 152.0, 3.9),
    7: RibShape(130.0, 94.0, 150.0, 3.9), 8: RibShape(131.0, 94.0, 140.0, 3.8),
    9: RibShape(130.0, 90.0, 132.0, 3.7), 10: RibShape(127.0, 80.0, 125.0, 3.6),
    11: RibShape(121.0, 58.0, 105.0, 3.4), 12: RibShape(114.0, 38.0, 74.0, 3.1),
}
LUMBAR_RIB = RibShape(100.0, 22.0, 48.0, 2.8)  # a short rib on L1 (13 rib pairs)

LUMBOSACRAL = ("none", "sacralised_L5", "lumbarised_S1", "six_lumbar")
RIB_VARIANTS = ("12", "11", "13")
LUMBOSACRAL_RATES = {"sacralised_L5": 0.10, "lumbarised_S1": 0.06, "six_lumbar": 0.027}
RIB_RATES = {"11": 0.058, "13": 0.058}


@dataclass(frozen=True)
class SpineVariants:
    """The numbering variants of one whole-spine phantom.

    lumbosacral: 'none' | 'sacralised_L5' (the last lumbar vertebra fused to the sacrum:
    broad transverse processes joined to the ala, the disc below bony) | 'lumbarised_S1'
    (S1 separated from S2 by a disc) | 'six_lumbar' (25 presacral vertebrae: L1–L6);
    ribs: '12' | '11' (no rib on T12) | '13' (a short rib on L1)."""

    lumbosacral: str = "none"
    ribs: str = "12"

    def __post_init__(self) -> None:
        if self.lumbosacral not in LUMBOSACRAL or self.ribs not in RIB_VARIANTS:
            from needleguide.errors import UserError

            raise UserError(f"variants: lumbosacral must be one of {', '.join(LUMBOSACRAL)} "
                            f"and ribs one of {', '.join(RIB_VARIANTS)}")

    @property
    def transitional(self) -> bool:
        return self.lumbosacral != "none" or self.ribs != "12"

    @property
    def n_lumbar(self) -> int:
        return 6 if self.lumbosacral == "six_lumbar" else 5

    def rib_bearing(self) -> tuple[str, ...]:
        """Names (counted from C1) of the vertebrae that carry a rib pair."""
        names = [f"T{i}" for i in range(1, 13)]
        if self.ribs == "11":
            names.remove("T12")
        if self.ribs == "13":
            names.append("L1")
        return tuple(names)

    def label(self) -> str:
        parts = [p for p in (self.lumbosacral if self.lumbosacral != "none" else "",
                             "" if self.ribs == "12" else f"{self.ribs}_rib_pairs") if p]
        return "+".join(parts) or "none"


def draw_variants(rng: np.random.Generator) -> SpineVariants:
    """Variants at the published rates (module docstring); two draws from ``rng``."""
    u, v = float(rng.random()), float(rng.random())
    ls, acc = "none", 0.0
    for name, r in LUMBOSACRAL_RATES.items():
        acc += r
        if u < acc:
            ls = name
            break
    ribs = "11" if v < RIB_RATES["11"] else ("13" if v < RIB_RATES["11"] + RIB_RATES["13"]
                                             else "12")
    return SpineVariants(ls, ribs)


def thoracic_dims(rng: np.random.Generator, names: list[str], scale: float
                  ) -> dict[str, VertebraDims]:
    """Per-seed dimensions of the thoracic chain: ``scale`` × a per-level factor (sd 1.5 %)."""
    out = {}
    for n in names:
        d = THORACIC[n]
        f = scale * float(np.clip(1.0 + rng.normal(0, 0.015), 0.96, 1.04))
        out[n] = scaled_dims(d, f, rng)
    return out


__all__ = ["THORACIC", "RIBS", "LUMBAR_RIB", "RibShape", "SpineVariants", "draw_variants",
           "thoracic_dims", "LUMBOSACRAL", "RIB_VARIANTS"]
