"""The whole-spine level labeller: any view, any anchor, 'I don't know' without one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from needleguide.frame import Frame
from needleguide.guidance import levels_spine as LS
from needleguide.guidance.levels_centre import N_DESC, smooth_offsets
from needleguide.guidance.levels_column import sym_energy, sym_weight
from needleguide.guidance.levels_fit import fit_logistic, fit_softmax_mlp, fit_temperature
from needleguide.lab.eval_levels_cases import anchors_in_view
from needleguide.lab.eval_levels_spine import Tally, score


@pytest.fixture(scope="module")
def spine():
    from needleguide.anatomy.phantom import validate_params, wholespine
    from needleguide.anatomy.phantom.thoracic_dims import SpineVariants

    m = wholespine.build(validate_params(region="spine", seed=11, spacing_mm=3.0),
                         SpineVariants("none", "12"))
    return m.to_patient()


VIEWS = (("ap", "L4-L5"), ("lateral", "L4"), ("ap", "T6"), ("ap", "T12"),
         ("lateral", "C4"), ("oblique-right", "T9"))


@pytest.fixture(scope="module")
def cases(spine):
    from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings, named_view
    from needleguide.lab.eval_levels_cases import Case
    from needleguide.scene import Scene

    s = make_settings(geometry=CArmGeometry(pixels=256))
    fl = Fluoroscope(spine, s, seed=11)
    order = list(spine.vertebrae)
    out = []
    for view, level in VIEWS:
        carm = named_view(spine, view, level, geometry_=s.geometry)
        f = fl.frame(Scene(spine), "spot", carm)
        t = dict(f.truth.vertebrae_px)
        out.append(Case(f, view, t, anchors_in_view(list(t), order, [f"T{i}" for i in
                                                                     range(1, 13)], view),
                        "lumbar", "none", False, 11))
    return out


def _check(res: LS.SpineLevels) -> None:
    names = [v.name for v in res.vertebrae]
    if res.anchor in ("none", "conflict"):
        assert all(v.confidence < 0.5 for v in res.vertebrae)
        assert names == [f"v{k + 1}" for k in range(len(names))]
    else:
        assert all(v.confidence >= 0.5 for v in res.vertebrae)
        idx = [LS.NAMES.index(n) for n in names]
        assert idx == list(range(idx[0], idx[0] + len(idx)))  # consecutive, cranial first
        assert set(res.anchor.split("+")) <= {"S1", "T12", "T1", "C2", "C7"}


def test_every_result_is_consistent_and_truth_is_never_read(cases):
    for c in cases:
        a = LS.label_spine(c.frame)
        b = LS.label_spine(c.frame.without_truth())
        assert a == b
        _check(a)
        js = a.to_json()
        assert set(js) == {"anchor", "vertebrae"}
        assert all(set(v) == {"name", "px", "confidence"} for v in js["vertebrae"])


@pytest.mark.parametrize("k, anchor", [(0, "S1"), (1, "S1"), (3, "T12"), (4, "C2")])
def test_views_with_an_anchor_are_counted_from_it_and_named_right(cases, spine, k, anchor):
    c = cases[k]
    res = LS.label_spine(c.frame.without_truth())
    assert anchor in res.anchor.split("+")
    rec = score([(v.name, v.col_px, v.row_px, v.confidence, v.guess) for v in res.vertebrae],
                c, list(spine.vertebrae))
    assert rec["named"] >= 4 and rec["right"] == rec["named"]


def test_mid_thoracic_ap_without_anchor_is_not_named(cases):
    c = cases[2]
    assert c.anchors == ()
    res = LS.label_spine(c.frame.without_truth())
    assert res.anchor == "none" and len(res.vertebrae) >= 5
    assert max(v.confidence for v in res.vertebrae) < 0.5


def test_a_regular_column_with_no_anchor_is_not_named():
    rng = np.random.default_rng(0)
    n = 512
    prof = 0.5 + 0.3 * (np.sin(2 * np.pi * np.arange(n) / 50.0) > -0.6)
    img = np.full((n, n), 0.3, np.float32)
    img[:, n // 2 - 35:n // 2 + 35] = prof[:, None]
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    f = Frame(pixels=img, spacing_mm=(0.586, 0.586), ImageToPatient=np.eye(4), time_s=0.0,
              modality="fluoro", settings={"pixel_mm": 0.586, "sod_mm": 650.0,
                                           "sid_mm": 1000.0, "orbit_deg": 0.0})
    res = LS.label_spine(f)
    _check(res)
    assert res.anchor == "none"


def test_anchor_truth_and_scoring():
    order = LS.NAMES[2:-3]
    ribs = [f"T{i}" for i in range(1, 13)]
    assert anchors_in_view(["T4", "T5", "T6"], list(order), ribs, "ap") == ()
    assert anchors_in_view(["T11", "T12", "L1"], list(order), ribs, "ap") == ("T12",)
    assert anchors_in_view(["T11", "T12"], list(order), ribs[:-1], "lateral") == ("T12",)
    assert set(anchors_in_view(["C1", "C2", "C7", "T1"], list(order), ribs, "lateral")) == \
        {"C2", "C7", "T1"}


def test_tally_summaries_have_the_region_keys():
    from needleguide.lab.eval_levels_cases import Case

    t = Tally()
    truth = {"T11": (100.0, 50.0), "T12": (100.0, 90.0), "L1": (100.0, 130.0)}
    case = Case(None, "ap", truth, ("T12",), "thoracic", "none", False, 1)
    t.add(case, list(LS.NAMES[2:-3]), "ours",
          [("T12", 100.0, 91.0, 0.9, "T12"), ("L1", 100.0, 129.0, 0.9, "L1")], "T12")
    s = t.summary("ours")
    assert s["with_anchor"]["ap"]["thoracic"] == 1.0
    assert set(s["ece"]) == {"cervical", "thoracic", "lumbar", "all"}
    assert abs(s["ece"]["thoracic"] - 0.1) < 1e-9


def test_fitting_helpers_recover_simple_models():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] - X[:, 1] > 0).astype(float)
    w, b = fit_logistic(X, y, 1e-4)
    assert ((X @ w + b > 0) == (y > 0)).mean() > 0.97
    k = np.digitize(X[:, 0], [-0.5, 0.5])
    H, hb, W, bb = fit_softmax_mlp(X, k, 3, hidden=8, l2=1e-4)
    pred = np.argmax(np.tanh(X @ H + hb) @ W + bb, axis=1)
    assert (pred == k).mean() > 0.9
    S = np.array([0.0, 2.0, 0.0])
    assert fit_temperature([(S, 1)] * 5 + [(S, 0)]) > fit_temperature([(S, 1), (S, 0)] * 3)


def test_model_file_loads_with_its_parts(tmp_path):
    m = LS.load_model()
    assert m.disc.W1.shape[0] == 300 and m.W.shape[1] == len(LS.CLASSES)
    assert m.tau > 0 and np.all(m.prior > 0)
    assert m.centre is not None and m.centre.W1.shape[0] == N_DESC
    LS.save_model(m, tmp_path / "m.npz")
    m2 = LS.load_model(str(tmp_path / "m.npz"))
    np.testing.assert_array_equal(m2.centre.W1, m.centre.W1)


@given(st.integers(30, 130), st.integers(0, 2**31 - 1))
@settings(max_examples=15, deadline=None)
def test_symmetry_energy_peaks_on_the_mirror_axis(c0, seed):
    """An image mirror-symmetric about column c0 (plus noise) is most symmetric there."""
    rng = np.random.default_rng(seed)
    h, w = 80, 160
    half = rng.normal(0, 1, (h, w)).astype(np.float32)
    img = np.zeros((h, w), np.float32)
    for c in range(w):
        m = 2 * c0 - c
        img[:, c] = half[:, min(c, m)] if 0 <= m < w else half[:, c]
    img += rng.normal(0, 0.1, img.shape).astype(np.float32)
    e = sym_energy(img)[h // 4:3 * h // 4]
    lo, hi = 22, w - 22  # full support (SYM_HALF_MM) either side
    assert abs(int(np.argmax(e.mean(axis=0)[lo:hi])) + lo - c0) <= 1


def test_symmetry_weight_by_view():
    assert sym_weight({"orbit_deg": 0.0}) == 1.0
    assert sym_weight({"orbit_deg": -8.0}) == 1.0
    assert sym_weight({"orbit_deg": 30.0}) == 0.0
    assert sym_weight({"orbit_deg": 90.0}) == 0.0
    assert 0.0 < sym_weight({"orbit_deg": 16.0}) < 1.0
    assert sym_weight({}) == 0.0 and sym_weight({"view": "ap"}) == 1.0


def test_body_offsets_stay_on_a_smooth_column():
    p = np.full(6, 30.0)
    u = np.array([2.0, 3.0, 25.0, 4.0, 3.0, -20.0])
    out = smooth_offsets(u, p)
    assert out[2] == 4.0 and out[5] == 3.0  # strays take their neighbourhood's median
    np.testing.assert_array_equal(out[[0, 1, 3, 4]], u[[0, 1, 3, 4]])
    np.testing.assert_array_equal(smooth_offsets(u[:2], p[:2]), u[:2])
    turns = np.array([False] * 5 + [True])  # the sacrum keeps its own offset
    assert smooth_offsets(u, p, turns)[5] == -20.0


def test_lateral_labels_sit_on_the_bodies(cases, spine):
    """On the lateral views the labels are on the bodies (within a third of a pitch of the
    true centre), not on the pillars behind them; AP labels are not moved."""
    from needleguide.guidance.levels_centre import body_offsets, moves

    for k in (1, 4):
        c = cases[k]
        res = LS.label_spine(c.frame.without_truth())
        pitch = np.median(np.diff(sorted(r for _, r in c.truth.values())))
        d = [min(np.hypot(v.col_px - tc, v.row_px - tr) for tc, tr in c.truth.values())
             for v in res.vertebrae]
        assert len(d) >= 3 and np.median(d) < pitch / 3
    assert not moves(cases[0].frame)[0]
    assert not np.any(body_offsets(None, [], cases[0].frame, LS.load_model().centre))


def test_analyse_cli_on_a_fluoro_frame_and_a_plain_png(tmp_path, capsys):
    import imageio.v2 as imageio

    from needleguide.cli import main

    d = tmp_path / "fl"
    assert main(["fluoro", "--region", "spine", "--level", "L3", "--view", "ap",
                 "--seed", "2", "--spacing", "3", "--pixels", "256", "--out", str(d)]) == 0
    capsys.readouterr()
    assert main(["analyse", str(d), "--json", "--out", str(tmp_path / "ov")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["file"] for f in out["frames"]] == ["fluoro.png", "fluoro_inverted.png"]
    for f in out["frames"]:
        assert set(f) == {"file", "frame", "region", "spacing_mm", "spacing_source",
                          "levels", "needle"}
        assert f["spacing_source"] == "frame JSON" and f["frame"] == 0
        assert set(f["levels"]) == {"anchor", "vertebrae"}
        assert set(f["needle"]) == {"found", "tip_px", "tip_mm", "confidence", "tip_visible"}
    a, b = out["frames"]
    assert [v["name"] for v in a["levels"]["vertebrae"]] == \
        [v["name"] for v in b["levels"]["vertebrae"]]
    assert len(list((tmp_path / "ov").glob("*_analysis.png"))) == 2
    plain = tmp_path / "plain.png"
    imageio.imwrite(plain, imageio.imread(d / "fluoro.png"))
    assert main(["analyse", str(plain)]) == 2
    assert "--spacing" in capsys.readouterr().err
    assert main(["analyse", str(plain), "--spacing", "0.76"]) == 0
    assert "levels: anchor" in capsys.readouterr().out


def test_analyse_reads_dicom_with_its_spacing(tmp_path, capsys):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from needleguide.cli import main

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 16, 15
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.ImagerPixelSpacing = [0.5, 0.5]
    ds.PixelData = (np.arange(64 * 64, dtype=np.uint16) % 700).tobytes()
    p = tmp_path / "x.dcm"
    ds.save_as(p, enforce_file_format=True)
    assert main(["analyse", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"][0]["file"] == "x.dcm"
    assert main(["analyse", str(p), "--spacing", "-1"]) == 2
