"""DICOM out for ultrasound (US multi-frame) and X-ray (XA): the writers and ``--dicom`` of
``us``, ``fluoro`` and ``contrast``. Every object written passes ``dciodvfy`` without an
error and ``dcmdump``; re-read with pydicom, calibration, placement, timing, geometry and
UIDs are checked against the frames."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from needleguide.frame import Frame
from needleguide.io.dicom_study import phantom_study
from needleguide.io.dicom_us import (
    PRIVATE_CREATOR,
    PRIVATE_GROUP,
    frame_meta,
    write_us_cine,
)
from needleguide.io.dicom_xa import write_xa_run
from needleguide.us.display import HEADER_PX, screen

TOOLS = shutil.which("dciodvfy") is not None and shutil.which("dcmdump") is not None


def validate(*paths: Path) -> None:
    """dciodvfy: no line with "Error"; dcmdump: exit 0. Skips (at the end of a test, after
    its other checks) when the tools are not installed (CI installs them)."""
    if not TOOLS:
        pytest.skip("dciodvfy / dcmdump (dicom3tools, dcmtk) are not on PATH")
    for p in paths:
        r = subprocess.run(["dciodvfy", str(p)], capture_output=True, encoding="latin-1",
                           timeout=60)
        errors = [ln for ln in (r.stdout + r.stderr).splitlines() if "Error" in ln]
        assert not errors, f"{p.name}: {errors}"
        d = subprocess.run(["dcmdump", str(p)], capture_output=True, encoding="latin-1", timeout=60)
        assert d.returncode == 0, f"{p.name}: {d.stderr[-500:]}"


# ---- ultrasound writer -------------------------------------------------------------------
def _us_frames(n: int, probe: str = "linear", doppler=None, rows: int = 96, cols: int = 80,
               sp: float = 0.35) -> list[Frame]:
    rng = np.random.default_rng(0)
    x0 = -(cols - 1) / 2 * sp
    y0 = 0.0 if probe == "linear" else -4.2
    i2p = np.eye(4)
    i2p[0, 3], i2p[1, 3] = x0, y0
    shape = (rows, cols, 3) if doppler else (rows, cols)
    settings = {"probe": probe, "frequency_mhz": 10.0 if probe == "linear" else 3.5,
                "depth_mm": rows * sp, "gain_db": 0.0, "dynamic_range_db": 60.0,
                "steer_deg": 0.0, "doppler": doppler, "prf_hz": 4000.0,
                "ImageToProbe": i2p, "_envelope": np.zeros((2, 2))}
    return [Frame(pixels=rng.integers(0, 256, shape, dtype=np.uint8), spacing_mm=(sp, sp),
                  ImageToPatient=np.eye(4), time_s=0.1 + k / 15.0, modality="us",
                  settings=settings) for k in range(n)]


@pytest.mark.parametrize("probe,doppler", [("linear", [-5.0, 5.0, 4.0, 20.0]),
                                           ("curvilinear", None)])
def test_us_cine_regions_timing_and_private_block(tmp_path, probe, doppler):
    frames = _us_frames(3, probe, doppler)
    study = phantom_study("lumbar", 24, 0, "us")
    p = write_us_cine(tmp_path / "US0001.dcm", study, frames, 3, "title")
    ds = pydicom.dcmread(p)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1" and ds.Modality == "US"
    assert ds.NumberOfFrames == 3 and ds.PhotometricInterpretation == "RGB"
    assert ds.PlanarConfiguration == 0 and ds.SeriesNumber == 3
    assert ds.PatientName == study.patient_name
    assert ds.TransducerType == ("LINEAR" if probe == "linear" else "CURVED LINEAR")
    # pixels: the screens, the frame 1:1 at rows HEADER_PX.., columns 10..
    px = ds.pixel_array
    assert px.shape == (3, *screen(frames[0], "title").shape)
    assert np.array_equal(px[2], screen(frames[2], "title"))
    bmode = ds.SequenceOfUltrasoundRegions[0]
    assert (bmode.RegionSpatialFormat, bmode.RegionDataType, bmode.PhysicalUnitsXDirection,
            bmode.PhysicalUnitsYDirection) == (1, 1, 3, 3)
    rows, cols = frames[0].shape
    assert (bmode.RegionLocationMinX0, bmode.RegionLocationMinY0, bmode.RegionLocationMaxX1,
            bmode.RegionLocationMaxY1) == (10, HEADER_PX, 10 + cols - 1, HEADER_PX + rows - 1)
    sub = px[1, HEADER_PX:HEADER_PX + rows, 10:10 + cols]
    f1 = frames[1].pixels
    f1 = f1 if f1.ndim == 3 else np.repeat(f1[..., None], 3, 2)
    assert np.array_equal(sub[20:], f1[20:])  # (the orientation marker sits at the top)
    assert bmode.PhysicalDeltaX * 10 == pytest.approx(frames[0].spacing_mm[1], abs=1e-12)
    assert bmode.PhysicalDeltaY * 10 == pytest.approx(frames[0].spacing_mm[0], abs=1e-12)
    # reference pixel and value: probe-frame position (cm) of any pixel of the region
    x0, y0 = frames[0].settings["ImageToProbe"][:2, 3]
    for c, r in ((0, 0), (cols - 1, rows - 1), (17, 40)):
        xc = bmode.ReferencePixelPhysicalValueX + (c - bmode.ReferencePixelX0) * \
            bmode.PhysicalDeltaX
        yc = bmode.ReferencePixelPhysicalValueY + (r - bmode.ReferencePixelY0) * \
            bmode.PhysicalDeltaY
        assert (xc * 10, yc * 10) == pytest.approx((x0 + c * 0.35, y0 + r * 0.35), abs=1e-9)
    assert bmode.TransducerFrequency == (10000 if probe == "linear" else 3500)
    if doppler:
        assert len(ds.SequenceOfUltrasoundRegions) == 2
        cf = ds.SequenceOfUltrasoundRegions[1]
        assert cf.RegionDataType == 2 and cf.PulseRepetitionFrequency == 4000
        # the box [-5, 5] mm lateral, [4, 20] mm deep, on the screen
        c0, c1 = np.ceil((-5 - x0) / 0.35), np.floor((5 - x0) / 0.35)
        r0, r1 = np.ceil((4 - y0) / 0.35), np.floor((20 - y0) / 0.35)
        assert (cf.RegionLocationMinX0, cf.RegionLocationMaxX1) == (10 + c0, 10 + c1)
        assert (cf.RegionLocationMinY0, cf.RegionLocationMaxY1) == (HEADER_PX + r0,
                                                                    HEADER_PX + r1)
        assert cf.ReferencePixelPhysicalValueX * 10 == pytest.approx(
            x0 + (c0 + cf.ReferencePixelX0) * 0.35)
        assert ds.ImageType[3] == "0011"
    else:
        assert len(ds.SequenceOfUltrasoundRegions) == 1 and ds.ImageType[3] == "0001"
    # timing: uniform 15 frames/s
    assert ds.FrameIncrementPointer == 0x00181063
    assert float(ds.FrameTime) == pytest.approx(1000 / 15, rel=1e-5) and ds.CineRate == 15
    # private block: one JSON object per frame, no truth, no "_" settings
    assert ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)[0x01].VR == "UT"
    meta = frame_meta(ds)
    assert meta is not None and len(meta) == 3
    assert meta[1]["spacing_mm"] == [0.35, 0.35] and meta[1]["time_s"] == frames[1].time_s
    assert meta[0]["modality"] == "us" and len(meta[0]["ImageToPatient"]) == 4
    assert "truth" not in meta[0] and "_envelope" not in meta[0]["settings"]
    assert meta[0]["settings"]["doppler"] == doppler
    validate(p)


def test_us_single_frame_and_uneven_times(tmp_path):
    study = phantom_study("cervical", 30, 7)
    one = write_us_cine(tmp_path / "a.dcm", study, _us_frames(1), 1)
    ds = pydicom.dcmread(one)
    assert ds.NumberOfFrames == 1 and ds.FrameIncrementPointer == 0x00181063
    fr = _us_frames(3)
    fr[2] = Frame(**{**fr[2].__dict__, "time_s": fr[1].time_s + 0.5})
    two = write_us_cine(tmp_path / "b.dcm", study, fr, 2)
    ds2 = pydicom.dcmread(two)
    assert ds2.FrameIncrementPointer == 0x00181065 and "FrameTime" not in ds2
    assert [float(x) for x in ds2.FrameTimeVector] == pytest.approx([0, 1000 / 15, 500])
    assert frame_meta(pydicom.Dataset()) is None
    with pytest.raises(ValueError, match="geometry"):
        write_us_cine(tmp_path / "c.dcm", study, [_us_frames(1)[0],
                                                  _us_frames(1, sp=0.3)[0]], 3)
    validate(one, two)


# ---- X-ray writer ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def xa_frames():
    """A 64² C-arm on a coarse lumbar phantom: a live run, a spot and a DSA run."""
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings, named_view
    from needleguide.fluoro.sequences import live_run
    from needleguide.scene import Scene

    p = build_phantom("lumbar", seed=0, spacing_mm=3.0)
    s = make_settings(geometry=CArmGeometry(pixels=64), display="black-bone")
    carm = named_view(p, "ap", "L4-L5", geometry_=s.geometry).with_pose(tilt_deg=10.0)
    fl = Fluoroscope(p, s, seed=0, carm=carm)
    sc = Scene(p)
    live = live_run(fl, sc, 0.0, 0.2)
    spot = fl.frame(sc, "spot", carm)
    dsa = [fl.frame(sc.with_time(t), "dsa", carm) for t in (0.0, 1.0, 2.0)]
    oblique = named_view(p, "oblique-right", "L4-L5", geometry_=s.geometry)
    return {"live": live, "spot": [spot], "dsa": dsa,
            "oblique": [fl.frame(sc, "spot", oblique)]}


def test_xa_run_geometry_technique_and_pixels(tmp_path, xa_frames):
    study = phantom_study("lumbar", 24, 0, "fluoro")
    live = xa_frames["live"]
    p = write_xa_run(tmp_path / "XA0001.dcm", study, live, 1, "live")
    ds = pydicom.dcmread(p)
    s = live[0].settings
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.12.1" and ds.Modality == "XA"
    assert ds.NumberOfFrames == len(live) == 4
    assert (ds.BitsAllocated, ds.BitsStored, ds.PhotometricInterpretation) == (16, 12,
                                                                             "MONOCHROME2")
    want = np.rint(np.clip(np.stack([f.pixels for f in live]), 0, 1) * 4095)
    assert np.array_equal(ds.pixel_array, want.astype(np.uint16))
    # prone AP tilted 10° cranially: detector posterior (±180°), secondary +10°
    assert abs(float(ds.PositionerPrimaryAngle)) == pytest.approx(180.0, abs=1e-3)
    assert float(ds.PositionerSecondaryAngle) == pytest.approx(s["tilt_deg"], abs=1e-3)
    assert ds.PatientPosition == "HFP"
    assert float(ds.DistanceSourceToDetector) == s["sid_mm"]
    assert float(ds.DistanceSourceToPatient) == s["sod_mm"]
    assert float(ds.EstimatedRadiographicMagnificationFactor) == pytest.approx(
        s["sid_mm"] / s["sod_mm"], rel=1e-5)
    assert float(ds.KVP) == pytest.approx(s["kvp"]) and ds.XRayTubeCurrent == round(s["ma"])
    assert float(ds.AveragePulseWidth) == s["pulse_width_ms"]
    assert ds.ExposureTime == round(s["pulse_width_ms"] * 4) and ds.RadiationSetting == "SC"
    assert [float(x) for x in ds.ImagerPixelSpacing] == pytest.approx([s["pixel_mm"]] * 2)
    assert float(ds.FrameTime) == pytest.approx(1000 / s["pulse_rate"], rel=1e-5)
    assert ds.CineRate == round(s["pulse_rate"]) and "MaskSubtractionSequence" not in ds
    assert float(ds.ImageAndFluoroscopyAreaDoseProduct) == pytest.approx(
        10 * sum(f.dose.dap_gy_cm2 for f in live), rel=1e-5)
    meta = frame_meta(ds)
    assert [m["time_s"] for m in meta] == [f.time_s for f in live]
    assert meta[0]["settings"]["orbit_deg"] == s["orbit_deg"] and "truth" not in meta[0]
    # a right oblique (detector toward the patient's right): primary = orbit − 180°
    q = write_xa_run(tmp_path / "XA0002.dcm", study, xa_frames["oblique"], 2)
    o = xa_frames["oblique"][0].settings["orbit_deg"]
    assert o > 15 and float(pydicom.dcmread(q).PositionerPrimaryAngle) == pytest.approx(
        o - 180.0, abs=1e-3)
    spot = write_xa_run(tmp_path / "XA0003.dcm", study, xa_frames["spot"], 3)
    sd = pydicom.dcmread(spot)
    assert sd.NumberOfFrames == 1 and sd.RadiationSetting == "GR"
    validate(p, q, spot)


def test_xa_dsa_run_has_the_mask_module(tmp_path, xa_frames):
    study = phantom_study("lumbar", 24, 0, "dsa")
    p = write_xa_run(tmp_path / "XA0001.dcm", study, xa_frames["dsa"], 4, "DSA",
                     mask_frame_numbers=[1], contrast_mg_ml=300)
    ds = pydicom.dcmread(p)
    m = ds.MaskSubtractionSequence[0]
    assert m.MaskOperation == "AVG_SUB" and m.MaskFrameNumbers == 1
    assert list(m.ApplicableFrameRange) == [2, 3] and ds.RecommendedViewingMode == "SUB"
    assert ds.ContrastBolusIngredient == "IODINE"
    with pytest.raises(ValueError, match="mask_frame_numbers"):
        write_xa_run(tmp_path / "bad.dcm", study, xa_frames["dsa"], 5,
                     mask_frame_numbers=[4])
    with pytest.raises(ValueError, match="pose"):
        write_xa_run(tmp_path / "bad.dcm", study, xa_frames["spot"] + xa_frames["oblique"], 5)
    validate(p)


# ---- the commands --------------------------------------------------------------------------
def _same_study(files: list[Path]) -> list[pydicom.Dataset]:
    dss = [pydicom.dcmread(f) for f in files]
    assert len({d.StudyInstanceUID for d in dss}) == 1
    assert len({str(d.PatientName) for d in dss}) == 1
    assert len({d.SOPInstanceUID for d in dss}) == len(dss)
    assert len({d.SeriesInstanceUID for d in dss}) == len(dss)
    assert len({d.SeriesNumber for d in dss}) == len(dss)
    images = [d for d in dss if d.Modality != "SR"]
    # the XA IOD has no Frame of Reference module; ultrasound objects share one
    assert len({d.FrameOfReferenceUID for d in images if "FrameOfReferenceUID" in d}) <= 1
    return dss


def test_us_cli_dicom(tmp_path):
    from needleguide.cli import main

    out = tmp_path / "us"
    assert main(["us", "--region", "cervical", "--view", "c6-transverse", "--level", "C6",
                 "--seed", "0", "--needle-to", "C6.stellate.right", "--frames", "2",
                 "--doppler", "--dicom", "--out", str(out)]) == 0
    files = sorted((out / "dicom").glob("*.dcm"))
    assert [f.name for f in files] == ["US0001.dcm", "US0002.dcm"]
    manifest = json.loads((out / ".needleguide.json").read_text())
    assert {"dicom/US0001.dcm", "dicom/US0002.dcm"} <= set(manifest["files"])
    still, cine = _same_study(files)
    assert str(still.PatientName) == "Phantom^Cervical BMI 24 seed 0"
    assert still.NumberOfFrames == 1 and cine.NumberOfFrames == 2
    meta = json.loads((out / "frame.json").read_text())
    bmode, cf = still.SequenceOfUltrasoundRegions
    assert bmode.PhysicalDeltaX * 10 == pytest.approx(meta["spacing_mm"][1], abs=1e-12)
    rows, cols = meta["shape"]
    assert (bmode.RegionLocationMaxX1 - bmode.RegionLocationMinX0 + 1,
            bmode.RegionLocationMaxY1 - bmode.RegionLocationMinY0 + 1) == (cols, rows)
    # the colour pixels of the frame (carotid flow) lie in the colour-flow region
    px = still.pixel_array.astype(int)
    img = px[bmode.RegionLocationMinY0:bmode.RegionLocationMaxY1 + 1,
             bmode.RegionLocationMinX0:bmode.RegionLocationMaxX1 + 1]
    r, c = np.nonzero(np.abs(img[..., 0] - img[..., 2]) > 40)
    keep = r >= 20  # below the orientation marker
    r, c = r[keep], c[keep]
    assert r.size > 0
    assert c.min() + bmode.RegionLocationMinX0 >= cf.RegionLocationMinX0 - 1
    assert c.max() + bmode.RegionLocationMinX0 <= cf.RegionLocationMaxX1 + 1
    assert r.min() + bmode.RegionLocationMinY0 >= cf.RegionLocationMinY0 - 1
    assert r.max() + bmode.RegionLocationMinY0 <= cf.RegionLocationMaxY1 + 1
    assert frame_meta(still)[0]["settings"]["probe"] == meta["settings"]["probe"]
    validate(*files)


def test_fluoro_cli_dicom(tmp_path):
    from needleguide.cli import main

    out = tmp_path / "fl"
    assert main(["fluoro", "--view", "oblique-right", "--level", "L4-L5", "--seed", "0",
                 "--pixels", "64", "--spacing", "3", "--needle-to", "L4-L5.foramen.right",
                 "--dicom", "--out", str(out)]) == 0
    files = sorted((out / "dicom").glob("*.dcm"))
    assert [f.name for f in files] == ["SR0001.dcm", "XA0001.dcm", "XA0002.dcm"]
    sr, advance, spot = _same_study(files)
    assert sr.Modality == "SR"
    adv = json.loads((out / "advance.json").read_text())
    pulses = sum(not f["last_image_hold"] for f in adv["per_frame"])
    assert advance.NumberOfFrames == pulses and spot.NumberOfFrames == 1
    assert advance.FrameIncrementPointer == 0x00181065  # bursts with hold gaps
    meta = json.loads((out / "frame.json").read_text())
    s = meta["settings"]
    assert float(spot.PositionerPrimaryAngle) == pytest.approx(s["orbit_deg"] - 180, abs=1e-3)
    assert float(spot.PositionerSecondaryAngle) == pytest.approx(s["tilt_deg"], abs=1e-3)
    assert float(spot.DistanceSourceToDetector) == s["sid_mm"] and float(spot.KVP) > 0
    assert np.allclose(frame_meta(spot)[0]["ImageToPatient"], meta["ImageToPatient"],
                       atol=1e-5)
    validate(*files)


def test_contrast_cli_dicom(tmp_path):
    from needleguide.cli import main

    out = tmp_path / "ct"
    assert main(["contrast", "--pattern", "intravascular", "--seed", "0", "--fps", "1",
                 "--dicom", "--out", str(out)]) == 0
    files = sorted((out / "dicom").glob("*.dcm"))
    assert [f.name for f in files] == ["SR0001.dcm"] + [f"XA000{k}.dcm" for k in range(1, 5)]
    sr, live_ap, live_lat, dsa_ap, dsa_lat = _same_study(files)
    assert live_ap.NumberOfFrames == live_lat.NumberOfFrames > 3
    for d in (dsa_ap, dsa_lat):
        assert d.RecommendedViewingMode == "SUB" and d.NumberOfFrames == 7  # mask + 6
        assert d.MaskSubtractionSequence[0].MaskFrameNumbers == 1
    assert abs(float(live_ap.PositionerPrimaryAngle)) > 150  # AP of the prone patient
    assert abs(float(live_lat.PositionerPrimaryAngle)) == pytest.approx(90, abs=10)
    validate(*files)


def test_contrast_dicom_needs_the_fluoro_renderer(tmp_path, capsys):
    from needleguide.cli import main

    assert main(["contrast", "--pattern", "epidural", "--renderer", "simple", "--dicom",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--dicom" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
