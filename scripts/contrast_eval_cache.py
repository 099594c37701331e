"""``evaluate_contrast``'s cases cached to disk, re-scored fast (tuning the contrast
analyser without re-rendering). The cases are those of
``lab.eval_contrast.evaluate_contrast(n, seed)`` (same phantoms, patterns, levels, sides,
AEC, 256², 15 pulses/s, DSA 2 frames/s; the observer model is left out — it does not change
the frames), one pickle per phantom seed under ``--cache``; the summary is
``evaluate_contrast``'s ``live`` / ``dsa`` / ``baseline`` figures.

    python scripts/contrast_eval_cache.py --n 24 --seed 0      # tuning seeds 0-23
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np


def phantom_cases(s: int, pixels: int = 256) -> list[dict]:
    """The six cases of phantom seed ``s`` as ``evaluate_contrast`` makes them (frames
    without truth)."""
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.lab.eval_contrast import EVAL_CONTRAST, PATTERNS, make_case

    rng = np.random.default_rng(s)
    bmi, deg = EVAL_CONTRAST.factors(rng)
    patient = build_phantom("lumbar", bmi=bmi, degeneration=deg, seed=s, spacing_mm=1.5)
    out = []
    for pattern in PATTERNS:
        level = ("L3-L4", "L4-L5")[int(rng.integers(0, 2))]
        side = ("right", "left")[int(rng.integers(0, 2))]
        rng.uniform(4.0, 12.0)  # the manual mA draw (unused under the AEC)
        try:
            c = make_case(patient, pattern, level, side, seed=s, pixels=pixels)
        except Exception as e:  # noqa: BLE001 - as evaluate_contrast: skipped
            out.append({"skipped": f"seed {s} {pattern}: {e}"})
            continue
        out.append({"seed": s, "pattern": pattern, "truth": c["truth"],
                    "arrival_s": c["arrival_s"], "n_mask": c["n_mask"],
                    **{k: [f.without_truth() for f in c[k]] for k in ("live", "dsa", "spot")}})
    return out


def load(s: int, cache: Path) -> list[dict]:
    cache.mkdir(parents=True, exist_ok=True)
    fn = cache / f"phantom_{s}.pkl"
    if fn.exists():
        return pickle.loads(fn.read_bytes())
    cases = phantom_cases(s)
    fn.write_bytes(pickle.dumps(cases))
    return cases


def score(cases: list[dict], modes=("live", "dsa", "baseline"), params=None) -> dict:
    """``evaluate_contrast``'s summaries of the cached cases (and the per-case rows)."""
    from needleguide.guidance.contrast import classify_sequence
    from needleguide.lab.eval_contrast import BASELINE_PARAMS, _score, _summary

    rows: dict[str, list[dict]] = {m: [] for m in modes}
    for c in cases:
        if "skipped" in c:
            continue
        t, arr = c["truth"], c["arrival_s"]
        for m in modes:
            if m == "live":
                res = classify_sequence(c["live"], "live", c["n_mask"], params=params)
            elif m == "dsa":
                res = classify_sequence(c["dsa"], "dsa", params=params)
            else:
                res = classify_sequence(c["spot"], "live", 1, BASELINE_PARAMS)
            r = _score(res, t, arr)
            r.update(seed=c["seed"], pattern=c["pattern"])
            rows[m].append(r)
    return {m: _summary(v) for m, v in rows.items()} | {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/contrast_eval"))
    ap.add_argument("--modes", nargs="*", default=["live", "dsa"])
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    t0 = time.time()
    cases = [c for s in range(a.seed, a.seed + a.n) for c in load(s, a.cache)]
    t1 = time.time()
    out = score(cases, a.modes)
    for m in a.modes:
        d = out[m]
        iv = d["intravascular"]
        print(f"{m:8s} sens {iv['sensitivity']:.3f} spec {iv['specificity']:.3f} "
              f"({iv['positives']}+/{iv['negatives']}-) within1s "
              f"{d['alarm_within_1s_of_arrival']:.3f} lat_med "
              f"{d['alarm_latency_after_arrival_s']['median']} acc {d['accuracy']:.3f} "
              f"causes {d['alarm_causes']}")
        miss = [(r["seed"], r["pattern"], r["cause"]) for r in out["rows"][m]
                if r["alarm"] != (r["truth"].startswith("intravascular"))]
        print(f"         errors: {miss}")
    print(f"load {t1 - t0:.0f} s, score {time.time() - t1:.0f} s")
    if a.json is not None:
        a.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
