"""Fast nested body layers (skin, subcutaneous fat, muscle wall, core) for any region.

The generic SDF painter evaluates a shape over its whole bounding box, which costs about a
second per body-sized layer at 1 mm. Here the body is described by axial cross-sections
that vary smoothly with z (piecewise-linear tables): a "core" outline (the musculoskeletal
trunk: superellipse, flatter at the back) and a fat thickness that varies around the
circumference (posterior / lateral / anterior). One numba pass labels every voxel of any
grid (whole region or a fine region of interest) from the distance to the core outline:
air, skin, subcutaneous fat, then inside the core a muscle wall, a posterior muscle block
and the remaining soft tissue (viscera). Strokes painted afterwards refine the inside.

:class:`LayeredPhantomModel` is a :class:`PhantomModel` whose ``render`` runs this pass first
and then paints its strokes; region builders may use it (lumbar does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba as nb
import numpy as np

from needleguide.anatomy.phantom.model import PhantomModel
from needleguide.anatomy.phantom.painter import paint

# columns of the per-z parameter table
COLS = ("cx", "cy", "ax", "ay_post", "ay_ant", "w_post", "w_ant", "t_post", "t_lat", "t_ant",
        "wall", "y_back", "core_muscle", "x_back", "pm_cx", "pm_cy", "pm_rx", "pm_ry",
        "g_d", "g_w", "g_k", "g_r", "g_t")


@dataclass
class BodyLayers:
    """Axial cross-section parameters tabulated at ``z_mm`` (ascending).

    cx, cy: core centre (mm); ax: half width of the core; ay_post / ay_ant: half depth
    behind / in front of the centre; w_post / w_ant: outline roundness (1 = ellipse,
    0 = quartic superellipse, flatter); t_post / t_lat / t_ant: subcutaneous fat
    thickness (mm) behind, at the side and in front; wall: muscle-wall thickness inside
    the core outline (mm); y_back: core voxels with y below this are labelled
    ``back_label`` (the posterior muscle block) where |x - cx| < x_back; core_muscle:
    where > 0.5 the whole core gets ``back_label`` (hips, thighs); pm_cx, pm_cy, pm_rx,
    pm_ry: a pair of elliptic muscles (x = ±pm_cx) inside the core labelled
    ``paired_label`` (the paraspinal muscles), none where pm_rx < 1.
    g_d, g_w, g_k, g_r, g_t: a midline groove cut into the back (over the lower sacrum and
    coccyx, the natal cleft): its skin floor lies g_d mm in front of the posterior skin
    of the outline (none where g_d <= 0); the floor is flat over |x - cx| < g_w with
    corners rounded by g_r; the walls flare by g_k mm per mm backwards; under the floor
    lie the skin and g_t mm of fat, and the fat on the walls thickens by 0.6 mm per mm
    above the floor (at most t_post). Inside the groove is air.
    """

    z_mm: np.ndarray
    table: np.ndarray  # (len(z_mm), len(COLS))
    skin_mm: float = 2.0
    skin_label: int = 1
    fat_label: int = 2
    wall_label: int = 48
    back_label: int = 48
    core_label: int = 48
    paired_label: int = 3

    def at(self, z: float) -> dict[str, float]:
        """Interpolated parameters at height z (mm)."""
        return {c: float(np.interp(z, self.z_mm, self.table[:, i])) for i, c in enumerate(COLS)}

    def render_into(self, labels: np.ndarray, VoxelToPatient: np.ndarray) -> np.ndarray:
        """Label every voxel of ``labels`` (overwritten; air = 0) on the grid ``VoxelToPatient``."""
        A = np.ascontiguousarray(np.asarray(VoxelToPatient, np.float64)[:3, :4])
        _render(labels, A, np.ascontiguousarray(self.z_mm, np.float64),
                np.ascontiguousarray(self.table, np.float64), float(self.skin_mm),
                np.array([self.skin_label, self.fat_label, self.wall_label, self.back_label,
                          self.core_label, self.paired_label], np.uint8))
        return labels

    def signed_distance(self, points_mm: np.ndarray) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) to the skin surface, (N, 3)."""
        p = np.asarray(points_mm, np.float64).reshape(-1, 3)
        out = np.empty(len(p))
        _skin_distance(p, np.ascontiguousarray(self.z_mm, np.float64),
                       np.ascontiguousarray(self.table, np.float64), float(self.skin_mm), out)
        return out


@nb.njit(cache=True, inline="always")
def _interp_row(z, zk, tab, row):
    n = zk.shape[0]
    if z <= zk[0]:
        for c in range(tab.shape[1]):
            row[c] = tab[0, c]
        return
    if z >= zk[n - 1]:
        for c in range(tab.shape[1]):
            row[c] = tab[n - 1, c]
        return
    lo = 0
    hi = n - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if zk[mid] <= z:
            lo = mid
        else:
            hi = mid
    w = (z - zk[lo]) / (zk[hi] - zk[lo])
    for c in range(tab.shape[1]):
        row[c] = tab[lo, c] * (1.0 - w) + tab[hi, c] * w


@nb.njit(cache=True, inline="always")
def _core_distance(x, y, row):
    """(signed distance to the core outline, fat thickness in this direction).

    The outline blends an ellipse (w = 1) with a squarer quartic superellipse (w = 0),
    separately behind and in front of the centre; distance is first-order (f - 1)/|grad f|.
    """
    cx, cy, ax = row[0], row[1], row[2]
    dx = x - cx
    dy = y - cy
    if dy < 0:
        b = row[3]
        w = row[5]
    else:
        b = row[4]
        w = row[6]
    u = abs(dx) / ax
    v = abs(dy) / b
    u2 = u * u
    v2 = v * v
    f2 = np.sqrt(u2 + v2) + 1e-9
    s4 = u2 * u2 + v2 * v2
    f4 = np.sqrt(np.sqrt(s4)) + 1e-9
    f = w * f2 + (1.0 - w) * f4
    f43 = f4 * f4 * f4
    gx = (w * u / f2 + (1.0 - w) * u2 * u / f43) / ax
    gy = (w * v / f2 + (1.0 - w) * v2 * v / f43) / b
    g = np.sqrt(gx * gx + gy * gy) + 1e-9
    d = (f - 1.0) / g
    r = np.sqrt(dx * dx + dy * dy) + 1e-9
    ex = dx / r
    ey = dy / r
    if ey < 0:
        t = ey * ey * row[7] + ex * ex * row[8]
    else:
        t = ey * ey * row[9] + ex * ex * row[8]
    return d, t


OUT = 255  # classification slot: outside the body (air, left untouched)


@nb.njit(cache=True, inline="always")
def _groove_distance(ax_, y, row, skin):
    """Signed distance (negative inside) to the midline groove (air) of this row, and the
    depth v of the point behind the groove floor. ``ax_`` = |x - cx|."""
    y_floor = row[1] - row[3] - row[7] - skin + row[18]
    v = y_floor - y  # > 0 behind the floor
    k = row[20]
    r = row[21]
    q = np.sqrt(1.0 + k * k)
    w0 = max(row[19] - r * q, 0.0)  # half width of the eroded floor
    # eroded region: v >= r and ax_ - k v <= w0 ; SDF of the intersection, then - r
    h1 = r - v
    h2 = (ax_ - k * v - w0) / q
    if h1 <= 0.0 and h2 <= 0.0:
        e = max(h1, h2)
    else:
        # projections on each line, if they satisfy the other constraint
        e = 1e30
        if h1 > 0.0:
            # point on the floor line v = r at the same ax_
            if ax_ - k * r - w0 <= 0.0:
                e = h1
        if h2 > 0.0:
            pv = v + h2 * k / q
            if pv >= r:
                e = min(e, h2)
        if e > 1e29:
            cu = w0 + k * r
            e = np.sqrt((ax_ - cu) ** 2 + (v - r) ** 2)
    return e - r, v


@nb.njit(cache=True, inline="always")
def _classify(d, t, y, ax_, row, skin):
    """(label slot 0..5, or OUT outside; distance margin in mm to the next boundary)."""
    slot, m = _classify_convex(d, t, y, ax_, row, skin)
    if slot == OUT or row[18] <= 0.0:
        return slot, m
    dg, v = _groove_distance(ax_, y, row, skin)
    if dg < 0.0:
        return OUT, abs(dg)
    tw = min(row[22] + 0.6 * max(v, 0.0), max(row[7], row[22]))
    f = dg - skin - tw
    m = min(m, abs(dg - skin), abs(f) / 1.6)
    if dg < skin:
        return 0, m
    if f < 0.0:
        return min(slot, 1), m
    return slot, m


@nb.njit(cache=True, inline="always")
def _classify_convex(d, t, y, ax_, row, skin):
    """(label slot 0..5, or OUT outside; distance margin in mm to the next boundary)."""
    m = abs(d - t - skin)
    if d > t + skin:
        return OUT, m
    m = min(m, abs(d - t))
    if d > t:
        return 0, m
    m = min(m, abs(d))
    if d > 0.0:
        return 1, m
    if row[16] > 1.0:  # paired (paraspinal) muscles
        ex = (ax_ - row[14]) / row[16]
        ey = (y - row[15]) / row[17]
        k0 = np.sqrt(ex * ex + ey * ey)
        k1 = np.sqrt((ex / row[16]) ** 2 + (ey / row[17]) ** 2) + 1e-9
        de = k0 * (k0 - 1.0) / k1
        m = min(m, abs(de))
        if de <= 0.0:
            return 5, m
    if ax_ < row[13]:
        m = min(m, abs(y - row[11]))
        if y < row[11]:
            return 3, m
    m = min(m, abs(d + row[10]))
    if d > -row[10]:
        return 2, m
    if row[12] > 0.5:
        return 3, m
    return 4, m


def _render_impl(labels, A, zk, tab, skin, labs):
    ni, nj, nk = labels.shape
    ncol = tab.shape[1]
    axis_aligned = (A[0, 1] == 0.0 and A[0, 2] == 0.0 and A[1, 0] == 0.0 and A[1, 2] == 0.0
                    and A[2, 0] == 0.0 and A[2, 1] == 0.0)
    if axis_aligned:
        rows = np.empty((nk, ncol))
        for k in range(nk):
            _interp_row(A[2, 2] * k + A[2, 3], zk, tab, rows[k])
        sy = abs(A[1, 1])
        for i in nb.prange(ni):
            x = A[0, 0] * i + A[0, 3]
            buf = np.zeros((nk, nj), np.uint8)  # contiguous along j, copied transposed
            for k in range(nk):
                row = rows[k]
                # march along j: jump by the distance margin; where the class changed,
                # bisect back to the first voxel of the new class (exact labels)
                y = A[1, 1] * 0 + A[1, 3]
                d, t = _core_distance(x, y, row)
                slot, m = _classify(d, t, y, abs(x - row[0]), row, skin)
                j = 0
                while j < nj:
                    n = int(0.9 * m / sy)
                    if n < 1:
                        n = 1
                    if j + n > nj - 1:
                        n = nj - 1 - j
                    if n <= 0:
                        if slot != OUT:
                            buf[k, j] = labs[slot]
                        break
                    y2 = A[1, 1] * (j + n) + A[1, 3]
                    d2, t2 = _core_distance(x, y2, row)
                    slot2, m2 = _classify(d2, t2, y2, abs(x - row[0]), row, skin)
                    if slot2 == slot:
                        stop = j + n
                    else:
                        lo = j
                        hi = j + n  # slot(lo) == slot, slot(hi) != slot
                        while hi - lo > 1:
                            mid = (lo + hi) // 2
                            ym = A[1, 1] * mid + A[1, 3]
                            dm, tm = _core_distance(x, ym, row)
                            sm, mm = _classify(dm, tm, ym, abs(x - row[0]), row, skin)
                            if sm == slot:
                                lo = mid
                            else:
                                hi = mid
                                slot2 = sm
                                m2 = mm
                        stop = hi
                    if slot != OUT:
                        buf[k, j:stop] = labs[slot]
                    j = stop
                    slot = slot2
                    m = m2
                    if j == nj - 1:
                        if slot != OUT:
                            buf[k, j] = labs[slot]
                        break
            for j in range(nj):
                for k in range(nk):
                    labels[i, j, k] = buf[k, j]
    else:
        for i in nb.prange(ni):
            row = np.empty(ncol)
            for j in range(nj):
                for k in range(nk):
                    x = A[0, 0] * i + A[0, 1] * j + A[0, 2] * k + A[0, 3]
                    y = A[1, 0] * i + A[1, 1] * j + A[1, 2] * k + A[1, 3]
                    z = A[2, 0] * i + A[2, 1] * j + A[2, 2] * k + A[2, 3]
                    _interp_row(z, zk, tab, row)
                    d, t = _core_distance(x, y, row)
                    slot, m = _classify(d, t, y, abs(x - row[0]), row, skin)
                    if slot != OUT:
                        labels[i, j, k] = labs[slot]


def _renamed(fn, name):
    """A copy of ``fn`` under another qualified name: numba keys its on-disk cache by the
    function's qualified name, so the serial and parallel builds need distinct names."""
    import types

    g = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    g.__qualname__ = name
    return g


_render_par = nb.njit(cache=True, parallel=True)(_renamed(_render_impl, "_render_impl_par"))
_render_ser = nb.njit(cache=True)(_renamed(_render_impl, "_render_impl_ser"))


def _render(labels, A, zk, tab, skin, labs):
    """Parallel for big grids; serial (no thread start-up) for small ones."""
    if labels.size > 2_000_000:
        _render_par(labels, A, zk, tab, skin, labs)
    else:
        _render_ser(labels, A, zk, tab, skin, labs)


@nb.njit(cache=True)
def _skin_distance(p, zk, tab, skin, out):
    row = np.empty(tab.shape[1])
    for n in range(p.shape[0]):
        _interp_row(p[n, 2], zk, tab, row)
        d, t = _core_distance(p[n, 0], p[n, 1], row)
        out[n] = d - t - skin
        if row[18] > 0.0:
            dg, v = _groove_distance(abs(p[n, 0] - row[0]), p[n, 1], row, skin)
            out[n] = max(out[n], -dg)


MAX_VOXELS = 700_000_000  # ~0.7 GB of uint8 labels: whole region at 0.5 mm fits, 0.25 does not


@dataclass
class LayeredPhantomModel(PhantomModel):
    """A phantom model whose rendering starts with the fast :class:`BodyLayers` pass."""

    body: BodyLayers | None = field(default=None)

    def render(self, shape: tuple[int, int, int], VoxelToPatient: np.ndarray) -> np.ndarray:
        aff = np.asarray(VoxelToPatient, dtype=np.float64)
        n = int(np.prod(np.asarray(shape, dtype=np.int64)))
        if n > MAX_VOXELS:
            from needleguide.errors import UserError

            sp = float(np.linalg.norm(aff[:3, :3], axis=0).min())
            raise UserError(f"spacing_mm: {sp:g} mm would need {n / 1e6:.0f} M voxels "
                            f"(limit {MAX_VOXELS / 1e6:.0f} M); use a coarser spacing for the "
                            "whole region and Patient.roi(center, size, spacing) for detail")
        labels = np.zeros(shape, dtype=np.uint8)
        if self.body is not None:
            self.body.render_into(labels, aff)
        return paint(labels, aff, self.strokes)
