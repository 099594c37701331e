"""The direction of the ultrasound beams in a B-mode frame, from its pixels alone.

A linear array fires parallel beams (straight down the image, or tilted by the steering
angle); a curvilinear or phased array fires them from a virtual apex above the image. The
scanned area shows which: its left and right borders are the outermost beams. The area is
the largest connected part of what is lit (screen text and scales are apart from it),
filled to its convex hull (black bone shadows cut into it, never out of it). Each border
is fitted as a line ``col = a + b·row`` (least squares over the rows where the area is
lit, with the rows where it is clipped by the image's sides left out); parallel borders
(slopes within ``PARALLEL`` of each other) mean parallel beams along their mean slope,
converging borders an apex where they meet.

Used by the needle-from-motion analyser: whatever changes along a beam under a moving
needle (its shadow, its reverberation tail) moves with it, so a direction that follows the
beam is not the needle's (an in-plane needle crosses the beams at ≥ 20°)."""

from __future__ import annotations

import cv2
import numpy as np

PARALLEL = 0.02  # border slopes (col per row) closer than this: parallel beams
MIN_ROWS = 8  # lit rows needed on each border
TOL_PX = 2.0  # rows this close to the upper half's line belong to the border


class BeamField:
    """The beams of one scanned area (pixel units of the image it was fitted on).

    ``apex``: (col, row) of the virtual apex of converging beams, else None; ``slope``:
    the beams' col-per-row slope when they are parallel."""

    def __init__(self, apex: tuple[float, float] | None, slope: float = 0.0):
        self.apex = apex
        self.slope = slope

    def direction(self, col: float, row: float) -> np.ndarray:
        """The unit direction (col, row) of the beam through a pixel, pointing deeper."""
        if self.apex is None:
            v = np.array([self.slope, 1.0])
        else:
            v = np.array([col - self.apex[0], row - self.apex[1]], float)
            if v[1] <= 0.0:
                v = np.array([0.0, 1.0])
        return v / float(np.hypot(v[0], v[1]))


def _border(rows: np.ndarray, cols: np.ndarray) -> tuple[float, float] | None:
    """``col = a + b·row`` through a border: fitted on its upper half, then on every row
    within ``TOL_PX`` of that line (the rows of the scan's curved top and bottom left
    out)."""
    if rows.size < MIN_ROWS:
        return None
    r, c = rows.astype(float), cols.astype(float)
    b, a = np.polyfit(r[: max(MIN_ROWS, r.size // 2)], c[: max(MIN_ROWS, r.size // 2)], 1)
    near = np.abs(c - (a + b * r)) <= TOL_PX
    if int(near.sum()) >= MIN_ROWS:
        b, a = np.polyfit(r[near], c[near], 1)
    return float(a), float(b)


def scan_hull(lit: np.ndarray) -> np.ndarray | None:
    """The scan in ``lit`` (bool image): its largest connected part (the rest: screen text
    and marks), filled to its convex hull (black shadows only ever cut into the scan, the
    beams bound it); uint8 0/1, None when nothing is lit. The hull is that of the part's
    outer boundary pixels: the same vertices as of all its pixels, in a fifth of the time."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats(lit.astype(np.uint8), connectivity=8)
    if n < 2:
        return None
    scan = (lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    edge, _ = cv2.findContours(scan, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.fillConvexPoly(scan, cv2.convexHull(np.concatenate(edge)), 1)
    return scan


def beam_field(lit: np.ndarray) -> BeamField | None:
    """The beams of a scanned area (``lit``: bool image, True where the frame was ever
    non-black; its largest connected part is the scan, the rest screen text and marks),
    or None when the area is too small to tell (a straight-down field is then the
    caller's fallback)."""
    scan = scan_hull(lit)
    if scan is None:
        return None
    lit = scan.astype(bool)
    h, w = lit.shape
    any_row = lit.any(axis=1)
    rows = np.flatnonzero(any_row)
    if rows.size < MIN_ROWS:
        return None
    first = np.argmax(lit[rows], axis=1)
    last = w - 1 - np.argmax(lit[rows, ::-1], axis=1)
    inner = slice(rows.size // 10, rows.size - rows.size // 10)  # the curved top and bottom
    rows, first, last = rows[inner], first[inner], last[inner]
    left = _border(rows[first > 0], first[first > 0])
    right = _border(rows[last < w - 1], last[last < w - 1])
    if left is None or right is None:
        side = left or right
        return BeamField(None, side[1] if side is not None else 0.0)
    (al, bl), (ar, br) = left, right
    if abs(bl - br) < PARALLEL:
        return BeamField(None, 0.5 * (bl + br))
    r0 = (ar - al) / (bl - br)
    return BeamField((al + bl * r0, r0))


class ScannedArea:
    """The scanned area of a run of frames of one probe set-up (pixels ever non-black)
    and its beams, refitted every ``every`` frames as the area fills in (dark shadows
    leave holes in any one frame), when it has grown since the last fit."""

    def __init__(self, every: int = 10):
        self.every = every
        self.lit: np.ndarray | None = None
        self._field: BeamField | None = None
        self._age = 0
        self._count = -1  # lit pixels at the last fit

    def add(self, img: np.ndarray) -> None:
        """One frame (any dtype; 0 = black); a change of size starts afresh."""
        if self.lit is None or self.lit.shape != img.shape:
            self.lit, self._field, self._count = img > 0, None, -1
        else:
            np.logical_or(self.lit, img > 0, out=self.lit)
        self._age += 1

    def clear(self) -> None:
        self.lit, self._field, self._count = None, None, -1

    def beam(self, col: float, row: float) -> np.ndarray | None:
        """The beam's unit direction (col, row; deeper) through a pixel, or None."""
        if self.lit is None:
            return None
        if self._field is None or self._age >= self.every:
            n = int(np.count_nonzero(self.lit))
            if n != self._count:  # (the same area: the same beams)
                self._field, self._count = beam_field(self.lit), n
            self._age = 0
        return None if self._field is None else self._field.direction(col, row)


__all__ = ["BeamField", "ScannedArea", "beam_field", "scan_hull"]
