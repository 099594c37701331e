"""Extravascular compartments: epidural, intrathecal, soft tissue / intramuscular,
perineural and intra-articular (with capsule rupture). Each is an ordered fill from the
tip inside the compartment's mask; the metric of the flood carries the mechanics
(cranio-caudal preference, fibre direction, gravity), the capacity of each voxel the
share of it injectate can occupy."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from needleguide.anatomy.patient import Patient
from needleguide.scene.injectate.agents import Injection
from needleguide.scene.injectate.compartments import Compartment, compartment_lut
from needleguide.scene.injectate.detail import (
    cauda_strands,
    dural_sleeves,
    plexus_lattice,
    recess_pouches,
    texture,
    tube_mask,
)
from needleguide.scene.injectate.fill import Fill, grow_fill, seeds_near
from needleguide.scene.injectate.flood import axis_metric, ordered_flood, step_costs
from needleguide.scene.injectate.params import DEPENDENT_DIRECTION, SpreadParams

_COMPS = list(Compartment)


@dataclass
class Part:
    """One compartment's contribution at time t, on its local grid, with its bookkeeping
    (mL, mg I)."""

    compartment: Compartment
    grid: object
    fluid: np.ndarray  # injectate volume fraction per voxel
    iodine: np.ndarray  # mg I per mL of voxel
    injected_ml: float
    in_place_ml: float
    washed_out_ml: float
    injected_mg: float
    in_place_mg: float
    washed_out_mg: float
    left_grid_ml: float = 0.0


def canal_axis(patient: Patient, tip_mm) -> np.ndarray:
    """Unit cranio-caudal axis at the tip: the nearest vertebra's superior axis (RAS z if
    the patient has no vertebrae)."""
    if not patient.vertebrae:
        return np.array([0.0, 0.0, 1.0])
    vs = list(patient.vertebrae.values())
    d = [np.linalg.norm(np.asarray(v.center_mm) - np.asarray(tip_mm)) for v in vs]
    a = np.asarray(vs[int(np.argmin(d))].superior, float)
    return a / np.linalg.norm(a)


def retained_ml(inj: Injection, share: float, t_s: float, tau_s: float) -> float:
    """Volume (mL) of ``share`` of ``inj`` still in place at ``t_s`` after first-order
    resorption with time constant ``tau_s``: ∫ q e^{-(t-s)/τ} ds over the delivery."""
    if t_s <= inj.start_s:
        return 0.0
    q = share * inj.rate_ml_s
    s1 = min(t_s, inj.end_s)
    return float(q * tau_s * (np.exp(-(t_s - s1) / tau_s) - np.exp(-(t_s - inj.start_s) / tau_s)))


class ExtravascularModel:
    """Injectate (several injections, each a share of its volume) filling one compartment
    from the tip. The latest injection enters at the tip and pushes the earlier ones
    outward (layering by fill order)."""

    def __init__(self, compartment: Compartment, patient: Patient, tip_mm,
                 injections: list[tuple[Injection, float]], params: SpreadParams, seed: int = 0):
        self.compartment = compartment
        self.params = params
        self.injections = sorted(injections, key=lambda x: x[0].start_s)
        self.tip_mm = np.asarray(tip_mm, float)
        self.seed = seed
        need = 1000.0 * sum(i.volume_ml * s for i, s in self.injections)
        self.fill = self._build(patient, need)

    # ---- geometry -----------------------------------------------------------------------
    def _lut(self, patient: Patient) -> np.ndarray:
        return compartment_lut(patient.tissues)

    def _setup(self, patient: Patient):
        p, h = self.params, self.params.grid_spacing_mm
        lut = self._lut(patient)
        comp = self.compartment
        idx = _COMPS.index(comp if comp != Compartment.PERINEURAL else Compartment.SOFT_TISSUE)

        lattice = (plexus_lattice(patient, patient.tissues.label("epidural_venous_plexus"))
                   if "epidural_venous_plexus" in patient.tissues else None)

        def setup(grid, labels):
            cidx = lut[labels]
            weight = potential = None
            if comp == Compartment.EPIDURAL:
                allowed, weight, phi = self._epidural(patient, grid, labels, lut, idx)
                costs = step_costs(h, axis_metric(canal_axis(patient, self.tip_mm),
                                                  p.epidural_craniocaudal_anisotropy))
            elif comp == Compartment.INTRATHECAL:
                down = np.array(DEPENDENT_DIRECTION[p.position])
                allowed = labels == patient.tissues.label("csf")
                if p.dural_sleeve_mm > 0:  # the roots' dural sleeves hold CSF too
                    sl = dural_sleeves(patient, grid, labels, p.dural_sleeve_mm)
                    allowed |= sl
                if p.cauda_strand_mm > 0:  # contrast flows around the cauda equina
                    allowed &= ~cauda_strands(patient, grid, allowed, down,
                                              p.cauda_strand_mm)
                costs = step_costs(h, down=down, downhill_discount=p.gravity_downhill_discount,
                                   uphill_penalty=p.gravity_uphill_penalty)
                # hyperbaric contrast takes low ground first: potential = penalty × height
                height = -(grid.points_mm(np.arange(grid.size)) @ down).reshape(grid.shape)
                potential = p.gravity_uphill_penalty * (height - height[allowed].min()
                                                        if allowed.any() else height)
                phi = p.csf_mixing_fraction
            elif comp == Compartment.PERINEURAL:
                # the sheath is the path of least resistance; beyond it the injectate
                # spreads into the fat, muscle or epidural space around the nerve
                sheath = perineural_mask(patient, labels, lut, h, p.perineural_sheath_mm)
                epi = cidx == _COMPS.index(Compartment.EPIDURAL)
                allowed = sheath | epi | soft_tissue_mask(patient, labels, lut)
                costs = step_costs(h)
                weight = np.where(sheath, 1.0, p.perineural_resistance_ratio).ravel()
                phi = np.where(sheath, p.perineural_fill_fraction,
                               np.where(epi, p.epidural_fill_fraction,
                                        p.soft_tissue_fill_fraction))
            else:  # soft tissue / intramuscular
                allowed = soft_tissue_mask(patient, labels, lut)
                costs = step_costs(h, axis_metric(canal_axis(patient, self.tip_mm),
                                                  p.muscle_fibre_anisotropy))
                weight = fibre_texture(patient, labels, grid, p, self.seed)
                phi = p.soft_tissue_fill_fraction
            if lattice is not None:  # the plexus' veins (a lattice in the fat) hold none
                allowed &= ~tube_mask(grid, *lattice)
            cap = np.where(allowed, phi * h**3, 0.0)
            return allowed, costs, weight, cap, potential

        return setup

    def _build(self, patient: Patient, need_mm3: float) -> Fill:
        fill, labels = grow_fill(patient, self.tip_mm, self.params, self._setup(patient),
                                 need_mm3)
        if self.compartment == Compartment.PERINEURAL and fill.order.size:
            # soften the sheath and the tissue beyond it separately (no smearing across)
            sheath = perineural_mask(patient, labels, self._lut(patient),
                                     self.params.grid_spacing_mm, self.params.perineural_sheath_mm)
            fill.segment = (~sheath.ravel()[fill.order]).astype(np.int64)
            fill.masks = [sheath, fill.masks[0] & ~sheath]
        return fill

    def _epidural(self, patient: Patient, grid, labels: np.ndarray, lut: np.ndarray,
                  idx: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Epidural mask, per-voxel resistance and fill fraction: the epidural and
        foraminal fat, plus the potential space of the dura (thinner than a voxel); the
        foraminal fat resists more, a root sleeve less; a seeded lobular texture makes the
        fronts streaky and the density uneven (fat lobules displace contrast)."""
        p, h = self.params, self.params.grid_spacing_mm
        fat = lut[labels] == idx
        allowed = fat.copy()
        # the lumbar foramina's fat and ligaments resist; the sacral foramina are open
        weight = np.where(np.isin(labels, _ids(patient, "foramen")),
                          p.foraminal_resistance_ratio, 1.0)
        phi = np.full(labels.shape, p.epidural_fill_fraction)
        if p.dural_space_fill_fraction > 0 and "dura" in patient.tissues:
            dura = labels == patient.tissues.label("dura")
            allowed |= dura
            weight = np.where(dura, p.dural_space_resistance, weight)
            phi = np.where(dura, p.dural_space_fill_fraction, phi)
        # a root's sleeve (epineurial / perineural sheath) is continuous with the
        # epidural space: injectate runs along it, also beyond the foramen
        sleeve = perineural_mask(patient, labels, lut, h, p.perineural_sheath_mm)
        allowed |= sleeve
        weight = np.where(sleeve, 1.0 / p.root_sleeve_preference, weight)
        phi = np.where(sleeve & ~fat, p.perineural_fill_fraction, phi)
        if p.epidural_texture_strength > 0:
            g = texture(grid, self.seed, p.epidural_texture_mm, salt=1)
            weight = weight * np.exp(p.epidural_texture_strength * g)
            # lobules: where the fat resists, it also holds less injectate
            phi = phi * np.clip(1.0 - 0.25 * p.epidural_texture_strength * g, 0.35, 1.6)
        return allowed, weight.ravel(), np.minimum(phi, 1.0)

    # ---- state at time t ----------------------------------------------------------------
    def state(self, t_s: float) -> Part:
        fill, p = self.fill, self.params
        vox = fill.grid.voxel_mm3
        fluid = np.zeros(fill.order.size)
        iodine = np.zeros(fill.order.size)
        lo = 0.0
        injected = injected_mg = left = left_mg = 0.0
        kept = kept_mg = 0.0
        for inj, share in reversed(self.injections):  # latest innermost
            v_ml = share * inj.injected_ml(t_s)
            if v_ml <= 0:
                continue
            r = retained_ml(inj, share, t_s, p.tissue_clearance_s) / v_ml
            hi = lo + 1000.0 * v_ml
            occ = fill.occupancy(lo, hi) * r  # mm³ injectate per voxel
            fluid += occ / vox
            iodine += occ * inj.iodine_mg_ml / vox
            out = max(hi - max(lo, fill.capacity_mm3), 0.0) * r / 1000.0  # beyond the grid
            injected += v_ml
            injected_mg += v_ml * inj.iodine_mg_ml
            kept += r * v_ml - out
            kept_mg += (r * v_ml - out) * inj.iodine_mg_ml
            left += out
            left_mg += out * inj.iodine_mg_ml
            lo = hi
        sig = p.front_softening_mm
        grid, both = fill.to_volume(np.stack([fluid, iodine], axis=1), sig)
        fvol, ivol = both[..., 0], both[..., 1]
        in_place = float(fvol.sum()) * vox / 1000.0
        in_place_mg = float(ivol.sum()) * vox / 1000.0
        return Part(self.compartment, grid, fvol, ivol, injected, in_place,
                    injected - kept, injected_mg, in_place_mg, injected_mg - kept_mg, left)


def _ids(patient: Patient, *names: str) -> list[int]:
    return [patient.tissues.label(n) for n in names if n in patient.tissues]


def soft_tissue_mask(patient: Patient, labels: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Voxels interstitial injectate can enter: muscle, fat, ligament, organ, skin."""
    return lut[labels] == _COMPS.index(Compartment.SOFT_TISSUE)


def perineural_mask(patient: Patient, labels: np.ndarray, lut: np.ndarray, spacing_mm: float,
                    sheath_mm: float) -> np.ndarray:
    """The sheath of ``sheath_mm`` around every nerve (not the nerve itself), in tissue that
    can hold injectate outside vessels, CSF and joints."""
    nerve = lut[labels] == _COMPS.index(Compartment.PERINEURAL)
    if not nerve.any():
        return np.zeros(labels.shape, bool)
    d = ndimage.distance_transform_edt(~nerve, sampling=spacing_mm)
    ok = np.isin(lut[labels], [_COMPS.index(Compartment.SOFT_TISSUE),
                               _COMPS.index(Compartment.EPIDURAL)])
    return (d <= sheath_mm) & ~nerve & ok


def fibre_texture(patient: Patient, labels: np.ndarray, grid, p: SpreadParams,
                  seed: int) -> np.ndarray | None:
    """Seeded per-voxel spread resistance in muscle, correlated along the fibres (z):
    exp(strength · g) with g a unit-variance Gaussian field (1 elsewhere)."""
    if p.muscle_texture_strength <= 0:
        return None
    muscle = np.isin(labels, patient.tissues.labels_in_group("muscle"))
    if not muscle.any():
        return None
    # lattice-anchored noise: the same voxel gets the same value on any grown grid
    g = texture(grid, seed, p.muscle_texture_length_mm, salt=0)
    return np.where(muscle, np.exp(p.muscle_texture_strength * g), 1.0).ravel()


class JointModel(ExtravascularModel):
    """Intra-articular: the joint space fills from the tip (facet, sacroiliac: the space
    only; hip: space and capsule). When the space holds less than the capacity, the
    capsule distends into its recesses (pouches beyond the space's poles: facet superior
    and larger inferior, sacroiliac inferior; ``detail.recess_pouches``, *assumptions*)
    until it does. Above the capacity the capsule ruptures at the front (the voxel reached
    last) and the excess spreads into the soft tissue there."""

    _JOINT_NAMES = {
        Compartment.FACET: ("facet_joint_space", "facet_capsule"),
        Compartment.SIJ: ("sij_space",),
        Compartment.HIP: ("hip_capsule", "hip_cartilage"),
    }

    rupture_mm: np.ndarray | None = None  # where the capsule tore (None: it held)

    def capacity_ml(self) -> float:
        p = self.params
        return {Compartment.FACET: p.facet_capacity_ml, Compartment.SIJ: p.sij_capacity_ml,
                Compartment.HIP: p.hip_capacity_ml}[self.compartment]

    def _build(self, patient: Patient, need_mm3: float) -> Fill:
        p, h = self.params, self.params.grid_spacing_mm
        lut = compartment_lut(patient.tissues)
        cap_mm3 = 1000.0 * self.capacity_ml()
        ids = [patient.tissues.label(n) for n in self._JOINT_NAMES[self.compartment]
               if n in patient.tissues]
        soft_idx = _COMPS.index(Compartment.SOFT_TISSUE)
        box = max(p.roi_start_mm, 3.0 * (need_mm3 ** (1 / 3)) + 20.0)
        from needleguide.scene.injectate.grid import LocalGrid

        grid = LocalGrid.around(self.tip_mm, box, h)
        labels = grid.labels(patient)
        joint = np.isin(labels, ids)
        soft = lut[labels] == soft_idx
        seeds, d0 = seeds_near(grid, joint, self.tip_mm, max(p.classify_radius_mm, 1.5 * h))
        if seeds.size:  # keep only the joint the tip is in (connected component)
            comp, _ = ndimage.label(joint, structure=np.ones((3, 3, 3)))
            joint = np.isin(comp, np.unique(comp.ravel()[seeds]))
        space = joint & (labels != (patient.tissues.label("facet_capsule")
                                    if "facet_capsule" in patient.tissues else -1))
        frac = np.where(space, p.sij_space_fill_fraction
                        if self.compartment == Compartment.SIJ else 1.0, p.capsule_fill_fraction)
        weight = None
        if self.compartment in (Compartment.FACET, Compartment.SIJ) and seeds.size:
            # the synovial cavity is the space; once it is full the capsule distends into
            # its recesses (pouches beyond the poles) up to the capacity
            joint = space
            room = (soft | np.isin(labels, ids)) & ~space
            rest = max(cap_mm3 - float((frac * space).sum()) * h**3, 0.2 * cap_mm3)
            ask = rest
            for _ in range(6):  # pouches clipped by bone: ask for more until they hold it
                recess = recess_pouches(grid, space, room, ask,
                                        canal_axis(patient, self.tip_mm),
                                        0.65 if self.compartment == Compartment.FACET
                                        else 1.0)
                got = float(recess.sum()) * h**3
                if got >= rest:
                    break
                ask *= min(rest / max(got, 1e-3 * rest), 2.0)
            frac = np.where(recess, 1.0, frac)
            joint = joint | recess
            weight = np.where(recess, 4.0, 1.0).ravel()  # the space fills first
        costs = step_costs(h)
        cap = np.where(joint, frac * h**3, 0.0)
        order, dist, _ = ordered_flood(joint, seeds, costs, cap, weight=weight, seed_cost=d0)
        jf = Fill(grid, order, np.cumsum(cap.ravel()[order]), np.zeros(order.size, np.int64),
                  [joint], dist).truncated(cap_mm3)
        if need_mm3 <= jf.capacity_mm3 + 1e-9 or jf.order.size == 0:
            return jf
        # rupture at the front: excess spreads through the soft tissue from there
        rupture = grid.points_mm(jf.order[-1:])[0]
        tissue = soft & ~joint
        rs, rd = seeds_near(grid, tissue, rupture, 2.0 * h)
        if rs.size == 0:
            return jf
        wt = fibre_texture(patient, labels, grid, p, self.seed)
        tcost = step_costs(h, axis_metric(canal_axis(patient, rupture), p.muscle_fibre_anisotropy))
        tcap = np.where(tissue, p.soft_tissue_fill_fraction * h**3, 0.0)
        o2, d2, _ = ordered_flood(tissue, rs, tcost, tcap, stop_mm3=need_mm3 - jf.capacity_mm3,
                                  weight=wt, seed_cost=rd)
        self.rupture_mm = rupture
        tf = Fill(grid, o2, np.cumsum(tcap.ravel()[o2]), np.zeros(o2.size, np.int64), [tissue], d2)
        return jf.then(tf)
