"""Published dimensions of the thoracolumbar spine, sacrum, pelvis and hip (mm, degrees).

Sources (see docs/anatomy.md for the full list):
- Lumbar vertebrae L1–L5: Panjabi MM et al., "Human lumbar vertebrae. Quantitative
  three-dimensional anatomy", Spine 1992;17(3):299–306 (end-plate width/depth, body
  height, pedicle width/height, canal width/depth, spinous / transverse process size).
  Pedicle widths and transverse angles cross-checked with Zindrick MR et al., Spine
  1987;12(2):160–166.
- T11, T12: Panjabi MM et al., "Thoracic human vertebrae. Quantitative three-dimensional
  anatomy", Spine 1991;16(8):888–901.
- Facet orientation (angle of the joint to the mid-sagittal plane, axial view): Panjabi MM
  et al., "Articular facets of the human spine", Spine 1993;18(10):1298–1310; Masharawi Y
  et al., Spine 2004;29(16):1755–1763.
- Disc heights (mid-disc): Twomey & Taylor 1987 (Clin Orthop 224:97); Zhou SH et al., Eur
  Spine J 2000;9:242–248.
- Sagittal alignment: Legaye J et al., Eur Spine J 1998;7:99–103 (pelvic incidence 52°,
  sacral slope 40°, pelvic tilt 12°); Vialle R et al., JBJS Am 2005;87:260–267.
- Sacrum and hiatus: Senoglu N et al., Br J Anaesth 2005;95:692–695 (hiatus apex at S4,
  length ~20 mm, base width ~10 mm, depth ~5 mm at the apex).
- Proximal femur: Toogood PA et al., Clin Orthop Relat Res 2009;467:876–885 (head diameter,
  neck-shaft angle ~129°, anteversion ~10°).

Values are population means, rounded; the phantom scales them per seed by a few percent.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

LEVELS = ("T11", "T12", "L1", "L2", "L3", "L4", "L5")


@dataclass(frozen=True)
class VertebraDims:
    """Dimensions of one vertebra (mm, degrees)."""

    name: str
    body_width: float  # end-plate width (EPW)
    body_depth: float  # end-plate depth (EPD)
    body_height: float  # mean body height (VBH)
    pedicle_width: float  # transverse pedicle width (PDW)
    pedicle_height: float  # PDH
    pedicle_angle: float  # transverse (medial convergence) angle, deg
    canal_width: float  # interpedicular width (SCW)
    canal_depth: float  # mid-sagittal canal depth (SCD)
    spinous_length: float  # from the posterior canal to the tip (SPL)
    spinous_height: float  # cranio-caudal height of the spinous process
    tp_span: float  # transverse process tip-to-tip width (TPW)
    disc_below: float  # mid-height of the disc below, mm
    facet_angle_below: float  # joint with the level below: angle to the sagittal plane, deg
    spinous_tilt_deg: float = 8.0  # caudal slope of the spinous process (thoracic: steeper)


# name, EPW, EPD, VBH, PDW, PDH, PD angle, SCW, SCD, SPL, SP height, TPW, disc, facet
_TABLE = (
    ("T11", 36.0, 30.0, 22.5, 7.5, 16.0, 5.0, 19.5, 17.0, 30.0, 14.0, 60.0, 6.5, 60.0),
    ("T12", 39.0, 31.5, 24.0, 8.0, 16.0, 8.0, 21.5, 17.5, 31.0, 16.0, 50.0, 7.5, 30.0),
    ("L1", 40.0, 33.0, 25.5, 8.7, 15.5, 11.0, 23.0, 18.0, 32.0, 17.0, 70.0, 9.0, 26.0),
    ("L2", 42.0, 34.0, 26.0, 8.9, 15.0, 12.0, 23.5, 17.5, 33.0, 18.0, 78.0, 10.0, 32.0),
    ("L3", 44.5, 35.0, 26.0, 10.3, 14.8, 14.0, 23.5, 16.5, 33.0, 18.0, 86.0, 11.0, 40.0),
    ("L4", 46.5, 35.5, 25.5, 12.9, 14.5, 17.0, 24.0, 16.5, 31.0, 17.0, 82.0, 11.5, 47.0),
    ("L5", 49.0, 35.0, 25.0, 18.0, 14.0, 30.0, 26.5, 17.5, 27.0, 14.0, 86.0, 10.5, 50.0),
)

VERTEBRAE: dict[str, VertebraDims] = {r[0]: VertebraDims(*r) for r in _TABLE}

# Anterior tilt (deg) of each body's end-plate normal from vertical in standing; differences
# give the segmental lordosis. L1 -> S1 = 49° (target ≈ 50°, Legaye 1998 / Vialle 2005).
TILT_DEG = {"T11": -15.0, "T12": -12.0, "L1": -9.0, "L2": -4.0, "L3": 3.0, "L4": 11.0,
            "L5": 21.0, "S1": 40.0}


@dataclass(frozen=True)
class PelvisDims:
    """Sacrum, pelvis and proximal femur (mm, degrees)."""

    s1_width: float = 50.0  # S1 end-plate width
    s1_depth: float = 36.0
    sacrum_length: float = 105.0  # S1 end plate to apex along the curve
    sacrum_base_width: float = 112.0  # ala tip to ala tip
    sacral_kyphosis: float = 35.0  # deg, total curvature S1 -> S5
    hiatus_length: float = 20.0
    hiatus_width: float = 10.0
    hiatus_depth: float = 5.5
    coccyx_length: float = 30.0
    pelvic_tilt: float = 12.0  # deg
    pelvic_radius: float = 118.0  # hip axis to S1 end-plate centre
    hip_separation: float = 176.0  # distance between femoral head centres
    femoral_head_diameter: float = 46.0
    neck_shaft_angle: float = 129.0
    anteversion: float = 10.0
    neck_length: float = 32.0
    iliac_crest_width: float = 280.0  # intercristal distance (outer)
    asis_width: float = 235.0
    cartilage_mm: float = 2.0  # hip articular cartilage (acetabular + femoral)


# Degeneration grade 0..3 (assumption, after Pfirrmann 2001 / Wilke): fraction of disc
# height lost, osteophyte size (mm), facet hypertrophy (fraction), flavum thickness (mm).
DEGENERATION = {
    0: dict(disc_loss=0.0, osteophyte_mm=0.0, facet_growth=0.0, flavum_mm=3.0),
    1: dict(disc_loss=0.15, osteophyte_mm=2.0, facet_growth=0.15, flavum_mm=3.8),
    2: dict(disc_loss=0.30, osteophyte_mm=4.0, facet_growth=0.30, flavum_mm=4.6),
    3: dict(disc_loss=0.50, osteophyte_mm=6.0, facet_growth=0.50, flavum_mm=5.5),
}


def sample_dimensions(rng: np.random.Generator, size_sd: float = 0.03
                      ) -> tuple[dict[str, VertebraDims], PelvisDims, float]:
    """Per-seed variation: a global body-size factor (sd ``size_sd``) times a small
    per-level factor (sd 1.5%). Returns vertebra dims, pelvis dims and the global scale."""
    g = float(np.clip(1.0 + rng.normal(0, size_sd), 0.9, 1.1))
    out: dict[str, VertebraDims] = {}
    for name, d in VERTEBRAE.items():
        f = g * float(np.clip(1.0 + rng.normal(0, 0.015), 0.96, 1.04))
        out[name] = scaled_dims(d, f, rng)
    p = PelvisDims()
    fp = g * float(np.clip(1.0 + rng.normal(0, 0.02), 0.95, 1.05))
    pelvis = replace(
        p, s1_width=p.s1_width * fp, s1_depth=p.s1_depth * fp,
        sacrum_length=p.sacrum_length * fp, sacrum_base_width=p.sacrum_base_width * fp,
        pelvic_radius=p.pelvic_radius * fp, hip_separation=p.hip_separation * fp,
        femoral_head_diameter=p.femoral_head_diameter * fp, neck_length=p.neck_length * fp,
        iliac_crest_width=p.iliac_crest_width * fp, asis_width=p.asis_width * fp,
        pelvic_tilt=p.pelvic_tilt + float(rng.normal(0, 2.0)),
        neck_shaft_angle=p.neck_shaft_angle + float(rng.normal(0, 2.0)),
    )
    return out, pelvis, g


def scaled_dims(d: VertebraDims, f: float, rng: np.random.Generator) -> VertebraDims:
    """``d`` with every length scaled by ``f`` and the facet angle below jittered
    (sd 3°, one draw from ``rng``)."""
    return replace(
        d, body_width=d.body_width * f, body_depth=d.body_depth * f,
        body_height=d.body_height * f, pedicle_width=d.pedicle_width * f,
        pedicle_height=d.pedicle_height * f, canal_width=d.canal_width * f,
        canal_depth=d.canal_depth * f, spinous_length=d.spinous_length * f,
        spinous_height=d.spinous_height * f, tp_span=d.tp_span * f,
        disc_below=d.disc_below * f,
        facet_angle_below=d.facet_angle_below + float(rng.normal(0, 3.0)),
    )
