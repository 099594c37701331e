"""Tally of the US sweep level evaluation (``us_sweep`` keys of ``evaluate levels``).

Per phantom one paramedian sagittal oblique sweep (:func:`session.level_sweep.make_sweep`;
side from the seed ``[seed, 6]``, so the FL draws are untouched). Truth per frame: the
interspace nearest to the frame centre (``levels_us_count.level_name`` of the true level
position); the analyser sees the frames without truth.
"""

from __future__ import annotations

import time

import numpy as np

from needleguide.guidance.levels_us import baseline_sweep, draw_sweep, label_sweep
from needleguide.guidance.levels_us_count import level_name
from needleguide.session.level_sweep import make_sweep

BMI_BINS = ((0.0, 25.0, "<25"), (25.0, 32.0, "25-32"), (32.0, 99.0, ">=32"))


class USTally:
    """Accumulates frames right / total for ours and the baseline, by BMI and
    degeneration, the level error, and the analyser's speed."""

    def __init__(self):
        self.right = [0, 0]
        self.base = [0, 0]
        self.by_bmi: dict[str, list[int]] = {}
        self.by_deg: dict[str, list[int]] = {}
        self.sweeps_all_right = [0, 0]
        self.anchor_found = 0
        self.abs_err: list[float] = []
        self.confident = [0, 0]  # right / total among frames with confidence ≥ 0.6
        self.t_s = 0.0
        self.frames = 0

    def add(self, patient, seed: int, bmi: float, degeneration: int, overlays_dir=None):
        rng = np.random.default_rng([seed, 6])
        side = ("right", "left")[int(rng.integers(0, 2))]
        sw = make_sweep(patient, seed, side=side)
        frames = [f.without_truth() for f in sw.frames]
        t0 = time.perf_counter()
        res = label_sweep(frames, with_panorama=overlays_dir is not None)
        self.t_s += time.perf_counter() - t0
        self.frames += len(frames)
        base = baseline_sweep(frames, res)
        truth = [level_name(u) for u in sw.u_true]
        ok = [lab.name == t for lab, t in zip(res.labels, truth, strict=True)]
        okb = [lab.name == t for lab, t in zip(base, truth, strict=True)]
        self.right[0] += sum(ok)
        self.right[1] += len(ok)
        self.base[0] += sum(okb)
        self.base[1] += len(okb)
        kb = next(name for lo, hi, name in BMI_BINS if lo <= bmi < hi)
        for d, k in ((self.by_bmi, kb), (self.by_deg, str(degeneration))):
            d.setdefault(k, [0, 0])
            d[k][0] += sum(ok)
            d[k][1] += len(ok)
        for lab, good in zip(res.labels, ok, strict=True):
            if lab.confidence >= 0.6:
                self.confident[0] += good
                self.confident[1] += 1
        self.sweeps_all_right[0] += all(ok)
        self.sweeps_all_right[1] += 1
        self.anchor_found += res.anchor_confidence is not None
        self.abs_err += [abs(lab.u - u) for lab, u in zip(res.labels, sw.u_true, strict=True)
                         if np.isfinite(lab.u)]
        if overlays_dir is not None:
            from needleguide.lab.eval_levels import _write_png

            _write_png(overlays_dir, f"levels_{seed}_us_sweep.png", draw_sweep(res))

    def accuracy(self, baseline: bool = False) -> float | None:
        x = self.base if baseline else self.right
        return x[0] / x[1] if x[1] else None

    def summary(self) -> dict:
        def frac(x):
            return x[0] / x[1] if x[1] else None

        if not self.right[1]:
            return {"us_sweep_note": "US sweep not evaluated"}
        return {"us_sweep": {
            "frames": self.right[1], "sweeps": self.sweeps_all_right[1],
            "sweeps_all_right": frac(self.sweeps_all_right),
            "sacrum_found": self.anchor_found / self.sweeps_all_right[1],
            "per_bmi": {k: frac(v) for k, v in sorted(self.by_bmi.items())},
            "per_degeneration": {k: frac(v) for k, v in sorted(self.by_deg.items())},
            "level_error_median": float(np.median(self.abs_err)) if self.abs_err else None,
            "level_error_p95": float(np.percentile(self.abs_err, 95))
            if self.abs_err else None,
            "confident_share": self.confident[1] / self.right[1],
            "confident_accuracy": frac(self.confident),
            "fps": self.frames / self.t_s if self.t_s > 0 else None,
            "truth": "interspace nearest to each frame centre (or 'sacrum')",
        }}
