"""Intravascular injectate: plug flow downstream of the tip at blood velocity.

The lumen downstream of the tip (the tip's vessel label, minus the part upstream of the
tip along its centerline) is ordered by a geodesic flood from the tip; the cumulative
lumen volume W along that order is the plug-flow coordinate. Blood flow Q = v·πr² (from
the centerline at the tip) plus the injection rate q carries the mixture: injectate
emitted at time s sits at W = (Q + q)(t − s), diluted to q/(Q + q). Contrast that passes
the end of the tree leaves it: into a great vessel or out of the grid (washed out), or,
for an artery ending in tissue, into a capillary blush that clears with
``capillary_washout_s``. Without a centerline the flow runs both ways (the epidural
venous plexus is valveless) at the default velocity.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from needleguide.anatomy.patient import Centerline, Patient
from needleguide.scene.injectate.agents import Injection
from needleguide.scene.injectate.compartments import Compartment
from needleguide.scene.injectate.detail import plexus_lattice, tube_mask
from needleguide.scene.injectate.extravascular import Part
from needleguide.scene.injectate.fill import Fill, grow_fill
from needleguide.scene.injectate.flood import step_costs
from needleguide.scene.injectate.params import SpreadParams


def _resample(c: Centerline, step_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, arclengths and radii of a centerline every ``step_mm``."""
    p = np.asarray(c.points_mm, float)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate(([0.0], np.cumsum(seg)))
    if s[-1] <= 0:
        return p[:1], s[:1], np.asarray(c.radii_mm, float)[:1]
    ss = np.linspace(0.0, s[-1], max(2, int(np.ceil(s[-1] / step_mm)) + 1))
    pts = np.stack([np.interp(ss, s, p[:, k]) for k in range(3)], axis=1)
    return pts, ss, np.interp(ss, s, np.asarray(c.radii_mm, float))


class VascularModel:
    """Injectate entering a vessel at the tip (several injections, each a share)."""

    def __init__(self, compartment: Compartment, patient: Patient, tip_mm,
                 injections: list[tuple[Injection, float]], params: SpreadParams, seed: int = 0):
        self.compartment = compartment
        self.params = params
        self.injections = sorted(injections, key=lambda x: x[0].start_s)
        self.tip_mm = np.asarray(tip_mm, float)
        h = params.grid_spacing_mm
        self.label = self._vessel_label(patient)
        kind = "artery" if compartment == Compartment.ARTERIAL else "vein"
        self.centerline, s_tip, r_tip, v = self._locate(patient, kind)
        default_v = (params.arterial_velocity_mm_s if kind == "artery"
                     else params.venous_velocity_mm_s)
        self.velocity_mm_s = v if v > 0 else default_v
        self._r_tip = r_tip
        lines = [c for c in patient.centerlines.values() if c.label == self.label]
        samples = [(_resample(c, 0.5 * h), c.name) for c in lines]
        tube = self._downstream_samples(patient, s_tip) if self.centerline is not None else None
        # the epidural venous plexus is a valveless lattice: filled both ways from the tip
        lattice = plexus_lattice(patient, self.label) if kind == "vein" else None
        if lattice is not None:
            tube = lattice

        def setup(grid, labels):
            allowed = labels == self.label
            if tube is not None:  # the lumen along the centerlines, whatever is painted there
                allowed |= tube_mask(grid, *tube)
            if self.centerline is not None and samples and lattice is None:
                allowed = self._downstream(grid, allowed, samples, s_tip)
            cap = np.where(allowed, h**3, 0.0)
            return allowed, step_costs(h), None, cap, None

        self.fill, labels = grow_fill(patient, self.tip_mm, params, setup, np.inf)
        if self._r_tip is None:  # no centerline: the lumen radius at the tip from the mask
            grid = self.fill.grid
            mask = np.zeros(grid.size, bool)
            mask[self.fill.order] = True
            edt = ndimage.distance_transform_edt(mask.reshape(grid.shape), sampling=h)
            f, inside = grid.flat_of(self.tip_mm[None])
            self._r_tip = float(max(edt.ravel()[f[0]] if inside[0] else h, h))
        self.flow_mm3_s = self.velocity_mm_s * np.pi * self._r_tip**2
        self.blush = (self._blush_mask(labels, patient) if compartment == Compartment.ARTERIAL
                      else np.zeros(self.fill.grid.shape, bool))
        self._blush_flat = np.flatnonzero(self.blush)

    # ---- geometry -----------------------------------------------------------------------
    def _vessel_label(self, patient: Patient) -> int:
        from needleguide.scene.injectate.compartments import compartment_labels

        ids = compartment_labels(patient.tissues, self.compartment)
        r = max(self.params.classify_radius_mm, 1.0)
        roi = patient.roi(self.tip_mm, 2 * r + 1, 0.5)
        vals = roi.labels[np.isin(roi.labels, ids)]
        if vals.size == 0:
            from needleguide.errors import UserError

            raise UserError(f"tip_mm: no {self.compartment.value} vessel near the tip")
        return int(np.bincount(vals).argmax())

    def _locate(self, patient: Patient, kind: str):
        best = None
        for c in patient.centerlines.values():
            if c.label != self.label or c.kind != kind:
                continue
            pts, s, r = _resample(c, 0.25)
            d = np.linalg.norm(pts - self.tip_mm, axis=1)
            i = int(np.argmin(d))
            if d[i] <= r[i] + 2.0 and (best is None or d[i] < best[0]):
                best = (d[i], c, s[i], r[i])
        if best is None:
            return None, 0.0, None, 0.0
        return best[1], best[2], float(best[3]), float(best[1].velocity_mm_s)

    def _downstream_samples(self, patient: Patient, s_tip: float):
        """Points and radii of the tip's centerline beyond the tip and of every branch
        that leaves it (recursively) beyond the tip."""
        h = self.params.grid_spacing_mm
        pts, arc, rad = _resample(self.centerline, 0.25 * h)
        keep = arc >= s_tip - h
        out_p, out_r = [pts[keep]], [rad[keep]]
        todo = [(self.centerline.name, pts[keep])]
        while todo:
            name, ppts = todo.pop()
            for c in patient.centerlines.values():
                if c.parent != name or c.label != self.label or ppts.size == 0:
                    continue
                d = np.linalg.norm(ppts - np.asarray(c.points_mm[0], float), axis=1).min()
                if d > 3.0 * h + float(np.max(c.radii_mm)):
                    continue  # branches off upstream of the tip
                cp, _, cr = _resample(c, 0.25 * h)
                out_p.append(cp)
                out_r.append(cr)
                todo.append((c.name, cp))
        return np.concatenate(out_p), np.concatenate(out_r)

    def _downstream(self, grid, allowed, samples, s_tip: float) -> np.ndarray:
        """``allowed`` minus the voxels whose nearest centerline sample lies on the tip's
        centerline before the tip (upstream)."""
        pts = np.concatenate([s[0] for s, _ in samples])
        arc = np.concatenate([s[1] for s, _ in samples])
        own = np.concatenate([np.full(len(s[1]), n == self.centerline.name) for s, n in samples])
        idx = np.flatnonzero(allowed)
        _, nearest = cKDTree(pts).query(grid.points_mm(idx))
        up = own[nearest] & (arc[nearest] < s_tip - grid.spacing_mm)
        out = allowed.copy().ravel()
        out[idx[up]] = False
        return out.reshape(allowed.shape)

    def _blush_mask(self, labels: np.ndarray, patient: Patient) -> np.ndarray:
        """Tissue around the arterial ends (the far ends of the flood that are not on the
        grid border) whose capillary blood can hold the steady-state outflow (Q+q)·τ."""
        fill, p, h = self.fill, self.params, self.params.grid_spacing_mm
        none = np.zeros(fill.grid.shape, bool)
        if fill.order.size == 0 or p.blush_max_radius_mm <= 0:
            return none
        dist = np.full(fill.grid.size, -np.inf)
        dist[fill.order] = fill.dist
        dist = dist.reshape(fill.grid.shape)
        peak = ndimage.maximum_filter(dist, size=3, mode="constant", cval=-np.inf)
        ends = (dist == peak) & np.isfinite(dist) & (dist > 0.5 * float(fill.dist.max()))
        ends[[0, -1], :, :] = ends[:, [0, -1], :] = ends[:, :, [0, -1]] = False
        if not ends.any():
            return none
        d = ndimage.distance_transform_edt(~ends, sampling=h)
        tissue = ~np.isin(labels, patient.tissues.labels_in_group("bone") + [0])
        tissue &= ~self.lumen_mask()
        q = max(s * i.rate_ml_s for i, s in self.injections) * 1000.0
        need = (self.flow_mm3_s + q) * p.capillary_washout_s / p.capillary_blood_fraction
        for r in np.arange(h, p.blush_max_radius_mm + 1e-9, h):
            region = (d <= r) & tissue
            if region.sum() * h**3 >= need:
                break
        return region

    # ---- kinetics -----------------------------------------------------------------------
    @property
    def lumen_ml(self) -> float:
        return self.fill.capacity_mm3 / 1000.0

    def clearance_s(self) -> float:
        """Time after the last injection stops at which the lumen is free of injectate."""
        q = max(s * i.rate_ml_s for i, s in self.injections) * 1000.0
        return self.fill.capacity_mm3 / (self.flow_mm3_s + q)

    def state(self, t_s: float) -> Part:
        fill, p = self.fill, self.params
        vox = fill.grid.voxel_mm3
        fluid = np.zeros(fill.order.size)
        iodine = np.zeros(fill.order.size)
        injected = injected_mg = gone = gone_mg = blush = blush_mg = 0.0
        wtot = fill.capacity_mm3
        tau = p.capillary_washout_s
        for inj, share in self.injections:
            v_ml = share * inj.injected_ml(t_s)
            if v_ml <= 0:
                continue
            q = share * inj.rate_ml_s * 1000.0  # mm³/s
            flow = self.flow_mm3_s + q
            mix = q / flow
            lo = flow * max(t_s - inj.end_s, 0.0)
            hi = flow * (t_s - inj.start_s)
            occ = fill.occupancy(lo, hi) * mix
            fluid += occ / vox
            iodine += occ * inj.iodine_mg_ml / vox
            exited = mix * max(hi - max(lo, wtot), 0.0) / 1000.0  # mL
            b = 0.0
            if self.blush.any():
                a0, b0 = inj.start_s + wtot / flow, inj.end_s + wtot / flow
                if t_s > a0:
                    b = q / 1000.0 * tau * (np.exp(-(t_s - min(t_s, b0)) / tau)
                                            - np.exp(-(t_s - a0) / tau))
            injected += v_ml
            injected_mg += v_ml * inj.iodine_mg_ml
            gone += exited - b
            gone_mg += (exited - b) * inj.iodine_mg_ml
            blush += b
            blush_mg += b * inj.iodine_mg_ml
        # only the box of the occupied lumen (and the blush, when there is one)
        occupied = fill.order[fluid > 0]
        if blush > 0:
            occupied = np.concatenate([occupied, self._blush_flat])
        if occupied.size == 0:
            occupied = fill.order[:1] if fill.order.size else np.zeros(1, np.int64)
        lo, hi = fill.grid.box_of(occupied)
        grid = fill.grid.sub(lo, hi)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        ijk = np.stack(np.unravel_index(fill.order, fill.grid.shape), axis=1) - lo
        inside = np.all((ijk >= 0) & (ijk < hi - lo), axis=1)
        fvol = np.zeros(grid.shape)
        ivol = np.zeros(grid.shape)
        fvol[tuple(ijk[inside].T)] = fluid[inside]  # each voxel appears once in the flood
        ivol[tuple(ijk[inside].T)] = iodine[inside]
        if blush > 0:
            nb = float(self.blush.sum()) * vox
            fvol += self.blush[box] * (blush * 1000.0 / nb)
            ivol += self.blush[box] * (blush_mg * 1000.0 / nb)
        in_place = float(fvol.sum()) * vox / 1000.0
        in_place_mg = float(ivol.sum()) * vox / 1000.0
        return Part(self.compartment, grid, fvol, ivol, injected, in_place, gone,
                    injected_mg, in_place_mg, gone_mg)

    def lumen_mask(self) -> np.ndarray:
        m = np.zeros(self.fill.grid.size, bool)
        m[self.fill.order] = True
        return m.reshape(self.fill.grid.shape)


__all__ = ["VascularModel", "Fill"]
