"""How often the trainer's needle analyser shows the US needle while it moves under a
still probe (docs/app.md): a trainer session per procedure (seed 3, 512²), the needle
inserted at the planned entry and advanced 0.6 mm every other tick (25 ticks/s) for 44
ticks, then still; per detection source (``tip_from``: the tip from motion's ``step``,
``motion``, ``kept``, ``held``; ``tracker``: the single-frame tracker) the frames and the
median distance of the reported tip from the true 3D tip (out-of-plane distance included).

    python scripts/trainer_motion_check.py [--procedures sacroiliac lumbar-medial-branch]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procedures", nargs="+", default=["sacroiliac", "lumbar-medial-branch"])
    ap.add_argument("--seed", type=int, default=3)
    a = ap.parse_args()
    from needleguide.live.trainer import TrainerConfig, TrainerSession
    from needleguide.session.imaging import us_target_px

    for proc in a.procedures:
        s = TrainerSession(TrainerConfig(procedure=proc, modality="us", pixels=512, seed=a.seed))
        t = 0.0
        f = s.tick(t)
        px = us_target_px(f.frame, s.plan.entry_mm)
        s.command({"op": "entry", "px": [float(np.clip(px[0], 0, 511)),
                                         float(np.clip(px[1], 0, 511))]})
        s.command({"op": "insert"})
        res = []
        for i in range(60):
            t += 1 / 25
            if i % 2 == 0 and i < 44:
                s.command({"op": "advance", "mm": 0.6})
            if s.tick(t) is None:
                continue
            d = s._det
            if d is not None and d.found and d.tip_patient_mm is not None:
                err = float(np.linalg.norm(np.asarray(d.tip_patient_mm) - s.needle.body.tip))
                res.append((d.extra.get("tip_from", "tracker"), err))
            else:
                res.append(("none", None))
        n = Counter(r[0] for r in res)
        med = {k: round(float(np.median([e for kk, e in res if kk == k])), 2)
               for k in n if k != "none"}
        print(f"{proc}: frames {dict(n)}; tip error median (mm) {med}")
        s.close()


if __name__ == "__main__":
    main()
