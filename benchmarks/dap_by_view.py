"""Dose under automatic exposure control, by view and habitus (lumbar L4-L5).

For each BMI (phantom seed 0) and view (AP, oblique-right, lateral at L4-L5), the AEC's
technique (kVp, mA per 10 ms pulse) and the dose of 36 s of pulsed fluoroscopy at
15 pulses/s (the mean TFESI fluoroscopy time of Kim 2014): DAP (Gy·cm²) and reference air
kerma K_ref (mGy), plus the ratios to the AP of the same BMI and to BMI 22 of the same view,
with the published figures beside them (PHYSICS.md, "Dose under automatic exposure"). The
set point is calibrated on the AP at BMI 24–28; nothing else is tuned to these figures.
``--manual`` adds the fixed-technique row (70 kVp, 8 mA) for comparison.

    python benchmarks/dap_by_view.py                 # 1 mm phantom, 512² (≈ 1 min)
    python benchmarks/dap_by_view.py --spacing 2 --pixels 256
"""

from __future__ import annotations

import argparse

SECONDS = 36.0
VIEWS = ("ap", "oblique-right", "lateral")
PUBLISHED = {
    # per-view and per-habitus anchors (whole procedures, mixed views, real C-arms)
    "dap_36s": "Kim 2014 TFESI: 1.02 Gy·cm² / 36 s (mean; 70 kV, 15 p/s)",
    "bmi": "Cushman 2016 TFESI DAP: normal 1.376, overweight 1.911, obese 3.029 Gy·cm² "
           "(obese / normal 2.2)",
    "lateral": "Boszczyk 2005 kyphoplasty skin dose: lateral / AP 0.68 / 0.32 Gy = 2.1",
    "oblique": "Bakır 2024 lumbar MBB: oblique 109 mGy / 46 s vs AP 66 mGy / 28 s "
               "(per second 2.37 vs 2.36 mGy/s: ratio 1.0; per procedure 1.65)",
}


def published(bmi: float, view: str) -> str:
    """The published figure that a row can be set beside (whole procedures, mixed views)."""
    if view == "lateral":
        return "× 2.1 the AP (Boszczyk 2005, skin dose)"
    if view.startswith("oblique"):
        return "× 1.0 the AP per second, × 1.65 per procedure (Bakır 2024)"
    if bmi < 25:
        return "1.02 / 36 s (Kim 2014); 1.38 normal BMI (Cushman 2016)"
    if bmi < 30:
        return "1.91 overweight (Cushman 2016)"
    return "3.03 obese, × 2.2 normal (Cushman 2016)"


def measure(bmis, spacing: float, pixels: int, manual: bool):
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.fluoro import CArmGeometry, Fluoroscope, FluoroSettings, named_view

    g = CArmGeometry(pixels=pixels)
    rows = []
    for bmi in bmis:
        p = build_phantom("lumbar", bmi=bmi, seed=0, spacing_mm=spacing)
        settings = [("AEC", FluoroSettings(geometry=g, noise=False))]
        if manual:
            settings.append(("manual", FluoroSettings(geometry=g, noise=False, aec=False)))
        for mode, st in settings:
            fl = Fluoroscope(p, st, seed=0)
            n = SECONDS * st.pulse_rate
            for view in VIEWS:
                carm = named_view(p, view, "L4-L5", geometry_=g)
                tech = fl.technique(carm)
                d = fl.exposure_dose("pulsed", carm)
                k_det = tech.detector_ugy_per_mas * fl.pulse_mas(carm)
                k_ent = tech.entrance_ugy_per_mas * fl.pulse_mas(carm)
                rows.append({"bmi": bmi, "mode": mode, "view": view, "kvp": tech.kvp,
                             "ma": tech.ma, "dap": d.dap_gy_cm2 * n,
                             "kref": d.air_kerma_mgy * n, "det_ngy": k_det * 1000.0,
                             "ent_ngy": k_ent * 1000.0,
                             "limited": tech.limited or ""})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bmi", type=float, nargs="+", default=[22.0, 28.0, 35.0, 40.0])
    ap.add_argument("--spacing", type=float, default=1.0, help="phantom voxel (mm)")
    ap.add_argument("--pixels", type=int, default=512)
    ap.add_argument("--manual", action="store_true", help="also the fixed 70 kVp / 8 mA")
    a = ap.parse_args()
    rows = measure(a.bmi, a.spacing, a.pixels, a.manual)
    aec = {(r["bmi"], r["view"]): r for r in rows if r["mode"] == "AEC"}
    b0 = a.bmi[0]
    print(f"lumbar L4-L5, phantom seed 0 at {a.spacing:g} mm, {a.pixels}², 15 pulses/s × "
          f"10 ms, {SECONDS:g} s of fluoroscopy per row\n")
    print("| BMI | view | mode | kVp | mA | DAP / 36 s (Gy·cm²) | K_ref / 36 s (mGy) | "
          f"DAP ÷ AP | DAP ÷ BMI {b0:g} | detector behind grid (nGy/pulse) | detector entrance "
          "(nGy/pulse) | limit | published |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base_ap = aec[r["bmi"], "ap"]["dap"] if r["mode"] == "AEC" else None
        base_b = aec[b0, r["view"]]["dap"] if r["mode"] == "AEC" else None
        print(f"| {r['bmi']:g} | {r['view']} | {r['mode']} | {r['kvp']:.0f} | {r['ma']:.1f} | "
              f"{r['dap']:.2f} | {r['kref']:.1f} | "
              f"{(r['dap'] / base_ap) if base_ap else float('nan'):.2f} | "
              f"{(r['dap'] / base_b) if base_b else float('nan'):.2f} | "
              f"{r['det_ngy']:.2f} | {r['ent_ngy']:.1f} | {r['limited']} | "
              f"{published(r['bmi'], r['view']) if r['mode'] == 'AEC' else ''} |")
    print("\npublished (PHYSICS.md):")
    for v in PUBLISHED.values():
        print(f"- {v}")


if __name__ == "__main__":
    main()
