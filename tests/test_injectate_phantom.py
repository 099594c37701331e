"""The injectate model on the lumbar phantom: each demo pattern's tip lands in its
compartment, volume is conserved, and the CLI writes its files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from needleguide.scene.injectate import Compartment, Injectate, classify_tip
from needleguide.scene.injectate.grid import LocalGrid
from needleguide.scene.injectate.placement import PATTERNS, tip_for_pattern

EXPECTED = {"epidural": Compartment.EPIDURAL, "intravascular": Compartment.ARTERIAL,
            "intrathecal": Compartment.INTRATHECAL, "intra-articular": Compartment.FACET,
            "soft-tissue": Compartment.SOFT_TISSUE, "interlaminar": Compartment.EPIDURAL,
            "transforaminal": Compartment.EPIDURAL, "caudal": Compartment.EPIDURAL,
            "facet": Compartment.FACET, "sacroiliac": Compartment.SIJ,
            "arterial": Compartment.ARTERIAL, "venous": Compartment.VENOUS}


@pytest.fixture(scope="module")
def lumbar():
    from needleguide.anatomy.phantom import build_phantom

    return build_phantom("lumbar", spacing_mm=2.0)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pattern_tip_compartment_and_conservation(lumbar, pattern):
    tip = tip_for_pattern(lumbar, pattern)
    shares = classify_tip(lumbar, tip)
    assert max(shares, key=shares.get) == EXPECTED[pattern]
    inj = Injectate(lumbar).inject(tip, volume_ml=1.5, rate_ml_s=0.5)
    for t in (1.0, 3.0, 8.0):
        s = inj.summary(t)
        f = inj.iodine_mg_ml(t)
        in_place = f.total() / 300.0 if f is not None else 0.0
        assert abs(in_place + s["washed_out_ml"] - s["injected_ml"]) < 0.01 * s["injected_ml"]
    f = inj.iodine_mg_ml(3.0)
    assert f is not None and f.values.max() <= 300.0 + 1e-3


def test_epidural_stays_epidural_on_the_phantom(lumbar):
    inj = Injectate(lumbar).inject(tip_for_pattern(lumbar, "epidural"), volume_ml=3.0)
    f = inj.iodine_mg_ml(10.0)
    h = float(f.spacing_mm[0])
    grid = LocalGrid(tuple(np.rint(f.VoxelToPatient[:3, 3] / h).astype(int).tolist()),
                     f.values.shape, h)  # the field's own lattice, labels re-rendered on it
    inside = f.values > 1e-6
    labels = grid.labels(lumbar)[inside]
    names = {lumbar.tissues[int(v)].name for v in np.unique(labels)}
    # epidural fat, the dura's potential space, and the root sleeves beyond the foramen;
    # never CSF, a nerve or bone
    assert not names & {"csf", "spinal_cord", "nerve_root", "vertebral_body", "lamina"}
    epi = np.isin(labels, [lumbar.tissues.label(n) for n in
                           ("epidural_fat", "foramen", "sacral_hiatus", "sacral_foramen",
                            "dura")])
    assert f.values[inside][epi].sum() >= 0.9 * f.values[inside].sum()


@pytest.mark.parametrize("landmark, compartment", [
    ("sij.right.inferior", Compartment.SIJ), ("hip.right.femoral_neck", Compartment.HIP),
    ("L4.drg.right", Compartment.PERINEURAL)])
def test_other_compartments_on_the_phantom(lumbar, landmark, compartment):
    tip = lumbar.landmark(landmark)
    assert compartment in classify_tip(lumbar, tip)
    inj = Injectate(lumbar).inject(tip, volume_ml=1.0, rate_ml_s=0.5)
    s = inj.summary(5.0)
    f = inj.iodine_mg_ml(5.0)
    assert abs(f.total() / 300.0 + s["washed_out_ml"] - 1.0) < 0.01


@pytest.mark.parametrize("renderer", ["fluoro", "simple"])
def test_contrast_cli_writes_clip_sheet_and_dsa(tmp_path, renderer):
    from needleguide.cli import main

    assert main(["contrast", "--pattern", "intravascular", "--seed", "0", "--fps", "2",
                 "--renderer", renderer, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "contrast.mp4").stat().st_size > 1000
    assert (tmp_path / "contact_sheet.png").stat().st_size > 1000
    assert len(list((tmp_path / "dsa").glob("dsa_*.png"))) == 12
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["summaries"][0]["sites"][0]["shares"] == {"intravascular_arterial": 1.0}
    late = summary["summaries"][-1]
    assert late["in_place_ml"] < 0.01 * late["injected_ml"]  # washed out


def test_contrast_cli_rejects_a_bad_pattern(tmp_path, capsys):
    from needleguide.cli import main

    assert main(["contrast", "--pattern", "intradiscal", "--out", str(tmp_path)]) == 2
    assert "pattern" in capsys.readouterr().err


def test_epidural_venous_plexus_on_the_phantom(lumbar):
    c = lumbar.centerlines["epidural_venous_plexus.right"]
    tip = 0.5 * (c.points_mm[5] + c.points_mm[6])
    inj = Injectate(lumbar).inject(tip, volume_ml=1.0, rate_ml_s=0.5)
    assert Compartment.VENOUS in inj.compartments()
    venous = [m for m in inj.models() if m.compartment == Compartment.VENOUS][0]
    assert venous.velocity_mm_s == pytest.approx(c.velocity_mm_s)
    for t in (1.0, 2.5, 10.0):
        s = inj.summary(t)
        f = inj.iodine_mg_ml(t)
        in_place = f.total() / 300.0 if f is not None else 0.0
        assert abs(in_place + s["washed_out_ml"] - s["injected_ml"]) < 0.01 * s["injected_ml"]
    # slow plexus flow: contrast is still in the veins a second after the injection stops
    v3 = inj.summary(3.0)["compartments"][Compartment.VENOUS.value]["in_place_ml"]
    assert v3 > 0.1
