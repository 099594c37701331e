"""Disc spaces along the straightened column, at a pitch read from the image.

A disc is recognised by a learned linear filter on a *scale-free* descriptor: the
straightened, high-passed strip (``levels_column``) around a row ``t`` sampled at 25 rows
over ±1 pitch and in 6 bands across (in pitch units, both sides folded), normalised to
zero mean and unit variance. The filter is applied at every row for 22 pitches (12–48 mm,
log-spaced): at the true pitch a disc, its end plates and the discs one pitch above and
below line up with what the filter learned; at half or double the pitch they do not.
A dynamic programme then picks the chain of discs (row, pitch) whose spacing follows the
local pitch (±12 %, the pitch drifting at most one step per level; one missed disc
bridged at a cost) with the most evidence. The filter's weights come from the tuning
seeds (``levels_fit``, ``scripts/train_levels_spine.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from needleguide.guidance.levels_column import WORK_MM

PITCHES_MM = np.geomspace(12.0, 48.0, 16)
K_ROWS = 12  # rows each side (25 in all) over ±1 pitch
U_EDGES = np.array([0.0, 0.08, 0.18, 0.30, 0.45, 0.62, 0.85])  # in pitch units
N_DESC = (2 * K_ROWS + 1) * (len(U_EDGES) - 1)


def folded(strip: np.ndarray) -> np.ndarray:
    """Cumulative sums over |u| of the strip folded about its axis (n_t, U + 2)."""
    s = np.nan_to_num(strip, nan=0.0).astype(np.float32)
    U = s.shape[1] // 2
    f = np.empty((s.shape[0], U + 1), np.float32)
    f[:, 0] = s[:, U]
    f[:, 1:] = 0.5 * (s[:, U + 1:] + s[:, U - 1::-1][:, :U])
    return np.concatenate([np.zeros((s.shape[0], 1), np.float32), np.cumsum(f, axis=1)],
                          axis=1)


def descriptors(cum: np.ndarray, pitch_mm: float, t: np.ndarray) -> np.ndarray:
    """Normalised descriptors (len(t), N_DESC) at strip rows ``t`` for ``pitch_mm``."""
    n = cum.shape[0]
    B = _bins(cum, pitch_mm)
    off = np.arange(-K_ROWS, K_ROWS + 1) * (pitch_mm / K_ROWS / WORK_MM)
    pos = np.clip(np.asarray(t, float)[:, None] + off[None, :], 0.0, n - 1.0)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (pos - i0)[..., None]
    D = (B[i0] * (1 - w) + B[i1] * w).reshape(len(t), -1)
    D = D - D.mean(axis=1, keepdims=True)
    return D / (D.std(axis=1, keepdims=True) + 1e-3)


def disc_descriptors(cums: tuple[np.ndarray, np.ndarray], pitch_mm: float,
                     t: np.ndarray) -> np.ndarray:
    """Descriptors of the strip and of its along-column gradient, side by side
    (len(t), 2 · N_DESC)."""
    return np.concatenate([descriptors(cums[0], pitch_mm, t),
                           descriptors(cums[1], pitch_mm, t)], axis=1)


@dataclass(frozen=True)
class DiscFilter:
    """The learned disc filter: a linear pre-filter (all rows and pitches) and a small
    neural network (one tanh layer) on the candidates it keeps."""

    lin_w: np.ndarray
    lin_b: float
    W1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float

    def net(self, X: np.ndarray) -> np.ndarray:
        return np.tanh(X @ self.W1 + self.b1) @ self.w2 + self.b2


def _bins(cum: np.ndarray, pitch_mm: float) -> np.ndarray:
    """Band means (n_t, 6) of a folded cumulative strip at ``pitch_mm``."""
    m = cum.shape[1]
    edges = np.clip(np.rint(U_EDGES * pitch_mm / WORK_MM).astype(int), 0, m - 1)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, m - 1)
    width = np.maximum(np.diff(edges), 1)
    return ((cum[:, edges[1:]] - cum[:, edges[:-1]]) / width[None, :]).astype(np.float64)


@nb.njit(cache=True)
def _desc_rows(B1: np.ndarray, B2: np.ndarray, off: np.ndarray, rows: np.ndarray
               ) -> np.ndarray:
    """``disc_descriptors`` at the given rows, from the band means of both channels."""
    n, nb_ = B1.shape
    k = off.size
    d = k * nb_
    out = np.empty((rows.size, 2 * d))
    for q in range(rows.size):
        t = rows[q]
        for ch in range(2):
            B = B1 if ch == 0 else B2
            base = ch * d
            s = 0.0
            for r in range(k):
                pos = min(max(t + off[r], 0.0), n - 1.0)
                i0 = int(pos)
                i1 = min(i0 + 1, n - 1)
                f = pos - i0
                for c in range(nb_):
                    v = B[i0, c] * (1.0 - f) + B[i1, c] * f
                    out[q, base + r * nb_ + c] = v
                    s += v
            mean = s / d
            ss = 0.0
            for j in range(d):
                ss += (out[q, base + j] - mean) ** 2
            sd = np.sqrt(ss / d) + 1e-3
            for j in range(d):
                out[q, base + j] = (out[q, base + j] - mean) / sd
    return out


@nb.njit(cache=True)
def _lin_fast(B: np.ndarray, Wr: np.ndarray, off: np.ndarray) -> np.ndarray:
    """One channel's part of the pre-filter logit at every row: w·(D − mean)/sd of the
    descriptor D built by ``descriptors``, from per-row dot products, sums, squares and
    neighbour products (O(rows × 25) instead of O(rows × 150))."""
    n, nb_ = B.shape
    k = off.size
    d = k * nb_
    BW = B @ Wr.T  # (n, 25)
    s = np.zeros(n)
    q = np.zeros(n)
    x = np.zeros(n)
    for t in range(n):
        for c in range(nb_):
            s[t] += B[t, c]
            q[t] += B[t, c] * B[t, c]
            if t + 1 < n:
                x[t] += B[t, c] * B[t + 1, c]
    wsum = Wr.sum()
    out = np.empty(n)
    for t in range(n):
        wd = 0.0
        sm = 0.0
        ss = 0.0
        for r in range(k):
            pos = min(max(t + off[r], 0.0), n - 1.0)
            i0 = int(pos)
            i1 = min(i0 + 1, n - 1)
            f = pos - i0
            wd += (1.0 - f) * BW[i0, r] + f * BW[i1, r]
            sm += (1.0 - f) * s[i0] + f * s[i1]
            if i1 == i0:
                ss += q[i0]
            else:
                ss += (1.0 - f) ** 2 * q[i0] + 2.0 * f * (1.0 - f) * x[i0] + f * f * q[i1]
        mean = sm / d
        var = max(ss / d - mean * mean, 0.0)
        out[t] = (wd - mean * wsum) / (np.sqrt(var) + 1e-3)
    return out


def disc_scores(strip: np.ndarray, f: DiscFilter, keep_logit: float = -4.0) -> np.ndarray:
    """Logit of 'a disc at row t at pitch p' (n_t, len(PITCHES_MM)): the network's where
    the linear pre-filter passes ``keep_logit`` at a local maximum along the column, −20
    elsewhere."""
    s = np.nan_to_num(strip, nan=0.0).astype(np.float32)
    cums = (folded(s), folded(np.gradient(s, axis=0)))
    n = s.shape[0]
    out = np.full((n, PITCHES_MM.size), -20.0, np.float32)
    half = f.lin_w.size // 2
    W1r = np.ascontiguousarray(f.lin_w[:half].reshape(2 * K_ROWS + 1, -1), np.float64)
    W2r = np.ascontiguousarray(f.lin_w[half:].reshape(2 * K_ROWS + 1, -1), np.float64)
    for j, p in enumerate(PITCHES_MM):
        off = np.arange(-K_ROWS, K_ROWS + 1) * (float(p) / K_ROWS / WORK_MM)
        B1, B2 = _bins(cums[0], float(p)), _bins(cums[1], float(p))
        z = _lin_fast(B1, W1r, off) + _lin_fast(B2, W2r, off) + float(f.lin_b)
        zp = np.pad(z, 2, mode="edge")
        peak = (z >= zp[:-4]) & (z >= zp[1:-3]) & (z >= zp[3:-1]) & (z >= zp[4:])
        sel = np.flatnonzero(peak & (z > keep_logit))
        if sel.size:
            out[sel, j] = f.net(_desc_rows(B1, B2, off, sel.astype(np.float64)))
    return out


@nb.njit(cache=True)
def _chain(cand_t: np.ndarray, S: np.ndarray, pitch_px: np.ndarray, reward: float,
           tol: float, miss_cost: float) -> tuple[np.ndarray, np.ndarray]:
    nc, npch = S.shape
    V = np.full((nc, npch), -1e9)
    back_i = np.full((nc, npch), -1, np.int64)
    back_j = np.full((nc, npch), -1, np.int64)
    for i in range(nc):
        for j in range(npch):
            best = 0.0
            bi, bj = -1, -1
            for i2 in range(i):
                g = cand_t[i] - cand_t[i2]
                for j2 in range(max(0, j - 1), min(npch, j + 2)):
                    if V[i2, j2] < -1e8:
                        continue
                    p = 0.5 * (pitch_px[j] + pitch_px[j2])
                    r = g / p
                    if 0.75 < r < 1.3:
                        c = ((r - 1.0) / tol) ** 2
                    elif 1.7 < r < 2.3:
                        c = ((r - 2.0) / (1.5 * tol)) ** 2 + miss_cost
                    else:
                        continue
                    v = V[i2, j2] - c
                    if v > best:
                        best, bi, bj = v, i2, j2
            V[i, j] = best + S[i, j] + reward
            back_i[i, j] = bi
            back_j[i, j] = bj
    flat = np.argmax(V)
    i, j = flat // npch, flat % npch
    n = 0
    ti = np.empty(nc, np.int64)
    tj = np.empty(nc, np.int64)
    while i >= 0:
        ti[n] = i
        tj[n] = j
        n += 1
        i, j = back_i[i, j], back_j[i, j]
    return ti[:n][::-1], tj[:n][::-1]


@dataclass
class Discs:
    """Chain of disc spaces: strip rows (cranial first), local pitch (mm) and logit of
    each, plus the score table."""

    t: np.ndarray
    pitch_mm: np.ndarray
    logit: np.ndarray
    scores: np.ndarray


def find_discs(strip: np.ndarray, f: DiscFilter, reward: float = 1.5,
               tol: float = 0.12, miss_cost: float = 4.0) -> Discs:
    """The best chain of discs (module docstring)."""
    from scipy.signal import find_peaks

    S = disc_scores(strip, f)
    valid = np.isfinite(strip[:, strip.shape[1] // 2])
    best = np.where(valid, S.max(axis=1), -20.0)
    pk, _ = find_peaks(np.concatenate([[-30.0], best, [-30.0]]), distance=3)
    pk = pk - 1
    pk = pk[best[pk] > -3.0]
    if pk.size == 0:
        return Discs(np.zeros(0), np.zeros(0), np.zeros(0), S)
    ti, tj = _chain(pk.astype(np.float64), S[pk].astype(np.float64),
                    PITCHES_MM / WORK_MM, reward, tol, miss_cost)
    t = pk[ti].astype(float)
    p = PITCHES_MM[tj]
    lg = S[pk[ti], tj].astype(float)
    # a gap of two pitches bridged a missed disc: put it back, half-way (logit -inf)
    tt, pp, ll = [t[0]] if t.size else [], [p[0]] if t.size else [], [lg[0]] if t.size else []
    for k in range(1, t.size):
        if (t[k] - t[k - 1]) * WORK_MM > 1.5 * 0.5 * (p[k] + p[k - 1]):
            tt.append(0.5 * (t[k] + t[k - 1]))
            pp.append(0.5 * (p[k] + p[k - 1]))
            ll.append(-np.inf)
        tt.append(t[k])
        pp.append(p[k])
        ll.append(lg[k])
    return Discs(np.asarray(tt), np.asarray(pp), np.asarray(ll), S)


__all__ = ["Discs", "DiscFilter", "find_discs", "descriptors", "disc_descriptors", "folded",
           "disc_scores", "PITCHES_MM", "N_DESC"]
