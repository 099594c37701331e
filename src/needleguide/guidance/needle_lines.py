"""Kernels of the needle analyser: Hessian ridge candidates, an orientation-gated weighted
Hough transform, and profiles along / beside a line. Pixel units throughout."""

from __future__ import annotations

import math

import cv2
import numpy as np
from numba import njit

from needleguide.guidance import needle_kernels as K
from needleguide.guidance import needle_runs as R

N_THETA = 180  # 1° bins of the line normal's angle


def local_noise(img: np.ndarray, block: int = 8) -> np.ndarray:
    """Local noise σ map (same shape as ``img``): RMS of the 3×3 high-pass of every second
    pixel, averaged over about 5·``block`` pixels (computed at 1/``block`` resolution).
    (A per-thread scratch array: valid until the next call.)"""
    h, w = img.shape
    sub = K.scratch("noise_sub", ((h + 1) // 2, (w + 1) // 2), img.dtype)
    sub[...] = img[::2, ::2]
    hp = np.subtract(sub, cv2.blur(sub, (3, 3), dst=K.scratch("noise_blur", sub.shape,
                                                               img.dtype)),
                     out=K.scratch("noise_hp", sub.shape, img.dtype))
    b2 = max(block // 2, 1)
    sm = cv2.resize(np.multiply(hp, hp, out=hp),
                    (max(sub.shape[1] // b2, 1), max(sub.shape[0] // b2, 1)),
                    interpolation=cv2.INTER_AREA)
    sm = np.sqrt(cv2.blur(sm, (5, 5))) + np.float32(1e-4)
    return cv2.resize(sm, (w, h), dst=K.scratch("noise", (h, w), sm.dtype),
                      interpolation=cv2.INTER_LINEAR)


def normal_angle(ixx: np.ndarray, iyy: np.ndarray, ixy: np.ndarray) -> np.ndarray:
    """Angle (rad, [0, π)) of the normal across a bright ridge (eigenvector of λ_min)."""
    return (0.5 * np.arctan2(2.0 * ixy, ixx - iyy) + 0.5 * np.pi) % np.pi


def hough_gated(xs: np.ndarray, ys: np.ndarray, ws: np.ndarray, ths: np.ndarray,
                rho_max: int, gate_bins: int, n_theta: int) -> np.ndarray:
    """Weighted Hough accumulator (n_theta, 2·rho_max+1): each point votes for the normal
    angles within ``gate_bins`` of its own ridge normal, with a triangular angle weight.
    (A per-thread scratch array: valid until the next call.)"""
    acc = K.scratch("hough", (n_theta, 2 * rho_max + 1), np.float32)
    return _hough_gated(xs, ys, ws, ths, rho_max, gate_bins, n_theta, acc)


@njit(cache=True, fastmath=True)
def _hough_gated(xs, ys, ws, ths, rho_max, gate_bins, n_theta, acc):
    n_rho = 2 * rho_max + 1
    acc[:] = 0.0
    cs = np.empty(n_theta)
    sn = np.empty(n_theta)
    for k in range(n_theta):
        a = k * math.pi / n_theta
        cs[k] = math.cos(a)
        sn[k] = math.sin(a)
    tri = np.empty(2 * gate_bins + 1)  # triangular angle weights
    for dk in range(-gate_bins, gate_bins + 1):
        tri[dk + gate_bins] = 1.0 - abs(dk) / (gate_bins + 1.0)
    for i in range(xs.shape[0]):
        k0 = int(ths[i] / math.pi * n_theta + 0.5)  # in [0, n_theta]
        x, y, wi = xs[i], ys[i], ws[i]
        for dk in range(-gate_bins, gate_bins + 1):
            k = k0 + dk  # (θ+π, -ρ) is the same line as (θ, ρ): wrap (no modulo: slow)
            if k < 0:
                k += n_theta
            elif k >= n_theta:
                k -= n_theta
            rho = x * cs[k] + y * sn[k]
            ir = int(rho + rho_max + 0.5)
            if 0 <= ir < n_rho:
                acc[k, ir] += wi * tri[dk + gate_bins]
    return acc


def line_profiles(img: np.ndarray, p0: np.ndarray, u: np.ndarray, t: np.ndarray,
                  offsets: np.ndarray) -> np.ndarray:
    """Bilinear samples (len(offsets), len(t)) of ``img`` at p0 + t·u + o·n (n ⟂ u),
    (x=col, y=row) pixels; outside the image reads 0."""
    px, py = _profile_maps(float(p0[0]), float(p0[1]), float(u[0]), float(u[1]),
                           np.asarray(t, np.float64), np.asarray(offsets))
    return cv2.remap(img, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=0)


@njit(cache=True)
def _profile_maps(x0, y0, ux, uy, t, offs):
    px = np.empty((offs.shape[0], t.shape[0]), np.float32)
    py = np.empty((offs.shape[0], t.shape[0]), np.float32)
    for r in range(offs.shape[0]):
        ox, oy = offs[r] * -uy, offs[r] * ux
        for k in range(t.shape[0]):
            px[r, k] = x0 + t[k] * ux + ox
            py[r, k] = y0 + t[k] * uy + oy
    return px, py


def clip_line(p0: np.ndarray, u: np.ndarray, w: int, h: int, margin: float = 1.0
              ) -> tuple[float, float] | None:
    """Parameter interval [t0, t1] of p0 + t·u inside the image (shrunk by ``margin``)."""
    ok, lo, hi = _clip(float(p0[0]), float(p0[1]), float(u[0]), float(u[1]), w, h,
                       float(margin))
    return (lo, hi) if ok else None


@njit(cache=True)
def _clip(cx, cy, ux, uy, w, h, margin):
    lo, hi = -1e9, 1e9
    for k in range(2):
        c, d, m = (cx, ux, w) if k == 0 else (cy, uy, h)
        a, b = margin, m - 1 - margin
        if abs(d) < 1e-9:
            if not a <= c <= b:
                return False, lo, hi
            continue
        t0, t1 = (a - c) / d, (b - c) / d
        lo, hi = max(lo, min(t0, t1)), min(hi, max(t0, t1))
    return hi > lo, lo, hi


@njit(cache=True)
def _screen_maps(cu, side_px, step_px, w, h):
    """Remap coordinates (n, 3, T) of each line's side / on-line / side samples every
    ``step_px`` over its span in the image, and the number of samples per line (0
    outside: those rows read outside the image)."""
    n = cu.shape[0]
    lens = np.zeros(n, np.int64)
    t0 = np.zeros(n)
    for i in range(n):
        ok, lo, hi = _clip(cu[i, 0], cu[i, 1], cu[i, 2], cu[i, 3], w, h, 1.0)
        if ok:
            lens[i] = int((hi - lo) / step_px)
            t0[i] = lo
        else:
            lens[i] = -1
    T = 1
    for i in range(n):
        T = max(T, lens[i])
    px = np.zeros((n, 3, T), np.float32)
    py = np.full((n, 3, T), -10.0, np.float32)
    offs = (-side_px, 0.0, side_px)
    for i in range(n):
        if lens[i] < 0:
            lens[i] = 0
            continue
        cx, cy, ux, uy = cu[i, 0], cu[i, 1], cu[i, 2], cu[i, 3]
        for r in range(3):
            ox, oy = offs[r] * -uy, offs[r] * ux
            for k in range(T):
                t = t0[i] + k * step_px
                px[i, r, k] = cx + t * ux + ox
                py[i, r, k] = cy + t * uy + oy
    return px, py, lens


def angle_between_deg(u: np.ndarray, v: np.ndarray) -> float:
    """Angle (0–90°) between two undirected lines of directions ``u`` and ``v``."""
    c = abs(float(u @ v)) / (float(np.linalg.norm(u) * np.linalg.norm(v)) + 1e-12)
    return float(np.degrees(np.arccos(min(1.0, c))))


def fit_line(xs: np.ndarray, ys: np.ndarray, ws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted total-least-squares line: (centroid (2,), unit direction (2,))."""
    w = ws / ws.sum()
    c = np.array([np.sum(w * xs), np.sum(w * ys)])
    dx, dy = xs - c[0], ys - c[1]
    cov = np.array([[np.sum(w * dx * dx), np.sum(w * dx * dy)],
                    [np.sum(w * dx * dy), np.sum(w * dy * dy)]])
    evals, evecs = np.linalg.eigh(cov)
    return c, evecs[:, 1]


def step_candidates(t: np.ndarray, con: np.ndarray, s_end: int, e_end: int, wdw: int,
                    tip_first: bool, min_step: float | None = None) -> np.ndarray:
    """Line parameters of the drops of ``con`` going toward the tip (mean over ``wdw``
    samples on the shaft side minus mean over ``wdw`` beyond), proximal to distal:
    searched from ``wdw`` samples inside the strong run's end ``s_end`` to ``wdw`` beyond
    the extended end ``e_end``, each a local maximum above ``min_step`` (default 40% of
    the largest); the largest alone if none is."""
    return R.step_candidates(t, con, s_end, e_end, wdw, tip_first,
                             0.0 if min_step is None else float(min_step), min_step is not None)


def step_tip(t: np.ndarray, con: np.ndarray, s_end: int, e_end: int, wdw: int,
             tip_first: bool, min_step: float | None = None) -> float:
    """The most distal of ``step_candidates``: a faint shaft beyond a bright part ends at
    its own end."""
    return float(step_candidates(t, con, s_end, e_end, wdw, tip_first, min_step)[-1])


def hough_peaks(acc: np.ndarray, n: int, min_frac: float = 0.0) -> list[tuple[int, int]]:
    """The ``n`` strongest accumulator cells (each at least ``min_frac`` of the first),
    each at least 7° or 7 px from the stronger ones (angle wraps with the mirrored rho);
    greedy over the 40·n strongest cells."""
    idx, val = K.top_cells(acc, 40 * n)  # (argpartition is slow on many tied zeros)
    if idx.size == 0:
        return []
    o = np.argsort(-val)
    idx, val = idx[o], val[o]
    ks, irs = np.divmod(idx, acc.shape[1])
    sel = _greedy_peaks(ks, irs, val.astype(np.float64), n, float(min_frac),
                        acc.shape[0], acc.shape[1])
    return [(int(ks[i]), int(irs[i])) for i in sel]


@njit(cache=True)
def _greedy_peaks(ks, irs, vals, n, min_frac, nt, nr):
    out = np.empty(n, np.int64)
    m = 0
    for i in range(ks.shape[0]):
        if m >= n or vals[i] < min_frac * vals[0]:
            break
        ok = True
        for j in range(m):
            a, b = ks[out[j]], irs[out[j]]
            dk = abs(ks[i] - a)
            if dk <= 6 and abs(irs[i] - b) <= 6:
                ok = False
                break
            if nt - dk <= 6 and abs(irs[i] - (nr - 1 - b)) <= 6:  # wrapped angle
                ok = False
                break
        if ok:
            out[m] = i
            m += 1
    return out[:m]


def screen_lines(img: np.ndarray, lines: list[tuple[np.ndarray, np.ndarray]], side_px: float,
                 box: int, run_k: float, gap: int, step_px: float = 1.0) -> np.ndarray:
    """Quick matched-filter SNR of each line (p0, u) on ``img``, all lines sampled in one
    remap every ``step_px``: on-line minus the brighter side profile (±``side_px``), the
    longest run above ``run_k``·σ after a ``box``-sample mean (gaps ≤ ``gap`` samples),
    SNR = mean contrast / σ · √(run length / 2 px). 0 for a line outside the image."""
    cu = np.array([[c[0], c[1], u[0], u[1]] for c, u in lines], np.float64)
    return screen_cu(img, cu.reshape(-1, 4), side_px, box, run_k, gap, step_px)


def screen_cu(img: np.ndarray, cu: np.ndarray, side_px: float, box: int, run_k: float,
              gap: int, step_px: float = 1.0) -> np.ndarray:
    """:func:`screen_lines` of lines given as rows (x, y, ux, uy) of ``cu``."""
    h, w = img.shape
    n = cu.shape[0]
    if n == 0:
        return np.zeros(0)
    px, py, lens = _screen_maps(np.ascontiguousarray(cu, np.float64), float(side_px),
                                float(step_px), w, h)
    T = px.shape[2]
    pr = cv2.remap(img, px.reshape(-1, T), py.reshape(-1, T), cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_CONSTANT, borderValue=0).reshape(n, 3, T)
    return _screen(pr, lens, box, run_k, gap, step_px)


@njit(cache=True)
def _screen(pr, lens, box, run_k, gap, step_px):
    n = pr.shape[0]
    out = np.zeros(n)
    for i in range(n):
        m = lens[i]
        if m < 8:
            continue
        s1 = pr[i, 0, :m]
        on = pr[i, 1, :m]
        s2 = pr[i, 2, :m]
        con = on - np.maximum(s1, s2)
        sd = np.std(s1 - s2) / math.sqrt(2.0) + 1e-4
        thr = run_k * sd / math.sqrt(box) * box  # on the box sum
        cs = np.zeros(m + 1)
        for j in range(m):
            cs[j + 1] = cs[j] + con[j]
        best_len, bs, be = -1, -1, -1
        start, last = -1, -1
        for j in range(m):
            lo = max(j - box // 2, 0)
            hi = min(lo + box, m)
            ok = (cs[hi] - cs[lo]) * box / (hi - lo) > thr
            if ok:
                if start < 0 or j - last > gap + 1:
                    start = j
                last = j
                if last - start > best_len:
                    best_len, bs, be = last - start, start, last
        if bs < 0:
            continue
        mean = (cs[be + 1] - cs[bs]) / (be - bs + 1)
        out[i] = mean / sd * math.sqrt(max(best_len * step_px, 1.0) / 2.0)
    return out


def half_max_tip(t: np.ndarray, con: np.ndarray, t_tip: float, tip_first: bool,
                 back: float, ahead: float, box: int) -> float:
    """Refined tip (line parameter): on the ``box``-smoothed contrast ``con`` (echo
    amplitude, not log), the most proximal fall below half of the peak found between
    ``back`` before and ``ahead`` beyond ``t_tip`` (distal = decreasing t if
    ``tip_first``), linearly interpolated; ``t_tip`` if there is no such fall."""
    c = np.convolve(con, np.ones(box, np.float32) / box, mode="same")
    if tip_first:  # make distal = increasing index
        c, t = c[::-1], t[::-1]
    sgn = -1.0 if tip_first else 1.0
    rel = sgn * (t - t_tip)
    win = np.flatnonzero((rel >= -back) & (rel <= ahead))
    if win.size < 3:
        return t_tip
    k = int(win[np.argmax(c[win])])
    peak = float(c[k])
    if peak <= 0:
        return t_tip
    below = np.flatnonzero(c[k:] < 0.5 * peak)
    if below.size == 0:
        return t_tip
    j = k + int(below[0])
    f = (c[j - 1] - 0.5 * peak) / (c[j - 1] - c[j] + 1e-12)
    return float(t[j - 1] + f * (t[j] - t[j - 1]))


def bend_contrast(img: np.ndarray, p: np.ndarray, d: np.ndarray, side_px: float,
                  length_px: float, angles_deg: tuple[float, ...]) -> float:
    """Largest ridge contrast (mean on-ray minus the brighter of two side rays ±``side_px``)
    along rays from ``p`` over ``length_px`` at ±``angles_deg`` from direction ``d``: a
    bright line that bends away from a straight segment's end scores high. Rays leaving
    the image (or a US sector: zero pixels) are skipped; 0 if all are."""
    t = np.arange(0.2 * length_px, length_px, 1.0)
    if t.size < 2 or not angles_deg:
        return 0.0
    r = np.radians(np.concatenate([np.asarray(angles_deg), -np.asarray(angles_deg)]))
    dx = d[0] * np.cos(r) - d[1] * np.sin(r)  # (R,) ray directions
    dy = d[0] * np.sin(r) + d[1] * np.cos(r)
    offs = np.array([-side_px, 0.0, side_px])
    # (R, 3, T) sample positions: p + t·dir + o·normal(dir)
    px = p[0] + t[None, None] * dx[:, None, None] - offs[None, :, None] * dy[:, None, None]
    py = p[1] + t[None, None] * dy[:, None, None] + offs[None, :, None] * dx[:, None, None]
    R, T = r.size, t.size
    pr = cv2.remap(img, px.reshape(-1, T).astype(np.float32), py.reshape(-1, T).astype(
        np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
        borderValue=0).reshape(R, 3, T)
    ok = np.all(pr[:, 0] > 0, axis=1) & np.all(pr[:, 2] > 0, axis=1)
    if not ok.any():
        return 0.0
    con = (pr[:, 1] - np.maximum(pr[:, 0], pr[:, 2])).mean(axis=1)
    return float(con[ok].max())


def sagitta_px(img: np.ndarray, p0: np.ndarray, u: np.ndarray, t0: float, t1: float,
               half_px: float) -> float:
    """Bow of a bright ridge along p0 + t·u, t0..t1: lateral ridge position (cross-profile
    peak within ±``half_px``, averaged over each third of the run) in the middle third
    minus the mean of the outer thirds, in pixels (≈ 0 for a straight needle)."""
    n = max(int(abs(t1 - t0)), 6)
    t = np.linspace(t0, t1, n)
    offs = np.arange(-half_px, half_px + 0.01, 0.5, dtype=np.float32)
    pr = line_profiles(img, p0, u, t, offs)
    pos = []
    for k in range(3):
        prof = pr[:, k * n // 3:(k + 1) * n // 3].mean(axis=1)
        j = int(np.argmax(prof))
        f = 0.0
        if 0 < j < prof.size - 1:
            den = prof[j - 1] - 2 * prof[j] + prof[j + 1]
            f = float(np.clip(0.5 * (prof[j - 1] - prof[j + 1]) / den, -0.5, 0.5)) if den < 0 \
                else 0.0
        pos.append(float(offs[j]) + 0.5 * f)
    return pos[1] - 0.5 * (pos[0] + pos[2])
