"""Tip classification and injection validation (synthetic spine segment)."""

from __future__ import annotations

import numpy as np
import pytest

from needleguide.errors import UserError
from needleguide.scene import InjectateSource
from needleguide.scene.injectate import (
    Agent,
    Compartment,
    Injectate,
    Injection,
    classify_tip,
    make_injection,
)
from needleguide.scene.injectate.synthetic import synthetic_spine


@pytest.fixture(scope="module")
def spine():
    return synthetic_spine()


@pytest.mark.parametrize("landmark, compartment", [
    ("epidural.posterior", Compartment.EPIDURAL),
    ("thecal_sac.posterior", Compartment.INTRATHECAL),
    ("facet.right", Compartment.FACET),
    ("segmental_artery.left", Compartment.ARTERIAL),
    ("muscle.right", Compartment.SOFT_TISSUE),
])
def test_tip_inside_a_compartment_is_all_of_it(spine, landmark, compartment):
    shares = classify_tip(spine, spine.landmark(landmark))
    assert shares == {compartment: 1.0}


def test_tip_on_a_vein_wall_splits(spine):
    # venous plexus tube at x=5, y=8.5 (r 1.3 mm) inside epidural fat: tip at its edge
    shares = classify_tip(spine, [3.5, 8.5, 12.0])
    assert set(shares) == {Compartment.EPIDURAL, Compartment.VENOUS}
    assert abs(sum(shares.values()) - 1.0) < 1e-9
    assert 0.1 <= shares[Compartment.VENOUS] <= 0.9


def test_tip_on_the_joint_line_splits(spine):
    # the facet capsule next to the joint space is soft tissue: a tip at the edge of the
    # joint space splits joint / soft tissue
    shares = classify_tip(spine, [19.0, -16.0 + 5.0, 0.0])
    assert Compartment.FACET in shares and Compartment.SOFT_TISSUE in shares


def test_tip_in_bone_is_a_user_error(spine):
    with pytest.raises(UserError, match="tip_mm"):
        classify_tip(spine, [0.0, 18.0, 0.0], radius_mm=1.0)  # vertebral body


def test_injection_defaults_and_validation():
    inj = Injection(volume_ml=2.0, rate_ml_s=0.5, start_s=1.0)
    assert inj.agent == Agent.CONTRAST and inj.iodine_mg_ml == 300.0
    assert inj.end_s == pytest.approx(5.0)
    assert inj.injected_ml(0.5) == 0.0 and inj.injected_ml(3.0) == pytest.approx(1.0)
    assert inj.injected_ml(99.0) == pytest.approx(2.0)
    la = make_injection(agent="local_anaesthetic", volume_ml=1.0)
    assert la.iodine_mg_ml == 0.0
    with pytest.raises(UserError, match="concentration_mg_ml"):
        make_injection(agent="saline", concentration_mg_ml=240)
    with pytest.raises(UserError, match="volume_ml"):
        make_injection(volume_ml=-1)
    with pytest.raises(UserError, match="rate_ml_s"):
        make_injection(rate_ml_s=0)


def test_injectate_is_an_injectate_source(spine):
    inj = Injectate(spine).inject(spine.landmark("muscle.right"), volume_ml=0.5)
    assert isinstance(inj, InjectateSource)
    assert inj.iodine_mg_ml(0.0) is None and inj.fluid_fraction(0.0) is None
    f = inj.iodine_mg_ml(5.0)
    assert f is not None and f.values.dtype == np.float32
    assert f.values.max() <= 300.0 + 1e-3
