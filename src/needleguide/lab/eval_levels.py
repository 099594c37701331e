"""Evaluation of the level analysers on labelled simulated FL frames.

Cases: lumbar phantoms (seeded BMI 19–40, degeneration 0–2), AP and lateral C-arm views
(``named_view``) centred on a random injection level (L3-L4, L4, L4-L5, L5), random dose
(2–12 mA: noise) and display polarity, imaged by :class:`needleguide.fluoro.Fluoroscope`.
Truth: every vertebra whose body centre (projected through the frame's C-arm) lies in the
image; it counts as right when a label of the same name lies within half a pitch of it
(a missed or mislabelled vertebra is wrong). Baseline: naive intensity-profile peak
counting (:func:`needleguide.guidance.levels.baseline_levels`).

US sweep (``us_sweep``): on the same phantom, a paramedian sagittal oblique sweep from
below the sacrum to L1 (:func:`session.level_sweep.make_sweep`, side and jitter from the seed),
labelled by :func:`levels_us.label_sweep` from the pixels only. Truth per frame: the
interspace nearest to the frame centre (or 'sacrum'); a frame is right when its label
names it. Baseline: :func:`levels_us.baseline_sweep` (bright peaks of the panorama).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.levels import (
    baseline_levels,
    draw_levels,
    iso_pixel_mm,
    label_levels,
)
from needleguide.lab.eval_levels_us import USTally
from needleguide.lab.population import EVAL_LEVELS

CENTRES = ("L3-L4", "L4", "L4-L5", "L5")
FL_VIEWS = ("ap", "lateral")


def make_fl_frame(patient, view: str, level: str, seed: int, pixels: int = 256,
                  ma: float = 8.0, display: str = "white-bone"):
    """(frame, {vertebra: (col, row)}) for one spot frame."""
    from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings, named_view
    from needleguide.scene import Scene

    s = make_settings(geometry=CArmGeometry(pixels=pixels), ma=ma, display=display)
    carm = named_view(patient, view, level, geometry_=s.geometry)
    frame = Fluoroscope(patient, s, seed=seed, carm=carm).frame(Scene(patient), "spot", carm)
    truth = {n: tuple(map(float, carm.project(v.center_mm)))
             for n, v in patient.vertebrae.items()}
    return frame, truth


def score_frame(labels, truth: dict, shape: tuple[int, int], pitch_px: float,
                margin_px: float = 4.0) -> tuple[int, int]:
    """(right, total) over the vertebrae whose centre is inside the image."""
    h, w = shape
    right = total = 0
    for name, (c, r) in truth.items():
        if not (margin_px <= r < h - margin_px and 0 <= c < w):
            continue
        total += 1
        near = [lab for lab in labels if abs(lab.row_px - r) < 0.5 * pitch_px]
        if near:
            best = min(near, key=lambda lab: abs(lab.row_px - r))
            right += best.name == name
    return right, total


def evaluate_levels(n: int, seed: int, progress: Callable[[int, int], None] | None = None,
                    pixels: int = 256, overlays_dir=None, us_sweep: bool = True,
                    spine: bool = True) -> dict:
    """``n`` phantoms (seeds ``seed`` …) × AP and lateral (and a US sweep); accuracy per
    view for ours and the baseline, per-level accuracy, fps at 512². With
    ``overlays_dir``, every frame's labels are drawn to ``levels_<seed>_<view>.png`` there
    (the sweep's panorama to ``levels_<seed>_us_sweep.png``). With ``spine``, also the
    whole-spine labeller on ``n`` whole-spine phantoms (12 random views each), ``n // 2``
    with a transitional variant and ``n // 4`` imported as CTs (``eval_levels_spine``):
    ``accuracy.with_anchor``, ``abstention.without_anchor``, ``ece`` per region, and
    ``spine`` (everything else of that evaluation)."""
    from needleguide.anatomy.phantom import build_phantom

    acc = {v: [0, 0] for v in FL_VIEWS}
    base = {v: [0, 0] for v in FL_VIEWS}
    frames_ok = {v: [0, 0] for v in FL_VIEWS}
    per_level: dict[str, list[int]] = {}
    us = USTally()
    for i in range(n):
        s = (seed + i) % 2**32  # phantom seeds stay in 0 … 2³²−1
        rng = np.random.default_rng(s)
        bmi, deg = EVAL_LEVELS.factors(rng)
        patient = build_phantom("lumbar", bmi=bmi, degeneration=deg, seed=s, spacing_mm=1.5)
        for view in FL_VIEWS:
            level = CENTRES[int(rng.integers(0, len(CENTRES)))]
            frame, truth = make_fl_frame(patient, view, level, s, pixels,
                                         ma=float(rng.uniform(2, 12)),
                                         display=("white-bone", "black-bone")[
                                             int(rng.integers(0, 2))])
            f = frame.without_truth()
            pitch_px = 35.0 / iso_pixel_mm(f)
            ours = label_levels(f)
            if overlays_dir is not None:
                _write_png(overlays_dir, f"levels_{s}_{view}.png", draw_levels(f, ours))
            r, t = score_frame(ours, truth, f.shape, pitch_px)
            acc[view][0] += r
            acc[view][1] += t
            frames_ok[view][0] += r == t
            frames_ok[view][1] += 1
            rb, tb = score_frame(baseline_levels(f), truth, f.shape, pitch_px)
            base[view][0] += rb
            base[view][1] += tb
            for name, (c, rr) in truth.items():
                if 4 <= rr < f.shape[0] - 4:
                    one = {name: (c, rr)}
                    ok, _ = score_frame(ours, one, f.shape, pitch_px)
                    per_level.setdefault(name, [0, 0])
                    per_level[name][0] += ok
                    per_level[name][1] += 1
        if us_sweep:
            us.add(patient, s, bmi, deg, overlays_dir)
        if progress:
            progress(i + 1, n)

    def frac(x):
        return x[0] / x[1] if x[1] else None

    out = {
        "accuracy": {"fluoro_ap": frac(acc["ap"]), "fluoro_lateral": frac(acc["lateral"]),
                     "us_sweep": us.accuracy()},
        "baseline": {"accuracy": {"fluoro_ap": frac(base["ap"]),
                                  "fluoro_lateral": frac(base["lateral"]),
                                  "us_sweep": us.accuracy(baseline=True)}},
        "frames_all_right": {v: frac(frames_ok[v]) for v in FL_VIEWS},
        "per_level": {k: frac(v) for k, v in sorted(per_level.items())},
        "vertebrae": {v: acc[v][1] for v in FL_VIEWS},
        "seeds": [seed, seed + n - 1],
        "fps": analyser_fps(),
        **us.summary(),
    }
    if spine:
        from needleguide.lab.eval_levels_spine import evaluate_spine, merge_keys

        def tick(done: int, total: int) -> None:
            if progress:
                progress(n + done, n + total)

        merge_keys(out, evaluate_spine(n, seed, frames=12, n_transitional=n // 2,
                                       n_ct=n // 4, pixels=pixels, progress=tick,
                                       overlays_dir=overlays_dir))
    return out


def synthetic_column_frame(pixels: int, seed: int, **settings) -> Frame:
    """A fluoroscopy-like frame of ``pixels``² with a synthetic spinal column (bright
    bodies every 60 px, dark discs, noise; 0.586 mm pixels) for speed measurements;
    ``settings`` are added to the frame's."""
    rng = np.random.default_rng(seed)
    rows = np.arange(pixels)
    prof = 0.5 + 0.3 * (np.sin(2 * np.pi * rows / 60.0) > -0.6)
    img = np.full((pixels, pixels), 0.3, np.float32)
    img[:, pixels // 2 - 40: pixels // 2 + 40] = prof[:, None]
    img += rng.normal(0, 0.02, img.shape).astype(np.float32)
    return Frame(pixels=img, spacing_mm=(0.586, 0.586), ImageToPatient=np.eye(4),
                 time_s=0.0, modality="fluoro",
                 settings={"pixel_mm": 0.586, "sod_mm": 650.0, "sid_mm": 1000.0,
                           **settings})


def analyser_fps(pixels: int = 512, repeats: int = 10, seed: int = 0) -> float:
    """Frames per second of :func:`label_levels` at ``pixels``² on a synthetic column
    (bright bodies, dark discs, noise)."""
    f = synthetic_column_frame(pixels, seed)
    label_levels(f)
    t0 = time.perf_counter()
    for _ in range(repeats):
        label_levels(f)
    return float(repeats / (time.perf_counter() - t0))


def _write_png(folder, name: str, rgb: np.ndarray) -> None:
    from pathlib import Path

    import imageio.v2 as imageio

    from needleguide.atomic import atomic_path

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    with atomic_path(d / name) as tmp:
        imageio.imwrite(tmp, rgb, format="PNG")
