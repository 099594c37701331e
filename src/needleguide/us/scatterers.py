"""The scatterers of the B-mode simulator: a complex Gaussian field fixed in the patient.

Random numbers come from a table of complex Gaussians made once per seed
(:func:`gaussian_table`); a scatterer indexes it by a hash of its patient-space lattice
cell (:func:`cell_index`), or blends the 8 cells around it (:func:`cell_interp`, the
``speckle_subcell`` option: continuous under sub-cell motion). Muscle adds the
fibro-adipose septa (:func:`muscle_texture`). Used by ``kernels.sample_medium``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from needleguide.us.tissue_motion import drag_magnitude, drag_near, near_span

TABLE_BITS = 16  # 512 kB: receiver noise and clutter phases, read in runs along the lines
# the scatterers' table, read at random (hashed cells, several per sample): 32 kB stays in
# the first-level cache (a 512 kB table cost ≈ 1 ms more per 192 × 607 frame, one thread)
SCATTER_TABLE_BITS = 12
NOISE_STREAM = 0x05C1
SCATTER_STREAM = 0x5CA7


def gaussian_table(seed: int, bits: int = TABLE_BITS, stream: int = NOISE_STREAM
                   ) -> np.ndarray:
    """2**bits circular complex Gaussian numbers with E|z|² = 1 (complex64), from the
    random stream (seed, ``stream``)."""
    rng = np.random.default_rng([int(seed), int(stream)])
    z = rng.standard_normal((2, 1 << bits)) * np.sqrt(0.5)
    return (z[0] + 1j * z[1]).astype(np.complex64)


@njit(cache=True, inline="always")
def mix64(x):
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True, inline="always")
def cell_hash(i, j, k, seed, mask):
    """The table index of lattice cell (i, j, k) (int64) for ``seed``."""
    h = np.uint64(i * 73856093) ^ np.uint64(j * 19349663) ^ np.uint64(k * 83492791) \
        ^ (np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15))
    return np.int64(mix64(h) & np.uint64(mask))


@njit(cache=True, inline="always")
def cell_index(x, y, z, inv, seed, mask):
    """The table index of the lattice cell holding (x, y, z) (``inv``: 1 / cell size)."""
    return cell_hash(np.int64(math.floor(x * inv)), np.int64(math.floor(y * inv)),
                     np.int64(math.floor(z * inv)), seed, mask)


# the blend correlates neighbouring range samples (they share cells), so the PSF sums them
# to more power: −1.7 dB keeps the mean speckle power of the nearest-cell field (measured:
# +1.8 dB linear 7.5 MHz, +1.6 dB curvilinear 3.5 MHz without it; tests/test_us_subcell.py
# checks other probes and frequencies within 0.5 dB)
SUBCELL_GAIN = 10.0 ** (-1.7 / 20.0)


@njit(cache=True, inline="always")
def cell_interp(x, y, z, inv, seed, mask, table):
    """The scatterer field between lattice cells: the trilinear blend of the 8 cells
    around (x, y, z) (cell centres), divided by the root of the weights' sum of squares so
    that its variance stays 1 everywhere; continuous, so a sub-cell move changes it a
    little instead of redrawing some samples whole."""
    fx, fy, fz = x * inv - 0.5, y * inv - 0.5, z * inv - 0.5
    i0, j0, k0 = math.floor(fx), math.floor(fy), math.floor(fz)
    tx, ty, tz = fx - i0, fy - j0, fz - k0
    acc = np.complex64(0.0)
    w2 = 0.0
    for a in range(2):
        wa = tx if a else 1.0 - tx
        for b in range(2):
            wb = wa * (ty if b else 1.0 - ty)
            for c in range(2):
                w = wb * (tz if c else 1.0 - tz)
                acc += w * table[cell_hash(np.int64(i0 + a), np.int64(j0 + b),
                                           np.int64(k0 + c), seed, mask)]
                w2 += w * w
    return acc * np.float32(SUBCELL_GAIN / math.sqrt(w2))


SEPTUM_CELL_MM = 0.9  # fibre bundle (perimysium) spacing across the fibres
SEPTUM_LENGTH_MM = 8.0  # along the fibres (patient superior axis)
SEPTUM_FRACTION = 0.18
SEPTUM_GAIN = 3.16  # +10 dB amplitude
_MUSCLE_BASE = 1.0 / math.sqrt(1.0 - SEPTUM_FRACTION + SEPTUM_FRACTION * SEPTUM_GAIN**2)


@njit(cache=True, inline="always")
def _cell_factor(h0, kz):
    h = mix64(h0 ^ np.uint64(kz * 97531))
    u = (h >> np.uint64(11)) * (1.0 / 9007199254740992.0)
    return _MUSCLE_BASE * (SEPTUM_GAIN if u < SEPTUM_FRACTION else 1.0)


SEPTUM_RAMP_MM = 0.2  # blended: the factor ramps across a column's border over this width
SEPTUM_RAMP_Z_MM = 1.0  # … and between the cells along a column (≈ the elevation slice)
# the mean factor squared: a blend Σ w_c f_c of independent cells has the mean square
# S2 + (1 − S2)·E[f]² (S2 = Σ w_c², E[f²] = 1), divided out to keep the mean intensity
_SEPTUM_MEAN2 = (_MUSCLE_BASE * (1.0 - SEPTUM_FRACTION + SEPTUM_FRACTION * SEPTUM_GAIN)) ** 2


@njit(cache=True, inline="always")
def _ramp(t, cell, ramp):
    """(weight of the neighbouring cell, the neighbour's side ±1) at fractional position
    ``t`` (0 … 1) within a cell ``cell`` mm long: a linear ramp ``ramp`` mm wide about
    each border, ½ at the border."""
    side = 1 if t >= 0.5 else -1
    d = 0.5 - abs(t - 0.5)  # from the nearer border, in cells
    return min(max(0.5 - d * (cell / ramp), 0.0), 1.0), side


@njit(cache=True, inline="always")
def _septum(i, j, z, seed, blend):
    """The amplitude factor of fibre column (i, j) at z and the sum of its cells' squared
    weights (see :func:`muscle_texture`)."""
    h0 = mix64(np.uint64(i * 2654435761) ^ np.uint64(j * 40503) ^ np.uint64(seed + 17))
    off = (h0 & np.uint64(1023)) * (SEPTUM_LENGTH_MM / 1024.0)
    fz = (z + off) / SEPTUM_LENGTH_MM
    kz = np.int64(math.floor(fz))
    f = _cell_factor(h0, kz)
    if not blend:
        return f, 1.0
    w, side = _ramp(fz - kz, SEPTUM_LENGTH_MM, SEPTUM_RAMP_Z_MM)
    if w == 0.0:
        return f, 1.0
    return (1.0 - w) * f + w * _cell_factor(h0, kz + side), (1.0 - w) ** 2 + w * w


@njit(cache=True, inline="always")
def muscle_texture(x, y, z, seed, blend):
    """Amplitude factor of the fibro-adipose septa of muscle (mean intensity kept): cells
    of SEPTUM_CELL_MM across and SEPTUM_LENGTH_MM along the fibres (taken along the patient
    superior axis), a fraction of them bright; the cells of each fibre column are staggered.
    Transverse sections show the 'starry night' dots, longitudinal ones the striations.
    ``blend`` (sub-cell coherence): the factor ramps between neighbouring columns over
    SEPTUM_RAMP_MM at their border and between the cells of a column over
    SEPTUM_RAMP_Z_MM, so that a µm move changes it by a little instead of flipping it by
    10 dB (in a transverse section a whole column's dot appeared or went when the plane
    crossed the end of its cell)."""
    fx = x / SEPTUM_CELL_MM
    fy = y / SEPTUM_CELL_MM
    i = np.int64(math.floor(fx))
    j = np.int64(math.floor(fy))
    if not blend:
        return _septum(i, j, z, seed, False)[0]
    return _septa_blend(fx, fy, i, j, z, seed)


@njit(cache=True)
def _septa_blend(fx, fy, i, j, z, seed):
    """:func:`muscle_texture` blended (not inlined: keeps the scatterer kernels small to
    compile)."""
    f, s2 = _septum(i, j, z, seed, True)
    wx, si = _ramp(fx - i, SEPTUM_CELL_MM, SEPTUM_RAMP_MM)
    wy, sj = _ramp(fy - j, SEPTUM_CELL_MM, SEPTUM_RAMP_MM)
    acc = (1.0 - wx) * (1.0 - wy) * f
    s2 *= ((1.0 - wx) * (1.0 - wy)) ** 2
    if wx > 0.0:
        g, g2 = _septum(i + si, j, z, seed, True)
        acc += wx * (1.0 - wy) * g
        s2 += (wx * (1.0 - wy)) ** 2 * g2
    if wy > 0.0:
        g, g2 = _septum(i, j + sj, z, seed, True)
        acc += (1.0 - wx) * wy * g
        s2 += ((1.0 - wx) * wy) ** 2 * g2
        if wx > 0.0:
            g, g2 = _septum(i + si, j + sj, z, seed, True)
            acc += wx * wy * g
            s2 += (wx * wy) ** 2 * g2
    if s2 >= 1.0:
        return acc
    return acc / math.sqrt(s2 + (1.0 - s2) * _SEPTUM_MEAN2)


@njit(cache=True, inline="always")
def scatter_sum(x, y, z, k, el_off, el_w, elev, near, s0, r0, de, en, drag, interp, inv, seed,
                mask, table, muscle):
    """The scatterer amplitude of range sample ``k`` at (x, y, z) (patient mm): the cells
    of its elevation planes (``el_off``/``el_w`` row k), where the tissue came from when
    ``near`` (the needle's drag, :func:`~needleguide.us.tissue_motion.drag_near`'s s0, r0,
    de), times the septa of ``muscle`` (complex64)."""
    acc = np.complex64(0.0)
    for j in range(el_off.shape[1]):
        e = el_off[k, j]
        xs, ys, zs = x + e * elev[0], y + e * elev[1], z + e * elev[2]
        if near:
            se = s0 + e * en
            m = drag_magnitude(se, r0 + s0 * s0 + 2.0 * e * de + e * e - se * se, drag)
            xs, ys, zs = xs - m * drag[3], ys - m * drag[4], zs - m * drag[5]
        if interp:
            acc += el_w[k, j] * cell_interp(xs, ys, zs, inv, seed, mask, table)
        else:
            acc += el_w[k, j] * table[cell_index(xs, ys, zs, inv, seed, mask)]
    if muscle:
        m = drag_magnitude(s0, r0, drag) if near else 0.0
        return np.complex64(acc * muscle_texture(x - m * drag[3], y - m * drag[4],
                                                 z - m * drag[5], seed, interp))
    return acc


@njit(cache=True, inline="always")
def plane_reach(el_off, k):
    """The farthest elevation plane of range sample ``k`` (mm)."""
    ek = 0.0
    for j in range(el_off.shape[1]):
        ek = max(ek, abs(el_off[k, j]))
    return ek


@njit(cache=True, inline="always")
def line_point(origins, dirs, l, r):
    """The point at range ``r`` (mm) along line ``l`` (patient mm)."""
    return (origins[l, 0] + r * dirs[l, 0], origins[l, 1] + r * dirs[l, 1],
            origins[l, 2] + r * dirs[l, 2])


def line_order(n_lines: int) -> np.ndarray:
    """The scan lines in the order the threads take them (int64 permutation): ``prange``
    gives each thread a block of consecutive iterations, and the needle's drag work lies in
    a band of neighbouring lines, so a stride coprime with the count near n/φ spreads each
    block over the image (2 threads: 46 000 / 17 000 moved samples per block on a C2–C3
    frame in line order)."""
    n = int(n_lines)
    k = max(1, round(n / 1.618034))
    while math.gcd(k, n) != 1:
        k += 1
    return (np.arange(n, dtype=np.int64) * k) % max(n, 1)


@njit(cache=True, parallel=True, fastmath=True)
def rescatter(origins, dirs, r_mm, r_img, labels, ismuscle, elev, el_off, el_w, drag, en, c2,
              reach2, table, lattice_mm, seed, interp, order, base, prev, shift_mm, prev_ins,
              out):
    """The scatterer field of a still probe under a moving needle: ``base`` (L, N) (the
    field without drag, ``kernels.sample_medium`` with ``NO_DRAG``) with the samples the
    needle's drag moves recomputed, as ``sample_medium`` would (the same helpers) into
    ``out``. Arguments as there; en, c2, reach2: ``tissue_motion.near_setup``; ``order``:
    :func:`line_order`. ``prev`` (L, N): the field of the frame before, whose needle lay
    ``shift_mm`` behind along the same axis with the same drag and ``prev_ins`` mm
    inserted (``tissue_motion.advanced_along``; (1, 1): none): where every elevation plane
    of a sample lies behind both tips and ahead of both hubs the displacement is the same
    (steady advance moves only the tissue at the tip) and ``prev`` is kept there."""
    L, N = base.shape
    inv = 1.0 / lattice_mm
    mask = table.shape[0] - 1
    keep = prev.shape[0] == L
    ahead = max(shift_mm, 0.0)  # the nearer tip, behind this frame's (s ≤ −ahead)
    hub = min(drag[6], prev_ins + shift_mm)  # the nearer hub, behind this frame's tip
    a = abs(en)
    ek_max = np.abs(el_off).max()
    for i in prange(L):
        l = order[i]
        n0, n1 = near_span(origins, dirs, l, r_img, ek_max, reach2, drag)
        for k in range(N):
            if k < n0 or k >= n1:
                out[l, k] = base[l, k]
                continue
            ek = plane_reach(el_off, k)
            xi, yi, zi = line_point(origins, dirs, l, r_img[k])  # where it is drawn
            near, s0, r0, de = drag_near(xi, yi, zi, ek, en, c2, reach2, elev, drag)
            if near and keep and s0 + ahead + ek * a <= 0.0 and s0 - ek * a >= -hub:
                out[l, k] = prev[l, k]
            elif near:
                x, y, z = line_point(origins, dirs, l, r_mm[l, k])
                out[l, k] = scatter_sum(x, y, z, k, el_off, el_w, elev, near, s0, r0, de, en,
                                        drag, interp, inv, seed, mask, table,
                                        ismuscle[labels[l, k]])
            else:
                out[l, k] = base[l, k]


__all__ = ["NOISE_STREAM", "SCATTER_STREAM", "SCATTER_TABLE_BITS", "SUBCELL_GAIN", "TABLE_BITS",
           "cell_hash", "cell_index", "cell_interp", "gaussian_table", "line_order", "line_point",
           "mix64", "muscle_texture", "plane_reach", "rescatter", "scatter_sum"]
