"""The elevation beam profile sampled on a few planes fixed in the patient (slice
thickness: issue 16 part 1), for ``kernels.sample_medium``."""

from __future__ import annotations

import numpy as np


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


__all__ = ["elevation_planes"]
