"""Fluoroscopy from Hounsfield units: material decomposition, thick slices, the volume's
ends, the table, vertebra truth and ``fluoro --patient`` through the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from needleguide.anatomy.importer import CTPatient
from needleguide.anatomy.patient import Patient, Vertebra
from needleguide.cli import main
from needleguide.fluoro import CArm, CArmGeometry, Fluoroscope, FluoroSettings
from needleguide.fluoro.hu_materials import (
    HU_BONE_CODE0,
    HU_CODE0,
    HU_MIN,
    hu_basis_table,
    hu_codes,
    hu_of,
)
from needleguide.fluoro.materials import mass_attenuation
from needleguide.fluoro.volume import BASIS, basis_volume
from needleguide.scene import Scene

GEOM = CArmGeometry(pixels=128)


def _mu70(table_row) -> float:
    return float(table_row[0] * mass_attenuation(BASIS[0], 70.0)
                 + table_row[1] * mass_attenuation(BASIS[1], 70.0))


@pytest.mark.parametrize("bone", [False, True])
@pytest.mark.parametrize("h", [-900, -500, -100, 0, 40, 300, 800, 1500, 2200])
def test_hu_decomposition_reproduces_the_ct_number(h, bone):
    """At the CT's effective energy the mixture attenuates as its CT number says (the
    two-material basis fit costs ≤ 2 %), in and outside bone."""
    mu_w = float(mass_attenuation("water", 70.0))
    mu = _mu70(hu_basis_table(bone)[h - HU_MIN])
    assert mu / mu_w == pytest.approx(1.0 + h / 1000.0, rel=0.02, abs=0.003)


def test_bone_voxels_hold_more_mineral_than_soft_tissue_of_the_same_ct_number():
    """200 HU in bone is mineral in marrow (fat-rich), so more cortical bone than 200 HU
    of enhanced soft tissue: it attenuates more at fluoroscopy energies (50 keV)."""
    soft, bone = hu_basis_table(False)[200 - HU_MIN], hu_basis_table(True)[200 - HU_MIN]
    assert bone[1] > 1.15 * soft[1]

    def mu50(r):
        return r[0] * mass_attenuation(BASIS[0], 50.0) + r[1] * mass_attenuation(BASIS[1], 50.0)

    assert mu50(bone) > 1.01 * mu50(soft)


def test_hu_table_is_monotonic_and_air_is_empty():
    t = hu_basis_table()
    h = np.arange(HU_MIN, HU_MIN + len(t))[::16]
    mu = np.array([_mu70(r) for r in t[::16]])
    below = (mu > 0) & (h < 2500)
    assert np.all(np.diff(mu[below]) > 0) and np.all(np.diff(mu[mu > 0]) >= -1e-9)
    assert not hu_basis_table()[-1000 - HU_MIN].any()
    codes = hu_codes(np.array([-1000.0, np.nan, 0.0, 5000.0]))
    assert codes[0] == 0 and codes[1] == 0
    assert codes[2] == HU_CODE0 + 1024 and codes[3] == HU_CODE0 + 3071 + 1024
    assert hu_of("cortical_bone") == pytest.approx(1559, abs=30)


def _ct(hu: np.ndarray, spacing=(2.0, 2.0, 2.0)) -> CTPatient:
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = -(np.array(hu.shape) - 1) / 2 * np.array(spacing)
    labels = np.where(hu > -500, 48, 0).astype(np.uint8)
    v = Vertebra("L4", np.zeros(3), np.array([0, 0, 1.0]), np.array([0, 1.0, 0]), 30, 45, 35)
    return CTPatient(labels=labels, VoxelToPatient=aff, vertebrae={"L4": v}, hu=hu)


def _log(p: Patient, carm: CArm | None = None, **kw) -> np.ndarray:
    st = FluoroSettings(geometry=GEOM, noise=False, scatter_to_primary=0.0, aec=False,
                        kvp=70, **kw)
    fl = Fluoroscope(p, st, seed=0, carm=carm or CArm(geometry=GEOM))
    return fl.expose(Scene(p), carm=carm).log_image


def test_ct_rendered_from_hu_matches_the_label_rendering_of_the_same_materials():
    """A 200 mm water-like slab (53 HU = ICRU soft tissue) with a cortical-bone block:
    the HU path gives the label path's image (labels 48 soft tissue, 58 cortical bone)."""
    n = (120, 100, 120)
    hu = np.full(n, hu_of("soft_tissue"), np.float32)
    lab = np.full(n, 48, np.uint8)
    c = np.array(n) // 2
    box = tuple(slice(x - 8, x + 8) for x in c)
    hu[box] = hu_of("cortical_bone", 1.6)  # label 58: cortical bone at 1.6 g/cm³
    lab[box] = 58
    ct = _ct(hu)
    ref = Patient(labels=lab, VoxelToPatient=ct.VoxelToPatient, vertebrae=ct.vertebrae)
    a = _log(ct, table=False)
    b = _log(ref, table=False, cortex_mm=0.0)
    assert np.abs(a - b)[32:96, 32:96].max() < 0.03 * b[32:96, 32:96].max()


def _ramp_rows(hu: np.ndarray, dz: float) -> tuple[np.ndarray, np.ndarray]:
    carm = CArm(geometry=GEOM, orbit_deg=90.0)
    ell = _log(_ct(hu, spacing=(2.0, 2.0, dz)), carm, table=False)
    rows = np.arange(44, 84)  # ±20 mm about the isocentre: inside the 5 mm slice centres
    return rows, ell[rows, 64]


def test_thick_slices_are_sampled_trilinearly_not_as_blocks():
    """5 mm slices of a CT whose density rises linearly along z, seen laterally: the
    projection is a straight ramp across rows (trilinear sampling between slice centres);
    the same slices drawn as blocks give the staircase a streaky column is made of."""
    dz = 5.0
    z = np.arange(-60, 60 + 1e-6, dz)
    hu = np.broadcast_to((260 + 3.5 * z)[None, None, :], (60, 60, z.size)).astype(np.float32)
    rows, smooth = _ramp_rows(hu, dz)
    rows, blocks = _ramp_rows(np.repeat(hu, 5, axis=2), 1.0)
    res = [np.abs(v - np.polyval(np.polyfit(rows, v, 2), rows)).max() for v in (smooth, blocks)]
    span = float(smooth.max() - smooth.min())
    assert span > 0.3  # (soft tissue ↔ bone mixtures only; quadratic: beam hardening)
    assert res[0] < 0.01 * span  # smooth
    assert res[1] > 3 * res[0]  # the test can tell a staircase


def test_anatomy_beyond_the_scan_is_extended_with_soft_tissue():
    """A CT that ends mid-field: rows beyond its end still see the body (extended soft
    tissue), never the raw beam."""
    n = (120, 100, 30)  # 60 mm along z: most of the 128-px field lies beyond
    hu = np.full(n, 40.0, np.float32)
    ct = _ct(hu)
    codes, _, aff = basis_volume(ct)
    assert codes.shape[2] > n[2] and aff[2, 3] < ct.VoxelToPatient[2, 3]
    ell = _log(ct, table=False)
    centre = ell[64, 64]
    assert ell[2, 64] == pytest.approx(centre, rel=0.05)
    assert ell[125, 64] == pytest.approx(centre, rel=0.05)
    bare = Fluoroscope(ct, FluoroSettings(geometry=GEOM, noise=False, aec=False, kvp=70),
                       carm=CArm(geometry=GEOM))
    assert bare.volume().values.shape[2] == codes.shape[2]


def test_shutters_close_on_the_scanned_range_and_dap_follows():
    """Beyond a CT's slab nothing is anatomy: the shutters close there (black display),
    and the DAP counts the irradiated area only."""
    n = (120, 100, 30)  # 60 mm along z
    ct = _ct(np.full(n, 40.0, np.float32))
    st = FluoroSettings(geometry=GEOM, noise=False, aec=False, kvp=70)
    fl = Fluoroscope(ct, st, carm=CArm(geometry=GEOM))
    fr = fl.frame(Scene(ct), "spot")
    assert fr.pixels[2, 64] == 0.0 and fr.pixels[125, 64] == 0.0
    assert fr.pixels[64, 64] > 0.05
    frac = fl._pose(fl.carm).field_fraction
    assert 0.2 < frac < 0.5  # 60 mm of the 195 mm field at the isocentre
    slab = Patient(labels=np.full((120, 100, 120), 48, np.uint8),
                   VoxelToPatient=_ct(np.zeros((120, 100, 120), np.float32)).VoxelToPatient)
    full = Fluoroscope(slab, st, carm=CArm(geometry=GEOM)).exposure_dose("spot")
    assert fr.dose.dap_gy_cm2 == pytest.approx(full.dap_gy_cm2 * frac, rel=1e-6)


def test_table_in_the_ap_beam_transmits_as_measured():
    """Beside a small body the AP beam crosses only the table: it passes 66–76 % (Mann
    2019); on the lateral the posterior field misses it, the anterior field sees its edge."""
    hu = np.full((10, 10, 10), -1000.0, np.float32)
    hu[3:7, 3:7, 3:7] = 40.0
    p = _ct(hu)
    t = float(np.exp(-(_log(p)[10, 10] - _log(p, table=False)[10, 10])))
    assert 0.66 <= t <= 0.76
    lat = CArm(geometry=GEOM, orbit_deg=90.0)
    with_t, without = _log(p, lat), _log(p, lat, table=False)
    assert with_t[64, 120] == pytest.approx(without[64, 120], abs=1e-4)  # posterior
    assert (with_t - without)[64, :40].max() > 1.0  # the table edge-on, anterior


def test_phantom_bone_has_cortex_and_trabecular_texture():
    from needleguide.anatomy.phantom import build_phantom

    p = build_phantom("lumbar", spacing_mm=3.0)
    codes, lut, _ = basis_volume(p, extend_mm=0.0)
    body = p.tissues.label("vertebral_body")
    inner = codes[(p.labels == body) & (codes >= HU_BONE_CODE0)]
    shell = codes[p.labels == body]
    assert inner.size > 100 and (shell == body + 128).sum() > 100
    h = inner.astype(float) - HU_BONE_CODE0 + HU_MIN
    assert 50 < np.mean(h) < 450 and 40 < np.std(h) < 120  # textured, not one value
    again, _, _ = basis_volume(p, extend_mm=0.0)
    np.testing.assert_array_equal(codes, again)  # seeded


def test_frame_truth_lists_the_vertebrae_in_view():
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.fluoro import named_view

    p = build_phantom("lumbar", spacing_mm=3.0)
    for view in ("ap", "lateral", "oblique-right"):
        carm = named_view(p, view, "L4-L5", geometry_=GEOM)
        fl = Fluoroscope(p, FluoroSettings(geometry=GEOM, noise=False), carm=carm)
        vp = fl.frame(Scene(p), "spot").truth.vertebrae_px
        assert {"L4", "L5"} <= set(vp), view
        for name, (c, r) in vp.items():
            assert np.allclose(carm.project(p.vertebrae[name].center_mm), (c, r), atol=0.01)
        assert vp["L4"][1] < vp["L5"][1]  # superior is up
        assert "T11" not in vp  # out of the 195 mm field at the isocentre


def test_fluoro_cli_renders_an_imported_ct_folder(tmp_path):
    syn, imp, out = tmp_path / "syn", tmp_path / "imp", tmp_path / "fl"
    assert main(["synth-ct", "--region", "lumbar", "--spacing", "3", "--out", str(syn)]) == 0
    assert main(["import-ct", str(syn / "ct.nii.gz"), "--labels", str(syn / "labels.nii.gz"),
                 "--out", str(imp)]) == 0
    assert main(["fluoro", "--patient", str(imp), "--view", "lateral", "--level", "L3",
                 "--pixels", "128", "--out", str(out)]) == 0
    meta = json.loads((out / "frame.json").read_text())
    assert "L3" in meta["truth"]["vertebrae_px"]
    assert (out / "fluoro.png").stat().st_size > 1000
    bad = tmp_path / "nothing"
    bad.mkdir()
    assert main(["fluoro", "--patient", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
