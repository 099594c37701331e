"""The vertebral column in any fluoroscopy view: traced and straightened.

Reads only pixels and the frame's spacing / C-arm settings. Steps (all at a working grid
of ``WORK_MM`` per pixel at the isocentre, so a 256² or 512² frame costs the same):

1. Bone bright in [0, 1]; high-passed (local mean and contrast over ±``NORM_MM``, taken on
   a 4× coarser grid) so that lungs, abdomen and display windows look alike.
2. The column: end plates are horizontal edges across a body, so the vertical-gradient
   energy averaged over 14 mm across is largest along the column; bodies are also bright
   bands between two walls (``wall_energy``: the best pair of opposite horizontal edges
   7–30 mm either side). On an AP view the column is also mirror-symmetric about its
   midline (``sym_energy``: pedicles, transverse processes, the sacral foramina and the
   iliac wings pair up only there), which keeps the path on the bodies rather than on a
   row of pedicles or foramina. A dynamic programme finds the smoothest top-to-bottom
   path through these energies (stiffer on AP and oblique views, where the column bends
   little; the lordoses and the kyphosis bend it on a lateral).
3. The strip: the image resampled along the path (``t`` caudal, ``WORK_MM`` per row) and
   across it (``u`` mm, + = image right, ±``HALF_U_MM``): the column straightened, its
   disc spaces horizontal. Discs, vertebrae and their features are read from it
   (``levels_discs``, ``levels_vertebra``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import cv2
import numba as nb
import numpy as np

from needleguide.frame import Frame

WORK_MM = 1.25
NORM_MM = 20.0
HALF_U_MM = 95.0


def iso_pixel_mm(frame: Frame) -> float:
    """Pixel size at the isocentre (mm): detector pixel × SOD / SID (the frame's spacing
    when the C-arm geometry is unknown)."""
    s = frame.settings
    pix = float(s.get("pixel_mm", frame.spacing_mm[0]))
    if "sod_mm" in s and "sid_mm" in s:
        return pix * float(s["sod_mm"]) / float(s["sid_mm"])
    return float(frame.spacing_mm[0])


def bone_bright(frame: Frame) -> np.ndarray:
    """Float32 image in [0, 1] with bone bright (display polarity from the settings)."""
    g = np.asarray(frame.pixels, np.float32)
    if g.ndim == 3:
        g = g.mean(axis=2)
    lo, hi = float(g.min()), float(g.max())
    if hi > 1.5 or lo < -0.5:
        g = (g - lo) / max(hi - lo, 1e-6)
    if frame.settings.get("display", "white-bone") == "black-bone":
        g = 1.0 - g
    return np.clip(g, 0.0, 1.0)


@dataclass
class Column:
    """The traced column of one frame.

    scale: work px per frame px; path: (N, 2) work (x, y) of each strip row (t = 0 … N−1,
    ``WORK_MM`` apart, caudal); normal: (N, 2) unit normals (image right); strip: (N, 2U+1)
    the straightened high-passed image (u = −U … U); raw: the same of the plain image;
    half_mm: body half width (mm) along the strip (from the body walls); shape: the
    working image's shape."""

    scale: float
    path: np.ndarray
    normal: np.ndarray
    strip: np.ndarray
    raw: np.ndarray
    half_mm: np.ndarray
    shape: tuple[int, int]

    @property
    def u0(self) -> int:
        return self.strip.shape[1] // 2

    @cached_property
    def filled(self) -> np.ndarray:
        """The high-passed strip with its outside-the-image samples (NaN) at 0."""
        return np.nan_to_num(self.strip, nan=0.0).astype(np.float32)

    @cached_property
    def raw_z(self) -> np.ndarray:
        """The plain strip less its median over its own standard deviation (+ 1e-3);
        outside the image 0."""
        raw = self.raw
        med = float(np.nanmedian(raw)) if np.isfinite(raw).any() else 0.0
        return (np.nan_to_num(raw - med, nan=0.0) / (float(np.nanstd(raw)) + 1e-3)
                ).astype(np.float32)

    def to_frame_px(self, t: float, u_mm: float = 0.0) -> tuple[float, float]:
        """Frame pixel (col, row) of strip row ``t`` (float), ``u_mm`` across."""
        i = float(np.clip(t, 0, len(self.path) - 1))
        k = int(min(i, len(self.path) - 2))
        w = i - k
        p = (1 - w) * self.path[k] + w * self.path[k + 1]
        n = (1 - w) * self.normal[k] + w * self.normal[k + 1]
        q = p + n * (u_mm / WORK_MM)
        return float(q[0] / self.scale), float(q[1] / self.scale)


@nb.njit(cache=True)
def _dp_path(E: np.ndarray, step_cost: float) -> np.ndarray:
    h, w = E.shape
    acc = E[0].copy()
    back = np.zeros((h, w), np.int8)
    for r in range(1, h):
        new = np.empty(w)
        for c in range(w):
            best = acc[c]
            arg = 0
            if c > 0 and acc[c - 1] - step_cost > best:
                best = acc[c - 1] - step_cost
                arg = -1
            if c < w - 1 and acc[c + 1] - step_cost > best:
                best = acc[c + 1] - step_cost
                arg = 1
            new[c] = best + E[r, c]
            back[r, c] = arg
        acc = new
    path = np.empty(h, np.int64)
    c = int(np.argmax(acc))
    for r in range(h - 1, -1, -1):
        path[r] = c
        c += back[r, c]
    return path


def work_image(frame: Frame) -> tuple[np.ndarray, np.ndarray, float]:
    """(plain, high-passed) bone-bright images on the working grid, and the scale. The
    local mean and contrast (Gaussian, σ ``NORM_MM``) are taken on a 4× coarser grid."""
    g = bone_bright(frame)
    scale = iso_pixel_mm(frame) / WORK_MM
    h, w = g.shape
    size = (max(16, int(round(w * scale))), max(16, int(round(h * scale))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    gw = cv2.resize(g, size, interpolation=interp)
    small = cv2.resize(gw, (max(4, size[0] // 4), max(4, size[1] // 4)),
                       interpolation=cv2.INTER_AREA)
    s = NORM_MM / WORK_MM / 4.0
    m = cv2.resize(cv2.GaussianBlur(small, (0, 0), s), size, interpolation=cv2.INTER_LINEAR)
    d = gw - m
    d2 = cv2.resize(d * d, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
    sd = np.sqrt(cv2.resize(cv2.GaussianBlur(d2, (0, 0), s), size,
                            interpolation=cv2.INTER_LINEAR)) + 0.02
    return gw, (d / sd).astype(np.float32), float(gw.shape[1] / w)


@nb.njit(cache=True)
def _walls(gx: np.ndarray, ks: np.ndarray, mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = gx.shape
    best = np.zeros((h, w), np.float32)
    arg = np.zeros((h, w), np.float32)
    for r in range(h):
        for c in range(w):
            b = np.float32(0.0)
            a = np.float32(0.0)
            for q in range(ks.size):
                k = ks[q]
                if c - k < 0 or c + k >= w:
                    break
                e = gx[r, c - k] - gx[r, c + k]
                if e > b:
                    b = e
                    a = mm[q]
            best[r, c] = b
            arg[r, c] = a
    return best, arg


def wall_energy(hp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Body-wall pairs: for every pixel, the best (over half widths 7–30 mm) difference of
    the horizontal gradient ``w`` to its left and right (a bright band with sharp walls
    centred there), averaged over 10 mm along; returns (energy, half width in mm)."""
    gx = cv2.Sobel(hp, cv2.CV_32F, 1, 0, ksize=3)
    gx = cv2.blur(gx, (1, int(10.0 / WORK_MM) | 1))
    mm = np.arange(7.0, 30.5, 2.0).astype(np.float32)
    ks = np.rint(mm / WORK_MM).astype(np.int64)
    return _walls(gx, ks, mm)


@nb.njit(cache=True)
def _mirror(hp: np.ndarray, xmax: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = hp.shape
    num = np.zeros((h, w), np.float32)
    den = np.zeros((h, w), np.float32)
    for r in range(h):
        for c in range(w):
            a = np.float32(0.0)
            b = np.float32(0.0)
            for x in range(1, xmax + 1):
                if c - x < 0 or c + x >= w:
                    break
                p = hp[r, c + x]
                q = hp[r, c - x]
                a += abs(p - q)
                b += abs(p) + abs(q)
            num[r, c] = a
            den[r, c] = b
    return num, den


SYM_HALF_MM = 25.0


def sym_energy(hp: np.ndarray) -> np.ndarray:
    """Mirror symmetry about every pixel's vertical line, in [0, 1]: one minus the summed
    |left − right| differences of the high-passed image over their summed magnitudes, out
    to ``SYM_HALF_MM`` either side and over 10 mm along (1: perfectly symmetric)."""
    num, den = _mirror(np.ascontiguousarray(hp, np.float32), int(SYM_HALF_MM / WORK_MM))
    k = int(10.0 / WORK_MM) | 1
    return 1.0 - cv2.blur(num, (1, k)) / (cv2.blur(den, (1, k)) + 1e-3)


WALL_WEIGHT = 0.5


def sym_weight(settings: dict) -> float:
    """Weight of the symmetry energy: 1 on an AP view (|sin orbit| ≤ 0.2), fading to 0 at
    |sin orbit| = 0.35 (20°): an oblique or lateral column is not mirror-symmetric; 0 when
    the view is unknown unless the settings say ``view: ap``."""
    o = settings.get("orbit_deg")
    if o is None:
        return 1.0 if settings.get("view") == "ap" else 0.0
    return float(np.clip((0.35 - abs(np.sin(np.radians(float(o))))) / 0.15, 0.0, 1.0))


def trace(hp: np.ndarray, stiff: bool = False, sym: float = 0.0
          ) -> tuple[np.ndarray, np.ndarray]:
    """Column (work x) for every work row and the body half width (mm) along it: the
    smoothest path through the end-plate energy (vertical gradient over 14 mm across), the
    body-wall energy (``wall_energy``) and, weighted by ``sym``, the mirror symmetry
    (``sym_energy``)."""
    ey = np.abs(cv2.Sobel(hp, cv2.CV_32F, 0, 1, ksize=3))
    k = int(14.0 / WORK_MM) | 1
    E1 = cv2.blur(ey, (k, int(5.0 / WORK_MM) | 1))
    E2, half = wall_energy(hp)
    h, w = E1.shape
    edge = np.minimum(np.arange(w), w - 1 - np.arange(w)) * WORK_MM
    fade = np.clip(edge / 20.0, 0.0, 1.0)[None, :]
    E = (E1 / (float(np.percentile(E1, 99)) + 1e-6)
         + WALL_WEIGHT * np.maximum(E2, 0) / (float(np.percentile(E2, 99)) + 1e-6))
    if sym > 0:
        E = E + sym * sym_energy(hp)
    E = E * fade
    path = _dp_path(E.astype(np.float64), 0.6 if stiff else 0.15).astype(np.float32)
    path = cv2.GaussianBlur(path.reshape(-1, 1), (1, 0), 10.0 / WORK_MM).ravel()
    ci = np.clip(np.rint(path).astype(int), 0, w - 1)
    hw = half[np.arange(h), ci]
    hw = cv2.GaussianBlur(hw.reshape(-1, 1).astype(np.float32), (1, 0), 15.0 / WORK_MM).ravel()
    return path, hw


def straighten(img: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                          np.ndarray]:
    """(path (N, 2), normals (N, 2), strip (N, 2U+1)) of ``img`` along ``col``, rows at
    ``WORK_MM`` arc length."""
    h = col.size
    y = np.arange(h, dtype=np.float64)
    dx = np.gradient(col.astype(np.float64))
    seg = np.sqrt(1.0 + dx * dx)
    s = np.concatenate([[0.0], np.cumsum(0.5 * (seg[1:] + seg[:-1]))])
    ts = np.arange(0.0, s[-1], 1.0)
    py = np.interp(ts, s, y)
    px = np.interp(ts, s, col)
    tx = np.interp(ts, s, dx)
    nrm = np.sqrt(1.0 + tx * tx)
    normal = np.stack([1.0 / nrm, -tx / nrm], axis=1)
    U = int(HALF_U_MM / WORK_MM)
    u = np.arange(-U, U + 1, dtype=np.float64)
    mx = (px[:, None] + u[None, :] * normal[:, 0:1]).astype(np.float32)
    my = (py[:, None] + u[None, :] * normal[:, 1:2]).astype(np.float32)
    strip = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                      borderValue=float("nan"))
    return np.stack([px, py], axis=1), normal, strip


def column(frame: Frame) -> Column:
    """Trace and straighten the column of ``frame`` (see the module docstring)."""
    gw, hp, scale = work_image(frame)
    # an AP or oblique column bends little (scoliosis aside): a stiffer path there
    o = frame.settings.get("orbit_deg")
    col, hw = trace(hp, stiff=o is not None and abs(np.sin(np.radians(float(o)))) < 0.8,
                    sym=sym_weight(frame.settings))
    path, normal, strip = straighten(hp, col)
    _, _, raw = straighten(gw, col)
    half = np.interp(path[:, 1], np.arange(hw.size), hw)
    return Column(scale, path, normal, strip, raw, half, gw.shape)


__all__ = ["Column", "column", "iso_pixel_mm", "bone_bright", "sym_energy", "sym_weight",
           "WORK_MM", "HALF_U_MM"]
