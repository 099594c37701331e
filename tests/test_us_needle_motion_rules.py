"""Issue 16 part 4: what the needle-from-motion analyser must not take for a needle —
receiver noise flickering in black (a bone shadow) and change along a beam (the shadow
and reverberation tail under a moving needle) — and the shaft it must find beside a
moving region whose centroid lies off it; a tip whose line runs on into black, which it
must not report as seen; and a needle first found at a jiggled shaft, which it must not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tests.test_us_needle_motion import _speckle as speckle

from needleguide.frame import Frame
from needleguide.guidance.needle_lines import angle_between_deg
from needleguide.guidance.needle_motion import MotionParams, NeedleMotion
from needleguide.guidance.needle_motion_maps import motion_z
from needleguide.guidance.needle_motion_rays import ray_direction
from needleguide.guidance.needle_motion_step import dark_ahead, shadowed
from needleguide.guidance.needle_types import NeedleDetection


def _speckle(rng, shape) -> np.ndarray:
    z = speckle(rng, shape)
    return 0.2 + 0.6 * z / z.max()


def test_flicker_in_black_is_not_motion():
    """Receiver noise a few grey levels above black (no zeros), new in every frame, under
    still speckle: it decorrelates completely, but there is no echo to see move."""
    rng = np.random.default_rng(5)
    base = _speckle(rng, (200, 200))
    frames = []
    for _ in range(2):
        f = base + rng.normal(0, 0.01, base.shape).astype(np.float32)
        f[120:190, 20:180] = rng.integers(1, 6, (70, 160)) / 255.0
        frames.append(f.astype(np.float32))
    z_floor = motion_z([frames[0]], frames[1], 0.2, MotionParams())
    z_none = motion_z([frames[0]], frames[1], 0.2, MotionParams(dark_floor=0.0))
    assert float(z_none[130:180, 30:170].max()) > MotionParams().z_on  # the flicker
    assert float(z_floor[130:180, 30:170].max()) < 1.0  # only the smoothing's spill
    assert float(z_floor[20:100, 20:180].max()) < MotionParams().tip_z  # still speckle


def _steered_frames(n: int, slope: float, seed: int):
    """A steered linear frame (the scanned area a parallelogram, beams ``slope`` col per
    row) of still speckle, with a 1 mm wide band along one beam redrawn in every frame."""
    rng = np.random.default_rng(seed)
    h = w = 256
    rows, cols = np.mgrid[0:h, 0:w]
    left = 30 + slope * rows
    lit = (cols >= left) & (cols <= left + 150)
    base = _speckle(rng, (h, w))
    band = lit & (np.abs(cols - (110 + slope * rows)) <= 2.5) & (rows > 60) & (rows < 200)
    out = []
    for i in range(n):
        f = base.copy()
        f[band] = _speckle(rng, (h, w))[band]
        px = np.where(lit, np.clip(f * 255, 1, 255), 0).astype(np.uint8)
        out.append(Frame(pixels=px, spacing_mm=(0.2, 0.2), ImageToPatient=np.eye(4),
                         time_s=i / 15, modality="us"))
    return out


def test_change_along_a_beam_is_not_a_shaft():
    slope = np.tan(np.radians(20.0))  # beams 20° off vertical: 70° to the horizontal
    beam = np.array([slope, 1.0]) / np.hypot(slope, 1.0)

    def shafts(prm):
        nm, got = NeedleMotion(prm), []
        for f in _steered_frames(14, slope, 2):
            d = nm.update(f)
            if d.found:
                (a, b), (c, e) = d.shaft_px
                got.append(angle_between_deg(np.array([c - a, e - b]), beam))
        return got

    # (a needle may be first found at a moving shaft here: the beam rule alone)
    off = shafts(MotionParams(beam_tol_deg=0.0, acquire_max_mm=0.0))
    assert off and min(off) < 10.0  # without the rule: the band is taken for a shaft
    assert all(a >= MotionParams().beam_tol_deg
               for a in shafts(MotionParams(acquire_max_mm=0.0)))


@pytest.mark.parametrize("deg, side", [(30.0, 1.0), (45.0, -1.0), (60.0, 1.0), (50.0, 1.0)])
def test_the_shaft_beside_the_moving_regions_centroid(deg, side):
    """A faint shaft (1.5 px wide, 0.25 above speckle of mean 0.5) ends at a tip; the
    moving region around it reaches 4 mm to one side only (the tissue on the other side
    is dark: no motion shows there), so its centroid lies 2 mm off the shaft. From the
    centroid alone the brightest ray misses the shaft; shifted across (``ray_shift_mm``)
    the ray starts on the shaft, along it."""
    rng = np.random.default_rng(int(deg))
    px_mm = 0.2
    h = w = 220
    img = _speckle(rng, (h, w)).astype(np.float32)
    u = np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])  # deeper, right
    tip = np.array([130.0, 150.0])
    n = np.array([-u[1], u[0]])
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    rel = np.stack([xx - tip[0], yy - tip[1]], -1)
    along, across = rel @ u, rel @ n
    img += (0.25 * np.exp(-0.5 * (across / 0.75) ** 2) * (along <= 0)).astype(np.float32)
    # the moving region: 4 mm on one side of the shaft, 1 mm on the other, 6 mm along
    blob = (along > -3 / px_mm) & (along < 3 / px_mm) & \
        (side * across < 4 / px_mm) & (side * across > -1 / px_mm)
    z = np.where(blob, 100.0, 0.0).astype(np.float32)
    c = np.array([xx[blob].mean(), yy[blob].mean()])
    off = abs(float((c - tip) @ n)) * px_mm
    assert 1.2 < off < 2.0  # the centroid lies well off the shaft
    prm = MotionParams()
    u0, p0 = ray_direction(img, c, px_mm, prm)
    u1, p1 = ray_direction(img, c, px_mm, dataclasses.replace(prm, ray_shift_mm=3.0), None, z)
    assert np.allclose(p0, c)  # without the shift the ray starts at the centroid
    assert abs(float((p1 - tip) @ n)) * px_mm < 0.4
    assert angle_between_deg(u1, u) < 2.5
    # no moving region beside it, no shift
    u2, p2 = ray_direction(img, c, px_mm, dataclasses.replace(prm, ray_shift_mm=3.0), None,
                           np.zeros_like(z))
    assert np.allclose(p2, c) and np.allclose(u2, u0)


@pytest.mark.parametrize("deg", [30.0, 60.0, 85.0])
def test_a_tip_whose_line_runs_into_black_is_not_reported_seen(deg):
    """Speckle over an acoustic shadow (rows ≥ 120: receiver noise a few grey levels above
    black). A tip 1 px above the shadow, pointing into it: ``dark_ahead`` (the needle may
    go on unseen), and ``shadowed`` (what the analyser reports) has it not seen
    (``tip_in_shadow``); 6 mm above it, or with the rule off, it stays seen."""
    rng = np.random.default_rng(int(deg))
    img = _speckle(rng, (240, 240)).astype(np.float32)
    img[120:] = rng.integers(1, 6, (120, 240)) / 255.0
    u = np.array([np.cos(np.radians(deg)), np.sin(np.radians(deg))])
    prm, fmm = MotionParams(), 0.1

    def tip_at(row):
        return np.array([100.0, float(row)])

    assert dark_ahead(img, tip_at(119), u, fmm, prm)
    assert not dark_ahead(img, tip_at(59), u, fmm, prm)
    assert not dark_ahead(img, tip_at(119), u, fmm, MotionParams(shadow_ahead_mm=0.0))
    assert not dark_ahead(img, np.array([500.0, 500.0]), u, fmm, prm)  # outside the image

    def reported(row, params):
        t = tip_at(row)
        det = NeedleDetection(True, tip_px=(float(t[0]), float(t[1])),
                              shaft_px=(tuple(map(float, t - 200 * u)), (float(t[0]), float(t[1]))),
                              tip_visible=True, extra={"tip_from": "step"})
        return shadowed(det, img, fmm, params)

    d = reported(119, prm)
    assert d.found and not d.tip_visible and d.extra["tip_in_shadow"]
    assert d.tip_px == (100.0, 119.0)  # the tip is still reported, not moved
    assert reported(59, prm).tip_visible
    assert reported(119, MotionParams(shadow_ahead_mm=0.0)).tip_visible
    none = NeedleDetection(False)
    assert shadowed(none, img, fmm, prm) is none  # nothing found: nothing to flag


@pytest.mark.parametrize("field, value", [("ray_shift_mm", -1.0), ("ray_shift_step_mm", 0.0),
                                          ("ray_shift_deg", 0.1), ("ray_shift_top", 0),
                                          ("held_off_frames", -1), ("shadow_ahead_mm", -1.0),
                                          ("shadow_level", 1.5), ("acquire_max_mm", -1.0),
                                          ("trace_tol_deg", -1.0), ("tip_smooth", 1.0),
                                          ("tip_smooth", -0.1)])
def test_motion_parameters_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        MotionParams(**{field: value})


@pytest.mark.parametrize("args, field", [(["--cases", "1216"], "--frames"),
                                         (["--cases", "1216", "--frames", "-3"], "--frames"),
                                         (["--cases", "1216", "--frames", "3", "--sequence", "-1"],
                                          "--sequence"),
                                         (["--acquire-max-mm", "-1"], "--acquire-max-mm")])
def test_the_motion_sheet_script_refuses_bad_input(tmp_path, args, field):
    """``scripts/needle_motion_sheet.py``: bad frame or sequence numbers (``--cases``) or a
    negative ``--acquire-max-mm`` are refused before any rendering, in one line naming the
    option (exit 2), and nothing is written."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "needle_motion_sheet.py"
    png = tmp_path / "sheet.png"
    r = subprocess.run([sys.executable, str(script), *args, "--png", str(png)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert field in last and "Traceback" not in r.stderr
    assert not png.exists() and not any(tmp_path.iterdir())


def _redrawn_region_frames(n: int, region: np.ndarray, seed: int) -> list[Frame]:
    """Still speckle (0.2 mm pixels) whose ``region`` (bool mask) is redrawn every frame:
    tissue there moves, everywhere else it stays."""
    rng = np.random.default_rng(seed)
    base = _speckle(rng, region.shape)
    out = []
    for i in range(n):
        f = base.copy()
        f[region] = _speckle(rng, region.shape)[region]
        out.append(Frame(pixels=np.clip(f * 255, 1, 255).astype(np.uint8),
                         spacing_mm=(0.2, 0.2), ImageToPatient=np.eye(4), time_s=i / 15,
                         modality="us"))
    return out


def _found(prm: MotionParams, frames: list[Frame]) -> list[tuple[bool, NeedleDetection]]:
    """The detections of ``frames``, each with whether it is the first of its track."""
    nm, out, was = NeedleMotion(prm), [], False
    for f in frames:
        d = nm.update(f)
        if d.found:
            out.append((not was, d))
        was = d.found
    return out


@pytest.mark.parametrize("shape", ["jiggled shaft", "wide region", "advancing tip"])
def test_a_needle_is_first_found_at_an_advancing_tip(shape):
    """With no needle known, motion along a 26 mm stretch of a shaft (a jiggle whose tip
    does not show) is not taken for a needle, and a 24 mm wide moving region only where
    its motion along the line found spans ≤ ``acquire_max_mm``; the motion of a 5 mm
    region (an advancing tip) is. ``acquire_max_mm`` = 0: each is, at first sight."""
    h = w = 256
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    u = np.array([np.cos(np.radians(40.0)), np.sin(np.radians(40.0))])
    along = (xx - 128) * u[0] + (yy - 128) * u[1]
    across = -(xx - 128) * u[1] + (yy - 128) * u[0]
    region = {"jiggled shaft": (np.abs(along) < 65) & (np.abs(across) < 5),
              "wide region": np.hypot(along, across) < 60,
              "advancing tip": (np.abs(along) < 12.5) & (np.abs(across) < 12.5)}[shape]
    frames = _redrawn_region_frames(12, region, 3)
    prm = MotionParams()
    off = _found(dataclasses.replace(prm, acquire_max_mm=0.0), frames)
    assert off  # without the rule each is taken for a needle
    first = off[0][1].extra
    if shape != "advancing tip":
        assert first["shaft_motion"] or first["moving_mm"] > prm.acquire_max_mm
    on = _found(prm, frames)
    if shape == "jiggled shaft":
        assert any(d.extra["shaft_motion"] for _, d in off) and not on
    elif shape == "wide region":
        assert len(on) < len(off)
    else:
        assert len(on) == len(off)
    for is_first, d in on:
        if is_first:
            assert not d.extra["shaft_motion"]
            assert d.extra["moving_mm"] <= prm.acquire_max_mm
