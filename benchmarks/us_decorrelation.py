"""Speckle correlation between ultrasound frames against probe shift, next to theory
(issue 16, "Must show" 1).

A homogeneous soft-tissue block (fully developed speckle; muscle has septa), linear probe
7.5 MHz, focus 20 mm. The probe is shifted along its lateral axis and along its elevation
axis (out of plane) by 0, 0.2, 0.5 and 1 mm; the echo intensity (envelope², beam
coordinates, 15–25 mm deep, all but the 40 edge lines) is correlated (Pearson) with the
unshifted frame's at the same samples (no motion compensation). "0 mm" is the same pose
rendered at another time (a second frame: only what is redrawn per frame decorrelates).

Theory, fully developed speckle through a Gaussian amplitude PSF of standard deviation
σ = FWHM / 2.3548 (``us.beams.lateral_fwhm_mm`` two-way, ``elevation_fwhm_mm`` at the
ROI's mid-depth): intensity correlation ρ(Δ) = exp(−Δ² / (2σ²)); also that ρ averaged
over the ROI's depths with σ(z) (the elevation slice widens from 0.28 to 0.54 mm over
15–25 mm), the like-for-like figure. Prints the table and, with ``--png``, writes the
figure.

    python benchmarks/us_decorrelation.py [--seeds 0 1 2] [--png docs/img/us_decorrelation.png]
        [--shifts 0 0.005 0.01 0.02 0.05] [--subcell]

``--shifts`` (mm) sets other shifts (tremor-sized ones, say); ``--subcell`` renders with
``speckle_subcell`` (scatterers blended between lattice cells).
"""

from __future__ import annotations

import argparse

import numpy as np

SHIFTS_MM = (0.0, 0.2, 0.5, 1.0)


def measure(seed: int, shifts=SHIFTS_MM, subcell: bool = False) -> dict:
    from needleguide.scene import Scene
    from needleguide.us import USImager, make_settings
    from needleguide.us.beams import elevation_fwhm_mm, lateral_fwhm_mm
    from needleguide.us.testobjects import layered_patient, probe_on_top

    patient = layered_patient([("soft_tissue", 100.0)], size_mm=(56.0, 60.0, 16.0),
                              spacing_mm=0.4)
    s = make_settings(probe="linear", frequency_mhz=7.5, depth_mm=30.0, focus_mm=20.0,
                      output_px=256, tgc_auto_db_cm_mhz=0.8, speckle_subcell=subcell)
    im = USImager(s, seed=seed)
    r = im.setup.geom.r_mm
    k = (r > 15.0) & (r < 25.0)
    scene = Scene(patient)

    def intensity(dx: float, dz: float, t: float) -> np.ndarray:
        bd = im.beams(scene.with_time(t), probe_on_top(x_mm=dx, z_mm=dz))
        e = bd.envelope[40:-40][:, k].astype(np.float64)
        return (e * e).ravel()

    a = intensity(0.0, 0.0, 0.0)
    out = {"lateral": [], "elevation": []}
    for name in ("lateral", "elevation"):
        for d in shifts:
            b = intensity(d if name == "lateral" else 0.0, d if name == "elevation" else 0.0,
                          0.1)
            out[name].append(float(np.corrcoef(a, b)[0, 1]))
    zmid = np.array([20.0])
    out["sigma_lat_mm"] = float(lateral_fwhm_mm(zmid, s)[0]) / 2.3548
    out["sigma_el_mm"] = float(elevation_fwhm_mm(zmid, s)[0]) / 2.3548
    out["sigma_lat_roi"] = lateral_fwhm_mm(im.setup.depth_mm[k], s) / 2.3548
    out["sigma_el_roi"] = elevation_fwhm_mm(im.setup.depth_mm[k], s) / 2.3548
    return out


def roi_theory(d, sig_roi: np.ndarray) -> np.ndarray:
    """ρ(Δ) averaged over the ROI's range samples, σ(z) at each."""
    d = np.asarray(d, float)
    return np.exp(-d[..., None] ** 2 / (2 * sig_roi ** 2)).mean(axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--png", default=None)
    ap.add_argument("--shifts", type=float, nargs="+", default=list(SHIFTS_MM))
    ap.add_argument("--subcell", action="store_true")
    a = ap.parse_args()
    if any(not 0.0 <= x <= 5.0 for x in a.shifts):
        ap.error("--shifts: each shift must be in [0, 5] mm")
    res = [measure(s, a.shifts, a.subcell) for s in a.seeds]
    d = np.array(a.shifts)
    sig_l = float(np.mean([r["sigma_lat_mm"] for r in res]))
    sig_e = float(np.mean([r["sigma_el_mm"] for r in res]))
    th_l = np.exp(-d ** 2 / (2 * sig_l ** 2))
    th_e = np.exp(-d ** 2 / (2 * sig_e ** 2))
    sr_l, sr_e = res[0]["sigma_lat_roi"], res[0]["sigma_el_roi"]
    tr_l, tr_e = roi_theory(d, sr_l), roi_theory(d, sr_e)
    lat = np.array([r["lateral"] for r in res])
    el = np.array([r["elevation"] for r in res])
    print(f"seeds {a.seeds}; PSF σ at 20 mm: lateral {sig_l:.2f} mm, elevation {sig_e:.2f} mm")
    print("shift mm | lateral measured (mean ± sd) | theory (mid / ROI) | elevation measured"
          " | theory (mid / ROI)")
    for i, x in enumerate(d):
        print(f"  {x:5.3f} | {lat[:, i].mean():.3f} ± {lat[:, i].std():.3f}"
              f"               | {th_l[i]:.3f} / {tr_l[i]:.3f}      "
              f"| {el[:, i].mean():.3f} ± {el[:, i].std():.3f}"
              f"      | {th_e[i]:.3f} / {tr_e[i]:.3f}")
    if a.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        dd = np.linspace(0, max(1.0, float(d.max())), 101)
        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
        for k, (m, sg, sr, ttl) in enumerate(((lat, sig_l, sr_l, "lateral"),
                                              (el, sig_e, sr_e, "elevational"))):
            ax[k].plot(dd, np.exp(-dd ** 2 / (2 * sg ** 2)), "k-",
                       label=f"theory (σ = {sg:.2f} mm at 20 mm)")
            ax[k].plot(dd, roi_theory(dd, sr), "k--", lw=1,
                       label=f"theory, σ(z) over 15–25 mm ({sr.min():.2f}–{sr.max():.2f})")
            ax[k].errorbar(d, m.mean(axis=0), yerr=m.std(axis=0), fmt="o", color="C3",
                           capsize=3, label="simulator (mean ± sd over seeds)")
            ax[k].set_title(f"{ttl} probe shift")
            ax[k].set_xlabel("shift (mm)")
            ax[k].grid(alpha=0.3)
            ax[k].legend(fontsize=8)
        ax[0].set_ylabel("speckle correlation")
        ax[0].set_ylim(-0.1, 1.05)
        fig.tight_layout()
        fig.savefig(a.png, dpi=110)
        print(f"wrote {a.png}")


if __name__ == "__main__":
    main()
