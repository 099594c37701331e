"""Where a held probe's hand tremor makes the B-mode image flicker (docs/us.md, issue 16).

A needle view planned as in the needle evaluation (``lab.needle_cases.benchmark_us_plan``,
no needle, ``speckle_subcell`` on, receiver noise off) is drawn at ``--frames`` poses of an
AR(1) hand tremor of σ ``--tremor-um`` per axis (as the evaluation's tremor sequences,
``lab.needle_motion_cases``); every screen pixel is counted each time it changes by more
than 16 grey levels from one pose to the next. Writes a PNG: the last frame, and the count
as a heat map (dark red: once, white: 10 times or more); prints the total.

    python scripts/us_tremor_flicker.py --seed 2000 [--tremor-um 5] [--frames 40]
        [--rng 7] --png out.png
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

FLICKER_GREY = 16


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=2000, help="view seed (benchmark_us_plan)")
    ap.add_argument("--tremor-um", type=float, default=5.0, help="tremor σ per axis (µm)")
    ap.add_argument("--frames", type=int, default=40, help="tremor poses (≥ 2)")
    ap.add_argument("--rng", type=int, default=7, help="seed of the tremor")
    ap.add_argument("--png", required=True, help="output PNG")
    a = ap.parse_args(argv)
    if not 2 <= a.frames <= 1000:
        ap.exit(2, f"error: --frames must be 2–1000, got {a.frames}\n")
    if not 0.0 < a.tremor_um <= 1000.0:
        ap.exit(2, f"error: --tremor-um must be in (0, 1000] µm, got {a.tremor_um}\n")
    if not a.png.lower().endswith(".png"):
        ap.exit(2, f"error: --png must name a .png file, got {a.png}\n")
    import cv2

    from needleguide.atomic import atomic_path
    from needleguide.lab.needle_cases import benchmark_us_plan
    from needleguide.lab.needle_motion_cases import RATE_HZ, hand_tremor
    from needleguide.us import USImager

    _, plan = benchmark_us_plan(a.seed)
    if plan is None:
        ap.exit(2, f"error: --seed {a.seed} gives no usable view; try another\n")
    img, scene, _, _ = plan
    im = USImager(img.settings.model_copy(update={"speckle_subcell": True,
                                                  "noise_db_re_face": -120.0}), seed=img.seed)
    st = im.setup
    P2P = np.asarray(scene.poses["ProbeToPatient"], float)
    jitter = hand_tremor(np.random.default_rng(a.rng), a.frames, a.tremor_um / 1000.0)
    count = None
    prev = None
    for i, J in enumerate(jitter):
        cur = cv2.remap(im.beams(scene.with_time(i / RATE_HZ), P2P @ J).img8, st.map_x,
                        st.map_y, cv2.INTER_LINEAR)
        if prev is not None:
            step = np.abs(cur - prev) > FLICKER_GREY
            count = step.astype(np.int32) if count is None else count + step
        prev = cur
    total = int(count.sum())
    # once: dark red; 10 times or more: white
    level = np.where(count > 0, 70.0 + 185.0 * np.minimum(count / 10.0, 1.0), 0.0)
    heat = cv2.applyColorMap(level.astype(np.uint8), cv2.COLORMAP_HOT)
    grey = cv2.cvtColor(np.clip(prev, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
    out = np.hstack([grey, heat])
    cv2.putText(out, f"{total} px changes > {FLICKER_GREY} grey levels, {a.frames - 1} steps of "
                f"{a.tremor_um:g} um", (8, out.shape[0] - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                (255, 255, 255), 1, cv2.LINE_AA)
    try:
        with atomic_path(a.png) as tmp:
            if not cv2.imwrite(str(tmp), out):
                raise OSError("the PNG writer failed")
    except OSError as e:
        ap.exit(2, f"error: cannot write --png {a.png}: {e}\n")
    print(f"seed {a.seed}: {total} pixel changes > {FLICKER_GREY} grey levels over "
          f"{a.frames - 1} tremor steps of {a.tremor_um:g} µm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
