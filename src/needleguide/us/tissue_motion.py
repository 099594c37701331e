"""Tissue moved by the needle: the local displacement field that makes insertion move the
speckle (issue 16: the sonographer's motion cue).

The soft tissue around the shaft sticks to it by friction and follows the needle until the
friction limit is reached, then the needle slips through it (Coulomb stick–slip; DiMaio &
Salcudean 2003, Okamura et al. 2004 measured mm-scale axial tissue displacement along
needles in phantoms and tissue). The needle carries that state, ``Needle.tissue_drag_mm``
q (signed, along the axis; ``scene.needle``): every advance Δ moves it to
clip(q + Δ, −Q, Q) (Q: ``scene.needle.TISSUE_DRAG_MAX_MM``). Steady advance keeps q at
+Q (only the tissue the tip reaches moves between frames); a jiggle (in–out by more than
Q) flips it between +Q and −Q, so the tissue along the whole shaft moves by up to 2Q.

Field, at a point with axial coordinate s from the tip (s > 0 ahead of it) and distance ρ
from the axis:

    u = q · exp(−ρ² / 2w²) · h(s) · axis,   h = 1 along the shaft (−inserted < s ≤ 0),
                                            h = exp(−s / λ) ahead of the tip (pushed)

The B-mode scatterers are looked up at x − u(x) (``kernels.sample_medium``): the speckle is
carried by the tissue. Interfaces (the label map) are not moved: the displacement (≤ Q)
is not drawn into the 0.25–0.4 mm label voxels. Assumptions (no published field for these
tissues): Q (``scene.needle``), w and λ below.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Assumption: radial σ of the dragged tissue around the axis (mm) and the decay length of
# the push ahead of the tip (mm).
DRAG_WIDTH_MM = 2.0
PUSH_LENGTH_MM = 1.5
N_PARAMS = 10


def drag_params(tip_mm, axis, inserted_mm: float, drag_mm: float,
                width_mm: float = DRAG_WIDTH_MM, push_mm: float = PUSH_LENGTH_MM
                ) -> np.ndarray:
    """The field's parameters for the kernels (float64, ``N_PARAMS``): tip (patient mm),
    unit axis (hub → tip), inserted length (mm), drag q (mm), 1/(2w²) (mm⁻²), 1/λ (mm⁻¹).
    q = 0 (or no needle): no displacement."""
    out = np.zeros(N_PARAMS)
    if inserted_mm <= 0.0 or drag_mm == 0.0:
        return out
    out[0:3] = np.asarray(tip_mm, float)
    a = np.asarray(axis, float)
    out[3:6] = a / np.linalg.norm(a)
    out[6] = float(inserted_mm)
    out[7] = float(drag_mm)
    out[8] = 1.0 / (2.0 * width_mm * width_mm)
    out[9] = 1.0 / push_mm
    return out


NO_DRAG = np.zeros(N_PARAMS)
# the field is 0 where its exponent exceeds this: |u| < q·9e-4, under 1 µm at the most
# drag (scene.needle.TISSUE_DRAG_MAX_MM, 1 mm), 7.5 mm from the axis (sub-µm moves are
# below what the speckle shows: a 10 µm move keeps a correlation of 0.99, docs/us.md)
CUT = 7.0
_EXP_STEP = 1.0 / 64.0
_EXP_COARSE = np.exp(-_EXP_STEP * np.arange(int(CUT / _EXP_STEP) + 2))


@njit(cache=True, inline="always")
def _exp_neg(a):
    """exp(−a) for 0 ≤ a ≤ CUT, relative error < 3e-9: exp(−i/64) from a table times the
    Taylor series of exp(−r), r < 1/64, to the 3rd power (the field is evaluated on every
    elevation plane of every sample near the needle: a short dependency chain)."""
    i = int(a * (1.0 / _EXP_STEP))
    r = a - i * _EXP_STEP
    return _EXP_COARSE[i] * (1.0 - r * (1.0 - r * (0.5 - r * (1.0 / 6.0))))


@njit(cache=True, inline="always")
def drag_magnitude(s, rho2, p):
    """|u| (mm, along the axis) at axial coordinate ``s`` from the tip and squared distance
    ``rho2`` from the axis; 0 behind the hub and where |u| < q·9e-4 (``CUT``)."""
    if s < -p[6]:
        return 0.0
    a = max(rho2, 0.0) * p[8]
    if s > 0.0:
        a += s * p[9]  # one exponential: exp(−a)·exp(−s/λ)
    if a > CUT:
        return 0.0
    return p[7] * _exp_neg(a)


def near_setup(elev, p) -> tuple[float, float, float]:
    """Per-frame constants of :func:`drag_near` for the unit elevation vector ``elev``:
    (elev·axis, 1 − (elev·axis)², the field's squared reach (mm², 0: no field))."""
    en = float(np.dot(elev, p[3:6]))
    return en, max(1.0 - en * en, 0.0), CUT / p[8] + 1e-6 if p[7] != 0.0 else 0.0


@njit(cache=True, inline="always")
def drag_near(x, y, z, ek, en, c2, reach2, elev, p):
    """Whether the field moves any elevation plane |e| ≤ ``ek`` (mm) of the sample at (x,
    y, z) (patient mm), with its axial coordinate s, squared distance ρ² from the axis and
    offset along ``elev`` (for the planes: s + e·en, ρ² + 2e(d·elev − s·en) + e²(1 − en²)).
    Not near: the least ρ_e² over the planes is beyond the reach (drag_magnitude is 0 on
    every plane), all planes lie behind the hub, or so far ahead of the tip that the push
    alone (s/λ) exceeds the cut."""
    if reach2 == 0.0:
        return False, 0.0, 0.0, 0.0
    dx, dy, dz = x - p[0], y - p[1], z - p[2]
    s0 = dx * p[3] + dy * p[4] + dz * p[5]
    r0 = dx * dx + dy * dy + dz * dz - s0 * s0
    de = dx * elev[0] + dy * elev[1] + dz * elev[2]
    c1 = de - s0 * en
    eb = -c1 / c2 if c2 > 0.0 else (-ek if c1 > 0.0 else ek)
    eb = min(max(eb, -ek), ek)
    near = s0 + ek * abs(en) >= -p[6] and (s0 - ek * abs(en)) * p[9] <= CUT and \
        r0 + eb * (2.0 * c1 + eb * c2) <= reach2
    return near, s0, r0, de


@njit(cache=True)
def near_span(origins, dirs, l, r_img, ek, reach2, p):
    """The samples k0 ≤ k < k1 of line ``l`` (``r_img`` (N,) ascending ranges, mm) where
    :func:`drag_near` can be true for planes within ``ek`` mm of the sample: within
    √reach2 + ek of the axis (a quadratic in the range) and within ``ek`` of the axial
    slab from the hub to where the push alone reaches the cut (linear); a sample or two
    of margin. Outside it every plane's displacement is 0, so the kernels skip the test
    there (the field's work per line, not per sample: most samples of a frame lie far
    from the needle). (0, 0): no field."""
    N = r_img.shape[0]
    if reach2 == 0.0:
        return 0, 0
    R = math.sqrt(reach2) + ek + 1e-6
    wx, wy, wz = origins[l, 0] - p[0], origins[l, 1] - p[1], origins[l, 2] - p[2]
    dx, dy, dz = dirs[l, 0], dirs[l, 1], dirs[l, 2]
    wa = wx * p[3] + wy * p[4] + wz * p[5]
    da = dx * p[3] + dy * p[4] + dz * p[5]
    lo, hi = -1e30, 1e30
    # the cylinder: |w + r·d|² − ((w + r·d)·a)² ≤ R²  (A r² + 2B r + C ≤ 0)
    A = max(dx * dx + dy * dy + dz * dz - da * da, 0.0)
    B = wx * dx + wy * dy + wz * dz - wa * da
    C = wx * wx + wy * wy + wz * wz - wa * wa - R * R
    if A > 1e-12:
        disc = B * B - A * C
        if disc < 0.0:
            return 0, 0
        q = math.sqrt(disc)
        lo, hi = (-B - q) / A, (-B + q) / A
    elif C > 0.0:
        return 0, 0
    # the slab −hub − ek ≤ s ≤ CUT·λ + ek, s = wa + r·da
    s_lo, s_hi = -p[6] - ek - 1e-6, CUT / p[9] + ek + 1e-6
    if abs(da) > 1e-12:
        a, b = (s_lo - wa) / da, (s_hi - wa) / da
        lo, hi = max(lo, min(a, b)), min(hi, max(a, b))
    elif wa < s_lo or wa > s_hi:
        return 0, 0
    if hi < lo:
        return 0, 0
    k0 = max(np.searchsorted(r_img, lo) - 2, 0)
    k1 = min(np.searchsorted(r_img, hi) + 2, N)
    return k0, k1


def advanced_along(prev: np.ndarray, p: np.ndarray) -> float | None:
    """The shift (mm) of the tip along the axis from field ``prev`` to field ``p`` when
    ``p`` is ``prev``'s needle moved along its own axis with the same drag (q, w, λ); None
    otherwise. Behind both tips (and ahead of both hubs) the two fields are then equal:
    ``scatterers.rescatter`` keeps the scatterers drawn there."""
    if p[7] == 0.0 or not (np.array_equal(prev[3:6], p[3:6]) and
                           np.array_equal(prev[7:10], p[7:10])):
        return None
    d = p[0:3] - prev[0:3]
    shift = float(d @ p[3:6])
    return shift if float(np.linalg.norm(d - shift * p[3:6])) <= 1e-9 else None


@njit(cache=True, inline="always")
def displaced(x, y, z, p):
    """Where the tissue now at (x, y, z) came from: x − u(x) (patient mm); ``p`` from
    :func:`drag_params`."""
    if p[7] == 0.0:
        return x, y, z
    dx = x - p[0]
    dy = y - p[1]
    dz = z - p[2]
    s = dx * p[3] + dy * p[4] + dz * p[5]
    m = drag_magnitude(s, dx * dx + dy * dy + dz * dz - s * s, p)
    return x - m * p[3], y - m * p[4], z - m * p[5]


__all__ = ["DRAG_WIDTH_MM", "NO_DRAG", "PUSH_LENGTH_MM", "advanced_along", "displaced",
           "drag_magnitude", "drag_near", "drag_params", "near_setup", "near_span"]
