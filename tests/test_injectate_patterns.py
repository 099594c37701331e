"""Patterns as the atlases show them (scene/injectate/detail.py and the compartments that
use it): transforaminal along the root sleeve then medially, a myelogram with roots as
filling defects and filled root sleeves, the venous plexus as a lattice, the sacroiliac
joint past its capacity; the lattice-anchored texture; the human-observer model."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.scene.injectate import Compartment, Injectate, SpreadParams
from needleguide.scene.injectate.detail import cauda_strands, plexus_lattice, texture
from needleguide.scene.injectate.grid import LocalGrid
from needleguide.scene.injectate.placement import tip_for_pattern


@pytest.fixture(scope="module")
def lumbar():
    from needleguide.anatomy.phantom import build_phantom

    return build_phantom("lumbar", seed=0, spacing_mm=2.0)


def _under(patient, field, thr=1e-6):
    ijk = np.argwhere(field.values > thr)
    pts = ijk @ field.VoxelToPatient[:3, :3].T + field.VoxelToPatient[:3, 3]
    return patient.label_at(pts), field.values[tuple(ijk.T)], pts


def test_texture_is_the_same_on_any_grid_of_the_lattice():
    a = texture(LocalGrid((0, 10, 0), (30, 30, 40), 1.0), 3, (2.5, 7.0), salt=1)
    b = texture(LocalGrid((-10, 5, -7), (60, 50, 70), 1.0), 3, (2.5, 7.0), salt=1)
    assert np.array_equal(a, b[10:40, 5:35, 7:47])
    assert 0.7 < a.std() < 1.3
    c = texture(LocalGrid((0, 10, 0), (30, 30, 40), 1.0), 4, (2.5, 7.0), salt=1)
    assert not np.allclose(a, c)


def test_transforaminal_outlines_the_root_then_runs_medially(lumbar):
    tip = tip_for_pattern(lumbar, "transforaminal", "L4-L5", "right")
    inj = Injectate(lumbar).inject(tip, volume_ml=1.5, rate_ml_s=0.3)
    labels, w, pts = _under(lumbar, inj.iodine_mg_ml(6.0))
    root = np.asarray(lumbar.centerlines["L4.nerve_root.right"].points_mm, float)
    fat = lumbar.tissues.label("epidural_fat")
    # along the sleeve beyond the foramen: soft tissue within a few mm of the root
    soft = ~np.isin(labels, [fat, lumbar.tissues.label("foramen"),
                             lumbar.tissues.label("dura")])
    d_root = np.min(np.linalg.norm(pts[:, None] - root[None, 2:], axis=2), axis=1)
    assert w[soft & (d_root < 5.0)].sum() > 0.05 * w.sum()
    # then medially, under the pedicle into the lateral epidural space of the canal
    medial = pts[:, 0] < tip[0] - 8.0  # the right side is +x: medial is smaller x
    assert w[medial].sum() > 0.03 * w.sum()
    assert w[medial & (labels == fat)].sum() > 0.01 * w.sum()


def test_intrathecal_myelogram_roots_are_filling_defects_and_sleeves_fill(lumbar):
    tip = tip_for_pattern(lumbar, "intrathecal", "L4-L5", "right")
    inj = Injectate(lumbar).inject(tip, volume_ml=3.0, rate_ml_s=0.5)
    (model,) = inj.models()
    assert model.compartment == Compartment.INTRATHECAL
    grid = model.fill.grid
    allowed = model.fill.masks[0]
    csf = grid.labels(lumbar) == lumbar.tissues.label("csf")
    strands = cauda_strands(lumbar, grid, csf, np.array([0.0, 1.0, 0.0]))
    assert strands.sum() > 50 and not (strands & allowed).any()
    # the root sleeves hold contrast beside the sac, toward the ganglia: more of it lies
    # off the CSF label than without sleeves (where only the sac's rim does, resampled)
    labels, w, pts = _under(lumbar, inj.iodine_mg_ml(8.0))
    off = Injectate(lumbar, SpreadParams(cauda_strand_mm=0.0, dural_sleeve_mm=0.0))
    off.inject(tip, volume_ml=3.0, rate_ml_s=0.5)
    labels0, w0, pts0 = _under(lumbar, off.iodine_mg_ml(8.0))
    csf = lumbar.tissues.label("csf")
    assert w[labels != csf].sum() / w.sum() > w0[labels0 != csf].sum() / w0.sum() + 0.03
    assert np.ptp(pts[:, 0]) > np.ptp(pts0[:, 0]) + 4.0  # the sleeves reach sideways


def test_venous_plexus_fills_as_a_lattice(lumbar):
    lab = lumbar.tissues.label("epidural_venous_plexus")
    pts, rad = plexus_lattice(lumbar, lab)
    assert len(pts) == len(rad) and np.abs(pts[:, 0]).min() < 2.0  # crosses the midline
    tip = tip_for_pattern(lumbar, "venous", "L4-L5", "right")
    inj = Injectate(lumbar).inject(tip, volume_ml=1.5, rate_ml_s=0.5)
    assert Compartment.VENOUS in inj.compartments()
    f = inj.iodine_mg_ml(3.0)
    vessel = [p for p in inj.parts(3.0) if p.compartment == Compartment.VENOUS][0]
    ijk = np.argwhere(vessel.iodine > 1e-3)
    p = ijk * vessel.grid.spacing_mm + np.array(vessel.grid.lo) * vessel.grid.spacing_mm
    assert f is not None and np.ptp(p[:, 0]) > 15.0 and np.ptp(p[:, 2]) > 30.0


def test_sacroiliac_joint_ruptures_beyond_its_capacity(lumbar):
    tip = tip_for_pattern(lumbar, "sacroiliac", "L5-S1", "right")
    big = Injectate(lumbar).inject(tip, volume_ml=3.0, rate_ml_s=0.25)
    assert big.compartments() == {Compartment.SIJ: 1.0}
    assert big.models()[0].rupture_mm is not None
    small = Injectate(lumbar).inject(tip, volume_ml=1.0, rate_ml_s=0.25)
    assert small.models()[0].rupture_mm is None


def test_observer_threshold_detection_and_cnr():
    from needleguide.lab.eval_observer import cnr, dsa_threshold, observe

    assert dsa_threshold(1) == pytest.approx(1.645, abs=1e-3)
    assert dsa_threshold(5) == pytest.approx(2.319, abs=1e-3)
    rng = np.random.default_rng(0)
    n = 96
    yy, xx = np.mgrid[:n, :n]
    blob = np.exp(-((yy - 48) ** 2 + (xx - 48) ** 2) / (2 * 4.0**2)).astype(np.float32)
    bg = (0.5 + 0.05 * np.sin(xx / 5.0)).astype(np.float32)  # "anatomy"
    times = np.arange(12) / 15.0
    for amp, seen in ((0.2, True), (0.0, False)):
        clean = [bg - (amp if k >= 4 else 0.0) * blob for k in range(12)]
        noisy = [c + rng.normal(0, 0.02, c.shape).astype(np.float32) for c in clean]
        if amp == 0.0:  # no signal: the template is the same blob, applied to nothing
            clean = [bg - (0.2 if k >= 4 else 0.0) * blob for k in range(12)]
        run = observe(noisy, clean, times, 3, pixel_mm=1.0)
        assert run.detected(dsa_threshold(1)) is seen
    a = bg - 0.2 * blob + rng.normal(0, 0.02, blob.shape)
    b = bg - 0.2 * blob + rng.normal(0, 0.02, blob.shape)
    c = cnr(-0.2 * blob, a, b, 1.0)
    assert 4.0 < c < 10.0  # ~0.12 contrast over the blob core vs its ring, σ 0.02
