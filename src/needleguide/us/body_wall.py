"""The body wall each scan line crosses: phase aberration, defocus and reverberation clutter.

Everything here follows from the tissue along the lines (the labelmap), never from a BMI:

1. **Phase aberration** (Hinkelman, Liu, Metlay & Waag, JASA 1994 95:530; 1998 104:3635):
   lobulated fat (1450 m/s, septa ≈ 1600 m/s) gives arrival-time errors across the aperture,
   rms σ_t ≈ 20–60 ns through abdominal walls, correlation length ≈ 3–6 mm, growing with
   the wall thickness. Model: σ_t = β·√(fat path) (β = 8 ns/√mm: 20 mm → 36 ns, 30 mm →
   44 ns), the fat path averaged over the lines within the receive aperture. Only the part
   of the phase screen that is not a piston or a tilt over the aperture defocuses (a tilt
   steers the beam): residual variance fraction g(D/ℓ) of a Gaussian-correlated screen
   (ℓ = 5 mm) over an aperture D (:func:`aperture_residual`). Two-way main-lobe (Strehl)
   fraction S = exp(−σφ²·(g_tx + g_rx)), σφ = 2π f σ_t.
2. **Defocus** from the mean speed error: the beamformer assumes 1540 m/s; the excess
   travel time T = ∑ path·(1/c − 1/c₀) of the line (soft tissue only: paths through bone
   carry no echo) adds a quadratic delay error T·u²/(2z²) across the aperture, edge phase
   φ_q = 2πf·T·D²/(8z²), rms 0.298·φ_q after the piston; it enters the Strehl fraction as
   exp(−(0.298·φ_q)²) per pass (it stays below λ/4 in the phantom, so no wider main lobe).
3. **Pedestal**: in pulse-echo the image of a scatterer is the product of the transmit and
   receive beams; the energy lost from the main lobes spreads over the pedestal of angular
   width λ/ℓ (lateral zλ/ℓ), where the product keeps only ≈ ℓ/D of it. So the echoes of a
   region fall to S + (1 − S)·ℓ/D of their unaberrated level (tissue brightness falls, a
   specular surface likewise), and the pedestal is a random-phase clutter of the local
   echo power within zλ/ℓ (kernels.psf_lateral_detect).
4. **Reverberation clutter** (Pinton, Trahey & Dahl, IEEE TUFFC 2011 58:1272: the dominant
   degradation through the abdominal wall in fundamental imaging; Dahl & Sheth, UMB 2014
   40:714: mainly multi-path scattering at connective-tissue/fat interfaces, growing with
   their density; Lediju et al., Ultrason Imaging 2008 30:151: clutter −30 to 0 dB re
   tissue in vivo): a wave reflected up at a reflector a and down again at a reflector b
   above it (or the probe face, R = 0.1) reaches every scatterer c below b late by
   2(a − b): the whole line's echo power reappears deeper by Δ = a − b with the weight
   2·R_a·R_b·(two-way loss between b and a) (both orders of the path). Reflectors: every
   interface of the line (R·angle law, from kernels.propagate; bone included, air not) and
   the septa of fat: R = 0.01 (connective tissue/fat, Z 1.7 / 1.38 MRayl) at both faces
   of a septum every 3 mm (lobule size; assumption), of which the fraction within the
   specular acceptance (exp(−(θ/12°)²) over isotropic orientations: 0.118) sends the wave
   back along the line. Reverberant arrivals are not focused at their apparent depth (and
   cross the aberrating wall twice more): their mean power is spread over half the receive
   aperture laterally and added with random phase.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from needleguide.us.kernels import R_FACE

C0_MM_US = 1.540  # speed assumed by the beamformer
ABERR_NS_PER_SQRT_MM = 8.0  # σ_t = β·sqrt(fat path)
ABERR_CORR_MM = 5.0  # correlation length ℓ of the arrival-time screen
SEPTUM_R = 0.01  # intensity reflectivity of a connective-tissue/fat face
SEPTUM_SPACING_MM = 3.0
SEPTUM_NORMAL_FRACTION = math.sqrt(math.pi) * 12.0 / 180.0  # ∫exp(-(θ/12°)²)dθ / 180°
SEPTA_R_PER_MM = 2.0 * SEPTUM_R * SEPTUM_NORMAL_FRACTION / SEPTUM_SPACING_MM
REVERB_BIN_MM = 1.0


def aperture_residual(d_mm, corr_mm: float = ABERR_CORR_MM, n: int = 65) -> np.ndarray:
    """Fraction of the phase variance of a Gaussian-correlated screen (correlation
    exp(−(Δ/ℓ)²), ℓ = ``corr_mm``) left over an aperture of width ``d_mm`` once its mean
    (piston) and linear (tilt) parts are removed: 0 for D ≪ ℓ, → 1 for D ≫ ℓ."""
    d = np.atleast_1d(np.asarray(d_mm, float))
    t = np.linspace(-1.0, 1.0, n)
    tt = t[:, None] * t[None, :]
    out = np.empty_like(d)
    for i, di in enumerate(d):
        du = (t[:, None] - t[None, :]) * di / 2.0
        rho = np.exp(-(du / corr_mm) ** 2)
        piston = rho.mean()
        tilt = (tt * rho).mean() / (t**2).mean()
        out[i] = max(0.0, 1.0 - piston - tilt)
    return out


def wall_luts(tissues, gel_label: int, c_gel_m_s: float = 1480.0):
    """Per-label lookup tables: fat (bool), slowness excess (ns per mm of path,
    1/c − 1/c₀; 0 for bone and air, whose paths carry no echo), septa reflectivity per mm."""
    fat = np.zeros(256, np.bool_)
    slow = np.zeros(256, np.float32)
    septa = np.zeros(256, np.float32)
    for t in tissues:
        if t.group == "fat":
            fat[t.label] = True
            septa[t.label] = SEPTA_R_PER_MM
        if t.group not in ("bone", "metal", "air"):
            slow[t.label] = 1e3 * (1.0 / (t.speed_m_s / 1e3) - 1.0 / C0_MM_US)
    slow[gel_label] = 1e3 * (1.0 / (c_gel_m_s / 1e3) - 1.0 / C0_MM_US)
    return fat, slow, septa


@njit(cache=True, parallel=True, fastmath=True)
def slowness_path(labels, lut_slow, dr_mm, out):
    """Cumulative excess travel time (ns) along every line: ∑ dr·(1/c − 1/c₀)."""
    L, N = labels.shape
    for l in prange(L):
        acc = 0.0
        for k in range(N):
            acc += lut_slow[labels[l, k]] * dr_mm
            out[l, k] = acc


@njit(cache=True, parallel=True, fastmath=True)
def _line_prefix(x, out):
    """Prefix sums over the lines: out[l] = ∑_{j<l} x[j] (out (L+1, N) float64)."""
    L, N = x.shape
    B = 64
    for b in prange((N + B - 1) // B):
        k0 = b * B
        k1 = min(k0 + B, N)
        for k in range(k0, k1):
            out[0, k] = 0.0
        for l in range(L):
            for k in range(k0, k1):
                out[l + 1, k] = out[l, k] + x[l, k]


@njit(cache=True, parallel=True, fastmath=True)
def _window_mean(pre, half_lines, out):
    L = out.shape[0]
    N = out.shape[1]
    for l in prange(L):
        for k in range(N):
            h = half_lines[k]
            lo = l - h if l - h > 0 else 0
            hi = l + h + 1 if l + h + 1 < L else L
            out[l, k] = (pre[hi, k] - pre[lo, k]) / (hi - lo)


def aperture_mean(x: np.ndarray, half_lines: np.ndarray) -> np.ndarray:
    """Mean of ``x`` (L, N) over the lines within ±half_lines[k] of each line (clipped)."""
    L, N = x.shape
    pre = np.empty((L + 1, N), np.float64)
    _line_prefix(np.ascontiguousarray(x), pre)
    out = np.empty((L, N), np.float32)
    _window_mean(pre, np.ascontiguousarray(half_lines, dtype=np.int64), out)
    return out


def strehl_map(fat_mm: np.ndarray, slow_ns: np.ndarray, f_mhz: float, g_tx: np.ndarray,
               g_rx: np.ndarray, d_tx_mm: np.ndarray, d_rx_mm: np.ndarray,
               depth_mm: np.ndarray) -> np.ndarray:
    """Two-way main-lobe fraction S (L, N) from the aperture-averaged fat path (mm) and
    excess travel time (ns): phase aberration × defocus (module docstring, items 1–2).
    g_tx, g_rx, d_tx_mm, d_rx_mm, depth_mm: per range sample (N,)."""
    w = 2.0 * np.pi * f_mhz * 1e-3  # rad per ns
    sphi2 = (w * ABERR_NS_PER_SQRT_MM) ** 2 * np.maximum(fat_mm, 0.0)
    z2 = np.maximum(depth_mm, 1.0)[None, :] ** 2
    q_tx = 0.298 * w * slow_ns * (d_tx_mm[None, :] ** 2) / (8.0 * z2)
    q_rx = 0.298 * w * slow_ns * (d_rx_mm[None, :] ** 2) / (8.0 * z2)
    return np.exp(-sphi2 * (g_tx[None, :] + g_rx[None, :]) - q_tx**2 - q_rx**2).astype(
        np.float32)


def strehl_coefficients(f_mhz: float, g_tx: np.ndarray, g_rx: np.ndarray,
                        d_tx_mm: np.ndarray, d_rx_mm: np.ndarray, depth_mm: np.ndarray):
    """Per range sample: a = (2πfβ)²(g_tx + g_rx) per mm of fat, and the defocus phase per ns
    of excess travel time, transmit and receive (rms, 0.298·2πf·D²/(8z²))."""
    w = 2.0 * np.pi * f_mhz * 1e-3
    z2 = np.maximum(depth_mm, 1.0) ** 2
    a = (w * ABERR_NS_PER_SQRT_MM) ** 2 * (g_tx + g_rx)
    return (a.astype(np.float64), (0.298 * w * d_tx_mm**2 / (8.0 * z2)).astype(np.float64),
            (0.298 * w * d_rx_mm**2 / (8.0 * z2)).astype(np.float64))


@njit(cache=True, parallel=True, fastmath=True)
def _strehl_fused(pf, ps, half_lines, a, qt, qr, step, out):
    """S on every ``step``-th range sample (the columns of the prefix sums ``pf``, ``ps``),
    linearly interpolated between them (the wall terms vary slowly with range)."""
    L = out.shape[0]
    N = out.shape[1]
    Ns = pf.shape[1]
    for l in prange(L):
        row = np.empty(Ns)
        for j in range(Ns):
            k = j * step
            h = half_lines[k]
            lo = l - h if l - h > 0 else 0
            hi = l + h + 1 if l + h + 1 < L else L
            n = hi - lo
            fat = (pf[hi, j] - pf[lo, j]) / n
            t = (ps[hi, j] - ps[lo, j]) / n
            x = a[k] * (fat if fat > 0.0 else 0.0) + (qt[k] * t) ** 2 + (qr[k] * t) ** 2
            row[j] = math.exp(-x)
        for k in range(N):
            j = k // step
            if j >= Ns - 1:
                out[l, k] = row[Ns - 1]
            else:
                u = (k - j * step) / step
                out[l, k] = row[j] * (1.0 - u) + row[j + 1] * u


STREHL_STEP = 4  # range samples between evaluations of S (interpolated in between)


def strehl_frame(fat_mm: np.ndarray, slow_ns: np.ndarray, half_lines: np.ndarray,
                 coef) -> np.ndarray:
    """:func:`strehl_map` of the aperture means (``half_lines``), fused (per frame), on every
    STREHL_STEP-th range sample and interpolated."""
    L, N = fat_mm.shape
    fs = np.ascontiguousarray(fat_mm[:, ::STREHL_STEP])
    ss = np.ascontiguousarray(slow_ns[:, ::STREHL_STEP])
    pf = np.empty((L + 1, fs.shape[1]), np.float64)
    ps = np.empty((L + 1, fs.shape[1]), np.float64)
    _line_prefix(fs, pf)
    _line_prefix(ss, ps)
    out = np.empty((L, N), np.float32)
    _strehl_fused(pf, ps, half_lines, coef[0], coef[1], coef[2], STREHL_STEP, out)
    return out


@njit(cache=True, parallel=True, fastmath=True)
def power_prefix(src, out):
    """Prefix sums over the lines of the echo power |src|² (out (L+1, N) float32)."""
    L, N = src.shape
    B = 64
    for b in prange((N + B - 1) // B):
        k0 = b * B
        k1 = min(k0 + B, N)
        for k in range(k0, k1):
            out[0, k] = 0.0
        for l in range(L):
            for k in range(k0, k1):
                v = src[l, k]
                out[l + 1, k] = out[l, k] + v.real * v.real + v.imag * v.imag


@njit(cache=True, parallel=True, fastmath=True)
def reverb_power(src, refl, labels, lut_septa, att, dr_mm, m, r_face, g_int, g_face, out):
    """Reverberation clutter power (L, Nc) on range bins of ``m`` samples (module docstring,
    item 4): w(Δ) = ∑_b R_b·R_{b+Δ}·A_{b+Δ}/A_b between tissue reflectors, w_face(Δ) =
    R_face·R_Δ·A_Δ off the probe face; clutter(c) = 2∑_Δ (w(Δ)·g_int[c−Δ, Δ] +
    w_face(Δ)·g_face[c−Δ, Δ])·P(c−Δ), P the mean echo power |src|² of a bin, A the two-way
    intensity factor att², g the share the elevation slice keeps
    (``elevation.reverb_slice_gains``)."""
    L, N = src.shape
    Nc = out.shape[1]
    for l in prange(L):
        R = np.zeros(Nc)
        P = np.zeros(Nc)
        A = np.zeros(Nc)
        for c in range(Nc):
            k0 = c * m
            k1 = min(k0 + m, N)
            r = 0.0
            s = 0.0
            rb, lb, sb = refl[l, k0:k1], labels[l, k0:k1], src[l, k0:k1]
            for i in range(k1 - k0):
                r += rb[i] + lut_septa[lb[i]] * dr_mm
                v = sb[i]
                s += v.real * v.real + v.imag * v.imag
            R[c] = r
            P[c] = s / max(k1 - k0, 1)
            a = att[l, min(k0 + m // 2, N - 1)]
            A[c] = a * a
        # w(Δ) = ∑_b u_b·v_{b+Δ}: u = R/A (0 where no reflector or no echo), v = R·A
        u = np.zeros(Nc)
        v = np.empty(Nc)
        for a in range(Nc):
            v[a] = R[a] * A[a]
            if R[a] > 0.0 and A[a] >= 1e-20:
                u[a] = R[a] / A[a]
        # (the sums over slices: offset indices would keep numba's negative-index checks,
        # and the loops scalar)
        w = np.zeros(Nc)
        for d in range(1, Nc):
            acc = 0.0
            vd = v[d:]
            for b in range(Nc - d):
                acc += u[b] * vd[b]
            w[d] = acc
        # clutter(c) = 2∑_d (w(d)·g_int[c−d, d] + R_face·v(d)·g_face[c−d, d])·P(c−d), summed
        # from each source bin b = c − d (rows of g: contiguous)
        acc = np.zeros(Nc)
        w1, v1 = w[1:], v[1:]
        for b in range(Nc - 1):
            pb = 2.0 * P[b]
            if pb == 0.0:
                continue
            n = Nc - 1 - b
            out_b, gi, gf = acc[b + 1:], g_int[b, 1:], g_face[b, 1:]
            for i in range(n):
                out_b[i] += (w1[i] * gi[i] + r_face * v1[i] * gf[i]) * pb
        for c in range(Nc):
            out[l, c] = acc[c]


@njit(cache=True, parallel=True, fastmath=True)
def _spread_interp(coarse, pre, half_bins, m, out):
    """Lateral box mean of the coarse clutter (half widths per bin) and linear interpolation
    between bin centres to the range samples."""
    L, Nc = coarse.shape
    N = out.shape[1]
    for l in prange(L):
        row = np.empty(Nc)
        for c in range(Nc):
            h = half_bins[c]
            lo = l - h if l - h > 0 else 0
            hi = l + h + 1 if l + h + 1 < L else L
            row[c] = (pre[hi, c] - pre[lo, c]) / (hi - lo)
        for k in range(N):
            x = (k + 0.5) / m - 0.5
            j = int(math.floor(x))
            if j < 0:
                out[l, k] = row[0]
            elif j >= Nc - 1:
                out[l, k] = row[Nc - 1]
            else:
                t = x - j
                out[l, k] = row[j] * (1.0 - t) + row[j + 1] * t


def reverb_clutter(src, refl, labels, lut_septa, att, dr_mm: float,
                   spread_half_lines: np.ndarray, g_int: np.ndarray, g_face: np.ndarray
                   ) -> np.ndarray:
    """Reverberation clutter power (L, N) at full range resolution, spread laterally over
    ±``spread_half_lines[k]`` lines; ``g_int``, ``g_face``: the elevation slice's share of
    each path (``BeamSetup.reverb_gain_*``)."""
    L, N = src.shape
    m = max(1, int(round(REVERB_BIN_MM / dr_mm)))
    Nc = (N + m - 1) // m
    coarse = np.zeros((L, Nc), np.float32)
    reverb_power(src, refl, labels, lut_septa, att, dr_mm, m, R_FACE, g_int, g_face, coarse)
    pre = np.empty((L + 1, Nc), np.float64)
    _line_prefix(coarse, pre)
    half_bins = np.ascontiguousarray(spread_half_lines[np.minimum(np.arange(Nc) * m + m // 2,
                                                                  N - 1)], dtype=np.int64)
    out = np.empty((L, N), np.float32)
    _spread_interp(coarse, pre, half_bins, m, out)
    return out
