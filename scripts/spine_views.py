"""Contact sheets of the whole-spine phantom and of the level labeller (docs/img).

``--what views``: AP, 30° right oblique and lateral fluoroscopy of C5, T7 and L3 (rows),
the truth vertebra names beside the body centres. ``--what levels`` (use ``--pixels
320``): AP and lateral of C5, T7 and L3 and, last row, AP of L5 and of T12 of a
transitional spine (sacralised L5, 11 rib pairs) through ``label_spine``'s overlay
(green ≥ 0.8, amber ≥ 0.5, grey: not named).

    python scripts/spine_views.py --what views --out docs/img/spine_views.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def render(patient, level: str, view: str, pixels: int, seed: int):
    from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings, named_view
    from needleguide.scene import Scene

    s = make_settings(geometry=CArmGeometry(pixels=pixels), display="white-bone")
    carm = named_view(patient, view, level, geometry_=s.geometry)
    return Fluoroscope(patient, s, seed=seed, carm=carm).frame(Scene(patient), "spot", carm)


def tile_views(frame, label: str) -> np.ndarray:
    import cv2

    g = cv2.cvtColor((np.clip(frame.pixels, 0, 1) * 255).astype(np.uint8),
                     cv2.COLOR_GRAY2RGB)
    for n, (c, r) in frame.truth.vertebrae_px.items():
        cv2.putText(g, n, (int(c) + 28, int(r) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33,
                    (255, 230, 0), 1, cv2.LINE_AA)
    cv2.putText(g, label, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 255, 255), 1,
                cv2.LINE_AA)
    return g


def tile_levels(frame, label: str, size: int) -> np.ndarray:
    import cv2

    from needleguide.guidance.levels_spine import draw_spine, label_spine

    f = frame.without_truth()
    img = cv2.resize(draw_spine(f, label_spine(f)), (size, size), interpolation=cv2.INTER_AREA)
    cv2.putText(img, label, (4, size - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 255), 1,
                cv2.LINE_AA)
    return img


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--what", choices=("views", "levels"), default="views")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pixels", type=int, default=256)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    from needleguide.anatomy.phantom import validate_params, wholespine
    from needleguide.anatomy.phantom.thoracic_dims import SpineVariants

    p = wholespine.build(validate_params(region="spine", seed=a.seed, spacing_mm=1.5),
                         SpineVariants("none", "12")).to_patient()
    views = ("ap", "oblique-right", "lateral") if a.what == "views" else ("ap", "lateral")
    rows = []
    for level in ("C5", "T7", "L3"):
        fr = [render(p, level, v, a.pixels, a.seed) for v in views]
        if a.what == "views":
            rows.append([tile_views(f, f"{v} {level}") for f, v in zip(fr, views, strict=True)])
        else:
            rows.append([tile_levels(f, f"{v} {level}", a.pixels)
                         for f, v in zip(fr, views, strict=True)])
    if a.what == "levels":
        t = wholespine.build(validate_params(region="spine", seed=a.seed + 1, spacing_mm=1.5),
                             SpineVariants("sacralised_L5", "11")).to_patient()
        rows.append([tile_levels(render(t, lv, v, a.pixels, a.seed),
                                 f"{v} {lv}: sacralised L5, 11 ribs", a.pixels)
                     for lv, v in (("L5", "ap"), ("T12", "ap"))])
    sheet = np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # 24 greys and the overlay colours keep the sheet small (docs/img: ≤ ~200 kB)
    greys = [int(round(v)) for v in np.linspace(0, 255, 24) for _ in range(3)]
    cols = [60, 220, 60, 240, 200, 40, 170, 170, 170, 0, 255, 255, 255, 230, 0]
    pal = Image.new("P", (1, 1))
    pal.putpalette(greys + cols + [0] * (768 - len(greys) - len(cols)))
    Image.fromarray(sheet).quantize(palette=pal, dither=Image.Dither.NONE).save(
        a.out, optimize=True)
    print(f"wrote {a.out} ({a.out.stat().st_size / 1000:.0f} kB)")


if __name__ == "__main__":
    main()
