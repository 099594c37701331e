"""The ultrasound beams as the needle-from-motion analyser reads them from a scanner screen
(``guidance/us_beams.py``), drawn over four standard views.

    python scripts/us_beams_sheet.py --png docs/img/us_beams.png [--seed 0] [--bmi 24]

Each view is rendered (a linear view also steered), put on the scanner screen
(``us/display.py``: title, depth scale, markers, settings text), and the beams are read
from the screen's non-black pixels alone. Green: the beams read; magenta: the imager's own
beams (its probe geometry), drawn inside the green; the caption gives the largest angle
between the two over the scan.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

VIEWS = (("transverse-facet", 0.0), ("sij-transverse", 0.0),
         ("c2c3-longitudinal", 15.0), ("caudal-longitudinal", -10.0))
OX = 10  # the scan's left edge on the screen (us/display.py)


def tile(view: str, steer: float, seed: int, bmi: float) -> np.ndarray:
    import cv2

    from needleguide.anatomy.phantom import build_model
    from needleguide.guidance.us_beams import beam_field
    from needleguide.scene import Scene
    from needleguide.us import USImager, make_settings
    from needleguide.us.display import HEADER_PX, screen
    from needleguide.us.probe import beam_direction_px
    from needleguide.us.views import VIEW_INFO, standard_view

    patient = build_model(VIEW_INFO[view][0], bmi=bmi, seed=seed, spacing_mm=1.5).to_patient()
    v = standard_view(patient, view)
    s = make_settings(probe=v.probe, frequency_mhz=v.frequency_mhz, depth_mm=v.depth_mm,
                      focus_mm=float(np.clip(v.target_depth_mm, 5, 0.95 * v.depth_mm)),
                      steer_deg=steer if v.probe == "linear" else None)
    fr = USImager(s, seed=seed).render(Scene(patient, poses={"ProbeToPatient": v.ProbeToPatient}))
    img = np.ascontiguousarray(screen(fr, f"{view} steer {steer:+.0f}"))
    bf = beam_field(img.max(axis=2) > 0)
    lit = fr.pixels > 0
    rows, cols = np.nonzero(lit)
    err = 0.0

    def truth(c, r):
        return beam_direction_px(fr.settings, fr.spacing_mm[0], c, r)

    for k in np.linspace(0, rows.size - 1, 400).astype(int):
        a = bf.direction(cols[k] + OX, rows[k] + HEADER_PX) @ truth(cols[k], rows[k])
        err = max(err, float(np.degrees(np.arccos(min(1.0, a)))))
    r1 = rows.max()
    r0 = int(rows.min() + 0.15 * (r1 - rows.min()))
    top = np.flatnonzero(lit[r0])
    for c in np.linspace(top.min(), top.max(), 7):  # beams from near the scan's top down
        for d, colour, w in ((bf.direction(c + OX, r0 + HEADER_PX), (0, 255, 0), 3),
                             (truth(c, r0), (255, 0, 255), 1)):
            p0 = np.array([c + OX, r0 + HEADER_PX])
            p1 = p0 + d * (r1 - r0) / d[1]
            cv2.line(img, tuple(int(x) for x in p0), tuple(int(x) for x in p1), colour, w,
                     cv2.LINE_AA)
    cv2.putText(img, f"beams read (green) vs imager (magenta): max {err:.2f} deg",
                (10, img.shape[0] - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 0), 1,
                cv2.LINE_AA)
    print(f"{view} steer {steer:+.0f}: max angle {err:.2f} deg", flush=True)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--png", type=Path, default=Path("docs/img/us_beams.png"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bmi", type=float, default=24.0)
    a = ap.parse_args()
    if not 15.0 <= a.bmi <= 60.0:
        ap.error("--bmi: must be in [15, 60] kg/m²")
    if a.seed < 0:
        ap.error("--seed: must be ≥ 0")
    if a.png.suffix.lower() != ".png":
        ap.error("--png: the file name must end in .png")
    import imageio.v2 as imageio

    tiles = [tile(v, st, a.seed, a.bmi) for v, st in VIEWS]
    h = max(t.shape[0] for t in tiles)
    w = max(t.shape[1] for t in tiles)
    pad = [np.pad(t, ((0, h - t.shape[0]), (0, w - t.shape[1]), (0, 0))) for t in tiles]
    sheet = np.concatenate([np.concatenate(pad[:2], 1), np.concatenate(pad[2:], 1)], 0)
    a.png.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.png.with_suffix(".tmp.png")
    imageio.imwrite(tmp, sheet)
    tmp.replace(a.png)
    print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
