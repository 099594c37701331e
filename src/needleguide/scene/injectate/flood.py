"""Volume-driven fronts: an ordered geodesic flood inside a compartment mask (numba
Dijkstra on the 26-neighbourhood) and mass-conserving diffusion that softens a front.

The flood visits the voxels of ``allowed`` in increasing travel cost from the seeds. The
cost of a step is ``step_cost[offset] × (w[a] + w[b]) / 2``: ``step_cost`` holds the
metric (anisotropy: cheaper along the canal or the fibres; gravity: cheaper downhill,
dearer uphill) and ``w`` a per-voxel resistance (1 = uniform). Injecting V mL fills the
first voxels of that order until their capacity adds up to V: a priority flood.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OFFSETS = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                    if (a, b, c) != (0, 0, 0)], dtype=np.int64)


def step_costs(spacing_mm: float, metric: np.ndarray | None = None,
               down: np.ndarray | None = None, downhill_discount: float = 0.0,
               uphill_penalty: float = 0.0) -> np.ndarray:
    """Cost of each of the 26 unit steps (RAS-aligned grid of ``spacing_mm``).

    metric: 3x3 symmetric positive matrix (cost² = dᵀ M d, mm²); identity if None.
    down: unit vector in which a dense fluid sinks; a step with downward component
    ``cosθ`` costs ``(1 − downhill_discount·cosθ)`` of its metric length, a step up adds
    ``uphill_penalty × rise (mm)``.
    """
    d = OFFSETS.astype(float) * spacing_mm
    m = np.eye(3) if metric is None else np.asarray(metric, float)
    base = np.sqrt(np.einsum("ki,ij,kj->k", d, m, d))
    if down is not None:
        g = np.asarray(down, float) / np.linalg.norm(down)
        along = d @ g  # > 0: downhill (mm)
        cos = along / np.linalg.norm(d, axis=1)
        base = base * (1.0 - downhill_discount * np.clip(cos, 0.0, 1.0))
        base = base + uphill_penalty * np.clip(-along, 0.0, None)
    return np.maximum(base, 1e-6)


def axis_metric(axis, anisotropy: float) -> np.ndarray:
    """Metric making travel along unit ``axis`` ``anisotropy`` times cheaper than across."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    p = np.outer(a, a)
    return (np.eye(3) - p) + p / anisotropy**2


@njit(cache=True)
def _sift_up(hd, hi, pos):
    while pos > 0:
        parent = (pos - 1) >> 1
        if hd[parent] <= hd[pos]:
            break
        hd[parent], hd[pos] = hd[pos], hd[parent]
        hi[parent], hi[pos] = hi[pos], hi[parent]
        pos = parent


@njit(cache=True)
def _sift_down(hd, hi, n):
    pos = 0
    while True:
        left = 2 * pos + 1
        if left >= n:
            break
        best = left
        if left + 1 < n and hd[left + 1] < hd[left]:
            best = left + 1
        if hd[pos] <= hd[best]:
            break
        hd[best], hd[pos] = hd[pos], hd[best]
        hi[best], hi[pos] = hi[pos], hi[best]
        pos = best


@njit(cache=True)
def _flood(allowed, shape, seeds, seed_cost, offsets, costs, weight, capacity, stop_capacity):
    nx, ny, nz = shape[0], shape[1], shape[2]
    n = nx * ny * nz
    settled = np.zeros(n, dtype=np.uint8)
    best = np.full(n, np.inf)
    cap = 1024 + 8 * seeds.size
    hd = np.empty(cap)
    hi = np.empty(cap, dtype=np.int64)
    size = 0
    for s in range(seeds.size):
        v = seeds[s]
        if allowed[v] and seed_cost[s] < best[v]:
            best[v] = seed_cost[s]
            hd[size] = seed_cost[s]
            hi[size] = v
            size += 1
            _sift_up(hd, hi, size - 1)
    order = np.empty(n, dtype=np.int64)
    dist = np.empty(n)
    count = 0
    filled = 0.0
    border = False
    while size > 0:
        d = hd[0]
        v = hi[0]
        size -= 1
        hd[0] = hd[size]
        hi[0] = hi[size]
        _sift_down(hd, hi, size)
        if settled[v]:
            continue
        settled[v] = 1
        order[count] = v
        dist[count] = d
        count += 1
        filled += capacity[v]
        k = v % nz
        j = (v // nz) % ny
        i = v // (ny * nz)
        if i == 0 or j == 0 or k == 0 or i == nx - 1 or j == ny - 1 or k == nz - 1:
            border = True
        if filled >= stop_capacity:
            break
        for o in range(offsets.shape[0]):
            a = i + offsets[o, 0]
            b = j + offsets[o, 1]
            c = k + offsets[o, 2]
            if a < 0 or b < 0 or c < 0 or a >= nx or b >= ny or c >= nz:
                continue
            u = (a * ny + b) * nz + c
            if not allowed[u] or settled[u]:
                continue
            nd = d + costs[o] * 0.5 * (weight[v] + weight[u])
            if nd < best[u]:
                best[u] = nd
                if size == hd.size:
                    hd2 = np.empty(2 * hd.size)
                    hi2 = np.empty(2 * hd.size, dtype=np.int64)
                    hd2[:size] = hd[:size]
                    hi2[:size] = hi[:size]
                    hd = hd2
                    hi = hi2
                hd[size] = nd
                hi[size] = u
                size += 1
                _sift_up(hd, hi, size - 1)
    return order[:count].copy(), dist[:count].copy(), border


def ordered_flood(allowed: np.ndarray, seeds: np.ndarray, costs: np.ndarray,
                  capacity_mm3: np.ndarray, stop_mm3: float = np.inf,
                  weight: np.ndarray | None = None, seed_cost: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, bool]:
    """Flat voxel indices of ``allowed`` in flood order from ``seeds`` (flat indices),
    their travel costs, and whether the flood reached the grid border. Stops once the
    visited ``capacity_mm3`` (per voxel, flat) adds up to ``stop_mm3``."""
    shape = np.asarray(allowed.shape, dtype=np.int64)
    w = np.ones(allowed.size) if weight is None else np.ascontiguousarray(weight, float).ravel()
    seeds = np.asarray(seeds, dtype=np.int64).ravel()
    sc = np.zeros(seeds.size) if seed_cost is None else np.asarray(seed_cost, float).ravel()
    return _flood(np.ascontiguousarray(allowed, dtype=np.uint8).ravel(), shape, seeds, sc,
                  OFFSETS, np.asarray(costs, float), w,
                  np.ascontiguousarray(capacity_mm3, float).ravel(), float(stop_mm3))


@njit(cache=True)
def _diffuse(sub, m, lam, nsteps):
    nx, ny, nz, nk = sub.shape
    nxt = np.empty_like(sub)
    for _ in range(nsteps):
        for i in range(nx):
            for j in range(ny):
                for k in range(nz):
                    for c in range(nk):
                        nxt[i, j, k, c] = sub[i, j, k, c]
                    if not m[i, j, k]:
                        continue
                    for d in range(6):
                        a, b, e = i, j, k
                        if d == 0:
                            a = i - 1
                        elif d == 1:
                            a = i + 1
                        elif d == 2:
                            b = j - 1
                        elif d == 3:
                            b = j + 1
                        elif d == 4:
                            e = k - 1
                        else:
                            e = k + 1
                        if a < 0 or b < 0 or e < 0 or a >= nx or b >= ny or e >= nz:
                            continue
                        if not m[a, b, e]:
                            continue
                        for c in range(nk):
                            nxt[i, j, k, c] += lam * (sub[a, b, e, c] - sub[i, j, k, c])
        sub, nxt = nxt, sub
    return sub


def soften(field: np.ndarray, mask: np.ndarray, sigma_vox: float) -> np.ndarray:
    """Mass-conserving diffusion of ``field`` (X, Y, Z) or (X, Y, Z, K) inside ``mask``
    (no flux through its border) to a Gaussian width ``sigma_vox`` (voxels): explicit
    6-neighbour steps with λ = D·dt ≤ 1/8 (stable), on the box of the non-zero voxels."""
    multi = field.ndim == 4
    f4 = field if multi else field[..., None]
    out = np.where(mask[..., None], f4, 0.0).astype(np.float64)
    if sigma_vox <= 0 or not out.any():
        return out if multi else out[..., 0]
    nsteps = int(np.ceil(sigma_vox**2 / 0.25))
    lam = sigma_vox**2 / (2.0 * nsteps)  # σ² = 2·λ·n per axis
    nz = np.nonzero(out.any(axis=3))
    box = tuple(slice(max(int(c.min()) - nsteps, 0), int(c.max()) + nsteps + 1) for c in nz)
    sub = np.ascontiguousarray(out[box])
    m = np.ascontiguousarray(mask[box]).astype(np.uint8)
    out[box] = _diffuse(sub, m, lam, nsteps)
    return out if multi else out[..., 0]
