"""Vertebrae between the discs, and what each looks like (features for the classifier).

A vertebra lies between two neighbouring discs of the chain (``levels_discs``); one more
is added above the first disc and below the last when its centre (half a pitch away) is
still in the image. Its features are read from the straightened strip around it, in
units that do not depend on the region: rows at −1.5 … +1.5 pitch (7 rows: the vertebra,
its neighbours and what lies beyond them — the skull above C1, the sacrum below L5) and 8
bands across at fixed distances (0–92 mm: body, pedicles and transverse processes, ribs,
iliac wings, lungs, the neck's edge); per cell the mean of the high-passed strip, of its
along-column gradient magnitude (end plates, ribs) and of the plain image. On an AP or
oblique view the two sides are folded (their mean and their absolute difference: mirror
images look alike); on a lateral (|orbit| within 25° of 90°) the sides are kept, the
anterior first. Scalars: pitch (mm), its ratio to the neighbours', body half width,
whether the vertebra closes the chain at either end and how far the strip goes beyond it,
and the view (lateral, |sin orbit|).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.levels_column import WORK_MM, Column

ROWS_P = np.array([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
BANDS_MM = np.array([0.0, 6.0, 12.0, 20.0, 30.0, 42.0, 56.0, 72.0, 92.0])
N_SCALAR = 10
N_FEAT = len(ROWS_P) * (len(BANDS_MM) - 1) * 2 * 3 + N_SCALAR


@dataclass
class Vert:
    """One vertebra of the chain: strip row of its centre, pitch (mm), whether a seen
    disc bounds it above / below."""

    t: float
    pitch_mm: float
    disc_above: bool
    disc_below: bool


def vertebrae(disc_t: np.ndarray, disc_p: np.ndarray, n_rows: int,
              valid: np.ndarray) -> list[Vert]:
    """Vertebrae between the discs (cranial first), and one beyond each end when its
    centre is still in the image."""
    out: list[Vert] = []
    m = len(disc_t)
    if m == 0:
        return out
    first = disc_t[0] - 0.5 * disc_p[0] / WORK_MM
    if 0 <= first <= n_rows - 1 and valid[int(round(first))]:
        out.append(Vert(float(first), float(disc_p[0]), False, True))
    for i in range(m - 1):
        p = (disc_t[i + 1] - disc_t[i]) * WORK_MM
        out.append(Vert(float(0.5 * (disc_t[i] + disc_t[i + 1])), float(p), True, True))
    last = disc_t[-1] + 0.5 * disc_p[-1] / WORK_MM
    if 0 <= last <= n_rows - 1 and valid[int(round(last))]:
        out.append(Vert(float(last), float(disc_p[-1]), True, False))
    return out


def view_of(frame: Frame) -> tuple[bool, float, int]:
    """(lateral?, |sin orbit|, sign that puts anterior at −u) from the C-arm settings."""
    s = frame.settings
    if "orbit_deg" not in s:
        return s.get("view") == "lateral", 1.0 if s.get("view") == "lateral" else 0.0, 1
    o = float(s["orbit_deg"])
    lateral = abs(abs(o) - 90.0) <= 25.0
    # orbit > 0: detector on the patient's right, anterior on the image left (−u)
    return lateral, abs(np.sin(np.radians(o))), 1 if o > 0 else -1


def _cells(img: np.ndarray, t_rows: np.ndarray, half: int, u_sign: int, lateral: bool
           ) -> np.ndarray:
    """Mean of ``img`` (strip) in each (row band, u band) cell: (n_v, 7, 8, 2)."""
    n, m = img.shape
    U = m // 2
    x = np.nan_to_num(img, nan=0.0)
    if u_sign < 0:
        x = x[:, ::-1]
    edges = np.clip(np.rint(BANDS_MM / WORK_MM).astype(int), 0, U)
    cs_r = np.concatenate([np.zeros((n, 1), np.float32), np.cumsum(x[:, U:], axis=1)],
                          axis=1)
    left = x[:, :U + 1][:, ::-1]
    cs_l = np.concatenate([np.zeros((n, 1), np.float32), np.cumsum(left, axis=1)], axis=1)
    w = np.maximum(np.diff(edges), 1)
    R = (cs_r[:, edges[1:]] - cs_r[:, edges[:-1]]) / w
    L = (cs_l[:, edges[1:]] - cs_l[:, edges[:-1]]) / w
    # rows: average over ±half rows around each sample (pitch/4)
    k = max(1, int(half))
    Rb = cv2.blur(R.astype(np.float32), (1, 2 * k + 1))
    Lb = cv2.blur(L.astype(np.float32), (1, 2 * k + 1))
    ti = np.clip(np.rint(t_rows).astype(int), 0, n - 1)
    out = np.stack([Lb[ti], Rb[ti]], axis=-1)  # anterior (−u) first on a lateral
    if not lateral:
        a, b = out[..., 0], out[..., 1]
        out = np.stack([0.5 * (a + b), 0.5 * np.abs(a - b)], axis=-1)
    return out


def features(col: Column, verts: list[Vert], frame: Frame) -> np.ndarray:
    """Feature matrix (len(verts), N_FEAT) of the chain's vertebrae (module docstring)."""
    if not verts:
        return np.zeros((0, N_FEAT), np.float32)
    lateral, sin_o, sgn = view_of(frame)
    u_sign = sgn if lateral else 1
    n = col.strip.shape[0]
    hp = col.filled
    gt = np.abs(np.gradient(hp, axis=0))
    rw = col.raw_z
    t = np.array([v.t for v in verts])
    p = np.array([v.pitch_mm for v in verts]) / WORK_MM
    rows = t[:, None] + ROWS_P[None, :] * p[:, None]
    inside = ((rows >= 0) & (rows <= n - 1)).astype(np.float32)
    half = float(np.median(p)) / 4.0
    F = []
    for img in (hp, gt, rw):
        c = _cells(img, rows.ravel(), half, u_sign, lateral).reshape(len(verts), -1, 8, 2)
        F.append((c * inside[:, :, None, None]).reshape(len(verts), -1))
    pm = p * WORK_MM
    prev = np.concatenate([[pm[0]], pm[:-1]])
    nxt = np.concatenate([pm[1:], [pm[-1]]])
    half_w = np.interp(t, np.arange(col.half_mm.size), col.half_mm)
    sc = np.stack([pm / 30.0, np.log(prev / pm), np.log(nxt / pm), half_w / 20.0,
                   [float(not v.disc_above) for v in verts],
                   [float(not v.disc_below) for v in verts],
                   np.minimum(t / p, 3.0) / 3.0, np.minimum((n - 1 - t) / p, 3.0) / 3.0,
                   np.full(len(verts), float(lateral)), np.full(len(verts), sin_o)], axis=1)
    return np.concatenate([*F, sc], axis=1).astype(np.float32)


__all__ = ["Vert", "vertebrae", "features", "view_of", "N_FEAT"]
