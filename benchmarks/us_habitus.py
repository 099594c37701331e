"""Habitus at the lumbar medial-branch view: BMI 22 vs 38 (curvilinear probe, view preset).

For each BMI and seed (phantom seed = imager seed), prints the target-detail figures of
``needleguide.us.image_quality.target_bone_quality`` at the ``transverse-facet`` L4-L5 right
view: bone-surface CNR and contrast against the tissue 3–10 mm above it, the lateral 10–90 %
edge width of the bone echo, and the shadow level (clutter + noise) re the tissue above,
with the default receiver (−70 dB) and with a −120 dB one (clutter alone). ``--png DIR``
writes the scanner screens side by side (BMI 22 | BMI 38) per seed.

    python benchmarks/us_habitus.py --seeds 0 1 2 --png /tmp/h3
"""

from __future__ import annotations

import argparse

import numpy as np


def measure(bmi: float, seed: int, noise_db: float | None = None, png: bool = False):
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.scene import Scene
    from needleguide.us import USImager, make_settings
    from needleguide.us.image_quality import target_bone_quality
    from needleguide.us.views import standard_view

    p = build_phantom("lumbar", bmi=bmi, seed=seed, spacing_mm=1.5)
    v = standard_view(p, "transverse-facet", level="L4-L5", side="right")
    s = make_settings(probe=v.probe, frequency_mhz=v.frequency_mhz, depth_mm=v.depth_mm,
                      focus_mm=float(np.clip(v.target_depth_mm, 5, 0.95 * v.depth_mm)),
                      noise_db_re_face=noise_db)
    im = USImager(s, seed=seed)
    sc = Scene(p, poses={"ProbeToPatient": v.ProbeToPatient})
    q = target_bone_quality(im, sc, v.ProbeToPatient, v.target_mm)
    if png:
        from needleguide.us.display import screen

        q["screen"] = screen(im.render(sc, view=v.to_json()),
                             f"transverse-facet L4-L5 right  BMI {bmi:g}  seed {seed}")
    return q


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--png", default=None, help="directory for side-by-side PNGs")
    ap.add_argument("--tag", default="", help="file name suffix of the PNGs")
    a = ap.parse_args()
    if a.png:
        import os

        os.makedirs(a.png, exist_ok=True)
    keys = ("cnr", "contrast_db", "edge_mm", "shadow_db")
    rows = {22: [], 38: []}
    for seed in a.seeds:
        shots = []
        for bmi in (22, 38):
            q = measure(bmi, seed, png=a.png is not None)
            q["clutter_db"] = measure(bmi, seed, noise_db=-120.0)["shadow_db"]
            rows[bmi].append(q)
            shots.append(q.pop("screen", None))
            print(f"BMI {bmi} seed {seed}: depth {q['target_depth_mm']:.0f} mm  "
                  + "  ".join(f"{k} {q[k]:.2f}" for k in (*keys, "clutter_db"))
                  + f"  (edges {q['n_edges']}, lines {q['lines']})", flush=True)
        if a.png:
            import imageio.v2 as imageio

            imageio.imwrite(f"{a.png}/habitus_seed{seed}{a.tag}.png",
                            np.concatenate(shots, axis=1))
    for bmi in (22, 38):
        print(f"mean BMI {bmi}: " + "  ".join(
            f"{k} {np.nanmean([r[k] for r in rows[bmi]]):.2f}" for k in (*keys, "clutter_db")))


if __name__ == "__main__":
    main()
