"""Ordered fills: the voxels a compartment fills, in the order a volume-driven front
reaches them, with each voxel's capacity; and the generic helpers that build them on a
local grid that grows while the front touches its border."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.scene.injectate.flood import ordered_flood, soften
from needleguide.scene.injectate.grid import LocalGrid
from needleguide.scene.injectate.params import SpreadParams


@dataclass
class Fill:
    """Voxels (flat indices on ``grid``) in fill order with cumulative capacity (mm³).

    ``segment[n]`` says which of ``masks`` the n-th voxel belongs to (e.g. joint, then the
    soft tissue it ruptures into); the front is softened inside each mask separately.
    """

    grid: LocalGrid
    order: np.ndarray
    cumcap_mm3: np.ndarray
    segment: np.ndarray
    masks: list[np.ndarray] = field(default_factory=list)
    dist: np.ndarray | None = None

    @property
    def capacity_mm3(self) -> float:
        return float(self.cumcap_mm3[-1]) if self.cumcap_mm3.size else 0.0

    def occupancy(self, lo_mm3: float, hi_mm3: float) -> np.ndarray:
        """mm³ of each ordered voxel's capacity lying in the fill coordinate [lo, hi]."""
        prev = np.concatenate(([0.0], self.cumcap_mm3[:-1]))
        return np.clip(np.minimum(hi_mm3, self.cumcap_mm3) - np.maximum(lo_mm3, prev), 0.0, None)

    def to_volume(self, per_voxel: np.ndarray, sigma_mm: float
                  ) -> tuple[LocalGrid, np.ndarray]:
        """Volume(s) from per-ordered-voxel values ((n,) or (n, K) channels), softened
        inside each segment mask (mass-conserving), on the sub-grid around the non-zero
        voxels (so that a step costs what the injectate covers, not the whole grid)."""
        vals = per_voxel if per_voxel.ndim == 2 else per_voxel[:, None]
        nz = np.flatnonzero(np.any(vals != 0, axis=1))
        if nz.size == 0:
            sub = self.grid.sub((0, 0, 0), (1, 1, 1))
            out = np.zeros((1, 1, 1, vals.shape[1]))
            return sub, (out if per_voxel.ndim == 2 else out[..., 0])
        sig = sigma_mm / self.grid.spacing_mm
        pad = int(np.ceil(sig**2 / 0.25)) + 1
        lo, hi = self.grid.box_of(self.order[nz], pad)
        sub = self.grid.sub(lo, hi)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        ijk = np.stack(np.unravel_index(self.order[nz], self.grid.shape), axis=1) - lo
        out = np.zeros((*sub.shape, vals.shape[1]))
        for s, mask in enumerate(self.masks):
            sel = self.segment[nz] == s
            if not sel.any():
                continue
            vol = np.zeros_like(out)
            vol[tuple(ijk[sel].T)] = vals[nz[sel]]  # each voxel appears once in a fill
            out += soften(vol, mask[box], sig)
        return sub, (out if per_voxel.ndim == 2 else out[..., 0])

    def truncated(self, capacity_mm3: float) -> Fill:
        """The first voxels of this fill up to ``capacity_mm3`` (last one partial)."""
        n = int(np.searchsorted(self.cumcap_mm3, capacity_mm3, side="left")) + 1
        n = min(n, self.order.size)
        cum = self.cumcap_mm3[:n].copy()
        if n:
            cum[-1] = min(cum[-1], capacity_mm3)
        return Fill(self.grid, self.order[:n], cum, self.segment[:n], self.masks,
                    None if self.dist is None else self.dist[:n])

    def then(self, other: Fill) -> Fill:
        """This fill followed by ``other`` (same grid): its masks are appended."""
        off = len(self.masks)
        return Fill(self.grid, np.concatenate([self.order, other.order]),
                    np.concatenate([self.cumcap_mm3, self.capacity_mm3 + other.cumcap_mm3]),
                    np.concatenate([self.segment, other.segment + off]),
                    self.masks + other.masks)


# setup(grid, labels) -> (allowed bool volume, 26 step costs, weight volume | None,
#                         capacity mm³ per voxel volume, potential volume | None)
# A potential (e.g. height × uphill penalty for a dense fluid) is added to the travel
# cost before ordering: the fill then takes low ground first.
Setup = Callable[[LocalGrid, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                np.ndarray, np.ndarray | None]]


def seeds_near(grid: LocalGrid, allowed: np.ndarray, tip_mm, radius_mm: float,
               search_mm: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Allowed voxels within ``radius_mm`` of the tip (flat indices, distance mm); if none,
    the nearest allowed voxel within ``search_mm``; empty arrays if there is none."""
    tip = np.asarray(tip_mm, float)
    c = tip / grid.spacing_mm - np.array(grid.lo)
    r = int(np.ceil(search_mm / grid.spacing_mm))
    lo = np.clip(np.floor(c).astype(int) - r, 0, np.array(grid.shape))
    hi = np.clip(np.ceil(c).astype(int) + r + 1, 0, np.array(grid.shape))
    sub = allowed[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    ijk = np.argwhere(sub) + lo
    if ijk.size == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    d = np.linalg.norm((ijk + np.array(grid.lo)) * grid.spacing_mm - tip, axis=1)
    keep = d <= radius_mm
    if not keep.any():
        keep = d <= d.min() + 1e-9
    flat = np.ravel_multi_index(tuple(ijk[keep].T), grid.shape)
    return flat.astype(np.int64), d[keep]


def touched_faces(grid: LocalGrid, order: np.ndarray, margin: int = 0) -> np.ndarray:
    """(3, 2) bools: which faces of the grid the visited voxels touch (come within
    ``margin`` voxels of)."""
    faces = np.zeros((3, 2), bool)
    if order.size == 0:
        return faces
    ijk = np.stack(np.unravel_index(order, grid.shape), axis=1)
    faces[:, 0] = (ijk <= margin).any(axis=0)
    faces[:, 1] = (ijk >= np.array(grid.shape) - 1 - margin).any(axis=0)
    return faces


def grow_fill(patient: Patient, tip_mm, params: SpreadParams, setup: Setup, need_mm3: float,
              start_size_mm: float | None = None) -> tuple[Fill, np.ndarray]:
    """Flood from the tip on a local grid, growing the grid on every face the front
    touches (up to ``params.roi_max_mm``), until ``need_mm3`` of capacity is reached or
    the compartment is exhausted. Returns the fill and the labels of its grid."""
    h = params.grid_spacing_mm
    grid = LocalGrid.around(tip_mm, start_size_mm or params.roi_start_mm, h)
    nmax = int(round(params.roi_max_mm / h))
    while True:
        labels = grid.labels(patient)
        allowed, costs, weight, cap, potential = setup(grid, labels)
        seeds, d0 = seeds_near(grid, allowed, tip_mm, max(params.classify_radius_mm, 1.5 * h))
        if seeds.size == 0:
            empty = Fill(grid, np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64),
                         [allowed], np.zeros(0))
            return empty, labels
        stop = need_mm3 if potential is None else 3.0 * need_mm3 + 1000.0
        order, dist, _ = ordered_flood(allowed, seeds, costs, cap, stop_mm3=stop,
                                       weight=weight, seed_cost=d0)
        # room for the front's softening beyond the last voxel (Fill.to_volume's pad)
        margin = int(np.ceil((params.front_softening_mm / h) ** 2 / 0.25)) + 1
        faces = touched_faces(grid, order, margin)
        faces &= (np.array(grid.shape) < nmax)[:, None]
        if not faces.any():
            break
        old_lo, old_n = np.array(grid.lo), np.array(grid.shape)
        ext = np.minimum(old_n, np.maximum(nmax - old_n, 0))  # grow by up to its own extent
        both = faces.all(axis=1)
        add_lo = np.where(faces[:, 0], np.where(both, ext // 2, ext), 0)
        add_hi = np.where(faces[:, 1], np.where(both, ext - ext // 2, ext), 0)
        if not (add_lo.any() or add_hi.any()):
            break
        grid = LocalGrid(tuple(int(v) for v in old_lo - add_lo),
                         tuple(int(v) for v in old_n + add_lo + add_hi), h)
    if potential is not None:
        dist = dist + potential.ravel()[order]
        srt = np.argsort(dist, kind="stable")
        order, dist = order[srt], dist[srt]
    cum = np.cumsum(cap.ravel()[order])
    fill = Fill(grid, order, cum, np.zeros(order.size, np.int64), [allowed], dist)
    return fill, labels
