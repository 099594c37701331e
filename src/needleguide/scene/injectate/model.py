"""The injectate of a session: injections at needle tips, the compartments they enter,
and the iodine and fluid fields the imagers read (the scene's ``InjectateSource``)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.scene.injectate.agents import Agent, Injection, make_injection
from needleguide.scene.injectate.compartments import Compartment, classify_tip
from needleguide.scene.injectate.extravascular import ExtravascularModel, JointModel, Part
from needleguide.scene.injectate.grid import paste
from needleguide.scene.injectate.params import SpreadParams
from needleguide.scene.injectate.vascular import VascularModel
from needleguide.scene.scene import SparseField

SITE_TOLERANCE_MM = 0.5  # injections whose tips are this close share a site


class Injectate:
    """All injectate of a session (implements ``needleguide.scene.InjectateSource``).

    ``inject(tip_mm, Injection(...))`` adds an injection (a test dose, then the
    therapeutic one ...); the compartment shares at the tip come from
    :func:`classify_tip`. Fields at any time ``t_s`` come from the spread models on
    local grids, pasted onto one lattice; they are cached per time step. An injection
    that starts after ``t_s`` does not change the fields at ``t_s``.
    """

    def __init__(self, patient: Patient, params: SpreadParams | None = None, seed: int = 0,
                 cache_size: int = 64):
        self.patient = patient
        self.params = params or SpreadParams()
        self.seed = int(seed)
        self._sites: list[tuple[np.ndarray, dict[Compartment, float]]] = []
        self._injections: list[tuple[int, Injection]] = []
        self._models: list | None = None
        self._cache: OrderedDict[float, list[Part]] = OrderedDict()
        self._cache_size = cache_size

    # ---- building ---------------------------------------------------------------------
    def inject(self, tip_mm, injection: Injection | None = None, **kw) -> Injectate:
        """Add an injection at ``tip_mm`` (RAS mm); keyword arguments build the Injection
        (agent, concentration_mg_ml, volume_ml, rate_ml_s, start_s). Returns self."""
        inj = injection if injection is not None else make_injection(**kw)
        tip = np.asarray(tip_mm, float).reshape(3)
        for k, (t, _) in enumerate(self._sites):
            if np.linalg.norm(t - tip) <= SITE_TOLERANCE_MM:
                site = k
                break
        else:
            shares = classify_tip(self.patient, tip, self.params.classify_radius_mm,
                                  self.params.min_fraction)
            self._sites.append((tip, shares))
            site = len(self._sites) - 1
        self._injections.append((site, inj))
        self._models = None
        self._cache.clear()
        return self

    @property
    def injections(self) -> list[tuple[np.ndarray, Injection]]:
        return [(self._sites[s][0], inj) for s, inj in self._injections]

    def compartments(self, site: int = 0) -> dict[Compartment, float]:
        """Compartment shares at the tip of site ``site`` (0: the first tip injected at)."""
        return dict(self._sites[site][1])

    def models(self) -> list:
        """The spread model of every (site, compartment), built on first use."""
        if self._models is None:
            models = []
            for k, (tip, shares) in enumerate(self._sites):
                injs = [inj for s, inj in self._injections if s == k]
                for comp, share in shares.items():
                    todo = [(inj, share) for inj in injs]
                    if comp.vascular:
                        cls = VascularModel
                    elif comp.articular:
                        cls = JointModel
                    else:
                        cls = ExtravascularModel
                    model = cls(comp, self.patient, tip, todo, self.params, self.seed)
                    if model.fill.capacity_mm3 <= 0 and comp != Compartment.SOFT_TISSUE:
                        # the compartment vanished on the spread grid (thinner than a
                        # voxel): its share goes into the tissue around the tip
                        model = ExtravascularModel(Compartment.SOFT_TISSUE, self.patient,
                                                   tip, todo, self.params, self.seed)
                    models.append(model)
            self._models = models
        return self._models

    # ---- state at time t --------------------------------------------------------------
    def parts(self, t_s: float) -> list[Part]:
        """Each model's contribution at ``t_s`` (cached per time step)."""
        key = round(float(t_s), 6)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        parts = [m.state(key) for m in self.models()]
        self._cache[key] = parts
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return parts

    def iodine_mg_ml(self, t_s: float) -> SparseField | None:
        """Iodine (mg I/mL) on a local sparse grid; None when no contrast is in place."""
        return paste([(p.grid, p.iodine) for p in self.parts(t_s) if p.in_place_mg > 0])

    def fluid_fraction(self, t_s: float) -> SparseField | None:
        """Extravascular injectate volume fraction (0..1) for ultrasound (intravascular
        injectate is carried away and not seen); None when there is none."""
        return paste([(p.grid, p.fluid) for p in self.parts(t_s)
                      if not p.compartment.vascular and p.in_place_ml > 0])

    def summary(self, t_s: float) -> dict:
        """Injected, in place and washed out (mL, mg I) in all, and per compartment.
        ``washed_out`` counts resorbed, carried away by blood, and what left the grid."""
        parts = self.parts(t_s)
        keys = ("injected_ml", "in_place_ml", "washed_out_ml", "injected_mg", "in_place_mg",
                "washed_out_mg", "left_grid_ml")
        per: dict[str, dict[str, float]] = {}
        for p in parts:
            d = per.setdefault(p.compartment.value, dict.fromkeys(keys, 0.0))
            for k in keys:
                d[k] += getattr(p, k)
        total = {k: float(sum(getattr(p, k) for p in parts)) for k in keys}
        # particulate steroid delivered into an artery: the embolic hazard of TF injections
        particulate = sum(self._sites[s][1].get(Compartment.ARTERIAL, 0.0) * inj.injected_ml(t_s)
                          for s, inj in self._injections
                          if inj.agent == Agent.STEROID_PARTICULATE)
        return {"t_s": float(t_s), **total,
                "particulate_intra_arterial_ml": float(particulate), "compartments": per,
                "sites": [{"tip_mm": np.round(t, 2).tolist(),
                           "shares": {c.value: round(f, 3) for c, f in s.items()}}
                          for t, s in self._sites]}
