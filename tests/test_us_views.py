"""Standard views on the phantoms, habitus, CLI (files re-read)."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest

from needleguide import geometry
from needleguide.cli import main
from needleguide.scene import Scene
from needleguide.us import USImager, make_settings
from needleguide.us.beams import lateral_fwhm_mm
from needleguide.us.views import VIEWS, standard_view


@pytest.fixture(scope="module")
def lumbar():
    from needleguide.anatomy.phantom import build_phantom

    return {b: build_phantom("lumbar", bmi=b, spacing_mm=1.5) for b in (22, 38)}


def _at_target(p, view: str, level: str | None) -> dict:
    """Target depth, and the coherent (focused) energy fraction and lateral resolution
    there."""
    v = standard_view(p, view, level=level)
    s = make_settings(probe=v.probe, depth_mm=v.depth_mm, output_px=256,
                      focus_mm=min(v.target_depth_mm, 0.95 * v.depth_mm))
    im = USImager(s, seed=0)
    bd = im.beams(Scene(p, poses={"ProbeToPatient": v.ProbeToPatient}))
    k = int(np.argmin(np.abs(im.setup.depth_mm - v.target_depth_mm)))
    return {"depth": v.target_depth_mm, "strehl": float(bd.strehl[k]),
            "lateral_mm": float(lateral_fwhm_mm(v.target_depth_mm, s))}


def test_views_place_the_probe_on_the_skin_facing_the_target(lumbar):
    p = lumbar[22]
    for name in ("paramedian-sagittal", "transverse-spinous", "transverse-facet",
                 "sij-transverse", "hip-anterior-oblique"):
        v = standard_view(p, name, level="L4-L5", side="right")
        assert geometry.is_rigid(v.ProbeToPatient)
        face = v.ProbeToPatient[:3, 3]
        assert p.label_at(face[None])[0] != 0  # pressed into the skin
        assert p.label_at((face - 4.0 * v.ProbeToPatient[:3, 1])[None])[0] == 0  # air behind
        # the target lies in the image plane, in front of the probe, within the depth
        t = geometry.apply(geometry.invert(v.ProbeToPatient), v.target_mm)
        assert abs(t[2]) < 1e-6 and 0 < t[1] < v.depth_mm


def test_medial_branch_view_loses_target_detail_with_habitus(lumbar):
    a = _at_target(lumbar[22], "transverse-facet", "L4-L5")
    b = _at_target(lumbar[38], "transverse-facet", "L4-L5")
    assert b["depth"] > a["depth"] + 15  # deeper target, through more fat
    assert b["lateral_mm"] > 1.2 * a["lateral_mm"]  # coarser lateral resolution there
    # the fat crossed by the beams scatters the focus: less of it stays coherent
    assert b["strehl"] < 0.5 * a["strehl"] and a["strehl"] > 0.25


def test_cli_writes_png_json_and_needle_video(tmp_path):
    out = tmp_path / "us"
    rc = main(["us", "--region", "lumbar", "--view", "transverse-facet", "--side", "right",
               "--level", "L4-L5", "--bmi", "24", "--seed", "0", "--out", str(out),
               "--needle-to", "L4.medial_branch.right", "--frames", "4"])
    assert rc == 0
    img = imageio.imread(out / "us.png")
    assert img.ndim == 3 and img.shape[0] > 512 and img[..., 0].std() > 10
    meta = json.loads((out / "frame.json").read_text())
    assert meta["modality"] == "us" and meta["shape"] == [512, 512]
    assert meta["settings"]["probe"] == "curvilinear"
    assert meta["settings"]["view"]["name"] == "transverse-facet"
    T = np.array(meta["ImageToPatient"])
    assert geometry.is_rigid(T)
    frames = imageio.mimread(out / "advance.mp4", memtest=False)
    assert len(frames) == 4
    # the needle appears: later frames differ from the first
    assert np.abs(frames[-1].astype(float) - frames[0].astype(float)).mean() > 0.5


def test_cli_rejects_bad_input_with_one_line(tmp_path, capsys):
    assert main(["us", "--region", "cervical", "--view", "sij-transverse",
                 "--out", str(tmp_path / "a")]) == 2
    assert main(["us", "--view", "paramedian-sagittal", "--freq", "15",
                 "--out", str(tmp_path / "b")]) == 2
    assert main(["us", "--view", "nope", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "frequency_mhz" in err and "view" in err
    assert "Traceback" not in err


def test_all_views_are_known():
    assert len(VIEWS) == 9


def uncapped_tgc(f_mhz: float, depth_mm: float) -> tuple[float, ...]:
    """The automatic TGC without its noise-floor cap (0.8 dB/cm/MHz round trip, ≤ 60 dB)."""
    z = np.linspace(0.0, depth_mm, 64)
    return tuple(float(x) for x in np.minimum(2 * 0.8 * f_mhz * z / 10.0, 60.0))


def _shadow_below_target_gray(p, noise_db: float | None = None) -> float:
    """Mean screen grey 4–12 mm below the target bone echo of the medial-branch view
    (columns ±4 mm about the target): the acoustic shadow, where only noise remains. The
    TGC is the automatic one without its noise-floor cap (the same for every receiver)."""
    v = standard_view(p, "transverse-facet", level="L4-L5", side="right")
    s = make_settings(probe=v.probe, depth_mm=v.depth_mm, noise_db_re_face=noise_db,
                      focus_mm=min(v.target_depth_mm, 0.95 * v.depth_mm),
                      tgc_db=uncapped_tgc(3.5, v.depth_mm))
    fr = USImager(s, seed=0).render(Scene(p, poses={"ProbeToPatient": v.ProbeToPatient}))
    img = fr.pixels.astype(float)
    sp = fr.spacing_mm[0]
    ij = geometry.apply(geometry.invert(fr.ImageToPatient), v.target_mm)
    col, row = int(ij[0] / sp), int(ij[1] / sp)
    w = int(4 / sp)
    r0 = int(row - 6 / sp)
    bone = r0 + np.argmax(img[r0:int(row + 3 / sp), col - w:col + w], axis=0)
    return float(np.mean([img[b + int(4 / sp):b + int(12 / sp), col - w + i].mean()
                          for i, b in enumerate(bone)]))


def test_receiver_noise_fills_the_deep_shadow_at_high_bmi(lumbar):
    # the body-wall reverberation clutter (us/body_wall.py, from the wall's interfaces and
    # fat septa) and the receiver noise (TGC compensates ~2·0.8·f·depth and amplifies it
    # with the echoes) fill the shadow under the facet/TP at BMI 38 (~73 mm, thick fat)
    # far more than at BMI 22 (~48 mm), so the bone loses contrast against it
    g22 = _shadow_below_target_gray(lumbar[22])  # the default receiver (-70 dB)
    g38 = _shadow_below_target_gray(lumbar[38])
    g38_quiet = _shadow_below_target_gray(lumbar[38], -100.0)
    assert g22 < 20.0, g22
    assert g38 > g22 + 12.0, (g22, g38)
    assert g38 >= g38_quiet, (g38, g38_quiet)  # the receiver noise adds to the clutter
