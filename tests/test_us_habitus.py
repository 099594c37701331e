"""Habitus follows from physics: the body wall each line crosses (us/body_wall.py) costs the
deep target its detail at a high BMI; nothing in the imager knows the BMI."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.scene import Scene
from needleguide.us import USImager, make_settings
from needleguide.us.image_quality import target_bone_quality
from needleguide.us.testobjects import layered_patient, probe_on_top
from needleguide.us.views import standard_view


@pytest.fixture(scope="module")
def lumbar():
    from needleguide.anatomy.phantom import build_phantom

    return {b: build_phantom("lumbar", bmi=b, seed=0, spacing_mm=1.5) for b in (22, 38)}


def uncapped_tgc(f_mhz: float, depth_mm: float) -> tuple[float, ...]:
    """The automatic TGC without its noise-floor cap (0.8 dB/cm/MHz round trip, ≤ 60 dB), as
    a user curve: the body-wall figures compare echo levels at different depths, so they
    are taken with the TGC that compensates the attenuation all the way down."""
    z = np.linspace(0.0, depth_mm, 64)
    return tuple(float(x) for x in np.minimum(2 * 0.8 * f_mhz * z / 10.0, 60.0))


def _medial_branch_view(p) -> dict:
    v = standard_view(p, "transverse-facet", level="L4-L5", side="right")
    s = make_settings(probe=v.probe, frequency_mhz=v.frequency_mhz, depth_mm=v.depth_mm,
                      focus_mm=float(np.clip(v.target_depth_mm, 5, 0.95 * v.depth_mm)),
                      tgc_db=uncapped_tgc(v.frequency_mhz, v.depth_mm))
    im = USImager(s, seed=0)
    return target_bone_quality(im, Scene(p, poses={"ProbeToPatient": v.ProbeToPatient}),
                               v.ProbeToPatient, v.target_mm)


def test_medial_branch_target_detail_is_lost_through_a_thick_wall(lumbar):
    a = _medial_branch_view(lumbar[22])
    b = _medial_branch_view(lumbar[38])
    assert b["target_depth_mm"] > a["target_depth_mm"] + 15
    # the bone contour (its echo over the shadow under it) loses > 5 dB (seed 0: ≈ 12 dB):
    # reverberation and the aberration pedestal fill the shadow, the echo falls
    contour_a = a["contrast_db"] - a["shadow_db"]
    contour_b = b["contrast_db"] - b["shadow_db"]
    assert contour_b < contour_a - 5.0, (contour_a, contour_b)
    assert b["shadow_db"] > a["shadow_db"] + 4.0, (a["shadow_db"], b["shadow_db"])
    # and the bone echo stands out less from the tissue above it (seed 0: 18.2 -> 14.2 dB;
    # its CNR falls less and not on every seed: the wall dims the bone and the tissue alike)
    assert b["contrast_db"] < a["contrast_db"] - 1.0, (a["contrast_db"], b["contrast_db"])


def _vessel_clutter_db(fat_mm: float) -> float:
    """Mean echo in an anechoic vessel at 50 mm (curvilinear, 3.5 MHz) re the tissue beside
    it, under skin + ``fat_mm`` of fat + muscle."""
    layers = [("skin", 2.0)] + ([("subcutaneous_fat", fat_mm)] if fat_mm > 0 else []) \
        + [("paraspinal_muscle", 200.0)]
    p = layered_patient(layers, size_mm=(120.0, 80.0, 12.0), spacing_mm=0.5,
                        vessel=(0.0, 50.0, 5.0, "aorta"))
    s = make_settings(probe="curvilinear", frequency_mhz=3.5, depth_mm=70, output_px=128,
                      focus_mm=50.0, noise_db_re_face=-120.0)
    im = USImager(s, seed=0)
    bd = im.beams(Scene(p, poses={"ProbeToPatient": probe_on_top()}))
    g = im.setup.geom
    ang = np.abs(np.arctan2(g.directions[:, 0], g.directions[:, 1]))
    r = g.r_mm
    ring = (r > 47) & (r < 53)
    lumen = (bd.envelope[ang < 0.03][:, ring].astype(np.float64) ** 2).mean()
    beside = (bd.envelope[(ang > 0.2) & (ang < 0.4)][:, ring].astype(np.float64) ** 2).mean()
    return float(10 * np.log10(lumen / beside))


def test_vessel_clutter_grows_with_the_fat_crossed():
    # the clutter filling an anechoic lumen follows the wall's reflectors and its fat
    c0, c10, c35 = (_vessel_clutter_db(f) for f in (0.0, 10.0, 35.0))
    assert c0 < c10 < c35, (c0, c10, c35)
    assert c35 > c10 + 3.0, (c10, c35)
