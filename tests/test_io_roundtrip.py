"""Round trip: what we write as DICOM, `analyse` reads back as the same frames, with the
same detections as on the in-memory frames (needle and levels), the same spacing, and the
imaging area exactly where the writer put the B-mode on the scanner screen."""

from __future__ import annotations

import json

import numpy as np
import pytest

from needleguide.guidance.analyse import analyse_frame
from needleguide.io.dicom_study import phantom_study
from needleguide.io.frames import frames_of, read_sources


def _same(a: dict, b: dict, tip_px: float = 0.6) -> None:
    na, nb = a["needle"], b["needle"]
    assert na["found"] == nb["found"]
    assert abs(na["confidence"] - nb["confidence"]) <= 0.05
    if na["found"]:
        assert np.allclose(na["tip_px"], nb["tip_px"], atol=tip_px)
    assert [v["name"] for v in a["levels"]["vertebrae"]] == \
        [v["name"] for v in b["levels"]["vertebrae"]]
    assert a["levels"]["anchor"] == b["levels"]["anchor"]


@pytest.fixture(scope="module")
def us_frames():
    """Six frames of an in-plane needle advance to the right L4 medial branch."""
    from needleguide.anatomy.phantom import build_model
    from needleguide.cli.us import advance_frames
    from needleguide.us import make_settings
    from needleguide.us.views import standard_view

    patient = build_model("lumbar", bmi=24.0, seed=3, spacing_mm=1.5).to_patient()
    v = standard_view(patient, "paramedian-sagittal", level="L4-L5", side="right")
    s = make_settings(probe=v.probe, frequency_mhz=v.frequency_mhz, depth_mm=v.depth_mm,
                      focus_mm=float(np.clip(v.target_depth_mm, 5, 0.95 * v.depth_mm)))
    return advance_frames(patient, v, s, patient.landmark("L4.medial_branch.right"), 6,
                          seed=3, start=0.125)


def test_us_cine_round_trip(tmp_path, us_frames):
    from needleguide.io.dicom_us import write_us_cine

    p = write_us_cine(tmp_path / "US0001.dcm", phantom_study("lumbar", 24, 3), us_frames, 1)
    srcs, skipped = read_sources([p])
    assert not skipped and len(srcs) == 1
    src = srcs[0]
    assert src.modality == "us" and src.pixels.shape[0] == len(us_frames)
    got = list(frames_of(src))
    assert len(got) == len(us_frames)
    n_found = 0
    for f, ref in zip(got, us_frames, strict=True):
        r = f.region
        assert r.spacing_source == "calibrated"
        assert r.spacing_mm == pytest.approx(ref.spacing_mm, rel=1e-6)
        assert (r.area.y1 - r.area.y0 + 1, r.area.x1 - r.area.x0 + 1) == ref.shape[:2]
        assert f.frame.time_s == pytest.approx(ref.time_s, abs=1e-3)
        a, _ = analyse_frame(ref, draw=False)
        b, _ = analyse_frame(f.frame, draw=False)
        _same(a, b)
        n_found += a["needle"]["found"]
    assert n_found >= 3  # the needle is there to be found, in memory and from the file


def test_xa_run_round_trip_and_cli_json(tmp_path, capsys):
    from needleguide.anatomy.phantom import build_model
    from needleguide.cli import main
    from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings, named_view
    from needleguide.fluoro.sequences import plan_needle
    from needleguide.io.dicom_xa import write_xa_run
    from needleguide.scene import Scene

    patient = build_model("lumbar", bmi=24.0, seed=5, spacing_mm=2.0).to_patient()
    settings = make_settings(geometry=CArmGeometry(pixels=256))
    carm = named_view(patient, "ap", "L4-L5", side="right", geometry_=settings.geometry)
    fl = Fluoroscope(patient, settings, seed=5, carm=carm)
    needle, target = plan_needle(patient, carm, patient.landmark("L4.medial_branch.right"))
    scene = Scene(patient).with_needle(
        needle.advanced(0.85 * float(np.linalg.norm(target - needle.skin_entry_mm))))
    frames = [fl.frame(scene.with_time(0.1 * i), "pulsed").without_truth() for i in range(3)]
    p = write_xa_run(tmp_path / "XA0001.dcm", phantom_study("lumbar", 24, 5), frames, 1)
    src = read_sources([p])[0][0]
    assert src.modality == "fluoro"
    assert src.regions[0].spacing_source == "imager spacing / magnification"
    s = frames[0].settings  # reported: at the isocentre; the Frame: the detector pitch
    assert src.regions[0].spacing_mm == pytest.approx(
        (s["pixel_mm"] * s["sod_mm"] / s["sid_mm"],) * 2, rel=1e-4)
    for f, ref in zip(frames_of(src), frames, strict=True):
        assert f.frame.settings.get("display") == ref.settings.get("display")
        assert f.frame.spacing_mm == pytest.approx(ref.spacing_mm)
        assert np.abs(f.frame.pixels - ref.pixels).max() <= 1.0 / 4095 + 1e-6
        a, _ = analyse_frame(ref, draw=False)
        b, _ = analyse_frame(f.frame, draw=False)
        _same(a, b)
    assert main(["analyse", str(p), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["frame"] for f in out["frames"]] == [0, 1, 2]
    for f in out["frames"]:
        assert set(f) == {"file", "frame", "region", "spacing_mm", "spacing_source",
                          "levels", "needle"}
        assert f["file"] == "XA0001.dcm" and f["region"]["box"] == [0, 0, 255, 255]


def test_colour_doppler_cine_reports_its_colour_flow_region(tmp_path):
    from needleguide.anatomy.phantom import build_model
    from needleguide.io.dicom_us import write_us_cine
    from needleguide.io.screen import colour_mask
    from needleguide.scene import Scene
    from needleguide.us import USImager, make_settings
    from needleguide.us.views import standard_view

    patient = build_model("lumbar", bmi=24.0, seed=4, spacing_mm=1.5).to_patient()
    v = standard_view(patient, "paramedian-sagittal", level="L4-L5", side="right")
    box = [-12.0, 12.0, 0.15 * v.depth_mm, 0.75 * v.depth_mm]
    s = make_settings(probe=v.probe, frequency_mhz=v.frequency_mhz, depth_mm=v.depth_mm,
                      doppler=box)
    fr = USImager(s, seed=4).render(Scene(patient, poses={"ProbeToPatient": v.ProbeToPatient}),
                                    view=v.to_json()).without_truth()
    p = write_us_cine(tmp_path / "US0001.dcm", phantom_study("lumbar", 24, 4), [fr], 1)
    src = read_sources([p])[0][0]
    (f,) = list(frames_of(src))
    (cf,) = f.region.colour_flow
    a = f.region.area
    assert a.x0 <= cf[0] < cf[2] <= a.x1 and a.y0 <= cf[1] < cf[3] <= a.y1
    # colour pixels (here: the box outline, and flow where a vessel crosses it) are not
    # anatomy: none is left in the analysed B-mode
    cm = colour_mask(fr.pixels)
    assert f.frame.pixels.ndim == 2
    assert not f.frame.pixels[cm].any()
