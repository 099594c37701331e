"""Before/after contact sheet of every standard ultrasound view (issue 16, "a screen that
looks like a scanner's"), with the shadow/tissue grey of each frame.

    git archive <before-commit> src | tar -x -C /tmp/ng_before
    python scripts/us_views_sheet.py --before-src /tmp/ng_before/src \
        --png docs/img/us_views_before_after.png [--seed 0] [--bmi 24]

Each view is rendered twice, by the package in ``--before-src`` (a subprocess with that
tree first on ``sys.path``) and by the working tree, on the same phantom (the anatomy
modules are the same in both trees), and the scanner screens (``us/display.py``) are put
side by side: one row per view, before on the left. Under each screen: the mean display
grey 4–12 mm under the first bone surface of every line over the mean grey of the soft
tissue 3–10 mm above it (``shadow_tissue_grey``). ``--render-only DIR`` is the internal
mode of the subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np


def shadow_tissue_grey(imager, bd) -> tuple[float, float]:
    """(mean display grey 4–12 mm under the first bone surface of each line, mean grey of
    the soft tissue 3–10 mm above it), beam coordinates, lines with a bone ≥ 3 mm deep."""
    from needleguide.us import kernels as K

    dr = imager.setup.geom.dr_mm
    fl = imager._flags[bd.labels]
    bone = (fl & K.FLAG_BONE) != 0
    bone[:, : int(3 / dr)] = False
    first = bone.argmax(1)
    img = bd.img8
    sh, ti = [], []
    for ln in np.nonzero(bone.any(1))[0]:
        k = first[ln]
        s0, s1 = k + int(4 / dr), k + int(12 / dr)
        a0, a1 = max(k - int(10 / dr), int(2 / dr)), k - int(3 / dr)
        if s1 > img.shape[1] or a1 <= a0:
            continue
        soft = (fl[ln, a0:a1] & (K.FLAG_BONE | K.FLAG_VESSEL | K.FLAG_FLUID | K.FLAG_AIR)) == 0
        if soft.sum() < 5:
            continue
        sh.append(img[ln, s0:s1].mean())
        ti.append(img[ln, a0:a1][soft].mean())
    return (float(np.mean(sh)), float(np.mean(ti))) if sh else (float("nan"), float("nan"))


def render_all(out: Path, seed: int, bmi: float) -> None:
    """Every view's scanner screen as DIR/<view>.png and its figures in DIR/figures.json."""
    import imageio.v2 as imageio

    from needleguide.anatomy.phantom import build_model
    from needleguide.scene import Scene
    from needleguide.us import USImager, make_settings
    from needleguide.us.display import screen
    from needleguide.us.views import VIEW_INFO, VIEWS, standard_view

    out.mkdir(parents=True, exist_ok=True)
    figs = {}
    for region in ("lumbar", "cervical"):
        patient = build_model(region, bmi=bmi, seed=seed, spacing_mm=1.5).to_patient()
        for view in VIEWS:
            if VIEW_INFO[view][0] != region:
                continue
            v = standard_view(patient, view)
            s = make_settings(probe=v.probe, frequency_mhz=v.frequency_mhz, depth_mm=v.depth_mm,
                              focus_mm=float(np.clip(v.target_depth_mm, 5, 0.95 * v.depth_mm)))
            im = USImager(s, seed=seed)
            scene = Scene(patient, poses={"ProbeToPatient": v.ProbeToPatient})
            fr = im.render(scene, view=v.to_json())
            sh, ti = shadow_tissue_grey(im, im.beams(scene))
            figs[view] = {"shadow": sh, "tissue": ti, "freq": float(s.f_mhz)}
            title = f"{view} {v.level or ''} {v.side} BMI {bmi:g}"
            imageio.imwrite(out / f"{view}.png", screen(fr, title))
    (out / "figures.json").write_text(json.dumps(figs, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before-src", type=Path, help="src/ of the 'before' tree")
    ap.add_argument("--png", type=Path, default=Path("docs/img/us_views_before_after.png"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bmi", type=float, default=24.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/us_views_sheet"))
    ap.add_argument("--render-only", type=Path, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.render_only is not None:
        render_all(a.render_only, a.seed, a.bmi)
        return
    import cv2
    import imageio.v2 as imageio

    cols = {}
    for tag, src in (("before", a.before_src), ("after", None)):
        if tag == "before" and src is None:
            continue
        d = a.work / tag
        env = dict(os.environ)
        if src is not None:
            env["PYTHONPATH"] = str(Path(src).resolve()) + os.pathsep + env.get("PYTHONPATH", "")
        subprocess.run([sys.executable, __file__, "--render-only", str(d), "--seed", str(a.seed),
                        "--bmi", str(a.bmi)], check=True, env=env)
        cols[tag] = d
    from needleguide.us.views import VIEWS

    rows = []
    for view in VIEWS:
        tiles = []
        for tag, d in cols.items():
            img = imageio.imread(d / f"{view}.png")[..., :3]
            f = json.loads((d / "figures.json").read_text())[view]
            img = np.ascontiguousarray(img[:, : img.shape[1] - 60])  # drop the grey-map bar
            txt = (f"{tag}: shadow/tissue grey {f['shadow']:.0f}/{f['tissue']:.0f} = "
                   f"{f['shadow'] / f['tissue']:.2f}  {f['freq']:.1f} MHz")
            cv2.putText(img, txt, (10, img.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (255, 220, 0), 1, cv2.LINE_AA)
            tiles.append(img)
        h = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 4), (0, 0)), constant_values=60)
                 for t in tiles]
        rows.append(np.concatenate(tiles, axis=1))
    w = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, w - r.shape[1]), (0, 0)),
                                   constant_values=60) for r in rows], axis=0)
    # two views per row of the sheet, half size: one PNG under ~600 kB
    half = [cv2.resize(r, (r.shape[1] // 2, r.shape[0] // 2), interpolation=cv2.INTER_AREA)
            for r in np.split(sheet, len(rows), axis=0)]
    if len(half) % 2:
        half.append(np.zeros_like(half[0]))
    grid = np.concatenate([np.concatenate(half[i:i + 2], axis=1)
                           for i in range(0, len(half), 2)], axis=0)
    a.png.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    # 96-colour palette (grey speckle, the yellow/blue marks): under ~600 kB
    Image.fromarray(grid).quantize(colors=96, method=Image.Quantize.MEDIANCUT,
                                   dither=Image.Dither.NONE).save(a.png, optimize=True)
    print(f"wrote {a.png} ({a.png.stat().st_size / 1024:.0f} kB)")


if __name__ == "__main__":
    main()
