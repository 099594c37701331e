"""Confirmation before the therapeutic injection.

Fluoroscopy: a contrast test dose (300 mg I/mL, 1 mL at 0.5 mL/s) under live pulsed
fluoroscopy (15 pulses/s) — or DSA (6 frames/s) — in the first view of the check pair;
the frames, without truth, go to ``guidance.contrast.classify_sequence``. Its
intravascular alarm makes the operator withdraw 2 mm and repeat the test once; a second
alarm aborts the injection. Ultrasound: 1 mL of local anaesthetic under live B-mode; the
spread is "visible" when an area of ≥ ``SPREAD_MIN_MM2`` within 15 mm of the estimated tip
changes its echo (anechoic fluid, enhancement below it) beyond the frame-to-frame speckle
change (:func:`visible_spread`, pixels only). Intravascular injectate
is invisible to ultrasound: such an event is recorded as not detected.

The true compartment (``classify_tip`` on the true tip) is scoring only.
"""

from __future__ import annotations

import numpy as np

from needleguide.errors import UserError
from needleguide.guidance.contrast import classify_sequence
from needleguide.guidance.overlay import draw_text, to_rgb8
from needleguide.scene import Scene
from needleguide.scene.injectate import Injectate, classify_tip, make_injection
from needleguide.session.imaging import us_crop
from needleguide.session.models import Event

TEST_ML = 1.0
RATE_ML_S = 0.5
START_S = 0.5
SPREAD_MIN_MM2 = 5.0
SPREAD_SD = 4.0  # echo change, in frame-to-frame standard deviations, that counts as fluid
SPREAD_BLUR_PX = 15  # box smoothing (px) against frame-to-frame speckle


def in_words(name: str) -> str:
    """An identifier in words for the report ('intra_articular_sij' -> 'intra articular
    sij')."""
    return str(name).replace("_", " ")


def true_compartment(patient, tip_mm) -> tuple[str, float]:
    """Main compartment at the true tip and the vascular share (scoring)."""
    try:
        shares = classify_tip(patient, tip_mm)
    except UserError:
        return "none", 0.0
    vasc = float(sum(v for k, v in shares.items() if k.vascular))
    main = max(shares.items(), key=lambda kv: kv[1])[0]
    return str(main.value), vasc


def _test_dose(op, tip, t0: float, dsa: bool):
    """Frames of one test dose (without truth for the classifier) and display frames."""
    from needleguide.fluoro.sequences import dsa_sequence

    inj = Injectate(op.patient, seed=op.cfg.seed).inject(tip, make_injection(
        agent="contrast", concentration_mg_ml=300, volume_ml=TEST_ML, rate_ml_s=RATE_ML_S,
        start_s=START_S))
    view = op.pair[0]
    carm = op.carms[view]
    body_scene = Scene(op.patient).with_needle(op._needle).with_injectate(inj)
    end = START_S + TEST_ML / RATE_ML_S + 1e-6  # the classifier reads the inflow phase
    # one irradiation event on the session clock (the injection's scenes start at 0 s)
    with op.fl.run(f"contrast test dose ({'DSA' if dsa else 'live fluoroscopy'})",
                   offset_s=t0):
        if dsa:
            times = np.arange(0.0, end, 1.0 / 6.0)
            frames = dsa_sequence(op.fl, [body_scene.with_time(float(t)) for t in times],
                                  carm)
            mode = "dsa"
        else:
            times = np.arange(0.0, end, 1.0 / op.fl.settings.pulse_rate)
            frames = [op.fl.frame(body_scene.with_time(float(t)), "pulsed", carm)
                      for t in times]
            mode = "live"
    op.shots += len(frames)
    res = classify_sequence([f.without_truth() for f in frames], mode=mode,
                            n_mask=int(np.sum(times < START_S)) if mode == "live" else 3)
    return frames, res, view, mode


def confirm_fluoro(op, body, t: float, events: list[Event]) -> tuple[float, float]:
    contrast = 0.0
    for attempt in range(2):
        op._needle = body.needle()
        comp, vasc = true_compartment(op.patient, body.tip)
        frames, res, view, mode = _test_dose(op, body.tip, t, op.cfg.dsa)
        contrast += TEST_ML
        op.record(f"contrast test dose {attempt + 1}", view,
                  "dsa" if mode == "dsa" else "pulsed", frames,
                  mask_frame_numbers=[1] if mode == "dsa" else None)
        for f in frames[:: 2 if mode == "live" else 1]:
            img = to_rgb8(f.pixels)
            draw_text(img, f"{view} {mode} contrast {f.time_s:.1f} s")
            op.keep(img)
        peak = frames[int(np.argmin([abs(f.time_s - START_S - TEST_ML / RATE_ML_S)
                                     for f in frames]))]
        img = to_rgb8(peak.pixels)
        banner = f"{res.label} ({res.confidence:.2f})" + \
            ("  INTRAVASCULAR ALARM" if res.alarm_time_s is not None else "")
        draw_text(img, f"{view} {mode}: {banner}")
        how = "DSA" if mode == "dsa" else mode
        op.key_frames.append((f"contrast test dose {attempt + 1} ({how}): classifier says "
                              f"{in_words(res.label)}; truth {in_words(comp)}", img))
        alarm = res.alarm_time_s is not None or res.intravascular
        op.confirm_info[f"test_{attempt + 1}"] = {
            "mode": mode, "view": view, "label": res.label,
            "confidence": round(float(res.confidence), 3),
            "alarm_time_s": res.alarm_time_s, "true_compartment": comp,
            "true_vascular_share": round(vasc, 3)}
        t += START_S + TEST_ML / RATE_ML_S + 10.0
        if vasc >= 0.5:
            events.append(Event(t, "intravascular_injection", bool(alarm),
                                f"test dose {attempt + 1}: {in_words(comp)}; classifier "
                                f"{in_words(res.label)}"))
        elif comp == "intrathecal":
            events.append(Event(t, "intrathecal_injection", res.label == "intrathecal",
                                f"classifier {in_words(res.label)}"))
        if not alarm:
            return t, contrast
        if vasc < 0.5:
            events.append(Event(t, "false_alarm", True,
                                f"classifier {in_words(res.label)}; truth {in_words(comp)}"))
        if attempt == 0:
            body.withdraw(2.0)
            events.append(Event(t, "reposition", True, "intravascular alarm: withdrawn 2 mm"))
            t += 10.0
    events.append(Event(t, "injection_aborted", True, "intravascular alarm twice"))
    return t, contrast


def visible_spread(pre: np.ndarray, post: np.ndarray, center_px, spacing_mm: float,
                   radius_mm: float = 15.0) -> float:
    """Area (mm²) within ``radius_mm`` of ``center_px`` whose echo changed between two
    B-mode frames — darker (anechoic fluid) or brighter (the enhancement below it) — by
    at least ``SPREAD_SD`` times the frame-to-frame change measured farther than
    ``radius_mm`` + 5 mm from it (speckle and noise), after a ``SPREAD_BLUR_PX``² box
    smoothing, inside the scan sector. Set on the lumbar phantom, BMI 28, 1 mL (SIJ seeds
    0-3, L5 medial branch seeds 1-2, L4-5 foramen seed 1): injected 9-28 mm² (foramen,
    behind bone: 0), not injected ≤ 1.7 mm²."""
    import cv2

    k = (SPREAD_BLUR_PX, SPREAD_BLUR_PX)
    a = cv2.blur(np.asarray(pre, np.float32), k)
    b = cv2.blur(np.asarray(post, np.float32), k)
    inside = cv2.erode((np.asarray(pre) > 0).astype(np.uint8),
                       np.ones(k, np.uint8)).astype(bool)
    rows, cols = np.indices(a.shape)
    r = np.hypot(cols - center_px[0], rows - center_px[1]) * spacing_mm
    d = a - b
    far = inside & (r > radius_mm + 5.0)
    sd = float(d[far].std()) if far.sum() > 100 else float(d[inside].std())
    changed = (np.abs(d) >= SPREAD_SD * max(sd, 0.5)) & inside & (r <= radius_mm)
    return float(changed.sum() * spacing_mm ** 2)


def confirm_us(op, body, t: float, events: list[Event]) -> tuple[float, float]:
    comp, vasc = true_compartment(op.patient, body.tip)
    try:
        inj = Injectate(op.patient, seed=op.cfg.seed).inject(body.tip, make_injection(
            agent="local_anaesthetic", volume_ml=TEST_ML, rate_ml_s=RATE_ML_S,
            start_s=START_S))
    except UserError:
        inj = None
    scene = Scene(op.patient).with_needle(body.needle()).with_injectate(inj)
    pre = op.render(scene.with_time(0.0))
    op.record("injection", op.proc.us.view, "bmode", [pre])
    post = None
    for tt in np.arange(0.5, START_S + TEST_ML / RATE_ML_S + 0.6, 0.5):
        post = op.render(scene.with_time(float(tt)))
        op.record("injection", op.proc.us.view, "bmode", [post])
        img = to_rgb8(us_crop(post.pixels, op.box))
        draw_text(img, f"US injection {tt:.1f} s")
        op.keep(img)
    op.shots += 1
    from needleguide.session.imaging import analyse, us_prior, us_target_px

    det = analyse(post, us_prior(post, op.plan.entry_mm, op.plan.point_at(body.inserted)))
    c = det.tip_px if det.found else us_target_px(post, op.plan.point_at(body.inserted))
    area = visible_spread(pre.pixels, post.pixels, c, float(post.spacing_mm[0]))
    seen = area >= SPREAD_MIN_MM2
    img = to_rgb8(us_crop(post.pixels, op.box))
    draw_text(img, f"spread {'visible' if seen else 'NOT visible'}: {area:.0f} mm2")
    op.key_frames.append((f"after 1 mL: spread {'visible' if seen else 'not visible'} "
                          f"({area:.0f} mm²); truth {in_words(comp)}", img))
    op.confirm_info["test_1"] = {"mode": "us", "spread_mm2": round(area, 1),
                                 "visible": bool(seen), "true_compartment": comp,
                                 "true_vascular_share": round(vasc, 3)}
    t += START_S + TEST_ML / RATE_ML_S + 10.0
    if vasc >= 0.5:
        events.append(Event(t, "intravascular_injection", False,
                            "not detectable under ultrasound (intravascular fluid is not seen)"))
    elif not seen:
        events.append(Event(t, "spread_not_seen", True, f"truth {in_words(comp)}"))
    return t, 0.0
