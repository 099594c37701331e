"""The beams' direction read from a B-mode frame's scanned area (guidance/us_beams.py),
against the imager's own beam geometry."""

from __future__ import annotations

import numpy as np
import pytest

import needleguide.guidance.us_beams as us_beams
from needleguide.guidance.us_beams import ScannedArea, beam_field
from needleguide.scene import Scene
from needleguide.us import USImager, make_settings
from needleguide.us.display import HEADER_PX as OY
from needleguide.us.display import screen
from needleguide.us.probe import beam_direction_px
from needleguide.us.testobjects import layered_patient, probe_on_top

OX = 10  # the scan's left edge on the screen (us/display.py)


def _frame(probe: str, steer_deg: float, depth_mm: float):
    # a bone block under one side: its black shadow cuts into the scanned area's border
    p = layered_patient([("skin", 2.0), ("subcutaneous_fat", 10.0),
                         ("paraspinal_muscle", 150.0)], size_mm=(120.0, 110.0, 16.0),
                        spacing_mm=0.5, bone_top_mm=0.45 * depth_mm, bone_x_mm=(-100.0, -5.0))
    s = make_settings(probe=probe, depth_mm=depth_mm, steer_deg=steer_deg, output_px=256,
                      noise_db_re_face=-120.0)
    return USImager(s, seed=1).render(Scene(p), probe_on_top())


@pytest.mark.parametrize("probe,steer,depth", [("curvilinear", 0.0, 80.0),
                                               ("linear", 15.0, 40.0),
                                               ("linear", -20.0, 30.0),
                                               ("linear", 0.0, 40.0)])
def test_beam_directions_from_the_scanned_area(probe, steer, depth):
    f = _frame(probe, steer, depth)
    lit = f.pixels > 0
    # the scanner's screen (us/display.py): title, depth scale, focus and orientation
    # markers, grey bar and settings text around the scan
    shown = screen(f, f"{probe} steer {steer:+.0f}").max(axis=2) > 0
    bf = beam_field(shown)
    assert bf is not None and (bf.apex is None) == (probe == "linear")
    rows, cols = np.nonzero(lit)
    for k in np.linspace(0, rows.size - 1, 25).astype(int):
        got = bf.direction(cols[k] + OX, rows[k] + OY)
        want = beam_direction_px(f.settings, f.spacing_mm[0], cols[k], rows[k])
        assert np.degrees(np.arccos(min(1.0, float(got @ want)))) < 1.5


def test_too_small_an_area_gives_no_field():
    lit = np.zeros((64, 64), bool)
    assert beam_field(lit) is None
    lit[10:14, 20:40] = True
    assert beam_field(lit) is None
    full = np.ones((64, 64), bool)  # a linear image filling the frame: straight down
    d = beam_field(full).direction(30.0, 30.0)
    assert np.allclose(d, [0.0, 1.0])


def test_the_scanned_area_is_refitted_only_when_it_grows(monkeypatch):
    """``ScannedArea`` refits its beams every ``every`` frames only when more of the area
    was lit since the last fit; the beams are those of a fresh fit of the whole area."""
    fits = []
    monkeypatch.setattr(us_beams, "beam_field", lambda lit: fits.append(lit.sum()) or
                        beam_field(lit))
    f = _frame("curvilinear", 0.0, 80.0).pixels
    half = f.copy()
    half[:, f.shape[1] // 2:] = 0  # a shadow over the right half in the first frames
    area = ScannedArea(every=3)
    for k in range(12):
        area.add(half if k < 5 else f)
        got = area.beam(f.shape[1] / 2.0, f.shape[0] / 2.0)
    assert len(fits) == 2  # the 1st frame and the 7th (grown); not the 4th nor the 10th
    assert fits[-1] == (f > 0).sum()
    want = beam_field(f > 0).direction(f.shape[1] / 2.0, f.shape[0] / 2.0)
    assert np.allclose(got, want)
