"""Needle visibility against insertion angle, next to Nichols et al. 2003 (issue 16, part 3).

Nichols K, Wright LB, Spencer T, Culp WC. Changes in ultrasonographic echogenicity and
visibility of needles with changes in angles of insonation. J Vasc Interv Radiol 2003;14:1553.
Their angle is the angle between the beam and the needle (90° = needle perpendicular to the
beam). Here the x axis is the *insertion angle* α between the needle and the probe face
(linear probe, no steering): α = 90° − Nichols' angle, so Nichols' 90° is α = 0° (needle
parallel to the face) and Nichols' 15° is α = 75° (a steep needle).

Score (0–100, like Nichols' photodensity "echogenicity units" of a region on the needle):
the fraction of the display headroom above the background that the shaft fills,
    score = 100 · (S − B) / (255 − B),
S = mean display grey (0..255, beam domain before scan conversion) over a band one outer
diameter deep (7 samples, 0.72 mm for 22 G) centred on the shaft echo of every shaft line,
B = the same band and lines rendered without the needle (speckle is fixed in tissue
coordinates, so B is the very background the shaft replaces). 0 = invisible, 100 = a white
band. Shaft lines: scan lines that cross the shaft between 3 and 13 mm proximal of the tip
(the bevel echo excluded).
Mean of 3 seeds. Scene: homogeneous soft tissue, linear 7.5 MHz, depth 40 mm, 22 G needle
pivoting about the point at 20 mm depth under the probe's centre.

    python benchmarks/us_needle_angle.py [--plot docs/img/us_needle_angle.png]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from needleguide.scene import Needle, Scene
from needleguide.us import USImager, make_settings
from needleguide.us.testobjects import layered_patient, probe_on_top

ANGLES = [0, 15, 30, 45, 60, 70, 75]  # insertion angle α (needle vs probe face), degrees
NICHOLS = {90: (60.0, 76.0), 15: (5.0, 43.0)}  # Nichols' angle (beam vs needle): score range
PIVOT_DEPTH_MM = 20.0
TIP_BEYOND_MM = 15.0  # tip this far past the pivot along the shaft
ROI_MM = (3.0, 13.0)  # arc length proximal of the tip scored as shaft


def _patient():
    return layered_patient([("soft_tissue", 60.0)], size_mm=(80.0, 60.0, 16.0),
                           spacing_mm=0.4)


def _needle(alpha_deg: float, echogenic: bool = False) -> Needle:
    a = np.deg2rad(alpha_deg)
    d = np.array([np.cos(a), -np.sin(a), 0.0])  # in plane, descending to the right
    tip = np.array([0.0, -PIVOT_DEPTH_MM, 0.0]) + TIP_BEYOND_MM * d
    kw = {"echogenic": True} if echogenic else {}
    return Needle(gauge=22, length_mm=90, tip_mm=tuple(tip), direction=tuple(d),
                  inserted_length_mm=40.0, **kw)


def visibility(alpha_deg: float, echogenic: bool = False, seeds=(0, 1, 2), patient=None,
               settings=None) -> float:
    """The score above (0–100 grey-level contrast) at insertion angle ``alpha_deg``."""
    p = patient if patient is not None else _patient()
    s = settings or make_settings(probe="linear", frequency_mhz=7.5, depth_mm=40,
                                  output_px=256)
    nd = _needle(alpha_deg, echogenic)
    scores = []
    for seed in seeds:
        im = USImager(s, seed=seed)
        bd = im.beams(Scene(p, needle=nd, poses={"ProbeToPatient": probe_on_top()}))
        b0 = im.beams(Scene(p, needle=None, poses={"ProbeToPatient": probe_on_top()}))
        r = im.setup.geom.r_mm
        dr = r[1] - r[0]
        w = max(1, int(round(0.5 * nd.outer_diameter_mm / dr)))
        tip = nd.tip
        on, off = [], []
        for ln in np.nonzero(bd.needle_hit >= 0)[0]:
            # arc length from the tip of the shaft point this line meets (in-plane geometry)
            k = int(bd.needle_hit[ln])
            pt = bd.origins[ln] + r[k] * bd.dirs[ln]
            s_back = float(np.dot(tip - pt, nd.axis))
            if not ROI_MM[0] <= s_back <= ROI_MM[1]:
                continue
            lo, hi = max(0, k - w), k + w + 1
            on.append(bd.img8[ln, lo:hi].mean())
            off.append(b0.img8[ln, lo:hi].mean())
        if on:
            S, B = float(np.mean(on)), float(np.mean(off))
            scores.append(100.0 * (S - B) / (255.0 - B))
    return float(np.mean(scores)) if scores else float("nan")


def curve(echogenic: bool = False, angles=ANGLES, seeds=(0, 1, 2)) -> list[float]:
    p = _patient()
    return [visibility(a, echogenic, seeds, patient=p) for a in angles]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", default=None, help="write the figure here (PNG)")
    ap.add_argument("--no-echogenic", action="store_true")
    args = ap.parse_args(argv)
    has_echo = "echogenic" in {f.name for f in dataclasses.fields(Needle)}
    std = curve(False)
    echo = curve(True) if has_echo and not args.no_echogenic else None
    print("insertion angle α (deg):     ", " ".join(f"{a:6d}" for a in ANGLES))
    print("Nichols angle 90-α (deg):    ", " ".join(f"{90 - a:6d}" for a in ANGLES))
    print("score standard (0-100):      ", " ".join(f"{v:6.1f}" for v in std))
    if echo is not None:
        print("score echogenic (0-100):     ", " ".join(f"{v:6.1f}" for v in echo))
    for nang, (lo, hi) in NICHOLS.items():
        a = 90 - nang
        v = std[ANGLES.index(a)]
        print(f"Nichols {nang}° (α={a}°): measured range {lo:.0f}-{hi:.0f}; standard {v:.1f}"
              + (f", echogenic {echo[ANGLES.index(a)]:.1f}" if echo is not None else ""))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
        ax.plot(ANGLES, std, "o-", label="standard needle (22 G)")
        if echo is not None:
            ax.plot(ANGLES, echo, "s-", label="echogenic needle (22 G)")
        for nang, (lo, hi) in NICHOLS.items():
            a = 90 - nang
            ax.errorbar([a], [(lo + hi) / 2], yerr=[[(hi - lo) / 2], [(hi - lo) / 2]],
                        fmt="none", ecolor="k", elinewidth=6, alpha=0.35, capsize=0)
            ax.annotate(f"Nichols 2003, {nang}° to beam:\n{lo:.0f}–{hi:.0f}", (a, hi),
                        textcoords="offset points", xytext=(-60 if a > 40 else 8, 6),
                        fontsize=8)
        ax.set_xlabel("insertion angle α: needle to probe face (deg)  [Nichols' angle = 90° − α]")
        ax.set_ylabel("visibility: 100·(S − B)/(255 − B)")
        ax.set_xlim(-3, 80)
        ax.set_ylim(-5, 105)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper right")
        ax.set_title("US needle visibility vs insertion angle (linear 7.5 MHz, soft tissue)",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
