"""Contact sheet of the US needle tip from motion (issue 16 part 4): for a few sequences of
``lab.needle_motion_cases`` (phantom seeds given), one advance frame and one jiggle frame:
the B-mode frame with the motion analyser's detection (green shaft, tip cross: red where
the echo's end was found, yellow from motion alone; cyan circle: the true tip), next to
its motion map (z score, log grey) — and the single-frame analyser on the same frame.

    python scripts/needle_motion_sheet.py --seeds 2000 2001 2100 --png docs/img/us_needle_motion.png

``--cases SEED --sequence Q --frames F …``: those frames of the evaluation's motion
sequence Q of ``needleguide evaluate needle --seed SEED`` (``lab.eval_needle.make_cases``
with 40 cases, ≈ 1 min) instead, e.g. a tip that runs into black (``tip_in_shadow``):

    python scripts/needle_motion_sheet.py --cases 1216 --sequence 0 --frames 27 33 40 50 \
        --png docs/img/us_tip_in_shadow.png

``--acquire-max-mm 0``: the analyser as before its first-detection rule, e.g. a needle
first found at its jiggled shaft, 22–65 mm short (now not reported):

    python scripts/needle_motion_sheet.py --cases 1144 --sequence 2 --frames 50 65 69 75 \
        --acquire-max-mm 0 --png docs/img/us_jiggle_first.png
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np


def tiles(seq, frames: tuple[int, ...], size: int = 300, prm=None) -> list[np.ndarray]:
    from needleguide.guidance.needle import detect_needle
    from needleguide.guidance.needle_motion import NeedleMotion
    from needleguide.guidance.overlay import draw_needle, to_rgb8

    nm, out = NeedleMotion(prm), []
    for i, c in enumerate(seq.cases):
        f = c.frame.without_truth()
        d = nm.update(f)
        if i not in frames:
            continue
        tip = c.frame.truth.tip_px if c.params.get("scored") else None
        im = to_rgb8(c.frame.pixels)
        draw_needle(im, d, tip)
        single = to_rgb8(c.frame.pixels)
        draw_needle(single, detect_needle(f), tip)
        z = np.log1p(nm.z if nm.z is not None else np.zeros((8, 8), np.float32))
        zm = cv2.cvtColor(np.clip(z / 7.0 * 255, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        zm = cv2.resize(zm, im.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        row = []
        for t, label in ((im, f"{seq.phases[i]}: motion ({d.extra.get('tip_from', '-')})"),
                         (zm, "motion z (log)"), (single, "single frame")):
            t = cv2.resize(t, (size, size), interpolation=cv2.INTER_AREA)
            cv2.putText(t, label, (6, 36), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1,
                        cv2.LINE_AA)
            row.append(t)
        out.append(np.hstack(row))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[2000, 2001, 2100])
    ap.add_argument("--png", default="us_needle_motion.png")
    ap.add_argument("--cases", type=int, default=None)
    ap.add_argument("--sequence", type=int, default=0)
    ap.add_argument("--frames", type=int, nargs="+", default=[])
    ap.add_argument("--acquire-max-mm", type=float, default=None,
                    help="the analyser's acquire_max_mm (0: a needle may be first found at "
                         "a jiggled shaft, as before the rule; default: the analyser's)")
    a = ap.parse_args()
    if a.acquire_max_mm is not None and not a.acquire_max_mm >= 0:
        ap.error(f"--acquire-max-mm {a.acquire_max_mm}: must be ≥ 0 mm (0: off)")
    from needleguide.guidance.needle_motion import MotionParams

    prm = MotionParams() if a.acquire_max_mm is None else \
        MotionParams(acquire_max_mm=a.acquire_max_mm)
    import imageio.v2 as imageio

    from needleguide.atomic import atomic_path

    def write(rows: list[np.ndarray]) -> None:
        with atomic_path(a.png) as tmp:
            imageio.imwrite(tmp, np.vstack(rows), format="PNG")
        print(a.png)

    if a.cases is not None:
        if not a.frames or min(a.frames) < 0:
            ap.error("--frames: one or more frame numbers (≥ 0) with --cases")
        if a.sequence < 0:
            ap.error(f"--sequence {a.sequence}: must be ≥ 0")
        from needleguide.lab.eval_needle import make_cases

        seqs = make_cases(40, a.cases, motion_sequences=1)["us_motion"]
        if not 0 <= a.sequence < len(seqs):
            ap.error(f"--sequence {a.sequence}: must be 0 … {len(seqs) - 1}")
        n = len(seqs[a.sequence].cases)
        if not all(0 <= f < n for f in a.frames):
            ap.error(f"--frames {a.frames}: must be 0 … {n - 1}")
        write(tiles(seqs[a.sequence], tuple(a.frames), prm=prm))
        return

    from needleguide.anatomy.phantom import build_phantom
    from needleguide.lab.needle_motion_cases import us_motion_sequences

    rows = []
    for s in a.seeds:
        region = "cervical" if s % 100 == 2 else "lumbar"
        p = build_phantom(region, bmi=26, degeneration=1, seed=s, spacing_mm=1.5)
        seq = us_motion_sequences(p, region, np.random.default_rng(s), s, 1)[0]
        adv = seq.phases.index("pause") - 2
        jig = seq.phases.index("jiggle") + 3
        rows += tiles(seq, (adv, jig), prm=prm)
    write(rows)


if __name__ == "__main__":
    main()
