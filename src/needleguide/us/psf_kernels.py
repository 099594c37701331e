"""Numba kernels of the B-mode simulator after the echo source (beam coordinates: line l,
range sample k): the body wall's aberration added to the source, the separable
point-spread function in complex baseband with receiver noise, and detection (envelope,
TGC and gain, log compression). Re-exported by ``us/kernels.py``."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from needleguide.us.fast_log import log10_row


@njit(cache=True, parallel=True, fastmath=True)
def psf_axial_noise(src, kern, table, noise_sigma, noise_offset, out):
    """Convolve every line with the axial pulse envelope ``kern`` (odd length) and add
    complex white receiver noise of power ``noise_sigma``² from ``table`` (offset per
    frame)."""
    L, N = src.shape
    h = kern.shape[0] // 2
    mask = table.shape[0] - 1
    for l in prange(L):
        base = noise_offset + l * N
        row = out[l]
        x = src[l]
        for k in range(N):
            row[k] = table[(base + k) & mask] * noise_sigma
        for t in range(-h, h + 1):  # tap by tap: the inner loop over range vectorises
            c = kern[t + h]
            k0 = min(max(-t, 0), N)
            k1 = max(min(N - t, N), k0)
            xs, rs = x[k0 + t:k1 + t], row[k0:k1]  # (slices: no negative-index checks)
            for i in range(k1 - k0):
                rs[i] += xs[i] * c


@njit(cache=True, parallel=True, fastmath=True)
def body_wall_clutter(src, strehl, pedestal, prefix, halo_half, clutter, table, seed_offset):
    """In place, before the PSF: the main lobe keeps sqrt(S) of each echo (``strehl``
    (L, N), two-way, body_wall.py); with random phase (table) the pedestal adds
    ``pedestal[k]``·(1−S) × the mean echo power within the pedestal (box of half width
    ``halo_half[k]`` lines, from the prefix sums ``prefix`` (L+1, N) of |src|²), and the
    reverberation ``clutter`` (L, N) power. The PSF then gives the clutter the speckle size
    of the system."""
    L, N = src.shape
    mask = table.shape[0] - 1
    for l in prange(L):
        base = seed_offset + l * N
        for k in range(N):
            sk = strehl[l, k]
            pc = clutter[l, k]
            if sk < 0.999 or pc > 0.0:
                hh = halo_half[k]
                l0 = l - hh if l - hh > 0 else 0
                l1 = l + hh + 1 if l + hh + 1 < L else L
                pw = (prefix[l1, k] - prefix[l0, k]) / (l1 - l0)
                src[l, k] = src[l, k] * math.sqrt(sk) + table[(base + k) & mask] * math.sqrt(
                    (1.0 - sk) * pedestal[k] * pw + pc)


@njit(cache=True, parallel=True, fastmath=True)
def psf_lateral_detect(src, kern_t, H, gain_lin, env, img8, top_db, dr_db):
    """Lateral PSF across lines, envelope detection, TGC and log compression, in one pass.

    kern_t: (2H+1, N) lateral kernels (unit energy) by tap and range sample.
    Envelope |IQ| × gain; uint8 log compression over [top_db − dr_db, top_db]."""
    L, N = src.shape
    scale = 255.0 / dr_db
    lo = top_db - dr_db
    for l in prange(L):
        acc = np.zeros(N, np.complex64)
        for t in range(-H, H + 1):
            ll = l + t
            if ll < 0 or ll >= L:
                continue
            x, w = src[ll], kern_t[t + H]  # (rows: the loop over range vectorises)
            for k in range(N):
                acc[k] += x[k] * w[k]
        e, lg, row8 = env[l], np.empty(N, np.float32), img8[l]
        for k in range(N):
            v = acc[k]
            e[k] = math.sqrt(v.real * v.real + v.imag * v.imag) * gain_lin[k]
            lg[k] = e[k] + np.float32(1e-12)
        log10_row(lg, lg)  # (in place: vectorised, fast_log.py)
        for k in range(N):
            p = (20.0 * lg[k] - lo) * scale
            row8[k] = min(max(p, 0.0), 255.0)
