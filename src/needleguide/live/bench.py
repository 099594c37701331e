"""Tick timing of a live session (quoted in docs/live.md):
``python -m needleguide.live.bench [--modality us|fluoro] [--pixels 512] [--fps 30]``.

Runs the virtual operator in real-time steps of 1/fps s and reports the median and 95th
percentile tick time (ms) per phase after ``warmup`` ticks, the analyser's hit rate and
its median tip error (mm, against the needle pose the session reports).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from needleguide.live.config import LiveConfig
from needleguide.live.session import LiveSession


def benchmark_tick(cfg: LiveConfig, fps: float = 30.0, warmup: int = 10,
                   max_s: float = 120.0) -> dict:
    """Run ``cfg`` to "done" (or ``max_s`` of session time) at ``fps``; timings in ms."""
    t0 = time.perf_counter()
    s = LiveSession(cfg)
    init_s = time.perf_counter() - t0
    per: dict[str, list[float]] = {}
    hits, errs, n = 0, [], 0
    k = 0
    while not s.done and k / fps <= max_s:
        phase = s.pilot.phase
        a = time.perf_counter()
        f = s.tick(k / fps)
        dt = time.perf_counter() - a
        if k >= warmup:
            per.setdefault(phase, []).append(dt * 1000.0)
        if "NeedleTipToReference" in f.transforms and phase == "advance":
            n += 1
            if f.detected_tip_to_reference is not None:
                hits += 1
                errs.append(float(np.linalg.norm(f.detected_tip_to_reference[:3, 3]
                                                 - f.transforms["NeedleTipToReference"][:3, 3])))
        k += 1
    allt = [x for v in per.values() for x in v]
    return {"modality": cfg.modality, "pixels": cfg.pixels, "init_s": round(init_s, 2),
            "ticks": k, "median_ms": round(float(np.median(allt)), 2),
            "p95_ms": round(float(np.percentile(allt, 95)), 2),
            "max_ms": round(float(np.max(allt)), 1),
            "per_phase_median_ms": {p: round(float(np.median(v)), 2) for p, v in per.items()},
            "detected_rate_advance": round(hits / max(n, 1), 3),
            "median_tip_error_mm": round(float(np.median(errs)), 2) if errs else None,
            "done": s.done}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modality", default="us", choices=("us", "fluoro"))
    ap.add_argument("--procedure", default="lumbar-transforaminal")
    ap.add_argument("--pixels", type=int, default=512)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=5.0, help="advance_mm_s")
    ap.add_argument("--bmi", type=float, default=28.0)
    a = ap.parse_args(argv)
    cfg = LiveConfig(procedure=a.procedure, modality=a.modality, pixels=a.pixels,
                     advance_mm_s=a.speed, bmi=a.bmi)
    print(benchmark_tick(cfg, fps=a.fps))


if __name__ == "__main__":
    main()
