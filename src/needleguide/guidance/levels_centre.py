"""Where each vertebral body lies across the traced column, on lateral and oblique views.

The traced column (``levels_column``) follows whatever is most column-like: on a lateral
that is often the articular pillars or the pedicles behind the bodies (in the neck by a
quarter pitch), on an oblique the pedicle ("the Scotty dog's eye") rather than the body.
Names are read from the strip along that path; the *position* of each label is moved onto
the body here. On an AP view the path is already on the midline (the symmetry energy), so
nothing moves.

For every vertebra, candidate centres at ``CAND_P`` pitches across the path are scored by a
small network (one tanh layer) on a descriptor sampled from the straightened strip around
the candidate in pitch units: rows −0.4 … +0.4 pitch × columns −0.8 … +0.8 pitch, plain and
high-passed image, oriented so that anterior (lateral) or the side the beam comes from
(oblique) is always the same way, plus the candidate's offset and the view. The best
candidate, refined by a parabola through its neighbours' scores, is the body centre; one
that strays from its neighbours' (``smooth_offsets``) takes theirs, except the sacrum.
Fitted by ``scripts/train_levels_spine.py`` (``centre_examples`` on tuning frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.levels_column import WORK_MM, Column
from needleguide.guidance.levels_vertebra import Vert, view_of

CAND_P = np.linspace(-0.8, 0.8, 17)
ROWS_P = np.array([-0.4, -0.2, 0.0, 0.2, 0.4])
COLS_P = np.linspace(-0.8, 0.8, 9)
N_DESC = len(ROWS_P) * len(COLS_P) * 2 + 3


@dataclass(frozen=True)
class CentreNet:
    """Body-centre scorer: descriptor mean / sd, hidden layer (W1, b1), output (w2, b2)."""

    mu: np.ndarray
    sd: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float

    def logits(self, X: np.ndarray) -> np.ndarray:
        return np.tanh(((X - self.mu) / self.sd) @ self.W1 + self.b1) @ self.w2 + self.b2


def moves(frame: Frame) -> tuple[bool, int]:
    """(whether labels are moved on this view, the sign that turns strip u into the
    oriented across axis): lateral and oblique views move, AP views do not."""
    lateral, sin_o, sgn = view_of(frame)
    return lateral or sin_o > 0.2, -sgn


def descriptors(col: Column, v: Vert, sign: int, frame: Frame) -> np.ndarray:
    """(len(CAND_P), N_DESC) descriptors of vertebra ``v``'s candidate centres (the plain
    and high-passed strip, ``Column.raw_z`` and ``Column.filled``)."""
    rw, hp = col.raw_z, col.filled
    lateral, sin_o, _ = view_of(frame)
    U = col.strip.shape[1] // 2
    p = v.pitch_mm / WORK_MM
    cu = (CAND_P[:, None] + COLS_P[None, :]) * p * sign + U          # (17, 9) strip column
    mx = np.broadcast_to(cu[:, None, :], (CAND_P.size, ROWS_P.size, COLS_P.size))
    my = np.broadcast_to((v.t + ROWS_P * p)[None, :, None], mx.shape)
    mx = np.ascontiguousarray(mx.reshape(CAND_P.size, -1), np.float32)
    my = np.ascontiguousarray(my.reshape(CAND_P.size, -1), np.float32)
    a = cv2.remap(rw, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    b = cv2.remap(hp, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    extra = np.stack([CAND_P, np.full(CAND_P.size, float(lateral)),
                      np.full(CAND_P.size, sin_o)], axis=1)
    return np.concatenate([a, b, extra], axis=1).astype(np.float32)


def body_offsets(col: Column, verts: list[Vert], frame: Frame, net: CentreNet | None,
                 turns: np.ndarray | None = None) -> np.ndarray:
    """Across offset (mm, strip u) of every vertebra's body centre from the traced path;
    zeros on AP views or without a fitted scorer. ``turns``: vertebrae where the column
    may turn (the sacrum), kept out of the smoothing."""
    out = np.zeros(len(verts))
    move, sign = moves(frame)
    if net is None or not move or not verts:
        return out
    for k, v in enumerate(verts):
        z = net.logits(descriptors(col, v, sign, frame))
        j = int(np.argmax(z))
        frac = 0.0
        if 0 < j < len(z) - 1:
            den = z[j - 1] - 2 * z[j] + z[j + 1]
            if den < 0:
                frac = float(np.clip(0.5 * (z[j - 1] - z[j + 1]) / den, -0.5, 0.5))
        step = CAND_P[1] - CAND_P[0]
        out[k] = (CAND_P[j] + frac * step) * v.pitch_mm * sign
    return smooth_offsets(out, np.array([v.pitch_mm for v in verts]), turns)


def smooth_offsets(u_mm: np.ndarray, pitch_mm: np.ndarray, turns: np.ndarray | None = None,
                   tol: float = 0.3) -> np.ndarray:
    """Bodies form a smooth column: an offset more than ``tol`` pitch from the median of
    its neighbourhood (itself and one either side; the first or last three at the ends)
    is replaced by that median — except where the column turns (``turns``: the sacrum,
    tilted some 40° to the lumbar column, sits off the lumbar bodies' line)."""
    n = len(u_mm)
    if n < 3:
        return u_mm
    out = u_mm.copy()
    for k in range(n):
        if turns is not None and turns[k]:
            continue
        a = min(max(k - 1, 0), n - 3)
        med = float(np.median(u_mm[a:a + 3]))
        if abs(u_mm[k] - med) > tol * pitch_mm[k]:
            out[k] = med
    return out


def across_mm(col: Column, t: float, px: tuple[float, float]) -> tuple[float, float]:
    """(across offset in strip u mm, along offset in strip rows) of frame pixel ``px``
    from strip row ``t``'s path point."""
    k = int(np.clip(round(t), 0, len(col.path) - 1))
    q = np.asarray(px, float) * col.scale - col.path[k]
    n = col.normal[k]
    return float(q @ n) * WORK_MM, float(-q[0] * n[1] + q[1] * n[0])


def centre_examples(col: Column, verts: list[Vert], names: list[str | None],
                    truth: dict[str, tuple[float, float]], frame: Frame
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Training descriptors of the candidates of every named vertebra whose truth centre
    lies within 0.3 pitch along and 0.8 pitch across; label 1 for the candidate nearest
    the truth (and its neighbour when the truth falls between)."""
    move, sign = moves(frame)
    if not move:
        return np.zeros((0, N_DESC)), np.zeros(0)
    X, y = [], []
    for v, nm in zip(verts, names, strict=True):
        if nm is None or nm not in truth:
            continue
        a_mm, along = across_mm(col, v.t, truth[nm])
        a = a_mm * sign / v.pitch_mm
        if abs(along) > 0.3 * v.pitch_mm / WORK_MM or abs(a) > CAND_P[-1]:
            continue
        X.append(descriptors(col, v, sign, frame))
        y.append((np.abs(CAND_P - a) < 0.6 * (CAND_P[1] - CAND_P[0])).astype(float))
    if not X:
        return np.zeros((0, N_DESC)), np.zeros(0)
    return np.concatenate(X), np.concatenate(y)


__all__ = ["CentreNet", "body_offsets", "centre_examples", "descriptors", "across_mm",
           "moves", "smooth_offsets", "CAND_P", "N_DESC"]
