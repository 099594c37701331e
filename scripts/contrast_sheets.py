"""Contact sheets of the contrast patterns: live fluoroscopy (as the monitor shows it,
through the live chain) and DSA, on AP, oblique and lateral views, at four times of each
injection. One PNG per pattern (docs/injectate.md "Patterns as clinicians see them").

    python scripts/contrast_sheets.py --out docs/img            # all patterns (≈ 5 min)
    python scripts/contrast_sheets.py --out /tmp/s --patterns transforaminal facet

Lumbar phantom seed 0 (1.5 mm), tip by ``placement.tip_for_pattern`` at L4-L5 right
(caudal: the sacral hiatus; sacroiliac: the right joint), 300 mg I/mL with the volumes and
rates of ``placement.INJECTIONS`` from t = 0.6 s; three C-arms centred on the tip with the
angles of the named AP, right oblique and lateral views of the level; black-bone display,
AEC, 15 pulses/s; DSA by log subtraction of a mask at t = 0 (window 0.4 AP / oblique,
0.6 lateral). Panels are cropped to the same square (mm at the detector) around the
contrast of the last column.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

START_S = 0.6
VIEWS = (("ap", "AP"), ("oblique-right", "oblique"), ("lateral", "lateral"))
LEVEL = {"caudal": "L5-S1", "sacroiliac": "L5-S1"}
ALL = ("interlaminar", "transforaminal", "caudal", "facet", "sacroiliac", "intrathecal",
       "arterial", "venous", "soft-tissue")


def sheet_times(pattern: str, volume_ml: float, rate_ml_s: float) -> list[float]:
    """Four times (s): early, half-way, end of the injection, and after it (washout for
    vessels, persistence elsewhere)."""
    dur = volume_ml / rate_ml_s
    if pattern == "facet":  # 0.3, 0.8 and 1.2 mL (the capacity), then 1.8 mL (ruptured)
        return [START_S + v / rate_ml_s for v in (0.3, 0.8, 1.2, volume_ml)]
    after = {"arterial": 0.6, "venous": 1.5}.get(pattern, 2.0)
    return [START_S + 0.2 * dur, START_S + 0.5 * dur, START_S + dur, START_S + dur + after]


def render(pattern: str, pixels: int = 384, seed: int = 0, spacing_mm: float = 1.5):
    """Frames of one pattern: {(view, t): (live, dsa)} display pixels, the crops, times,
    the summary at the end of the injection and the iodine projections (mg I/cm²)."""
    from needleguide.anatomy.phantom import build_phantom
    from needleguide.fluoro import (
        CArm,
        CArmGeometry,
        Fluoroscope,
        FluoroSettings,
        dsa_sequence,
        named_view,
    )
    from needleguide.fluoro.overlays import iodine_mg_cm2
    from needleguide.scene import Scene
    from needleguide.scene.injectate import Injectate, make_injection
    from needleguide.scene.injectate.placement import (
        ALIASES,
        INJECTIONS,
        needle_for,
        tip_for_pattern,
    )

    p = build_phantom("lumbar", seed=seed, spacing_mm=spacing_mm)
    level = LEVEL.get(pattern, "L4-L5")
    tip = tip_for_pattern(p, pattern, level, "right")
    vol, rate = INJECTIONS[pattern]
    inj = make_injection(agent="contrast", concentration_mg_ml=300.0, volume_ml=vol,
                         rate_ml_s=rate, start_s=START_S)
    injectate = Injectate(p, seed=seed).inject(tip, inj)
    kind = ALIASES.get(pattern, pattern)
    nd = needle_for(p, tip, {"venous": "intravascular", "transforaminal": "intravascular",
                             "sacroiliac": "intra-articular"}.get(kind, kind), level, "right")
    scene = Scene(patient=p, needle=nd, injectate=injectate)
    g = CArmGeometry(pixels=pixels)
    times = sheet_times(pattern, vol, rate)
    carms, fls = {}, {}
    for k, (v, _) in enumerate(VIEWS):
        nv = named_view(p, v, level, "right", geometry_=g)
        carms[v] = CArm(geometry=g, isocenter_mm=tuple(float(x) for x in tip),
                        orbit_deg=nv.orbit_deg, tilt_deg=nv.tilt_deg, view=v)
        fls[v] = Fluoroscope(p, FluoroSettings(geometry=g, display="black-bone"),
                             seed=seed * 10 + k, carm=carms[v])
    period = 1.0 / 15.0
    pulses = np.arange(0.0, times[-1] + 1e-9, period)
    live = {}
    for t in pulses:  # time outer: the injectate's fields are computed once per step
        sc = scene.with_time(float(t))
        for v, _ in VIEWS:
            f = fls[v].frame(sc, "pulsed", carms[v])
            for ts in times:
                if abs(ts - t) < period / 2:
                    live[(v, ts)] = f.pixels
    out, iod = {}, {}
    field_end = injectate.iodine_mg_ml(times[2])
    for v, _ in VIEWS:
        win = 0.6 if v == "lateral" else 0.4
        ds = dsa_sequence(fls[v], [scene.with_time(0.0)] + [scene.with_time(t) for t in times],
                          carm=carms[v], window=win)
        for ts, f in zip(times, ds[1:], strict=True):
            lv = live.get((v, ts))
            if lv is None:  # the nearest pulse
                lv = live[min((k for k in live if k[0] == v), key=lambda k: abs(k[1] - ts))]
            out[(v, ts)] = (lv, f.pixels)
        a = np.zeros((pixels, pixels), np.float32)
        if field_end is not None:
            iodine_mg_cm2(carms[v], field_end, out=a)
        iod[v] = a
    # contrast-to-noise at the end of the injection (and, interlaminar, at 1 mL)
    t_cnr = [times[2]] + ([START_S + 1.0 / rate] if pattern == "interlaminar" else [])
    vis = {v: {round(t, 2): visibility(fls[v], scene, carms[v], t, win=0.6
                                       if v == "lateral" else 0.4) for t in t_cnr}
           for v, _ in VIEWS}
    return out, times, injectate.summary(times[2]), iod, carms, vis


def visibility(fl, scene, carm, t_s: float, win: float) -> dict:
    """CNR of the injectate against its background at ``t_s`` (live, as the monitor
    shows it after 1.5 s of pulses; DSA), from a noise-free render and two noisy renders
    with different seeds (``eval_observer.cnr``)."""
    from needleguide.fluoro import dsa_sequence
    from needleguide.lab.eval_observer import cnr, cnr_background

    s0, seed0 = fl.settings, fl.seed
    period = 1.0 / s0.pulse_rate
    runs = {}
    try:
        for key, noise, sd in (("a", True, seed0 + 101), ("b", True, seed0 + 202),
                               ("clean", False, seed0)):
            fl.settings, fl.seed = s0.model_copy(update={"noise": noise}), sd
            f = None
            pre = None
            for t in (0.0, 1.0 / s0.pulse_rate):  # the pre-contrast frame of this render
                pre = fl.frame(scene.with_time(t), "pulsed", carm).pixels
            for t in np.arange(max(t_s - 1.5, 2 * period), t_s + 1e-9, period):
                f = fl.frame(scene.with_time(float(t)), "pulsed", carm).pixels
            d = dsa_sequence(fl, [scene.with_time(0.0), scene.with_time(t_s)], carm=carm,
                             window=win)
            runs[key] = (f, pre, d[1].pixels)
    finally:
        fl.settings, fl.seed = s0, seed0
    px = carm.geometry.pixel_mm
    sig_live = runs["clean"][0] - runs["clean"][1]
    sig_dsa = runs["clean"][2] - 0.5 * (runs["clean"][2] > 0)
    return {"live": cnr(sig_live, runs["a"][0], runs["b"][0], px),
            "dsa": cnr(sig_dsa, runs["a"][2], runs["b"][2], px),
            "live_bg": cnr_background(sig_live, runs["a"][0], px),
            "dsa_bg": cnr_background(sig_dsa, runs["a"][2], px)}


def _crop(iod: np.ndarray, px_mm: float, min_mm: float = 90.0) -> tuple[slice, slice]:
    n = iod.shape[0]
    ys, xs = np.nonzero(iod > 0.05 * max(float(iod.max()), 1e-6))
    if ys.size == 0:
        ys, xs = np.array([n // 2]), np.array([n // 2])
    size = int(np.clip(max(np.ptp(ys), np.ptp(xs)) * 1.35 + 16, min_mm / px_mm, n))
    cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
    r0 = int(np.clip(cy - size // 2, 0, n - size))
    c0 = int(np.clip(cx - size // 2, 0, n - size))
    return slice(r0, r0 + size), slice(c0, c0 + size)


def compose(pattern: str, frames, times, iod, px_mm: float, panel: int = 136) -> np.ndarray:
    """Rows AP live, AP DSA, oblique live, oblique DSA, lateral live, lateral DSA; one
    column per time; a label strip on the left and a time header."""
    left, top, gap = 92, 22, 3
    rows = [(v, k, f"{name} {'live' if k == 0 else 'DSA'}") for v, name in VIEWS
            for k in (0, 1)]
    h = top + len(rows) * (panel + gap)
    w = left + len(times) * (panel + gap)
    img = np.full((h, w), 255, np.uint8)
    for c, t in enumerate(times):
        cv2.putText(img, f"t = {t:.1f} s", (left + c * (panel + gap) + 30, 15),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
    crops = {v: _crop(iod[v], px_mm) for v, _ in VIEWS}
    for r, (v, k, name) in enumerate(rows):
        y = top + r * (panel + gap)
        cv2.putText(img, name, (4, y + panel // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.42, 0, 1,
                    cv2.LINE_AA)
        for c, t in enumerate(times):
            a = frames[(v, t)][k][crops[v]]
            a = cv2.resize(a, (panel, panel), interpolation=cv2.INTER_AREA)
            x = left + c * (panel + gap)
            img[y:y + panel, x:x + panel] = np.clip(a * 255, 0, 255).astype(np.uint8)
    return img


def quantise(img: np.ndarray, levels: int = 64) -> np.ndarray:
    """Grey levels rounded to ``levels`` steps (a ≤ 200 kB PNG; 64 levels are below what
    the eye tells apart on a monitor)."""
    step = 256 // levels
    return ((img.astype(np.int32) // step) * step + step // 2).clip(0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--patterns", nargs="+", default=list(ALL))
    ap.add_argument("--pixels", type=int, default=384)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for pattern in a.patterns:
        t0 = time.perf_counter()
        frames, times, summary, iod, carms, vis = render(pattern, a.pixels)
        px = carms["ap"].geometry.pixel_mm
        img = quantise(compose(pattern, frames, times, iod, px))
        path = a.out / f"contrast_{pattern}.png"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        shares = ", ".join(f"{k} {v:.0%}" for k, v in summary["sites"][0]["shares"].items())
        print(f"{pattern}: {path} ({path.stat().st_size // 1024} kB, "
              f"{time.perf_counter() - t0:.0f} s) tip: {shares}", file=sys.stderr)
        for v, per_t in vis.items():
            for t, c in per_t.items():
                print(f"| {pattern} | {v} | {t:.1f} | {c['live']:.1f} | {c['dsa']:.1f} | "
                      f"{c['live_bg']:.1f} | {c['dsa_bg']:.1f} |")


if __name__ == "__main__":
    main()
