"""Fitting the level labeller's learned parts from labelled frames (tuning seeds only).

Only numpy / scipy: L2-regularised logistic and softmax regression (L-BFGS), the training
examples of the disc filter and of the vertebra classifier from a frame and its truth
(vertebra name → body centre px, as ``frame.truth.vertebrae_px``), and the temperature
that calibrates the count's posterior. Used by ``scripts/train_levels_spine.py``; the
analysers themselves only read the fitted weights (``levels_model.npz``).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from needleguide.guidance.levels_column import WORK_MM, Column
from needleguide.guidance.levels_discs import disc_descriptors, folded


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = 1e-2,
                 sample_w: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Binary logistic regression: (weights, bias) minimising the weighted mean
    cross-entropy + ``l2`` × |w|²."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    sw = np.ones(len(y)) if sample_w is None else np.asarray(sample_w, float)
    sw = sw / sw.sum()

    def f(theta):
        w, b = theta[:-1], theta[-1]
        z = X @ w + b
        lp = -np.logaddexp(0, -z)
        lq = -np.logaddexp(0, z)
        loss = -(sw * (y * lp + (1 - y) * lq)).sum() + l2 * (w @ w)
        g = sw * (1 / (1 + np.exp(-z)) - y)
        return loss, np.concatenate([X.T @ g + 2 * l2 * w, [g.sum()]])

    r = minimize(f, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                 options={"maxiter": 500})
    return r.x[:-1], float(r.x[-1])


def fit_softmax(X: np.ndarray, y: np.ndarray, k: int, l2: float = 1e-2,
                sample_w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression over ``k`` classes: (W (d, k), b (k,))."""
    X = np.asarray(X, np.float64)
    n, d = X.shape
    Y = np.zeros((n, k))
    Y[np.arange(n), np.asarray(y, int)] = 1.0
    sw = np.ones(n) if sample_w is None else np.asarray(sample_w, float)
    sw = (sw / sw.sum())[:, None]

    def f(theta):
        W = theta[:d * k].reshape(d, k)
        b = theta[d * k:]
        Z = X @ W + b
        Z = Z - Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        loss = -(sw * Y * np.log(P + 1e-12)).sum() + l2 * (W * W).sum()
        G = sw * (P - Y)
        return loss, np.concatenate([(X.T @ G + 2 * l2 * W).ravel(), G.sum(axis=0)])

    r = minimize(f, np.zeros(d * k + k), jac=True, method="L-BFGS-B",
                 options={"maxiter": 800})
    return r.x[:d * k].reshape(d, k), r.x[d * k:]


def fit_mlp(X: np.ndarray, y: np.ndarray, hidden: int = 48, l2: float = 1e-4,
            seed: int = 0, maxiter: int = 400
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One tanh hidden layer, logistic output: (W1, b1, w2, b2) minimising the mean
    cross-entropy + ``l2`` × (|W1|² + |w2|²), from a seeded start (L-BFGS)."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    n, d = X.shape
    h = hidden
    th0 = np.concatenate([rng.normal(0, 1 / np.sqrt(d), d * h), np.zeros(h),
                          rng.normal(0, 1 / np.sqrt(h), h), [0.0]])

    def unpack(th):
        return (th[:d * h].reshape(d, h), th[d * h:d * h + h], th[d * h + h:d * h + 2 * h],
                th[-1])

    def f(th):
        W1, b1, w2, b2 = unpack(th)
        A = np.tanh(X @ W1 + b1)
        z = A @ w2 + b2
        loss = np.mean(np.logaddexp(0, -z) * y + np.logaddexp(0, z) * (1 - y)) \
            + l2 * ((W1 ** 2).sum() + (w2 ** 2).sum())
        g = (1 / (1 + np.exp(-z)) - y) / n
        gA = np.outer(g, w2) * (1 - A ** 2)
        return loss, np.concatenate([(X.T @ gA + 2 * l2 * W1).ravel(), gA.sum(0),
                                     A.T @ g + 2 * l2 * w2, [g.sum()]])

    r = minimize(f, th0, jac=True, method="L-BFGS-B", options={"maxiter": maxiter})
    W1, b1, w2, b2 = unpack(r.x)
    return W1, b1, w2, float(b2)


def fit_softmax_mlp(X: np.ndarray, y: np.ndarray, k: int, hidden: int = 32,
                    l2: float = 1e-3, sample_w: np.ndarray | None = None, seed: int = 0,
                    maxiter: int = 600
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Softmax over ``k`` classes after one tanh hidden layer: (H, hb, W, b)."""
    rng = np.random.default_rng(seed)
    X = np.asarray(X, np.float64)
    n, d = X.shape
    h = hidden
    Y = np.zeros((n, k))
    Y[np.arange(n), np.asarray(y, int)] = 1.0
    sw = np.ones(n) if sample_w is None else np.asarray(sample_w, float)
    sw = (sw / sw.sum())[:, None]
    sizes = (d * h, h, h * k, k)
    th0 = np.concatenate([rng.normal(0, 1 / np.sqrt(d), d * h), np.zeros(h),
                          rng.normal(0, 1 / np.sqrt(h), h * k), np.zeros(k)])

    def unpack(th):
        a = np.cumsum((0,) + sizes)
        return (th[a[0]:a[1]].reshape(d, h), th[a[1]:a[2]], th[a[2]:a[3]].reshape(h, k),
                th[a[3]:a[4]])

    def f(th):
        H, hb, W, b = unpack(th)
        A = np.tanh(X @ H + hb)
        Z = A @ W + b
        Z = Z - Z.max(axis=1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(axis=1, keepdims=True)
        loss = -(sw * Y * np.log(P + 1e-12)).sum() + l2 * ((H * H).sum() + (W * W).sum())
        G = sw * (P - Y)
        GA = (G @ W.T) * (1 - A * A)
        return loss, np.concatenate([(X.T @ GA + 2 * l2 * H).ravel(), GA.sum(0),
                                     (A.T @ G + 2 * l2 * W).ravel(), G.sum(0)])

    r = minimize(f, th0, jac=True, method="L-BFGS-B", options={"maxiter": maxiter})
    return unpack(r.x)


def truth_rows(col: Column, truth: dict[str, tuple[float, float]], max_mm: float = 12.0
               ) -> dict[str, float]:
    """Strip row of every truth vertebra centre lying within ``max_mm`` of the traced
    column (the others are where the trace went astray)."""
    out = {}
    for name, (c, r) in truth.items():
        p = np.array([c, r]) * col.scale
        d = np.sum((col.path - p) ** 2, axis=1)
        k = int(np.argmin(d))
        if np.sqrt(d[k]) * WORK_MM <= max_mm:
            out[name] = float(k)
    return out


def truth_discs(rows: dict[str, float], order: list[str]) -> list[tuple[float, float]]:
    """(row, pitch mm) of the disc between every two neighbouring vertebrae in view."""
    names = sorted(rows, key=order.index)
    out = []
    for a, b in zip(names[:-1], names[1:], strict=False):
        if order.index(b) == order.index(a) + 1:
            out.append((0.5 * (rows[a] + rows[b]), abs(rows[b] - rows[a]) * WORK_MM))
    return out


def disc_examples(col: Column, rows: dict[str, float], order: list[str],
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positive (disc at its pitch) and negative (elsewhere, or at half, two-thirds, one
    and a half or double the pitch) descriptors of one frame."""
    discs = truth_discs(rows, order)
    if len(discs) < 2:
        return np.zeros((0, 300)), np.zeros(0)
    st = col.filled
    cum = (folded(st), folded(np.gradient(st, axis=0)))
    n = col.strip.shape[0]
    td = np.array([d[0] for d in discs])
    pd = np.array([d[1] for d in discs])
    X, y = [], []

    def add(t, p, lab):
        t = np.asarray(t, float)
        ok = (t >= 0) & (t <= n - 1)
        if ok.any():
            X.append(disc_descriptors(cum, float(p), t[ok]))
            y.extend([lab] * int(ok.sum()))

    for t, p in discs:
        for f in (0.95, 1.0, 1.05):
            add([t - 1, t, t + 1], p * f, 1)
        add([t], p * 0.5, 0)
        add([t], p * 2.0, 0)
        # two-thirds and one and a half of the pitch: a chain of lamina or pedicle edges
        add([t, t + p / 1.5 / WORK_MM], p / 1.5, 0)
        add([t], p * 1.5, 0)
        add([t + 0.5 * p / WORK_MM, t - 0.5 * p / WORK_MM], p, 0)
        add([t + 0.5 * p / WORK_MM], p * 0.5, 0)
    names = sorted(rows, key=order.index)
    lo, hi = td.min() - 0.5 * pd[0] / WORK_MM, td.max() + 0.5 * pd[-1] / WORK_MM
    # beyond the column's ends (skull above C1, sacrum below S1) there is no disc
    lo_ok = names[0] == "C1"
    hi_ok = names[-1] == "S1"
    for _ in range(12):
        t = rng.uniform(0, n - 1)
        p_loc = float(np.interp(t, td, pd))
        far = np.min(np.abs(td - t)) > 0.25 * p_loc / WORK_MM
        if lo <= t <= hi and far:
            add([t], p_loc * rng.uniform(0.85, 1.15), 0)
        elif (t < lo and lo_ok) or (t > hi and hi_ok):
            add([t], float(rng.uniform(14, 45)), 0)
    if not X:
        return np.zeros((0, 300)), np.zeros(0)
    return np.concatenate(X), np.asarray(y, float)


def vertebra_names(col: Column, verts: list, truth: dict[str, tuple[float, float]],
                   order: list[str]) -> list[str | None]:
    """The truth name of each vertebra of the chain: the truth vertebra within 0.35 pitch
    of it on the strip; above C1 'SK1', below S1 'S2'; None when neither."""
    rows = truth_rows(col, truth, max_mm=25.0)
    names = sorted(rows, key=order.index)
    out: list[str | None] = []
    for v in verts:
        best = None
        if rows:
            nm = min(rows, key=lambda q: abs(rows[q] - v.t))
            if abs(rows[nm] - v.t) < 0.35 * v.pitch_mm / WORK_MM:
                best = nm
        if best is None and names:
            if names[0] == "C1" and v.t < rows["C1"]:
                best = "SK1"
            elif names[-1] == "S1" and v.t > rows["S1"]:
                best = "S2"
        out.append(best)
    return out


def fit_temperature(posts: list[tuple[np.ndarray, int]], grid=np.geomspace(0.05, 2, 25)
                    ) -> float:
    """Temperature that maximises the mean log posterior of the true offsets, from
    (per-offset log-likelihood sums, true offset) pairs."""
    best, tau = np.inf, 1.0
    for t in grid:
        nll = 0.0
        for S, o in posts:
            z = S * t
            z = z - z.max()
            nll -= z[o] - np.log(np.exp(z).sum())
        if nll < best:
            best, tau = nll, float(t)
    return tau


__all__ = ["fit_logistic", "fit_softmax", "fit_mlp", "fit_softmax_mlp", "vertebra_names",
           "fit_temperature", "truth_rows", "truth_discs", "disc_examples"]
