"""Point-spread function and scan conversion for a probe and its settings (cached).

Axial: the received pulse envelope is a Gaussian whose FWHM in range equals half the
spatial pulse length, n_cycles·λ/2 (the axial resolution). Lateral (two-way): the product
of the transmit beam (focused at ``focus``, aperture D_tx = focus/F_tx, capped) and the
dynamically focused receive beam (aperture growing as z/F_rx, capped): each Gaussian with
FWHM sqrt(w0² + (D·|z − z_f|/z_f)²), w0 = λ·z_f/D. Elevation: the fixed lens focus
(two-way). All kernels have unit energy, so the mean speckle intensity does not depend on
the resolution; specular echoes are normalised so that a perpendicular plane's peak
intensity equals K·R whatever the PSF.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from needleguide.us.body_wall import (
    ABERR_CORR_MM,
    REVERB_BIN_MM,
    aperture_residual,
    strehl_coefficients,
)
from needleguide.us.elevation import reverb_slice_gains
from needleguide.us.probe import BeamGeometry, USSettings, beam_geometry, image_grid

C_MM_US = 1.540  # mm/µs (1540 m/s), speed assumed by the scanner
F_RX = 1.0
F_TX = 2.0
APERTURE_MAX_MM = {"linear": 25.0, "curvilinear": 40.0}
MAX_HALF_TAPS = 16


def fwhm_focused(z_mm, lam_mm: float, focus_mm: float, aperture_mm) -> np.ndarray:
    """One-way FWHM (mm) of a beam of aperture D focused at z_f: sqrt(w0² + (D|z−z_f|/z_f)²)."""
    z = np.asarray(z_mm, float)
    d = np.asarray(aperture_mm, float)
    w0 = lam_mm * focus_mm / d
    return np.sqrt(w0**2 + (d * np.abs(z - focus_mm) / focus_mm) ** 2)


def lateral_fwhm_mm(z_mm, s: USSettings) -> np.ndarray:
    """Two-way lateral FWHM (mm) at depths ``z_mm``: transmit focus × dynamic receive."""
    lam = C_MM_US / s.f_mhz
    z = np.maximum(np.asarray(z_mm, float), 0.5)
    dmax = APERTURE_MAX_MM[s.probe]
    d_tx = min(s.focus / F_TX, dmax)
    w_tx = fwhm_focused(z, lam, s.focus, d_tx)
    d_rx = np.clip(z / F_RX, 4 * lam, dmax)
    w_rx = lam * z / d_rx  # receive focus follows the depth
    return 1.0 / np.sqrt(1.0 / w_tx**2 + 1.0 / w_rx**2)


def elevation_fwhm_mm(z_mm, s: USSettings) -> np.ndarray:
    """Two-way elevation slice thickness (mm): fixed lens focus, transmit and receive."""
    lam = C_MM_US / s.f_mhz
    z = np.maximum(np.asarray(z_mm, float), 0.5)
    w = fwhm_focused(z, lam, s.spec.elevation_focus_mm, s.spec.elevation_mm)
    return w / np.sqrt(2.0)


def axial_fwhm_mm(s: USSettings) -> float:
    """Axial resolution: half the spatial pulse length, n·λ/2 (mm)."""
    return s.n_cycles * C_MM_US / s.f_mhz / 2.0


def receive_aperture_mm(z_mm, s: USSettings) -> np.ndarray:
    lam = C_MM_US / s.f_mhz
    return np.clip(np.asarray(z_mm, float) / F_RX, 4 * lam, APERTURE_MAX_MM[s.probe])


@dataclass
class BeamSetup:
    """Everything that depends only on the settings: beams, kernels, TGC, remap maps."""

    settings: USSettings
    geom: BeamGeometry
    depth_mm: np.ndarray  # (N,) depth below the face of each range sample (central line)
    line_dx_mm: np.ndarray  # (N,)
    ax_kernel: np.ndarray  # complex (2h+1,)
    lat_kernels: np.ndarray  # complex (N, 2H+1), without aberration
    lat_half: np.ndarray  # int (N,)
    lat_kernels_t: np.ndarray  # float32 (2H+1, N): the same, by tap
    halo_half: np.ndarray  # (N,) half width (lines) of the aberration pedestal box
    pedestal: np.ndarray  # (N,) share ℓ/D of the aberrated energy the two-way image keeps
    g_tx: np.ndarray  # (N,) residual (non piston/tilt) phase-variance fraction, tx aperture
    g_rx: np.ndarray  # (N,) the same over the receive aperture at each depth
    d_tx_mm: np.ndarray  # (N,) transmit aperture reaching each depth (≤ depth, F/1)
    wall_half_lines: np.ndarray  # (N,) lines within half the receive aperture at the face
    reverb_half_lines: np.ndarray  # (N,) lateral spread of the reverberation clutter
    strehl_coef: tuple  # body_wall.strehl_coefficients
    spec_norm: np.ndarray  # (N,) 1 / (peak of the PSF response to a perpendicular plane)²
    el_sigma_mm: np.ndarray  # (N,)
    aperture_mm: np.ndarray  # (N,)
    tgc_gain: np.ndarray  # (N,) linear amplitude gain (TGC + overall gain)
    corners_probe: np.ndarray  # (4, 2) probe-frame corners of the beam region
    map_x: np.ndarray  # (rows, cols) float32 range-sample index
    map_y: np.ndarray  # (rows, cols) float32 line index
    rows: int
    cols: int
    spacing_mm: float
    x0_mm: float
    y0_mm: float
    reverb_gain_int: np.ndarray  # (Nc, Nc) elevation.reverb_slice_gains on the clutter bins
    reverb_gain_face: np.ndarray  # (Nc, Nc) the same for the paths off the probe face


def _gauss_kernel(sigma_samples: float, half: int) -> np.ndarray:
    t = np.arange(-half, half + 1, dtype=float)
    if sigma_samples < 1e-3:
        k = (t == 0).astype(float)
    else:
        k = np.exp(-0.5 * (t / sigma_samples) ** 2)
    return k / np.sqrt((k**2).sum())


def lateral_kernels(sig_main: np.ndarray):
    """Per-range-sample Gaussian lateral kernels (unit energy), complex64 (N, 2H+1), and
    their half widths (N,) in lines."""
    half = np.minimum(np.ceil(3.0 * sig_main).astype(np.int64), MAX_HALF_TAPS)
    k = _gauss_rows(sig_main, half)
    return (k / np.sqrt((k**2).sum(axis=1, keepdims=True))).astype(np.complex64), half


def _gauss_rows(sig: np.ndarray, half: np.ndarray) -> np.ndarray:
    H = int(half.max())
    t = np.arange(-H, H + 1, dtype=float)[None, :]
    inside = np.abs(t) <= half[:, None]
    return np.where(sig[:, None] < 1e-3, (t == 0).astype(float),
                    np.exp(-0.5 * (t / np.maximum(sig[:, None], 1e-3)) ** 2)) * inside


TGC_MAX_DB = 60.0  # largest automatic TGC (receive-amplifier TGC range; assumption)
DISPLAY_TOP_DB = 30.0  # display: white at +30 dB re muscle speckle (with gain 0)


def noise_floor_tgc_db(s: USSettings) -> float:
    """The largest automatic TGC that keeps the receiver noise at the display's floor: the
    noise's mean power (``noise_db_re_face``) lands on the bottom of the grey map (white −
    dynamic range), where a scanner's preset (or a sonographer's far gain) puts it."""
    return DISPLAY_TOP_DB - s.dynamic_range_db - s.noise_db_re_face


def tgc_curve_db(s: USSettings, r_mm: np.ndarray) -> np.ndarray:
    """TGC in dB at ranges ``r_mm``: automatic (α_auto·f round trip), user curve, or off."""
    if s.tgc_db is None:
        # automatic: compensate α_auto·f round trip up to the amplifier's TGC range and no
        # further than the gain that lifts the receiver noise to the display floor (beyond
        # the penetration depth the image fades to black instead of grey noise; the overall
        # gain still amplifies noise and echoes together)
        return np.minimum(2.0 * s.tgc_auto_db_cm_mhz * s.f_mhz * r_mm / 10.0,
                          min(TGC_MAX_DB, noise_floor_tgc_db(s)))
    if len(s.tgc_db) == 0:
        return np.zeros_like(r_mm)
    if len(s.tgc_db) == 1:
        return np.full_like(r_mm, s.tgc_db[0])
    xp = np.linspace(0.0, s.depth_mm, len(s.tgc_db))
    return np.interp(r_mm, xp, np.asarray(s.tgc_db, float))


def make_setup(s: USSettings) -> BeamSetup:
    """Build the beams, PSF kernels, TGC and scan-conversion maps for settings ``s``."""
    g = beam_geometry(s)
    r = g.r_mm
    dr = g.dr_mm
    depth = r * (np.cos(g.steer_rad) if g.kind == "linear" else 1.0)
    line_dx = g.line_spacing_mm()
    # axial: Gaussian envelope, FWHM = n·λ/2 in range
    sig_ax = axial_fwhm_mm(s) / 2.3548 / dr
    h_ax = int(np.ceil(3.0 * sig_ax))
    ax = _gauss_kernel(sig_ax, h_ax)
    # lateral: depth-dependent, in units of lines
    w_lat = lateral_fwhm_mm(depth, s)
    sig_l = w_lat / 2.3548 / line_dx
    lam = C_MM_US / s.f_mhz
    sig_h = np.maximum(depth, 1.0) * lam / ABERR_CORR_MM / 2.3548 / line_dx
    lat_c, half = lateral_kernels(sig_l)
    halo_half = np.maximum(np.round(np.sqrt(3.0) * sig_h), 1).astype(np.int64)  # same var.
    d_rx = receive_aperture_mm(depth, s)
    # transmit aperture that reaches depth z: the elements within F/1 of the point (the
    # paraxial delay error u²/2z² holds there)
    d_tx = np.minimum(min(s.focus / F_TX, APERTURE_MAX_MM[s.probe]), np.maximum(depth, 1.0) / F_RX)
    grid = np.linspace(0.0, APERTURE_MAX_MM[s.probe], 81)
    res = aperture_residual(grid)
    g_rx = np.interp(d_rx, grid, res)
    g_tx = np.interp(d_tx, grid, res)
    pedestal = np.minimum(1.0, ABERR_CORR_MM / d_rx).astype(np.float32)
    wall_half = np.round(d_rx / 2.0 / line_dx[0]).astype(np.int64)
    reverb_half = np.maximum(np.round(d_rx / 4.0 / line_dx), 1).astype(np.int64)
    lat = lat_c.real
    spec_norm = 1.0 / (ax.max() * lat.sum(axis=1)) ** 2
    el_sigma = elevation_fwhm_mm(depth, s) / 2.3548
    tgc = tgc_curve_db(s, r) + s.gain_db
    rows, cols, sp, x0, y0 = image_grid(s)
    map_x, map_y = _remap_maps(g, rows, cols, sp, x0, y0)
    m = max(1, int(round(REVERB_BIN_MM / dr)))  # the clutter's range bins (body_wall)
    zc = r[np.minimum(np.arange((len(r) + m - 1) // m) * m + m // 2, len(r) - 1)]
    g_int, g_face = reverb_slice_gains(zc, m * dr, lam, s.spec.elevation_mm,
                                       s.spec.elevation_focus_mm)
    return BeamSetup(s, g, depth, line_dx, ax.astype(np.complex64),
                     lat_c, half, np.ascontiguousarray(lat.T.astype(np.float32)), halo_half,
                     pedestal, g_tx, g_rx, d_tx, wall_half, reverb_half,
                     strehl_coefficients(s.f_mhz, g_tx, g_rx, d_tx, d_rx, depth),
                     spec_norm, el_sigma, d_rx, (10.0 ** (tgc / 20.0)).astype(np.float64),
                     _corners(g),
                     map_x, map_y, rows, cols, sp, x0, y0, g_int, g_face)


def _corners(g: BeamGeometry) -> np.ndarray:
    o, d, r = g.origins, g.directions, g.r_mm
    return np.array([o[0] + r[0] * d[0], o[0] + r[-1] * d[0], o[-1] + r[0] * d[-1],
                     o[-1] + r[-1] * d[-1]])


def _remap_maps(g: BeamGeometry, rows: int, cols: int, sp: float, x0: float, y0: float):
    """For every output pixel, the fractional (range sample, line) it samples (−1 outside)."""
    x = x0 + np.arange(cols) * sp
    y = y0 + np.arange(rows) * sp
    X, Y = np.meshgrid(x, y)
    L = g.n_lines
    if g.kind == "linear":
        c, s_ = np.cos(g.steer_rad), np.sin(g.steer_rad)
        r = Y / c
        xo = X - r * s_
        li = (xo - g.origins[0, 0]) / (g.origins[1, 0] - g.origins[0, 0])
    else:
        R = g.radius_mm
        rho = np.hypot(X, Y + R)
        th = np.arctan2(X, Y + R)
        th0 = np.arctan2(g.directions[0, 0], g.directions[0, 1])
        th1 = np.arctan2(g.directions[1, 0], g.directions[1, 1])
        li = (th - th0) / (th1 - th0)
        r = rho - R
    ki = (r - g.r_mm[0]) / g.dr_mm
    bad = (li < 0) | (li > L - 1) | (ki < 0) | (ki > len(g.r_mm) - 1)
    ki = np.where(bad, -10.0, ki)
    li = np.where(bad, -10.0, li)
    return ki.astype(np.float32), li.astype(np.float32)
