"""The needle in the beam: specular shaft echo, bevel tip, comet tail and shadow.

The needle is not painted into the labelmap (it is thinner than a voxel); each scan line is
intersected analytically with the shaft segment. For a line that passes the shaft (closest
approach within half a line spacing in the image plane), the echo amplitude is

    sqrt(K · R_steel · (exp(−(θ/θ₀)²) + ρ·cos θ)) · w_el · a(r)

with θ the angle between the beam and the shaft's normal (0 when the beam meets the shaft
at 90°), θ₀ = ½·atan(D/2z) the half angle within which the mirror reflection still lands on
the receive aperture D at depth z, ρ a small diffuse (surface roughness) part (``ROUGH``;
an echogenic needle, ``Needle.echogenic``, has a larger one, ``ROUGH_ECHOGENIC``), w_el the
elevation beam profile at the shaft's distance from the image plane and a(r) the two-way
attenuation of the tissue above. The bevel adds an angle-independent tip echo (edge
diffraction); reverberation inside the shaft gives a comet tail of echoes spaced by the
outer diameter below a shaft nearly perpendicular to the beam; the shaft blocks the
fraction OD / (elevation beam width) of the beam below it (shadow).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

R_STEEL = ((45.0 - 1.63) / (45.0 + 1.63)) ** 2  # soft tissue / steel, normal incidence
# Assumption (calibrated, issue 16 part 3): diffuse (Lambertian) part of a smooth shaft's
# reflection, set so that a standard 22 G needle scores ≈ 5 at 15° to the beam (Nichols 2003,
# Surflo 5 EU; benchmarks/us_needle_angle.py). Was 0.008.
ROUGH = 0.015
# Assumption (calibrated): diffuse part of an echogenic needle (dimpled / coated / textured
# surface: many sub-wavelength-to-wavelength scatterers that return energy over a wide range
# of angles), set so that it scores ≈ 40 at 15° to the beam (Nichols 2003: Echotip 40 EU,
# dimpled prototype 43 EU). Angle law as ROUGH: cos θ (projected area).
ROUGH_ECHOGENIC = 0.5
TIP_GAIN = 0.15  # bevel tip edge echo, fraction of the normal-incidence shaft echo
TAIL_PER_BOUNCE = 0.45  # amplitude kept per reverberation inside the shaft
TAIL_N = 8
SHADOW_FILL = 0.5  # diffraction fills in half of the geometric shadow of the thin shaft


@njit(cache=True, fastmath=True)
def angle_factor(theta_rad, theta0_rad, rough=ROUGH):
    """Fraction of the specular intensity returned at incidence angle ``theta_rad``, with
    diffuse part ``rough`` (``ROUGH`` for a smooth shaft, ``ROUGH_ECHOGENIC``)."""
    return math.exp(-(theta_rad / theta0_rad) ** 2) + rough * math.cos(theta_rad)


@njit(cache=True, parallel=True, fastmath=True)
def add_needle(src, att, origins, dirs, elev, r_mm, line_dx_mm, el_sigma_mm, ap_mm,
               a, b, od_mm, spec_gain, out_hit, rough=ROUGH):
    """Add the needle echo of segment a (entry) -> b (tip) to ``src`` (L, N), in place;
    ``rough``: the shaft's diffuse part (``ROUGH``, or ``ROUGH_ECHOGENIC`` for an echogenic
    needle).

    out_hit[l] = range sample of the shaft echo on line l, or -1."""
    L, N = src.shape
    dr = r_mm[1] - r_mm[0]
    ux = b[0] - a[0]
    uy = b[1] - a[1]
    uz = b[2] - a[2]
    seg = math.sqrt(ux * ux + uy * uy + uz * uz)
    for l in prange(L):
        out_hit[l] = -1
        if seg < 1e-6:
            continue
        ax, ay, az = ux / seg, uy / seg, uz / seg
        dx, dy, dz = dirs[l, 0], dirs[l, 1], dirs[l, 2]
        cba = dx * ax + dy * ay + dz * az
        denom = 1.0 - cba * cba
        if denom < 1e-6:
            continue  # shaft along the beam
        wx = origins[l, 0] - a[0]
        wy = origins[l, 1] - a[1]
        wz = origins[l, 2] - a[2]
        dw = dx * wx + dy * wy + dz * wz
        aw = ax * wx + ay * wy + az * wz
        # closest points: line o + r d, segment a + s u (s in mm along the shaft)
        s = (aw - cba * dw) / denom
        if s < 0.0:
            s = 0.0
        if s > seg:
            s = seg
        px = a[0] + s * ax
        py = a[1] + s * ay
        pz = a[2] + s * az
        r = (px - origins[l, 0]) * dx + (py - origins[l, 1]) * dy + (pz - origins[l, 2]) * dz
        if r < r_mm[0] or r > r_mm[N - 1]:
            continue
        k = int((r - r_mm[0]) / dr + 0.5)
        ex = px - origins[l, 0] - r * dx
        ey = py - origins[l, 1] - r * dy
        ez = pz - origins[l, 2] - r * dz
        d_el = ex * elev[0] + ey * elev[1] + ez * elev[2]
        lx, ly, lz = ex - d_el * elev[0], ey - d_el * elev[1], ez - d_el * elev[2]
        d_lat = math.sqrt(lx * lx + ly * ly + lz * lz)
        if d_lat > 0.5 * line_dx_mm[k] + 0.5 * od_mm:
            continue
        sg = el_sigma_mm[k]
        w_el = math.exp(-0.5 * (d_el / sg) ** 2)
        if w_el < 1e-3:
            continue
        theta = abs(0.5 * math.pi - math.acos(min(1.0, abs(cba))))
        theta0 = 0.5 * math.atan(ap_mm[k] / (2.0 * max(r, 1.0)))
        fac = angle_factor(theta, theta0, rough)
        amp = math.sqrt(spec_gain[k] * R_STEEL * fac) * w_el * att[l, k]
        if seg - s < 1.0:
            amp += math.sqrt(spec_gain[k] * R_STEEL * TIP_GAIN) * w_el * att[l, k]
        src[l, k] += amp
        out_hit[l] = k
        # comet tail: reverberation inside the shaft, only returned near normal incidence
        step = max(1, int(od_mm / dr + 0.5))
        ta = math.sqrt(spec_gain[k] * R_STEEL * math.exp(-(theta / theta0) ** 2)) * w_el \
            * att[l, k]
        for n in range(1, TAIL_N + 1):
            ta *= TAIL_PER_BOUNCE
            kk = k + n * step
            if kk >= N:
                break
            src[l, kk] += ta
        # shadow: the shaft blocks OD / (elevation beam width) of the beam below it
        block = SHADOW_FILL * min(1.0, od_mm / (2.355 * sg)) * w_el * (1.0 - (1.0 - R_STEEL) ** 2)
        keep = 1.0 - block
        for kk in range(k + 1, N):
            src[l, kk] *= keep


def needle_truth_px(tip_probe: np.ndarray, entry_probe: np.ndarray, x0_mm: float, y0_mm: float,
                    spacing_mm: float, scanned: np.ndarray, el_half_width_mm: float):
    """Tip and visible shaft end points in pixels from probe-frame points; visible when the
    tip or the shaft crosses the elevation slice (|z| ≤ half width) inside the scanned
    area (``scanned``: rows × cols, ≥ 0 where a pixel is imaged — the scan converter's
    range-sample map; the corners of a sector or of a steered frame are not)."""
    t, e = np.asarray(tip_probe, float), np.asarray(entry_probe, float)
    rows, cols = scanned.shape
    pts = e[None] + np.linspace(0, 1, 64)[:, None] * (t - e)[None]  # the shaft, tip last
    c = (pts[:, 0] - x0_mm) / spacing_mm
    r = (pts[:, 1] - y0_mm) / spacing_mm
    ok = (c >= 0) & (c <= cols - 1) & (r >= 0) & (r <= rows - 1) \
        & (np.abs(pts[:, 2]) <= el_half_width_mm)
    ri = np.clip(np.rint(r), 0, rows - 1).astype(np.int64)
    ci = np.clip(np.rint(c), 0, cols - 1).astype(np.int64)
    ok &= scanned[ri, ci] >= 0
    vis = np.flatnonzero(ok)
    if vis.size == 0:
        return None, None, False
    shaft = ((float(c[vis[0]]), float(r[vis[0]])), (float(c[vis[-1]]), float(r[vis[-1]])))
    tip = (float(c[-1]), float(r[-1])) if ok[-1] else None
    return tip, shaft, True
