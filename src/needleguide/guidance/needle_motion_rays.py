"""The needle's line through a moving region (``guidance.needle_motion`` step 3): the ray
back toward the skin along which the shaft's echo is brightest, from the region's
centroid or from a point across from it inside the region."""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit

from needleguide.guidance.needle_kernels import pairwise_sum

_RAYS: dict = {}


def _rays(lo_deg: float, hi_deg: float, step_deg: float) -> np.ndarray:
    """Unit directions pointing deeper (+row) at ``lo``–``hi`` degrees to the horizontal,
    toward the left and the right (n, 2)."""
    key = (lo_deg, hi_deg, step_deg)
    if key not in _RAYS:
        a = np.radians(np.arange(lo_deg, hi_deg + 1e-9, step_deg))
        _RAYS[key] = np.concatenate([np.c_[np.cos(a), np.sin(a)], np.c_[-np.cos(a), np.sin(a)]])
    return _RAYS[key]


def ray_direction(img: np.ndarray, c: np.ndarray, px_mm: float, prm,
                  beam: np.ndarray | None = None,
                  z: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """The shaft through the moving region about ``c``: of the rays back up toward the
    skin at ``min_angle_deg``–``max_angle_deg`` to the horizontal (either side) and more
    than ``beam_tol_deg`` off the ``beam`` through ``c`` (unit, deeper; None: any), the
    one along which the current image is brightest against two parallel lines
    ``ray_side_mm`` away (the shaft's echo, seen best near the skin). The rays start at
    ``c`` or, with ``z`` given and ``ray_shift_mm`` > 0, at points up to that far across
    them (every ``ray_shift_step_mm``) where ``z`` ≥ ``z_on``: still in the moving region,
    whose centroid can lie beside the shaft where the tissue on one side is dark. A
    shifted ray must beat ``c``'s best by ``ray_shift_gain`` (relative).
    Searched coarse to fine: every ``ray_shift_deg`` with samples every
    ``ray_shift_dt_mm`` (:func:`_coarse_scores`), then the ``ray_shift_top`` best of each
    kind (from ``c``, shifted) every ``ray_step_deg`` within ±``ray_shift_deg`` (shifted
    ones also half a step either side) at full sampling. ``img``: the working grid; ``c``
    in its pixels. (unit vector pointing deeper, the point it starts from) or None."""
    rays = _rays(prm.min_angle_deg, prm.max_angle_deg, prm.ray_step_deg)
    if beam is not None:
        rays = rays[rays @ beam < np.cos(np.radians(prm.beam_tol_deg))]
    if rays.size == 0:
        return None
    c = np.asarray(c, float)
    coarse = rays[::max(1, int(round(prm.ray_shift_deg / prm.ray_step_deg)))]
    step = prm.ray_shift_step_mm / px_mm
    nk = int(prm.ray_shift_mm / prm.ray_shift_step_mm + 1e-6) \
        if z is not None and prm.ray_shift_mm > 0 else 0
    pts, sc = _coarse_scores(img, c, coarse, nk, step, px_mm, prm)
    keep = np.zeros(sc.shape, bool)  # (rays, offsets)
    keep[:, nk] = True  # from c itself
    if nk:
        h, w = z.shape
        xi = np.clip(np.rint(pts[..., 0]).astype(int), 0, w - 1)
        yi = np.clip(np.rint(pts[..., 1]).astype(int), 0, h - 1)
        keep |= z[yi, xi] >= prm.z_on
    ri, oi = np.nonzero(keep)
    sc = sc[ri, oi]
    da = np.radians(np.arange(-prm.ray_shift_deg, prm.ray_shift_deg + 1e-9,
                              prm.ray_step_deg))
    cps, cus, kinds = [], [], []
    for shifted in (False, True):
        kind = np.nonzero((oi != nk) == shifted)[0]
        top = kind[np.argsort(sc[kind])[::-1][:prm.ray_shift_top]]
        top = top[np.isfinite(sc[top])]
        if top.size == 0:
            continue
        r0, p0 = coarse[ri[top]], pts[ri[top], oi[top]]  # (k, 2)
        ang = np.arctan2(r0[:, 1], r0[:, 0])[:, None] + da[None, :]
        ru = np.stack([np.cos(ang), np.sin(ang)], -1)  # (k, angles, 2)
        o = np.array([-0.5 * step, 0.0, 0.5 * step] if shifted else [0.0])
        n0 = np.stack([-r0[:, 1], r0[:, 0]], -1)
        cp = p0[:, None, None, :] + o[None, None, :, None] * n0[:, None, None, :]
        shape = (len(top), da.size, o.size, 2)
        cps.append(np.broadcast_to(cp, shape).reshape(-1, 2))
        cus.append(np.broadcast_to(ru[:, :, None, :], shape).reshape(-1, 2))
        kinds.append(np.full(cps[-1].shape[0], shifted))
    if not cps:
        return None
    cp, cu, kind = np.concatenate(cps), np.concatenate(cus), np.concatenate(kinds)
    if beam is not None:  # the fine rays stay off the beam too
        off = cu @ beam < np.cos(np.radians(prm.beam_tol_deg))
        cp, cu, kind = cp[off], cu[off], kind[off]
        if not off.any():
            return None
    fine = _ray_scores(img, cp, cu, px_mm, prm)
    s0 = np.where(kind, -np.inf, fine)
    s1 = np.where(kind, fine, -np.inf)
    k0, k1 = int(np.argmax(s0)), int(np.argmax(s1))
    if np.isfinite(s1[k1]) and (not np.isfinite(s0[k0]) or
                                s1[k1] > s0[k0] + prm.ray_shift_gain * abs(s0[k0])):
        return cu[k1], cp[k1]
    return None if not np.isfinite(s0[k0]) else (cu[k0], cp[k0])


def _coarse_scores(img: np.ndarray, c: np.ndarray, rays: np.ndarray, nk: int, step: float,
                   px_mm: float, prm) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_ray_scores` of the rays from ``c`` slid −``nk`` … ``nk`` × ``step`` px
    across them, samples every ``ray_shift_dt_mm``: each line's parallel lines are its
    neighbours ±round(``ray_side_mm`` / ``ray_shift_step_mm``) offsets away (sampled once
    for all). (start points (rays, 2·nk + 1, 2), scores (rays, 2·nk + 1))."""
    ns = max(1, int(round(prm.ray_side_mm / prm.ray_shift_step_mm)))
    ext = np.arange(-nk - ns, nk + ns + 1) * step  # the lines and their side lines
    nrm = np.stack([-rays[:, 1], rays[:, 0]], -1)
    p = c[None, None, :] + ext[None, :, None] * nrm[:, None, :]  # (rays, lines, 2)
    t = (np.arange(prm.ray_from_mm, prm.ray_to_mm, prm.ray_shift_dt_mm) / px_mm
         ).astype(np.float32)
    r32, p32 = rays.astype(np.float32), p.astype(np.float32)
    px = p32[..., 0:1] - r32[:, None, 0:1] * t  # (rays, lines, t)
    py = p32[..., 1:2] - r32[:, None, 1:2] * t
    nr, nl, nt = px.shape
    v = cv2.remap(img, px.reshape(nr * nl, nt), py.reshape(nr * nl, nt), cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_REPLICATE).reshape(nr, nl, nt)
    h, w = img.shape
    mid = slice(ns, nl - ns)
    return p[:, mid], _side_means(v[:, mid], v[:, :nl - 2 * ns], v[:, 2 * ns:], px[:, mid],
                                  py[:, mid], w, h)


def _ray_scores(img: np.ndarray, pts: np.ndarray, rays: np.ndarray, px_mm: float,
                prm, dt_mm: float | None = None) -> np.ndarray:
    """The mean echo along each ray (``rays`` (m, 2) unit, deeper) back from its start
    point (``pts`` (m, 2), working-grid pixels) against two parallel lines
    ``ray_side_mm`` away, samples every ``dt_mm`` (default 0.75 px); (m,) scores, -inf
    with fewer than 8 samples inside the image."""
    t = (np.arange(prm.ray_from_mm, prm.ray_to_mm, dt_mm or px_mm * 0.75) / px_mm
         ).astype(np.float32)
    pts, rays = pts.astype(np.float32), rays.astype(np.float32)
    px = pts[:, 0:1] - rays[:, 0:1] * t
    py = pts[:, 1:2] - rays[:, 1:2] * t
    h, w = img.shape
    o = np.float32(prm.ray_side_mm / px_mm)
    nx, ny = -rays[:, 1:2] * o, rays[:, 0:1] * o

    def at(dx, dy):
        return cv2.remap(img, px + dx, py + dy, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)[None]

    return _side_means(at(0, 0), at(nx, ny), at(-nx, -ny), px[None], py[None], w, h)[0]


@njit(cache=True)
def _side_means(c: np.ndarray, a: np.ndarray, b: np.ndarray, px: np.ndarray, py: np.ndarray,
                w: int, h: int) -> np.ndarray:
    """The mean over the last axis of the line's echo ``c`` against its side lines ``a``
    and ``b`` (c − (a + b) / 2, float32; (rays, lines, samples) each), over the samples
    whose point (``px``, ``py``) lies inside a ``w`` × ``h`` image; −inf with fewer than
    8 such samples. (rays, lines) float64."""
    nr, nl, nt = c.shape
    out = np.empty((nr, nl), np.float64)
    buf = np.empty(nt, np.float32)
    half = np.float32(0.5)
    for r in range(nr):
        for j in range(nl):
            cnt = 0
            for t in range(nt):
                x, y = px[r, j, t], py[r, j, t]
                ins = x >= 0 and x <= w - 1 and y >= 0 and y <= h - 1
                buf[t] = (c[r, j, t] - half * (a[r, j, t] + b[r, j, t])) * np.float32(ins)
                cnt += ins
            # (numpy's order, bit for bit: the scores as ndarray.sum gave them)
            s = np.float32(0.0) + (pairwise_sum(buf, 0, nt) if nt else np.float32(0.0))
            out[r, j] = np.float64(s) / max(cnt, 1) if cnt >= 8 else -np.inf
    return out


__all__ = ["ray_direction"]
