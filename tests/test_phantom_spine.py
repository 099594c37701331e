"""The whole-spine phantom: C1 to the coccyx with ribs, variants, thoracic landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.anatomy.phantom import build_model, validate_params, wholespine
from needleguide.anatomy.phantom.thoracic_dims import (
    LUMBOSACRAL_RATES,
    RIB_RATES,
    SpineVariants,
    draw_variants,
)
from needleguide.errors import UserError

NORMAL = ["C1", "C2", "C3", "C4", "C5", "C6", "C7", *(f"T{i}" for i in range(1, 13)),
          "L1", "L2", "L3", "L4", "L5", "S1"]


def _model(seed=0, variants=None, bmi=24.0, deg=0):
    return wholespine.build(validate_params(region="spine", seed=seed, bmi=bmi,
                                            degeneration=deg, spacing_mm=3.0), variants)


@pytest.fixture(scope="module")
def normal():
    return _model(0, SpineVariants("none", "12"))


@pytest.fixture(scope="module")
def patient(normal):
    return normal.to_patient()


def _in_tissue(model, name) -> bool:
    lm = model.landmarks[name]
    aff = np.diag([0.5, 0.5, 0.5, 1.0])
    aff[:3, 3] = np.asarray(lm.position_mm) - 0.5
    lab = model.render((3, 3, 3), aff)
    return model.tissues[int(lab[1, 1, 1])].name == lm.tissue


def test_vertebrae_from_c1_to_s1_in_order(normal):
    assert list(normal.vertebrae) == NORMAL
    z = [normal.vertebrae[n].center_mm[2] for n in NORMAL]
    assert np.all(np.diff(z) < 0)  # cranial to caudal
    # thoracic pitch 21-29 mm (T3-T10), lumbar larger
    c = np.array([normal.vertebrae[f"T{i}"].center_mm for i in range(3, 11)])
    pitch = np.linalg.norm(np.diff(c, axis=0), axis=1)
    assert 19.0 < pitch.min() and pitch.max() < 31.0
    cl = np.array([normal.vertebrae[f"L{i}"].center_mm for i in range(1, 6)])
    assert np.linalg.norm(np.diff(cl, axis=0), axis=1).min() > pitch.max()


def test_render_has_ribs_lungs_clavicles_sternum_and_the_pelvis(patient):
    names = {patient.tissues[int(i)].name for i in np.unique(patient.labels)}
    assert {"rib", "lung", "clavicle", "sternum", "sacrum", "ilium", "occiput",
            "vertebral_body", "internal_air"} <= names
    assert patient.meta["variants"]["rib_bearing"] == [f"T{i}" for i in range(1, 13)]


def test_twelfth_rib_is_short_and_first_under_the_clavicle(normal):
    tip = {n: np.asarray(normal.vertebrae[n].extra["rib_tip_right"]) for n in ("T1", "T11",
                                                                                "T12")}
    head = {n: np.asarray(normal.vertebrae[n].center_mm) for n in tip}
    # the floating 12th rib ends far behind the 11th's anterior end
    assert tip["T12"][1] < tip["T11"][1] - 30.0
    assert np.linalg.norm(tip["T12"] - head["T12"]) < np.linalg.norm(tip["T11"] - head["T11"])
    # the first rib's anterior end lies below the jugular notch level, near the clavicle
    jn = np.asarray(normal.meta["jugular_notch_mm"])
    assert abs(tip["T1"][2] - jn[2]) < 40.0


def test_thoracic_procedure_landmarks_lie_in_their_tissue(normal):
    names = [f"T{i}-T{i + 1}.facet.{s}" for i in (3, 6, 9) for s in ("right", "left")]
    names += [f"T{i}.medial_branch.right" for i in (4, 7, 10)]
    names += [f"T{i}-T{i + 1}.foramen.left" for i in (2, 5, 10)]
    for n in names:
        assert n in normal.landmarks, n
        assert _in_tissue(normal, n), n


@pytest.mark.parametrize("ls, ribs", [("six_lumbar", "11"), ("sacralised_L5", "13"),
                                      ("lumbarised_S1", "12")])
def test_variants_rename_and_keep_landmarks_in_tissue(ls, ribs):
    m = _model(3, SpineVariants(ls, ribs), bmi=38.0, deg=2)
    names = list(m.vertebrae)
    if ls == "six_lumbar":
        assert names[-7:] == ["L1", "L2", "L3", "L4", "L5", "L6", "S1"]
        assert "L5-L6.foramen.right" in m.landmarks and "T11-T12.facet.left" in m.landmarks
    else:
        assert names == NORMAL
    rb = m.meta["variants"]["rib_bearing"]
    assert ("T12" in rb) == (ribs != "11") and ("L1" in rb) == (ribs == "13")
    assert m.meta["variants"]["transitional"]
    bad = [n for n in list(m.landmarks)[::5] if not _in_tissue(m, n)]
    assert not bad


def test_variant_rates_follow_the_published_ones():
    rng = np.random.default_rng(7)
    v = [draw_variants(rng) for _ in range(4000)]
    for name, rate in LUMBOSACRAL_RATES.items():
        assert abs(np.mean([x.lumbosacral == name for x in v]) - rate) < 0.02
    for name, rate in RIB_RATES.items():
        assert abs(np.mean([x.ribs == name for x in v]) - rate) < 0.02
    with pytest.raises(UserError):
        SpineVariants("sacralised_L4", "12")


def test_same_seed_same_labels_and_cervical_lumbar_parts_match_their_phantoms(normal):
    again = _model(0, SpineVariants("none", "12"))
    shape, aff = normal.grid(6.0)
    assert np.array_equal(normal.render(shape, aff), again.render(shape, aff))
    lum = build_model("lumbar", seed=0, spacing_mm=3.0)
    for n in ("L4", "T11", "S1"):
        assert np.allclose(lum.vertebrae[n].center_mm, normal.vertebrae[n].center_mm)
    cer = build_model("cervical", seed=0, spacing_mm=3.0)
    off = np.asarray(normal.meta["cervical_offset_mm"])
    assert np.allclose(cer.vertebrae["C5"].center_mm + off, normal.vertebrae["C5"].center_mm,
                       atol=1e-2)
