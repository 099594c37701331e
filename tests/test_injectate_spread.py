"""Spread mechanics per compartment on a synthetic spine segment: conservation,
confinement, washout, gravity, capsule capacity and rupture, partial patterns."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.scene.injectate import Compartment, Injectate, Injection, SpreadParams
from needleguide.scene.injectate.synthetic import synthetic_spine

C = 300.0  # mg I/mL


@pytest.fixture(scope="module")
def spine():
    return synthetic_spine()


def labels_under(patient, field, threshold=1e-6):
    """Patient labels at the voxels where ``field`` exceeds ``threshold``, and the values."""
    ijk = np.argwhere(field.values > threshold)
    pts = ijk @ field.VoxelToPatient[:3, :3].T + field.VoxelToPatient[:3, 3]
    return patient.label_at(pts), field.values[tuple(ijk.T)], pts


def check_conservation(inj: Injectate, t_s: float, conc: float = C) -> float:
    """in place (integral of the iodine field) + washed out = injected, within 1%."""
    s = inj.summary(t_s)
    f = inj.iodine_mg_ml(t_s)
    in_place_ml = (f.total() / conc) if f is not None else 0.0
    injected = s["injected_ml"]
    err = abs(in_place_ml + s["washed_out_ml"] - injected) / injected
    assert err < 0.01, (t_s, in_place_ml, s)
    ff = inj.fluid_fraction(t_s)
    if ff is not None:
        assert float(ff.values.max()) <= 1.0 + 1e-6
    return err


@pytest.mark.parametrize("landmark", ["epidural.posterior", "thecal_sac.posterior",
                                      "facet.right", "segmental_artery.left",
                                      "venous_plexus.right", "muscle.right"])
def test_volume_conservation_every_compartment(spine, landmark):
    inj = Injectate(spine).inject(spine.landmark(landmark), volume_ml=2.0, rate_ml_s=0.5)
    for t in (0.5, 2.0, 4.0, 4.3, 6.0, 20.0, 600.0):
        check_conservation(inj, t)
    s = inj.summary(4.0)
    assert s["injected_ml"] == pytest.approx(2.0)
    assert s["injected_mg"] == pytest.approx(600.0)


def test_epidural_contrast_never_leaves_the_epidural_space(spine):
    """Epidural contrast stays in the epidural and foraminal fat, the potential space
    between the dura and the canal (the dura's voxels: the ventral line of a lateral
    view) and the root sleeves; never in the CSF, a nerve or bone."""
    inj = Injectate(spine).inject(spine.landmark("epidural.posterior"), volume_ml=3.0,
                                  rate_ml_s=0.5)
    epidural = {spine.tissues.label(n) for n in ("epidural_fat", "foramen", "dura")}
    never = {spine.tissues.label(n) for n in ("csf", "nerve_root")} | set(
        spine.tissues.labels_in_group("bone"))
    for t in (1.0, 3.0, 6.0, 30.0):
        labels, w, _ = labels_under(spine, inj.iodine_mg_ml(t))
        assert not set(np.unique(labels)) & never, np.unique(labels)
        assert w[np.isin(labels, list(epidural))].sum() >= 0.9 * w.sum()


def test_epidural_spread_prefers_the_canal_axis(spine):
    inj = Injectate(spine).inject(spine.landmark("epidural.posterior"), volume_ml=3.0)
    _, w, pts = labels_under(spine, inj.iodine_mg_ml(10.0))
    extent = np.sqrt(np.average((pts - np.average(pts, 0, w)) ** 2, axis=0, weights=w))
    assert extent[2] > 1.5 * extent[0]  # cranio-caudal spread beats lateral spread
    iso = Injectate(spine, SpreadParams(epidural_craniocaudal_anisotropy=1.0))
    iso.inject(spine.landmark("epidural.posterior"), volume_ml=3.0)
    _, w2, p2 = labels_under(spine, iso.iodine_mg_ml(10.0))
    ext2 = np.sqrt(np.average((p2 - np.average(p2, 0, w2)) ** 2, axis=0, weights=w2))
    assert extent[2] > ext2[2]


def test_arterial_contrast_streams_downstream_and_is_gone_after_washout(spine):
    p = SpreadParams()
    tip = spine.landmark("segmental_artery.left")  # x = -30 on an artery from x = -34
    inj = Injectate(spine, p).inject(tip, volume_ml=1.0, rate_ml_s=0.5)  # 0 .. 2 s
    (model,) = inj.models()
    artery = spine.tissues.label("segmental_artery")
    labels, vals, pts = labels_under(spine, inj.iodine_mg_ml(1.0))
    in_vessel = labels == artery
    assert in_vessel.any()
    assert pts[in_vessel][:, 0].min() > tip[0] - 1.5  # nothing upstream of the tip
    assert pts[in_vessel][:, 2].max() > 20 and pts[in_vessel][:, 2].min() < -15  # branches
    # diluted by blood: q / (Q + q)
    q = 500.0
    assert vals[in_vessel].max() == pytest.approx(C * q / (model.flow_mm3_s + q), rel=1e-3)
    clear = model.clearance_s()
    assert clear < 1.0  # streams through within about a second
    t_gone = 2.0 + clear + 1e-3
    f = inj.iodine_mg_ml(t_gone)
    if f is not None:
        labels, vals, _ = labels_under(spine, f)
        assert not np.any(labels == artery)  # lumen free of contrast
    f = inj.iodine_mg_ml(2.0 + clear + 5 * p.capillary_washout_s)
    assert f is None or f.total() < 0.01 * 300.0
    check_conservation(inj, t_gone)


def test_particulate_steroid_into_an_artery_is_reported(spine):
    tip = spine.landmark("segmental_artery.left")
    inj = Injectate(spine).inject(tip, Injection(volume_ml=0.5, start_s=0.0))
    inj.inject(tip, Injection(agent="steroid_particulate", volume_ml=1.0, start_s=5.0))
    assert inj.summary(4.0)["particulate_intra_arterial_ml"] == 0.0
    assert inj.summary(9.0)["particulate_intra_arterial_ml"] == pytest.approx(1.0)
    assert inj.summary(9.0)["injected_mg"] == pytest.approx(150.0)  # steroid: no iodine
    epi = Injectate(spine).inject(spine.landmark("epidural.posterior"),
                                  Injection(agent="steroid_particulate", volume_ml=1.0))
    assert epi.summary(9.0)["particulate_intra_arterial_ml"] == 0.0
    assert epi.iodine_mg_ml(9.0) is None and epi.fluid_fraction(9.0).total() > 0.99


def test_venous_contrast_lingers_longer_than_arterial(spine):
    art = Injectate(spine).inject(spine.landmark("segmental_artery.left"), volume_ml=1.0)
    ven = Injectate(spine).inject(spine.landmark("venous_plexus.right"), volume_ml=1.0)
    assert ven.models()[0].clearance_s() > 3 * art.models()[0].clearance_s()
    # still contrast in the plexus a second after the injection stopped, ladder-like
    labels, _, pts = labels_under(spine, ven.iodine_mg_ml(3.0))
    assert np.all(labels == spine.tissues.label("epidural_venous_plexus"))
    assert np.ptp(pts[:, 2]) > 40.0
    assert ven.fluid_fraction(3.0) is None  # intravascular: not seen by ultrasound


@pytest.mark.parametrize("position, sign", [("prone", +1), ("supine", -1)])
def test_intrathecal_contrast_pools_dependently(spine, position, sign):
    # tip in the posterior thecal sac; prone: anterior (+y) is down, supine: posterior
    inj = Injectate(spine, SpreadParams(position=position))
    inj.inject(spine.landmark("thecal_sac.posterior"), volume_ml=2.0)
    labels, w, pts = labels_under(spine, inj.iodine_mg_ml(10.0))
    assert np.all(labels == spine.tissues.label("csf"))
    csf = np.argwhere(spine.labels == spine.tissues.label("csf"))
    csf_y = (csf @ spine.VoxelToPatient[:3, :3].T + spine.VoxelToPatient[:3, 3])[:, 1].mean()
    mean_y = np.average(pts[:, 1], weights=w)
    assert sign * (mean_y - csf_y) > 2.0  # the pool lies on the dependent side
    assert np.ptp(pts[:, 2]) > 2 * np.ptp(pts[:, 0])  # layers along the sac


def _in_mask(model, field, mask) -> tuple[np.ndarray, np.ndarray]:
    """Iodine values of ``field`` and whether each lies in ``mask`` (on the model's grid;
    both are on the global lattice)."""
    g = model.fill.grid
    ijk = np.argwhere(field.values > 1e-6)
    lo = np.rint(field.VoxelToPatient[:3, 3] / g.spacing_mm).astype(int)
    gi = ijk + lo - np.array(g.lo)
    ok = np.all((gi >= 0) & (gi < np.array(g.shape)), axis=1)
    inside = np.zeros(len(ijk), bool)
    inside[ok] = mask[tuple(gi[ok].T)]
    return field.values[tuple(ijk.T)], inside


def test_facet_stays_in_the_joint_until_capacity_then_ruptures(spine):
    """Up to the capacity the injectate stays in the joint space and its recesses (the
    model's joint mask); beyond it the capsule tears and the excess leaves the joint."""
    p = SpreadParams(facet_capacity_ml=1.2)
    inj = Injectate(spine, p).inject(spine.landmark("facet.right"), volume_ml=2.0,
                                     rate_ml_s=0.25)  # 8 s
    (model,) = inj.models()
    assert model.rupture_mm is not None  # 2 mL > 1.2 mL: the capsule tears
    small = Injectate(spine, p).inject(spine.landmark("facet.right"), volume_ml=1.0)
    assert small.models()[0].rupture_mm is None
    joint = model.fill.masks[0]
    for t in (1.0, 3.0, 4.6):  # 0.25, 0.75, 1.15 mL
        vals, inside = _in_mask(model, inj.iodine_mg_ml(t), joint)
        assert inside.all()
    for t in (6.0, 8.0):  # 1.5, 2.0 mL: 0.3 and 0.8 mL have ruptured into muscle
        vals, inside = _in_mask(model, inj.iodine_mg_ml(t), joint)
        assert (~inside).any()
        out_ml = vals[~inside].sum() * 1e-3 / C
        assert out_ml == pytest.approx(0.25 * t - 1.2, rel=0.05)
        assert vals[inside].sum() * 1e-3 / C == pytest.approx(1.2, rel=0.02)


def test_facet_capsule_distends_into_its_recesses_before_rupture(spine):
    """Below the capacity, what the joint space cannot hold sits in pouches beyond its
    poles (superior and the larger inferior recess), along the joint, not sideways."""
    inj = Injectate(spine, SpreadParams(facet_capacity_ml=1.2))
    inj.inject(spine.landmark("facet.right"), volume_ml=1.15, rate_ml_s=0.25)
    assert inj.models()[0].rupture_mm is None
    labels, vals, pts = labels_under(spine, inj.iodine_mg_ml(10.0))
    space = labels == spine.tissues.label("facet_joint_space")
    assert (~space).any()  # some of it sits in the recesses
    z = pts[space, 2]
    out = pts[~space & (vals > 0.2 * vals.max())]
    beyond = (out[:, 2] > z.max() - 1.0) | (out[:, 2] < z.min() + 1.0)
    assert beyond.mean() > 0.9  # above or below the joint space
    assert np.all(np.abs(out[:, 0] - 19.0) <= 6.0)  # within the joint's footprint
    assert np.all(np.abs(out[:, 1] + 16.0) <= 8.0)
    below = vals[~space][pts[~space, 2] < 0].sum()
    assert below > vals[~space][pts[~space, 2] > 0].sum()  # the inferior recess is larger
    check_conservation(inj, 10.0)


def test_partial_pattern_at_a_boundary(spine):
    inj = Injectate(spine).inject([3.5, 8.5, 12.0], volume_ml=2.0, rate_ml_s=0.5)
    shares = inj.compartments()
    assert set(shares) == {Compartment.EPIDURAL, Compartment.VENOUS}
    s = inj.summary(4.0)
    for comp, share in shares.items():
        assert s["compartments"][comp.value]["injected_ml"] == pytest.approx(2.0 * share)
    labels, _, _ = labels_under(spine, inj.iodine_mg_ml(3.0))
    found = set(np.unique(labels))
    assert spine.tissues.label("epidural_fat") in found
    assert spine.tissues.label("epidural_venous_plexus") in found
    check_conservation(inj, 3.0)
    check_conservation(inj, 30.0)


def test_test_dose_then_therapeutic_accumulate_and_push_contrast_out(spine):
    tip = spine.landmark("epidural.posterior")
    inj = Injectate(spine).inject(tip, volume_ml=1.0, rate_ml_s=0.5)  # contrast, 0-2 s
    before = inj.iodine_mg_ml(5.0)
    inj.inject(tip, Injection(agent="steroid_non_particulate", volume_ml=2.0, rate_ml_s=0.5,
                              start_s=10.0))
    after = inj.iodine_mg_ml(20.0)
    assert np.allclose(inj.iodine_mg_ml(5.0).values, before.values)  # past unchanged
    s = inj.summary(20.0)
    assert s["injected_ml"] == pytest.approx(3.0) and s["injected_mg"] == pytest.approx(300.0)
    assert inj.fluid_fraction(20.0).total() == pytest.approx(3.0 * np.exp(-15 / 1800), rel=0.01)
    assert after.total() == pytest.approx(before.total(), rel=0.01)  # iodine conserved

    def mean_dist(f):
        _, w, pts = labels_under(spine, f)
        return np.average(np.linalg.norm(pts - tip, axis=1), weights=w)

    assert mean_dist(after) > mean_dist(before) + 1.0  # displaced outward


def test_intramuscular_is_local_persistent_and_along_fibres(spine):
    inj = Injectate(spine, seed=3).inject(spine.landmark("muscle.right"), volume_ml=2.0)
    s = inj.summary(120.0)
    assert s["in_place_ml"] / s["injected_ml"] > 0.9
    _, w, pts = labels_under(spine, inj.iodine_mg_ml(120.0))
    sd = np.sqrt(np.average((pts - np.average(pts, 0, w)) ** 2, axis=0, weights=w))
    assert sd[2] > 1.3 * sd[0]
    same = Injectate(spine, seed=3).inject(spine.landmark("muscle.right"), volume_ml=2.0)
    other = Injectate(spine, seed=4).inject(spine.landmark("muscle.right"), volume_ml=2.0)
    assert np.array_equal(same.iodine_mg_ml(120.0).values, inj.iodine_mg_ml(120.0).values)
    a, b = inj.iodine_mg_ml(120.0), other.iodine_mg_ml(120.0)
    assert a.values.shape != b.values.shape or not np.array_equal(a.values, b.values)


def test_perineural_outlines_the_nerve_first_then_spreads_around_it(spine):
    from needleguide.scene.injectate.compartments import compartment_lut
    from needleguide.scene.injectate.extravascular import perineural_mask

    tip = spine.landmark("nerve_root.right")
    sheath = perineural_mask(spine, spine.labels, compartment_lut(spine.tissues), 1.0, 1.5)
    axis = np.array([26.0, 0.0, -12.0]) / np.linalg.norm([26.0, 0.0, -12.0])  # the root

    def share_in_sheath(volume_ml):
        inj = Injectate(spine).inject(tip, volume_ml=volume_ml, rate_ml_s=0.1)
        f = inj.iodine_mg_ml(30.0)
        _, w, pts = labels_under(spine, f)
        idx = np.rint(spine.voxel_of(pts)).astype(int)
        check_conservation(inj, 30.0)
        return float(w[sheath[tuple(idx.T)]].sum() / w.sum()), w, pts

    small, _, pts = share_in_sheath(0.05)
    large, _, _ = share_in_sheath(1.0)
    assert small > 0.75 and large < small  # the sheath first, then beyond it
    along = (pts - tip) @ axis
    across = np.linalg.norm((pts - tip) - along[:, None] * axis, axis=1)
    assert np.ptp(along) > 2.0 * np.ptp(across)  # a thin sleeve along the root
