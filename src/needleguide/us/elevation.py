"""The elevation beam: its profile sampled on a few planes fixed in the patient (slice
thickness: issue 16 part 1), for ``kernels.sample_medium``; and how much of a
reverberated wave stays in the slice (issue 16 part 2: shadows), for
``body_wall.reverb_power``."""

from __future__ import annotations

import numpy as np

# Speed of sound in the probe's elevation lens (assumption: RTV silicone rubber, the usual
# lens material, ≈ 1.0 mm/µs; slower than tissue, so a focusing lens is convex toward the
# patient; no probe's lens data were available here).
LENS_C_MM_US = 1.0
C_TISSUE_MM_US = 1.540


def elevation_planes(sigma_mm, t_mm: float, lattice_mm: float, n_planes: int,
                     spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Planes and weights of the elevation beam profile for :func:`sample_medium`.

    sigma_mm (N,): σ of the elevation amplitude profile exp(−e²/2σ²) at each range sample;
    t_mm: elevation coordinate of the image plane in the patient (a point of the plane ·
    the unit elevation vector). The planes are the ``n_planes`` nearest to the image plane
    of the grid (n + ½)·a (n integer, a = ``spacing``·σ, at least 2 lattice cells so that the
    planes draw independent cells), fixed in the patient: an elevational shift Δ of the
    probe moves t by Δ and the offsets by −Δ, so the same scatterers stay in the beam with
    weights that follow the profile continuously (the intensity correlation of the speckle
    is Σw(e)w(e−Δ)/Σw², ≈ exp(−Δ²/2σ²)). Returns offsets (N, P) mm from the image plane
    and weights (N, P) float32 with Σ_j w² = 1. ``n_planes`` ≤ 1: the image plane alone
    (no thickness)."""
    sig = np.asarray(sigma_mm, float)
    if n_planes <= 1:
        return np.zeros((sig.shape[0], 1)), np.ones((sig.shape[0], 1), np.float32)
    a = np.maximum(spacing * sig, 2.0 * lattice_mm)
    u = t_mm / a - 0.5  # grid (n + ½)·a: off the lattice's cell faces (rounding at 0)
    n0 = np.floor(u - n_planes / 2.0 + 1.0)
    frac = n0 - u  # offset of the first plane, in units of a: (−P/2, −P/2 + 1]
    d = frac[:, None] + np.arange(n_planes)[None, :]
    off = d * a[:, None]
    w = np.exp(-0.5 * (off / sig[:, None]) ** 2)
    w /= np.sqrt((w * w).sum(axis=1, keepdims=True))
    return np.ascontiguousarray(off), np.ascontiguousarray(w.astype(np.float32))


def lens_radius_mm(focus_mm: float) -> float:
    """Radius of curvature (mm) of a thin elevation lens focused at ``focus_mm`` in tissue:
    F = R / (1 − c_lens / c_tissue)."""
    return float(focus_mm) * (1.0 - LENS_C_MM_US / C_TISSUE_MM_US)


def reverb_slice_gains(z_mm, bin_mm: float, lam_mm: float, aperture_mm: float,
                       focus_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """The share of a reverberated wave's echo that the elevation slice keeps, against
    the direct echo from the same tissue (power ratios, (n, n), indexed [range bin of the
    tissue's true depth, bin of the extra one-way path Δ = index · ``bin_mm``]; ``z_mm``
    (n,): the bins' depths below the face).

    The one-way elevation beam (lens height D = ``aperture_mm``, focus F = ``focus_mm``)
    is a Gaussian of FWHM W(t) = √(w0² + (D·(1 − t/F))²), w0 = λF/D, after a path t (the
    geometric edge ray h(t) = D/2·(1 − t/F) plus the diffraction waist, as
    ``beams.fwhm_focused``). A random scatterer's echo power is ∝ ∫ b_tx² b_rx² over the
    elevation (Gaussians of unit power: ∝ 1/√(W_tx² + W_rx²)), so a path whose transmit
    beam has the width W' where the direct beam has W keeps √(2W² / (W'² + W²)) of it
    (1 when W' = W).

    - Between two tissue reflectors (flat to the beam's scale) the wave has gone 2Δ
      further: W' = W(z + 2Δ).
    - Off the probe face (the reflector at Δ = a below it): the face is the lens, convex
      toward the patient (radius :func:`lens_radius_mm`), a diverging mirror: the edge ray
      h_a = h(2a) comes back with its slope −D/2F turned outward by 2·h_a/R, then runs z:
      h' = h_a + (−D/2F + 2h_a/R)·z, W' = √(w0² + (2h')²). A curvilinear probe's 12 mm
      lens focused at 65 mm (R ≈ 23 mm) keeps 0.51 of the face–bone path from 50 mm
      deep at z = 20 mm (0.89 were the face flat); a linear probe's 4 mm lens at 18 mm
      (R ≈ 6.3 mm) 0.16 from 20 mm at z = 8 mm (0.44 flat)."""
    z = np.asarray(z_mm, float)
    d = np.arange(z.size) * bin_mm  # Δ (bin 0: none)
    D, F = float(aperture_mm), float(focus_mm)
    w0 = lam_mm * F / D

    def width2(t):
        return w0 * w0 + (D * (1.0 - t / F)) ** 2

    direct = width2(z)[:, None]
    g_int = np.sqrt(2.0 * direct / (width2(z[:, None] + 2.0 * d[None, :]) + direct))
    h_a = 0.5 * D * (1.0 - 2.0 * d / F)
    slope = -0.5 * D / F + 2.0 * h_a / lens_radius_mm(F)
    h_m = h_a[None, :] + slope[None, :] * z[:, None]
    g_face = np.sqrt(2.0 * direct / (w0 * w0 + 4.0 * h_m * h_m + direct))
    return g_int.astype(np.float64), g_face.astype(np.float64)


__all__ = ["LENS_C_MM_US", "elevation_planes", "lens_radius_mm", "reverb_slice_gains"]
