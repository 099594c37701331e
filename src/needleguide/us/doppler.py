"""Colour flow Doppler box.

Inside the box, every beam sample in a vessel lumen takes the velocity of the nearest
vessel centerline: parabolic (laminar) profile with peak 2 × the mean speed along the
centerline's point order. The scanner measures the axial component toward the probe,
v_ax = −v·b (b the beam direction), and shows it with the clinical BART map (toward the
probe red, away blue, brighter with speed). The pulsed measurement aliases above the
Nyquist velocity v_N = PRF·c / (4 f0): the velocity wraps into [−v_N, v_N). A wall filter
hides |v_ax| < 6 % of v_N.
"""

from __future__ import annotations

import cv2
import numpy as np

from needleguide.scene import Scene
from needleguide.us.probe import USSettings

WALL_FRACTION = 0.06


def nyquist_mm_s(s: USSettings) -> float:
    """Nyquist velocity (mm/s): PRF·c / (4 f0), c = 1540 m/s."""
    return s.prf_hz * 1540.0e3 / (4.0 * s.f_mhz * 1e6)


def flow_velocity(points: np.ndarray, scene: Scene, labels: np.ndarray) -> np.ndarray:
    """Blood velocity (mm/s, (M, 3)) at patient points inside vessel lumens (labels)."""
    v = np.zeros(points.shape)
    best = np.full(len(points), np.inf)
    for cl in scene.patient.centerlines.values():
        if cl.kind == "nerve" or cl.velocity_mm_s == 0 or len(cl.points_mm) < 2:
            continue
        sel = labels == cl.label
        if not sel.any():
            continue
        idx = np.nonzero(sel)[0]
        p = points[idx]
        a = cl.points_mm[:-1]
        b = cl.points_mm[1:]
        ab = b - a
        L2 = np.maximum((ab**2).sum(1), 1e-9)
        t = np.clip(((p[:, None, :] - a[None]) * ab[None]).sum(-1) / L2[None], 0, 1)
        q = a[None] + t[..., None] * ab[None]
        d = np.linalg.norm(p[:, None, :] - q, axis=-1)
        j = np.argmin(d, axis=1)
        dmin = d[np.arange(len(idx)), j]
        rad = cl.radii_mm[j] + (cl.radii_mm[j + 1] - cl.radii_mm[j]) * t[np.arange(len(idx)), j]
        prof = np.clip(1.0 - (dmin / np.maximum(rad, 1e-3)) ** 2, 0.0, 1.0)
        tang = ab[j] / np.sqrt(L2[j])[:, None]
        vel = 2.0 * cl.velocity_mm_s * prof[:, None] * tang
        better = dmin < best[idx]
        v[idx[better]] = vel[better]
        best[idx[better]] = dmin[better]
    return v


def bart_colour(v_ax: np.ndarray, vn: float) -> np.ndarray:
    """RGB (…, 3) uint8 of axial velocities: toward red→yellow, away blue→cyan."""
    u = np.clip(np.abs(v_ax) / vn, 0, 1)
    rgb = np.zeros(v_ax.shape + (3,), np.float32)
    tow = v_ax > 0
    rgb[..., 0] = np.where(tow, 90 + 165 * np.minimum(u * 1.6, 1), 0)
    rgb[..., 1] = np.where(u > 0.7, 255 * (u - 0.7) / 0.3, 0)
    rgb[..., 2] = np.where(~tow, 90 + 165 * np.minimum(u * 1.6, 1), 0)
    return rgb.astype(np.uint8)


def colour_doppler(pixels: np.ndarray, bd, scene: Scene, P2P: np.ndarray, s: USSettings,
                   st) -> np.ndarray:
    """The B-mode ``pixels`` (grey) with the colour flow box overlaid (RGB uint8)."""
    x0, x1, z0, z1 = s.doppler
    g = st.geom
    pr = g.points_probe()  # (L, N, 2)
    inbox = (pr[..., 0] >= x0) & (pr[..., 0] <= x1) & (pr[..., 1] >= z0) & (pr[..., 1] <= z1)
    vessel = np.isin(bd.labels, [t.label for t in scene.patient.tissues if t.group == "vessel"])
    m = inbox & vessel
    vax = np.zeros(bd.labels.shape, np.float32)
    if m.any():
        li, ki = np.nonzero(m)
        pts = bd.origins[li] + g.r_mm[ki][:, None] * bd.dirs[li]
        vel = flow_velocity(pts, scene, bd.labels[li, ki])
        vax[li, ki] = -(vel * bd.dirs[li]).sum(1)  # toward the probe is positive
    vn = nyquist_mm_s(s)
    vax = (vax + vn) % (2 * vn) - vn  # aliasing
    vax[np.abs(vax) < WALL_FRACTION * vn] = 0.0
    col = bart_colour(vax, vn)
    has = (np.abs(vax) > 0).astype(np.uint8) * 255
    col_img = cv2.remap(col, st.map_x, st.map_y, cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    has_img = cv2.remap(has, st.map_x, st.map_y, cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    rgb = np.repeat(pixels[..., None], 3, axis=2)
    rgb[has_img] = col_img[has_img]
    # box outline
    box_img = cv2.remap(inbox.astype(np.uint8) * 255, st.map_x, st.map_y, cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    edge = cv2.morphologyEx(box_img, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    rgb[edge & ~has_img] = (200, 200, 200)
    return rgb
