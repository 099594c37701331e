"""Per-frame additions without re-projecting the anatomy: needle (steel cylinder + hub)
by exact ray–cylinder chords, and iodine by a ray march through the contrast sub-volume.

Both work on the detector pixels whose rays can meet the object (the projected bounding
box) and return path lengths per pixel: mm of steel / hub plastic, and mg/cm² of iodine.
The kernels are serial: per frame they do a few ms of work, less than what a parallel
launch costs when the 2 CPU cores are shared.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from needleguide import geometry
from needleguide.fluoro.carm import CArm
from needleguide.scene.needle import Needle
from needleguide.scene.scene import SparseField

HUB_DIAMETER_MM = 7.0  # *assumption*: Luer hub of a spinal needle
HUB_FILL = 0.5  # *assumption*: fraction of the hub cylinder that is plastic


@nb.njit(cache=True, inline="always")
def _chord(sx, sy, sz, dx, dy, dz, ax, ay, az, wx, wy, wz, length, r2):  # pragma: no cover
    """Length (in units of |d|, t ∈ [0, 1]) of the segment S + t·d inside the finite
    cylinder of axis A + s·w (0 ≤ s ≤ length, |w| = 1), radius² r2."""
    mx, my, mz = sx - ax, sy - ay, sz - az
    mw = mx * wx + my * wy + mz * wz
    dw = dx * wx + dy * wy + dz * wz
    px, py, pz = dx - dw * wx, dy - dw * wy, dz - dw * wz
    qx, qy, qz = mx - mw * wx, my - mw * wy, mz - mw * wz
    a = px * px + py * py + pz * pz
    b = 2.0 * (px * qx + py * qy + pz * qz)
    c = qx * qx + qy * qy + qz * qz - r2
    t0, t1 = 0.0, 1.0
    if a < 1e-18:
        if c > 0.0:
            return 0.0
    else:
        disc = b * b - 4.0 * a * c
        if disc <= 0.0:
            return 0.0
        sq = np.sqrt(disc)
        t0 = max(t0, (-b - sq) / (2.0 * a))
        t1 = min(t1, (-b + sq) / (2.0 * a))
    if abs(dw) < 1e-18:
        if mw < 0.0 or mw > length:
            return 0.0
    else:
        u0 = (0.0 - mw) / dw
        u1 = (length - mw) / dw
        t0 = max(t0, min(u0, u1))
        t1 = min(t1, max(u0, u1))
    return max(t1 - t0, 0.0)


@nb.njit(cache=True, fastmath=True)
def _cylinder(src, p00, dcol, drow, r0, r1, c0, c1, cyl, margin, sub, out,
              m):  # pragma: no cover - jit
    """out[m, r, c] += path length (mm) through one cylinder (``cyl``: A xyz, w xyz,
    length, radius, weight) averaged over sub×sub rays per pixel (partial volume). A
    centre ray against the radius inflated by ``margin`` (mm) skips pixels it misses."""
    inv = 1.0 / (sub * sub)
    r2 = cyl[7] * cyl[7]
    rm2 = (cyl[7] + margin) * (cyl[7] + margin)
    for r in range(r0, r1):
        for c in range(c0, c1):
            dx = p00[0] + c * dcol[0] + r * drow[0] - src[0]
            dy = p00[1] + c * dcol[1] + r * drow[1] - src[1]
            dz = p00[2] + c * dcol[2] + r * drow[2] - src[2]
            if _chord(src[0], src[1], src[2], dx, dy, dz, cyl[0], cyl[1], cyl[2], cyl[3],
                      cyl[4], cyl[5], cyl[6], rm2) <= 0.0:
                continue
            acc = 0.0
            for i in range(sub):
                for j in range(sub):
                    fr = r + (i + 0.5) / sub - 0.5
                    fc = c + (j + 0.5) / sub - 0.5
                    dx = p00[0] + fc * dcol[0] + fr * drow[0] - src[0]
                    dy = p00[1] + fc * dcol[1] + fr * drow[1] - src[1]
                    dz = p00[2] + fc * dcol[2] + fr * drow[2] - src[2]
                    t = _chord(src[0], src[1], src[2], dx, dy, dz, cyl[0], cyl[1], cyl[2],
                               cyl[3], cyl[4], cyl[5], cyl[6], r2)
                    acc += t * np.sqrt(dx * dx + dy * dy + dz * dz)
            out[m, r, c] += acc * inv * cyl[8]


@nb.njit(cache=True, fastmath=True)
def _march(vals, src, p00, dcol, drow, r0, r1, c0, c1, step_mm, lin, out):  # pragma: no cover
    """Trilinear ray march through ``vals`` (index space); src/p00/dcol/drow already in
    index space; ``lin`` (3x3) maps index vectors to mm; out[r, c] += Σ value × mm."""
    ni, nj, nk = vals.shape
    for r in range(r0, r1):
        for c in range(c0, c1):
            d0 = p00[0] + c * dcol[0] + r * drow[0] - src[0]
            d1 = p00[1] + c * dcol[1] + r * drow[1] - src[1]
            d2 = p00[2] + c * dcol[2] + r * drow[2] - src[2]
            # slab clip to the voxels' cells [-0.5, n-0.5] (same convention as Joseph)
            t0, t1 = 0.0, 1.0
            ok = True
            for ax in range(3):
                s_ = src[ax]
                d_ = d0 if ax == 0 else (d1 if ax == 1 else d2)
                n_ = (ni if ax == 0 else (nj if ax == 1 else nk)) - 0.5
                if abs(d_) < 1e-12:
                    if s_ < -0.5 or s_ > n_:
                        ok = False
                else:
                    ua = (-0.5 - s_) / d_
                    ub = (n_ - s_) / d_
                    t0 = max(t0, min(ua, ub))
                    t1 = min(t1, max(ua, ub))
            if not ok or t1 <= t0:
                continue
            mx = lin[0, 0] * d0 + lin[0, 1] * d1 + lin[0, 2] * d2
            my = lin[1, 0] * d0 + lin[1, 1] * d1 + lin[1, 2] * d2
            mz = lin[2, 0] * d0 + lin[2, 1] * d1 + lin[2, 2] * d2
            seg_mm = (t1 - t0) * np.sqrt(mx * mx + my * my + mz * mz)
            n = int(seg_mm / step_mm) + 1
            dt = (t1 - t0) / n
            acc = 0.0
            for q in range(n):
                t = t0 + (q + 0.5) * dt
                x = src[0] + t * d0
                y = src[1] + t * d1
                z = src[2] + t * d2
                ix = min(max(int(x), 0), ni - 2) if ni > 1 else 0
                iy = min(max(int(y), 0), nj - 2) if nj > 1 else 0
                iz = min(max(int(z), 0), nk - 2) if nk > 1 else 0
                fx = min(max(x - ix, 0.0), 1.0) if ni > 1 else 0.0
                fy = min(max(y - iy, 0.0), 1.0) if nj > 1 else 0.0
                fz = min(max(z - iz, 0.0), 1.0) if nk > 1 else 0.0
                jx = min(ix + 1, ni - 1)
                jy = min(iy + 1, nj - 1)
                jz = min(iz + 1, nk - 1)
                v = ((1 - fx) * ((1 - fy) * ((1 - fz) * vals[ix, iy, iz] + fz * vals[ix, iy, jz])
                                 + fy * ((1 - fz) * vals[ix, jy, iz] + fz * vals[ix, jy, jz]))
                     + fx * ((1 - fy) * ((1 - fz) * vals[jx, iy, iz] + fz * vals[jx, iy, jz])
                             + fy * ((1 - fz) * vals[jx, jy, iz] + fz * vals[jx, jy, jz])))
                acc += v
            out[r, c] += acc * seg_mm / n


def _pixel_box(carm: CArm, points_mm: np.ndarray, margin_px: float) -> tuple[int, int, int, int]:
    """Row/col bounds (r0, r1, c0, c1), clipped to the detector, of projected points."""
    n = carm.geometry.pixels
    uv = carm.project(points_mm)
    good = np.isfinite(uv).all(axis=1)
    if not good.any():
        return 0, 0, 0, 0
    uv = uv[good]
    c0 = int(np.clip(np.floor(uv[:, 0].min() - margin_px), 0, n))
    c1 = int(np.clip(np.ceil(uv[:, 0].max() + margin_px) + 1, 0, n))
    r0 = int(np.clip(np.floor(uv[:, 1].min() - margin_px), 0, n))
    r1 = int(np.clip(np.ceil(uv[:, 1].max() + margin_px) + 1, 0, n))
    return r0, r1, c0, c1


def needle_paths_mm(carm: CArm, needle: Needle, out: np.ndarray | None = None,
                    supersample: int = 3) -> np.ndarray:
    """(2, rows, cols) float32: mm of steel (solid shaft: stylet in, *assumption*) and of
    hub plastic (× HUB_FILL) along each pixel's ray."""
    n = carm.geometry.pixels
    if out is None:
        out = np.zeros((2, n, n), np.float32)
    w = needle.axis
    hub = needle.hub_mm
    shaft_r = needle.outer_diameter_mm / 2.0
    hub_start = hub - w * needle.hub_length_mm
    cyl = np.array([
        [*hub, *w, needle.length_mm, shaft_r, 1.0],
        [*hub_start, *w, needle.hub_length_mm, HUB_DIAMETER_MM / 2.0, HUB_FILL],
    ])
    src, p00, dd = carm.pixel_rays()
    for m in range(2):
        a, length, rad = cyl[m, :3], cyl[m, 6], cyl[m, 7]
        ends = np.array([a, a + w * length])
        # bounding box of the cylinder (ends ± radius)
        corners = (ends[:, None, :] + rad * np.array(
            [[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])).reshape(-1, 3)
        r0, r1, c0, c1 = _pixel_box(carm, corners, 2.0)
        if r1 <= r0 or c1 <= c0:
            continue
        margin = carm.geometry.pixel_mm  # ≥ one pixel's footprint anywhere in the beam
        _cylinder(src, p00, dd[0], dd[1], r0, r1, c0, c1, cyl[m], margin, supersample, out, m)
    return out


def iodine_mg_cm2(carm: CArm, field: SparseField, out: np.ndarray | None = None,
                  step_voxels: float = 1.0) -> np.ndarray:
    """(rows, cols) float32: iodine areal density (mg/cm²) of a concentration field in
    mg I/mL (= mg/cm³) along each pixel's ray."""
    n = carm.geometry.pixels
    if out is None:
        out = np.zeros((n, n), np.float32)
    vals = np.ascontiguousarray(field.values, dtype=np.float32)
    if vals.size == 0 or not np.any(vals):
        return out
    v2p = np.asarray(field.VoxelToPatient, float)
    inv = np.linalg.inv(v2p)
    shp = np.array(vals.shape) - 0.5
    corners = np.array([[i, j, k] for i in (-0.5, shp[0]) for j in (-0.5, shp[1])
                        for k in (-0.5, shp[2])], float)
    r0, r1, c0, c1 = _pixel_box(carm, geometry.apply(v2p, corners), 1.0)
    if r1 <= r0 or c1 <= c0:
        return out
    src, p00, dd = carm.pixel_rays()
    s = geometry.apply(inv, src)
    p0 = geometry.apply(inv, p00)
    dc = geometry.apply_vector(inv, dd[0])
    dr = geometry.apply_vector(inv, dd[1])
    step_mm = float(step_voxels * field.spacing_mm.min())
    tmp = np.zeros((r1 - r0, c1 - c0), np.float64)
    _march(vals, s, p0 + r0 * dr + c0 * dc, dc, dr, 0, r1 - r0, 0, c1 - c0, step_mm,
           v2p[:3, :3].copy(), tmp)
    out[r0:r1, c0:c1] += (tmp / 10.0).astype(np.float32)  # mg/cm³ × mm → mg/cm²
    return out
