"""The session's eyes: per modality, image the scene, run the needle analyser on the frame
WITHOUT truth, and turn its output into the operator's estimate of the tip (RAS mm).

Fluoroscopy: a pulsed shot in the working view; the detected tip pixel defines a ray from
the focal spot; the estimate is the point of that ray nearest to where the operator thinks
the tip is (the plan at the inserted length). With a second view (the catalogue's view
pair) two rays are triangulated. Ultrasound: the in-plane frame's detected tip is a point
of the image plane (``tip_patient_mm``). The analyser is called through :func:`analyse`
only.
"""

from __future__ import annotations

import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.needle import NeedleDetection, detect_needle
from needleguide.guidance.overlay import draw_cross, draw_needle, draw_text, to_rgb8


def analyse(frame: Frame, prior: NeedleDetection | None = None) -> NeedleDetection:
    """The needle analyser on ``frame`` without its truth (the only call site)."""
    return detect_needle(frame.without_truth(), prior=prior)


def ray_of(carm, frame: Frame, tip_px) -> tuple[np.ndarray, np.ndarray]:
    """Origin (focal spot) and unit direction of the ray through a detector pixel."""
    p = np.asarray(frame.pixel_to_patient(np.array([tip_px[0]]), np.array([tip_px[1]])),
                   float).reshape(3)
    s = np.asarray(carm.source_mm, float)
    d = p - s
    return s, d / np.linalg.norm(d)


def nearest_on_ray(origin, direction, point) -> np.ndarray:
    """Point of the ray nearest to ``point``."""
    o = np.asarray(origin, float)
    d = np.asarray(direction, float)
    return o + d * float(np.dot(np.asarray(point, float) - o, d))


def triangulate(r1: tuple[np.ndarray, np.ndarray], r2: tuple[np.ndarray, np.ndarray]
                ) -> np.ndarray:
    """Midpoint of the shortest segment between two rays (origin, unit direction)."""
    o1, d1 = r1
    o2, d2 = r2
    w = o1 - o2
    a, b, c = d1 @ d1, d1 @ d2, d2 @ d2
    d, e = d1 @ w, d2 @ w
    den = a * c - b * b
    if abs(den) < 1e-9:
        return (o1 + o2) / 2.0
    s = (b * e - c * d) / den
    t = (a * e - b * d) / den
    return ((o1 + s * d1) + (o2 + t * d2)) / 2.0


def depth_along(ray: tuple[np.ndarray, np.ndarray], entry_mm, axis
                ) -> tuple[float, float] | None:
    """Where a tip ray meets the needle's line (``entry_mm`` + s·``axis``): (s in mm
    along the shaft, sin² of the ray–shaft angle: how well the view sees depth), or None
    for a ray along the shaft."""
    o, d = ray
    a = np.asarray(axis, float)
    w = np.asarray(o, float) - np.asarray(entry_mm, float)
    b = float(d @ a)
    den = 1.0 - b * b
    if den < 1e-4:
        return None
    return float((a @ w - b * (d @ w)) / den), den


def combine_depths(depths: list[tuple[float, float] | None], agree_mm: float
                   ) -> float | None:
    """Depth (mm) from several views: the sin²-weighted mean when they agree within
    ``agree_mm``, else the view that sees the shaft most nearly side-on."""
    ok = [d for d in depths if d is not None]
    if not ok:
        return None
    s = np.array([d[0] for d in ok])
    w = np.array([d[1] for d in ok])
    if s.max() - s.min() <= agree_mm:
        return float(np.sum(s * w) / np.sum(w))
    return float(s[int(np.argmax(w))])


def ray_gap(r1: tuple[np.ndarray, np.ndarray], r2: tuple[np.ndarray, np.ndarray]) -> float:
    """Shortest distance (mm) between two rays (origin, unit direction)."""
    n = np.cross(r1[1], r2[1])
    if np.linalg.norm(n) < 1e-9:
        return float(np.linalg.norm(np.cross(r2[0] - r1[0], r1[1])))
    return float(abs(np.dot(r2[0] - r1[0], n / np.linalg.norm(n))))


def fits_prior(det: NeedleDetection, prior: NeedleDetection, dot_px: float = 15.0,
               max_turn_deg: float = 20.0) -> bool:
    """Whether a detected line can be the planned needle: where the planned shaft
    projects to a dot (``< dot_px``, the needle seen end-on) a long line is something
    else; otherwise its direction must lie within ``max_turn_deg`` of the projection."""
    (a0, a1), (b0, b1) = prior.shaft_px
    u = np.array([b0 - a0, b1 - a1])
    (c0, c1), (d0, d1) = det.shaft_px
    w = np.array([d0 - c0, d1 - c1])
    lu, lw = float(np.linalg.norm(u)), float(np.linalg.norm(w))
    if lu < dot_px:
        return lw < 2.0 * dot_px
    if lw < 1e-6:
        return False
    c = abs(float(u @ w)) / (lu * lw)
    return c >= np.cos(np.radians(max_turn_deg))


def fl_prior(carm, hub_mm, tip_guess_mm) -> NeedleDetection:
    """The operator's expectation as a search prior: the planned needle (hub to the
    intended tip) projected."""
    a, b = carm.project(np.stack([np.asarray(hub_mm, float),
                                  np.asarray(tip_guess_mm, float)]))
    return NeedleDetection(True, tip_px=(float(b[0]), float(b[1])),
                           shaft_px=((float(a[0]), float(a[1])), (float(b[0]), float(b[1]))))


def us_prior(frame: Frame, entry_mm, tip_guess_mm) -> NeedleDetection:
    """The operator's expectation on a B-mode frame: the planned shaft (skin entry to the
    intended tip) in pixels of the image plane."""
    a = us_target_px(frame, entry_mm)
    b = us_target_px(frame, tip_guess_mm)
    return NeedleDetection(True, tip_px=b, shaft_px=(a, b))


def fl_overlay(frame: Frame, det: NeedleDetection, carm, target_mm, title: str) -> np.ndarray:
    """RGB display: detection (shaft, tip cross, confidence), planned target (yellow), the
    true tip (cyan circle, for the report's reader; the operator never saw it)."""
    img = to_rgb8(frame.pixels)
    truth = frame.truth.tip_px if frame.truth is not None else None
    draw_needle(img, det, truth)
    tp = carm.project(np.asarray(target_mm, float)[None])[0]
    draw_cross(img, (float(tp[0]), float(tp[1])), (255, 220, 0), 6, 1)
    draw_text(img, title, (6, img.shape[0] - 8))
    return img


def us_fov_box(setup) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of a B-mode image that hold its field of view (the sector
    or rectangle down to the imaging depth): the rest of the scan-converted frame is black
    and is left out of the displayed frames."""
    mx, my = np.asarray(setup.map_x), np.asarray(setup.map_y)
    n_samples, n_lines = len(setup.geom.r_mm), setup.geom.n_lines
    fov = (mx >= 0) & (mx <= n_samples - 1) & (my >= 0) & (my <= n_lines - 1)
    rows, cols = np.nonzero(fov)
    if rows.size == 0:
        return 0, mx.shape[0], 0, mx.shape[1]
    pad = 4
    return (max(int(rows.min()) - pad, 0), min(int(rows.max()) + pad + 1, mx.shape[0]),
            max(int(cols.min()) - pad, 0), min(int(cols.max()) + pad + 1, mx.shape[1]))


def _shift(p, dx: float, dy: float):
    return None if p is None else (float(p[0]) - dx, float(p[1]) - dy)


def us_overlay(frame: Frame, det: NeedleDetection, target_px, title: str,
               box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """RGB display of a B-mode frame (cropped to ``box``, its field of view) with the
    detection, the aim and the true tip."""
    import dataclasses

    r0, r1, c0, c1 = box or (0, frame.pixels.shape[0], 0, frame.pixels.shape[1])
    img = to_rgb8(frame.pixels[r0:r1, c0:c1])
    truth = frame.truth.tip_px if frame.truth is not None and frame.truth.tip_px else None
    shaft = None if det.shaft_px is None else \
        (_shift(det.shaft_px[0], c0, r0), _shift(det.shaft_px[1], c0, r0))
    draw_needle(img, dataclasses.replace(det, tip_px=_shift(det.tip_px, c0, r0),
                                         shaft_px=shaft), _shift(truth, c0, r0))
    if target_px is not None:
        draw_cross(img, _shift(target_px, c0, r0), (255, 220, 0), 6, 1)
    draw_text(img, title, (6, img.shape[0] - 8))
    return img


def us_crop(pixels: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """``pixels`` cut to ``box`` (see :func:`us_fov_box`)."""
    if box is None:
        return pixels
    r0, r1, c0, c1 = box
    return pixels[r0:r1, c0:c1]


def us_target_px(frame: Frame, target_mm) -> tuple[float, float] | None:
    """Pixel (col, row) of a patient point in a B-mode frame (its plane projection)."""
    from needleguide import geometry

    P2I = geometry.invert(np.asarray(frame.ImageToPatient, float))
    x, y, _ = geometry.apply(P2I, np.asarray(target_mm, float))
    return float(x / frame.spacing_mm[1]), float(y / frame.spacing_mm[0])
