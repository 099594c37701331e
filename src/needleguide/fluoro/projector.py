"""Cone-beam line integrals through voxel volumes (numba Joseph ray marcher).

Joseph's method: each ray (focal spot → detector pixel centre) is marched one slice at a
time along its dominant voxel axis; in each slice the volume is sampled bilinearly at the
ray's crossing point, and the sum is scaled by the physical length of one step. The volume
is stored transposed so the marching axis is the slowest (slices contiguous) and the
detector column direction follows the fastest axis: neighbouring rays of a detector row
read neighbouring memory. Rays are clipped to the bounding box of the volume's non-zero
voxels (air contributes nothing), then detector rows run in parallel. float32 throughout.

Two-channel anatomy (soft-tissue- and bone-equivalent densities) is stored as a uint8 or
uint16 material-code volume (tissue labels, CT numbers) read through a table inside the
march: both channels share all the index arithmetic and the volume stays 1–2 bytes per
voxel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba as nb
import numpy as np

from needleguide import geometry


@nb.njit(cache=True, inline="always")
def _ray_setup(r, c, src, p00, dcol, drow, lo, hi, nk):  # pragma: no cover - jit
    """Ray through pixel (r, c) in index space, parametrised by the marching index k:
    point(k) = (k, a0 + k·sa, b0 + k·sb); returns a0, sa, b0, sb and the clipped k range."""
    pk = p00[0] + c * dcol[0] + r * drow[0]
    dk = pk - src[0]
    if abs(dk) < 1e-9:
        return 0.0, 0.0, 0.0, 0.0, 1, 0
    s_a = (p00[1] + c * dcol[1] + r * drow[1] - src[1]) / dk
    s_b = (p00[2] + c * dcol[2] + r * drow[2] - src[2]) / dk
    k0 = max(lo[0], min(src[0], pk))
    k1 = min(hi[0], max(src[0], pk))
    for ax, sl in ((1, s_a), (2, s_b)):
        if abs(sl) > 1e-12:
            ta = src[0] + (lo[ax] - src[ax]) / sl
            tb = src[0] + (hi[ax] - src[ax]) / sl
            k0 = max(k0, min(ta, tb))
            k1 = min(k1, max(ta, tb))
        elif src[ax] < lo[ax] or src[ax] > hi[ax]:
            k1 = k0 - 1.0
    ks = max(int(np.ceil(k0)), 0)
    ke = min(int(np.floor(k1)), nk - 1)
    return src[1] - src[0] * s_a, s_a, src[2] - src[0] * s_b, s_b, ks, ke


@nb.njit(cache=True, inline="always")
def _setup_row(r, ncols, src, p00, dcol, drow, lo, hi, nk, a0, sa, b0,
               sb):  # pragma: no cover - jit
    """Per-ray parameters of detector row ``r``; returns the union k range of its rays."""
    kmin = nk
    kmax = -1
    for c in range(ncols):
        x0, x1, x2, x3, k_s, k_e = _ray_setup(r, c, src, p00, dcol, drow, lo, hi, nk)
        a0[c] = x0
        sa[c] = x1
        b0[c] = x2
        sb[c] = x3
        if k_e >= k_s:
            kmin = min(kmin, k_s)
            kmax = max(kmax, k_e)
    return kmin, kmax


@nb.njit(cache=True, inline="always")
def _positions(k, ncols, a0, sa, b0, sb, na, nbb, idx, fa_, fb_):  # pragma: no cover - jit
    """First pass of one slice: each ray's flat index of its bilinear cell (clamped into
    the padded slice: a ray outside the box reads the zero border) and its fractions.
    No memory gathers here, so this loop vectorises."""
    kf = np.float32(k)
    amax = np.float32(na - 1.001)
    bmax = np.float32(nbb - 1.001)
    zero = np.float32(0.0)
    base = np.int64(k) * na * nbb
    for c in range(ncols):
        a = min(max(a0[c] + kf * sa[c], zero), amax)
        b = min(max(b0[c] + kf * sb[c], zero), bmax)
        ia = np.int32(a)
        ib = np.int32(b)
        fa_[c] = a - np.float32(ia)
        fb_[c] = b - np.float32(ib)
        idx[c] = base + ia * nbb + ib


@nb.njit(cache=True, parallel=True, fastmath=True, boundscheck=False)
def _joseph_f32(vol, shape, src, p00, dcol, drow, nrows, ncols, lo, hi,
                out):  # pragma: no cover - jit
    """Slice-major Joseph on a flat float32 volume (k, a, b), C order, whose a and b faces
    carry a border of zeros. src, p00, dcol, drow: geometry in that index space (order k,
    a, b); lo, hi: index box of non-zero voxels; out (nrows, ncols): sum of one bilinear
    sample per slice k. Each detector row marches its rays together slice by slice, so the
    inner loops over columns read neighbouring memory; per slice, a first pass computes
    the cells and fractions (vectorised), a second gathers and interpolates."""
    nk, na, nbb = shape[0], shape[1], shape[2]
    for r in nb.prange(nrows):
        a0 = np.empty(ncols, np.float32)
        sa = np.empty(ncols, np.float32)
        b0 = np.empty(ncols, np.float32)
        sb = np.empty(ncols, np.float32)
        acc = np.zeros(ncols, np.float32)
        idx = np.empty(ncols, np.int64)
        fa_ = np.empty(ncols, np.float32)
        fb_ = np.empty(ncols, np.float32)
        kmin, kmax = _setup_row(r, ncols, src, p00, dcol, drow, lo, hi, nk, a0, sa, b0, sb)
        for k in range(kmin, kmax + 1):
            _positions(k, ncols, a0, sa, b0, sb, na, nbb, idx, fa_, fb_)
            for c in range(ncols):
                p = idx[c]
                fa = fa_[c]
                fb = fb_[c]
                v00 = vol[p]
                v01 = vol[p + 1]
                v10 = vol[p + nbb]
                v11 = vol[p + nbb + 1]
                top = v00 + fb * (v01 - v00)
                bot = v10 + fb * (v11 - v10)
                acc[c] += top + fa * (bot - top)
        for c in range(ncols):
            out[r, c] = acc[c]


@nb.njit(cache=True, parallel=True, fastmath=True, boundscheck=False)
def _joseph_lut2(lab, lut0, lut1, shape, src, p00, dcol, drow, nrows, ncols, lo, hi,
                 out):  # pragma: no cover - jit
    """As :func:`_joseph_f32` for a flat uint8 or uint16 code volume whose two channels
    are read through the tables ``lut0`` / ``lut1`` (N,) float32 (code 0 → 0) before
    bilinear interpolation; out (nrows, ncols, 2)."""
    nk, na, nbb = shape[0], shape[1], shape[2]
    for r in nb.prange(nrows):
        a0 = np.empty(ncols, np.float32)
        sa = np.empty(ncols, np.float32)
        b0 = np.empty(ncols, np.float32)
        sb = np.empty(ncols, np.float32)
        acc0 = np.zeros(ncols, np.float32)
        acc1 = np.zeros(ncols, np.float32)
        idx = np.empty(ncols, np.int64)
        fa_ = np.empty(ncols, np.float32)
        fb_ = np.empty(ncols, np.float32)
        kmin, kmax = _setup_row(r, ncols, src, p00, dcol, drow, lo, hi, nk, a0, sa, b0, sb)
        for k in range(kmin, kmax + 1):
            _positions(k, ncols, a0, sa, b0, sb, na, nbb, idx, fa_, fb_)
            for c in range(ncols):
                p = idx[c]
                fa = fa_[c]
                fb = fb_[c]
                l00 = lab[p]
                l01 = lab[p + 1]
                l10 = lab[p + nbb]
                l11 = lab[p + nbb + 1]
                w00 = (1 - fa) * (1 - fb)
                w01 = (1 - fa) * fb
                w10 = fa * (1 - fb)
                w11 = fa * fb
                acc0[c] += (w00 * lut0[l00] + w01 * lut0[l01] + w10 * lut0[l10]
                            + w11 * lut0[l11])
                acc1[c] += (w00 * lut1[l00] + w01 * lut1[l01] + w10 * lut1[l10]
                            + w11 * lut1[l11])
        for c in range(ncols):
            out[r, c, 0] = acc0[c]
            out[r, c, 1] = acc1[c]


@dataclass
class ProjectionVolume:
    """A voxel volume ready for projection, with its ``VoxelToPatient`` affine.

    Either float ``values`` (i, j, k): one channel of per-mm quantities (μ in 1/mm ...);
    or uint8 / uint16 material codes ``values`` (i, j, k) plus ``lut`` (N, 2): two
    channels read through the table (e.g. soft- and bone-equivalent densities, g/cm³, of
    each code) — 4–8× less memory than two float channels. :meth:`project` returns line integrals
    (value × mm), shape (rows, cols, C). One transposed copy is cached.
    """

    values: np.ndarray
    VoxelToPatient: np.ndarray
    lut: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.lut is not None:
            self.lut = np.ascontiguousarray(self.lut, dtype=np.float32).reshape(-1, 2)
            if not 2 <= len(self.lut) <= 65536:
                raise ValueError("lut must have 2 to 65536 rows (one per material code)")
            dt = np.uint8 if len(self.lut) <= 256 and self.values.dtype == np.uint8 \
                else np.uint16
            if np.asarray(self.values).max(initial=0) >= len(self.lut):
                raise ValueError("a material code has no row in lut")
            self.values = np.asarray(self.values, dtype=dt)
            if np.any(self.lut[0] != 0):
                raise ValueError("lut[0] must be zero (code 0 pads the volume)")
            nz = np.any(self.lut != 0, axis=1)[self.values]
        else:
            self.values = np.asarray(self.values, dtype=np.float32)
            nz = self.values != 0
        if self.values.ndim != 3:
            raise ValueError("values must be a 3-D volume (i, j, k)")
        self.VoxelToPatient = np.asarray(self.VoxelToPatient, dtype=float)
        self._lo = np.zeros(3)
        self._hi = -np.ones(3)
        if nz.any():
            for d in range(3):
                idx = np.flatnonzero(nz.any(axis=tuple(a for a in range(3) if a != d)))
                self._lo[d], self._hi[d] = idx[0], idx[-1]

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray] | None:
        """RAS bounding box (min, max) of the non-zero voxels' centres, or None if empty."""
        if self._hi[0] < self._lo[0]:
            return None
        corners = np.array([[a, b, c] for a in (self._lo[0], self._hi[0])
                            for b in (self._lo[1], self._hi[1])
                            for c in (self._lo[2], self._hi[2])])
        pts = geometry.apply(self.VoxelToPatient, corners)
        return pts.min(axis=0), pts.max(axis=0)

    @property
    def channels(self) -> int:
        return 1 if self.lut is None else 2

    def _layout(self, order: tuple[int, int, int]) -> np.ndarray:
        """Transposed copy (k, a, b) with a one-voxel zero border on the a and b faces."""
        if order not in self._cache:
            self._cache.clear()  # keep one transposed copy (memory)
            v = self.values.transpose(order)
            out = np.zeros((v.shape[0], v.shape[1] + 2, v.shape[2] + 2), v.dtype)
            out[:, 1:-1, 1:-1] = v
            self._cache[order] = out
        return self._cache[order]

    def project(self, source_mm, p00_mm, dcol_mm, drow_mm, rows: int, cols: int) -> np.ndarray:
        """Line integrals (rows, cols, C), float32, in value × mm, for rays from
        ``source_mm`` to detector pixels at ``p00 + c·dcol + r·drow`` (all RAS mm)."""
        inv = np.linalg.inv(self.VoxelToPatient)
        s = geometry.apply(inv, np.asarray(source_mm, float))
        p0 = geometry.apply(inv, np.asarray(p00_mm, float))
        dc = geometry.apply_vector(inv, np.asarray(dcol_mm, float))
        dr = geometry.apply_vector(inv, np.asarray(drow_mm, float))
        centre = p0 + dc * (cols - 1) / 2 + dr * (rows - 1) / 2
        # Joseph: march along the axis the rays cross most voxels of
        k_axis = int(np.argmax(np.abs(centre - s)))
        rest = [a for a in range(3) if a != k_axis]
        b_axis = rest[int(np.argmax([abs(dc[a]) for a in rest]))]
        order = (k_axis, 3 - k_axis - b_axis, b_axis)
        out = np.zeros((rows, cols, self.channels), dtype=np.float32)
        if self._hi[0] < self._lo[0]:
            return out
        vol = self._layout(order)
        shape = np.array(vol.shape, dtype=np.int64)
        idx = list(order)
        pad = np.array([0.0, 1.0, 1.0])  # index shift of the zero border
        lo = self._lo[idx] + pad
        hi = self._hi[idx] + pad
        args = (shape, s[idx] + pad, p0[idx] + pad, dc[idx], dr[idx], rows, cols, lo, hi)
        if self.lut is None:
            out1 = np.zeros((rows, cols), np.float32)
            _joseph_f32(vol.ravel(), *args, out1)
            out[..., 0] = out1
        else:
            _joseph_lut2(vol.ravel(), np.ascontiguousarray(self.lut[:, 0]),
                         np.ascontiguousarray(self.lut[:, 1]), *args, out)
        # physical length of one k-step along each ray
        pix = (p0[None, None, :] + np.arange(cols)[None, :, None] * dc
               + np.arange(rows)[:, None, None] * dr) - s
        phys = geometry.apply_vector(self.VoxelToPatient, pix)
        step_mm = (np.linalg.norm(phys, axis=-1) / np.abs(pix[..., k_axis])).astype(np.float32)
        out *= step_mm[..., None]
        return out
