"""Irradiation event log (fluoro/dose_events.py), the X-Ray Radiation Dose SR
(io/dicom_rdsr.py) and ``simulate --dicom`` (session/dicom_out.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings, named_view
from needleguide.fluoro.dose_events import positioner_angles_deg, sum_doses
from needleguide.fluoro.sequences import dsa_sequence, live_run
from needleguide.frame import Dose
from needleguide.io.dicom_rdsr import XRAY_RADIATION_DOSE_SR, ds_string, write_dose_sr
from needleguide.io.dicom_study import phantom_study
from needleguide.scene import Scene

TOOLS = ("dciodvfy", "dcmdump", "dsrdump")
needs_tools = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason="dicom3tools (dciodvfy) and dcmtk (dcmdump, dsrdump) are not on PATH "
           "(CI installs them: .ci/run)")


@pytest.fixture(scope="module")
def patient():
    from needleguide.anatomy.phantom import build_phantom

    return build_phantom("lumbar", spacing_mm=2.0)


def _scope(patient, seed: int = 0) -> Fluoroscope:
    s = make_settings(geometry=CArmGeometry(pixels=128))
    carm = named_view(patient, "oblique-right", "L4-L5", geometry_=s.geometry)
    return Fluoroscope(patient, s, seed=seed, carm=carm)


def _session(fl: Fluoroscope, sc: Scene, grouped: bool = True) -> list:
    """Pulses at the pulse rate, a lone pulse, a spot, a live run, a DSA run, the lateral."""
    frames = [fl.frame(sc.with_time(t)) for t in (0.0, 1 / 15, 2 / 15, 5.0)]
    frames.append(fl.frame(sc.with_time(6.0), "spot"))
    if grouped:
        frames += live_run(fl, sc, 7.0, 7.4)
        frames += dsa_sequence(fl, [sc.with_time(9.0 + i / 2) for i in range(4)])
    else:  # the same exposures without the run context
        frames += [fl.frame(sc.with_time(float(t))) for t in np.arange(7.0, 7.4 + 1e-9, 1 / 15)]
        from needleguide.fluoro.sequences import _dsa_frames

        frames += _dsa_frames(fl, [sc.with_time(9.0 + i / 2) for i in range(4)], fl.carm,
                              (0.0, 0.0), 0.25)
    lateral = named_view(fl.patient, "lateral", "L4-L5", geometry_=fl.settings.geometry)
    frames.append(fl.frame(sc.with_time(12.0), "spot", lateral))
    return frames


@pytest.fixture(scope="module")
def logged(patient):
    fl = _scope(patient)
    frames = _session(fl, Scene(patient))
    return fl, frames


def test_events_group_runs_and_pedal_presses(logged):
    fl, _ = logged
    got = [(e.mode, e.pulses, e.view) for e in fl.events]
    assert got == [("pulsed", 3, "oblique-right"), ("pulsed", 1, "oblique-right"),
                   ("spot", 1, "oblique-right"), ("pulsed", 7, "oblique-right"),
                   ("dsa", 4, "oblique-right"), ("spot", 1, "lateral")]
    live, dsa = fl.events[3], fl.events[4]
    assert live.protocol == "live pulsed fluoroscopy" and dsa.protocol == "DSA"
    assert live.pulse_rate_per_s == pytest.approx(15.0)
    assert live.fluoro_time_s == pytest.approx(7 / 15)
    assert dsa.pulse_rate_per_s == pytest.approx(2.0) and dsa.fluoro_time_s == 0.0
    assert dsa.start_time_s == 9.0 and dsa.duration_s > 1.5
    assert len({e.uid for e in fl.events}) == len(fl.events)
    s = fl.settings
    assert fl.events[0].exposure_time_s == pytest.approx(3 * s.pulse_width_ms / 1000)
    assert fl.events[0].tube_load_mas == pytest.approx(3 * fl.pulse_mas())


def test_event_sum_equals_dose_total_exactly(logged):
    fl, frames = logged
    assert sum_doses(fl.events) == fl.dose_total  # exact, floating point
    per_frame = Dose()
    for f in frames:
        per_frame = per_frame + f.dose
    for a, b in zip((per_frame.air_kerma_mgy, per_frame.dap_gy_cm2, per_frame.fluoro_time_s),
                    (fl.dose_total.air_kerma_mgy, fl.dose_total.dap_gy_cm2,
                     fl.dose_total.fluoro_time_s), strict=True):
        assert a == pytest.approx(b, rel=1e-12)
    fl2 = Fluoroscope(fl.patient, fl.settings, seed=0, carm=fl.carm)
    fl2.frame(Scene(fl.patient))
    fl2.reset_dose()
    assert fl2.events == [] and fl2.dose_total == Dose()


def test_event_log_is_bookkeeping_only(patient, logged):
    """The run context changes the events, never the pixels."""
    _, frames = logged
    fl = _scope(patient)
    plain = _session(fl, Scene(patient), grouped=False)
    assert len(plain) == len(frames)
    for a, b in zip(frames, plain, strict=True):
        np.testing.assert_array_equal(a.pixels, b.pixels)
    assert len(fl.events) > 6  # without runs the DSA frames are events of their own


def test_nested_runs_join_the_outer_one(patient):
    fl = _scope(patient)
    sc = Scene(patient)
    with fl.run("contrast test dose (DSA)", offset_s=100.0):
        dsa_sequence(fl, [sc.with_time(i / 6) for i in range(3)])
    (e,) = fl.events
    assert e.protocol == "contrast test dose (DSA)" and e.pulses == 3
    assert e.start_time_s == 100.0


def test_positioner_angles_follow_dicom(patient):
    g = CArmGeometry(pixels=128)
    ap = named_view(patient, "ap", "L4-L5", geometry_=g)
    p, s = positioner_angles_deg(ap.with_pose(tilt_deg=0.0))
    assert abs(p) == pytest.approx(180.0) and s == pytest.approx(0.0, abs=1e-9)
    # detector toward the patient's right (orbit > 0): RAO side of posterior
    p, s = positioner_angles_deg(ap.with_pose(orbit_deg=90.0, tilt_deg=20.0))
    assert p == pytest.approx(-90.0) and s == pytest.approx(20.0)


def test_ds_strings_fit_sixteen_characters():
    for v in (9.999999999999998, 1.1925444183798022e-4, -148.86019726129, 5, 0.0, 1e-20):
        s = ds_string(v)
        assert len(s) <= 16 and float(s) == pytest.approx(v, rel=1e-10, abs=1e-300)


def _items(seq, meaning: str) -> list:
    out = []
    for it in seq:
        if it.ConceptNameCodeSequence[0].CodeMeaning == meaning:
            out.append(it)
        if "ContentSequence" in it:
            out += _items(it.ContentSequence, meaning)
    return out


def _num(seq, meaning: str) -> float:
    (it,) = _items(seq, meaning)
    return float(it.MeasuredValueSequence[0].FloatingPointValue)


def _event_sum(ds, meaning: str) -> float:
    evs = _items(ds.ContentSequence, "Irradiation Event X-Ray Data")
    return sum(_num(e.ContentSequence, meaning) for e in evs)


@pytest.fixture(scope="module")
def sr_file(logged, tmp_path_factory) -> Path:
    fl, _ = logged
    study = phantom_study("lumbar", 28, 0, "rdsr test")
    return write_dose_sr(tmp_path_factory.mktemp("rdsr") / "SR0001.dcm", study, fl.events, 7)


def test_sr_totals_equal_events_and_dose_total(logged, sr_file):
    fl, _ = logged
    ds = pydicom.dcmread(sr_file)
    assert ds.SOPClassUID == XRAY_RADIATION_DOSE_SR and ds.Modality == "SR"
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "10001"
    assert ds.ContentTemplateSequence[0].MappingResource == "DCMR"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "113701"
    assert ds.CompletionFlag == "COMPLETE" and ds.VerificationFlag == "UNVERIFIED"
    acc = _items(ds.ContentSequence, "Accumulated X-Ray Dose Data")[0].ContentSequence
    tot = fl.dose_total
    assert _num(acc, "Dose Area Product Total") * 1e4 == pytest.approx(tot.dap_gy_cm2,
                                                                       rel=1e-12)
    assert _num(acc, "Dose (RP) Total") * 1e3 == pytest.approx(tot.air_kerma_mgy, rel=1e-12)
    assert _num(acc, "Total Fluoro Time") == pytest.approx(tot.fluoro_time_s, rel=1e-12)
    assert _num(acc, "Dose Area Product Total") == pytest.approx(
        _event_sum(ds, "Dose Area Product"), rel=1e-12)
    assert _num(acc, "Dose (RP) Total") == pytest.approx(_event_sum(ds, "Dose (RP)"),
                                                         rel=1e-12)
    assert _num(acc, "Fluoro Dose Area Product Total") + _num(
        acc, "Acquisition Dose Area Product Total") == pytest.approx(
        _num(acc, "Dose Area Product Total"), rel=1e-12)
    assert _num(acc, "Total Number of Radiographic Frames") == 6  # 2 spots + 4 DSA
    evs = _items(ds.ContentSequence, "Irradiation Event X-Ray Data")
    assert len(evs) == len(fl.events)
    uids = [_items(e.ContentSequence, "Irradiation Event UID")[0].UID for e in evs]
    assert uids == [e.uid for e in fl.events]
    pulses = [_num(e.ContentSequence, "Number of Pulses") for e in evs]
    assert pulses == [e.pulses for e in fl.events]


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@needs_tools
def test_sr_passes_dciodvfy_dcmdump_dsrdump(sr_file, logged):
    fl, _ = logged
    v = _run("dciodvfy", str(sr_file))
    lines = (v.stdout + v.stderr).splitlines()
    assert not [x for x in lines if "Error" in x], lines
    assert not [x for x in lines if "Warning" in x], lines
    assert _run("dcmdump", str(sr_file)).returncode == 0
    d = _run("dsrdump", str(sr_file))
    assert d.returncode == 0, d.stderr
    assert "X-Ray Radiation Dose SR Document" in d.stdout
    assert d.stdout.count('"Irradiation Event X-Ray Data"') == len(fl.events)
    assert '"Accumulated X-Ray Dose Data"' in d.stdout


def _sig3(x: float) -> str:
    return f"{x:.3g}"


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    """One fluoroscopy session through the real CLI entry point (~10 s)."""
    from needleguide.cli import app

    out = tmp_path_factory.mktemp("sim") / "out"
    res = CliRunner().invoke(app, ["simulate", "--procedure", "lumbar-transforaminal",
                                   "--level", "L4-L5", "--side", "right", "--dsa",
                                   "--seed", "1", "--out", str(out), "--dicom"])
    assert res.exit_code == 0, res.output
    return out


def test_simulate_dicom_writes_the_study(simulated):
    d = simulated / "dicom"
    names = sorted(p.name for p in d.iterdir())
    assert "SR0001.dcm" in names and any(n.startswith("XA") for n in names), names
    dss = [pydicom.dcmread(d / n, stop_before_pixels=True) for n in names]
    assert len({ds.StudyInstanceUID for ds in dss}) == 1
    assert len({ds.SeriesInstanceUID for ds in dss}) == len(dss)
    assert {str(ds.PatientName) for ds in dss} == {"Phantom^Lumbar BMI 28 seed 1"}
    xa = [ds for ds in dss if ds.Modality == "XA"]
    assert any(int(ds.get("NumberOfFrames", 1)) > 1 for ds in xa)


def test_simulate_dicom_sr_matches_session_json(simulated):
    j = json.loads((simulated / "session.json").read_text())[0]
    ev = j["dose_events"]
    assert ev and all({"uid", "mode", "pulses", "dap_gy_cm2"} <= set(e) for e in ev)
    assert sum(e["dap_gy_cm2"] for e in ev) == pytest.approx(j["dap_gy_cm2"], rel=1e-3)
    ds = pydicom.dcmread(simulated / "dicom" / "SR0001.dcm")
    acc = _items(ds.ContentSequence, "Accumulated X-Ray Dose Data")[0].ContentSequence
    assert _sig3(_num(acc, "Dose Area Product Total") * 1e4) == _sig3(j["dap_gy_cm2"])
    assert _sig3(_num(acc, "Dose (RP) Total") * 1e3) == _sig3(j["reference_air_kerma_mgy"])
    assert _sig3(_num(acc, "Total Fluoro Time")) == _sig3(j["fluoro_time_s"])
    evs = _items(ds.ContentSequence, "Irradiation Event X-Ray Data")
    assert [_items(e.ContentSequence, "Irradiation Event UID")[0].UID for e in evs] == \
        [e["uid"] for e in ev]
    # the DSA confirmation is one event on the session clock, after the needle work
    dsa = [e for e in ev if e["mode"] == "dsa"]
    assert len(dsa) == 1 and dsa[0]["pulses"] > 3
    assert dsa[0]["t_s"] >= max(e["t_s"] for e in ev if e["mode"] != "dsa")


@needs_tools
def test_simulate_dicom_sr_is_valid(simulated):
    sr = simulated / "dicom" / "SR0001.dcm"
    v = _run("dciodvfy", str(sr))
    assert not [x for x in (v.stdout + v.stderr).splitlines() if "Error" in x]
    assert _run("dsrdump", str(sr)).returncode == 0


def test_simulate_dicom_under_ultrasound_writes_cines_and_no_dose_report(tmp_path):
    from needleguide.cli import app

    out = tmp_path / "us"
    res = CliRunner().invoke(app, ["simulate", "--procedure", "sacroiliac", "--side", "right",
                                   "--modality", "us", "--seed", "1", "--out", str(out),
                                   "--dicom", "--json"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in (out / "dicom").iterdir())
    assert names and all(n.startswith("US") for n in names), names
    ds = pydicom.dcmread(out / "dicom" / names[0], stop_before_pixels=True)
    assert ds.Modality == "US" and int(ds.NumberOfFrames) > 1
    assert json.loads((out / "session.json").read_text())[0]["dose_events"] == []
