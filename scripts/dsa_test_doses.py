"""DSA test doses as the sessions make them, with their truth: the harness of issue 21's
"DSA confirmation aborts on false alarms" (docs/trials.md, docs/guidance_levels_contrast.md).

Per procedure and seed, a fluoroscopy session with DSA confirmation (``SessionConfig(dsa=
True)``, the trial arm "fluoro-dsa"'s configuration, here at BMI 28, degeneration 0, 384²,
black-bone) runs as the trials run it; every call of ``session.confirm._test_dose`` is
recorded (its DSA frames, frame 1 the mask, and the truth ``confirm.true_compartment`` at
the tip it was given).
After the session, with the same operator (its C-arm in the first view of the check pair,
its fluoroscope, its needle), two more test doses are made at forced vascular tips: the
voxel of an artery (any vessel tissue whose name is not a vein or the aorta / carotid)
and of a vein (the epidural venous plexus, the IVC, the jugular) nearest the session's
final tip, within 110 mm, whose tip classification is ≥ 90 % vascular (else ≥ 50 %) — so
sensitivity is measured on the same images (the caudal and sacroiliac phantoms have no
sacral vessels: there the vessel is 48-100 mm away, often the IVC).
Each session's sequences are cached (one pickle per procedure, seed and matrix) under
``--cache`` and classified with ``guidance.contrast.classify_sequence(frames, mode="dsa",
n_mask=3)`` as the session does. A second test dose exists only when the first alarmed,
so which sequences a session yields depends on the classifier it ran with: clear the
cache after changing the classifier or the session engine.

    python scripts/dsa_test_doses.py --seeds 0-9                 # tuning (seeds < 1000)
    python scripts/dsa_test_doses.py --seeds 2000-2009 --held-out
    python scripts/dsa_test_doses.py --seeds 0-3 --png /tmp/dsa_png   # frames as PNGs

Prints, per procedure, the alarms in extravascular and in intravascular test doses and the
cues that fired; ``--json`` writes every sequence's result.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

PROCEDURES = ("third-occipital", "cervical-medial-branch", "caudal", "lumbar-transforaminal",
              "sacroiliac", "lumbar-facet")
ARTERY_EXCLUDE = ("aorta", "carotid")


def _vessel_tip(op, tip, venous: bool, max_mm: float = 110.0):
    """The nearest voxel (to ``tip``) of an artery (``venous`` False) or of a vein whose
    tip classification is ≥ 90 % vascular (else the nearest ≥ 50 %: a tip at the vessel
    wall, most of the dose in the vessel, the rest collecting at the tip); None if none
    within ``max_mm``."""
    from needleguide.session.confirm import true_compartment

    pt = op.patient
    labs = []
    for t in pt.tissues:
        if t.group != "vessel":
            continue
        is_vein = "vein" in t.name or "venous" in t.name or t.name in ("ivc",
                                                                        "internal_jugular")
        if is_vein != venous or any(x in t.name for x in ARTERY_EXCLUDE):
            continue
        labs.append(t.label)
    idx = np.argwhere(np.isin(pt.labels, labs))
    if idx.size == 0:
        return None
    pts = idx @ pt.VoxelToPatient[:3, :3].T + pt.VoxelToPatient[:3, 3]
    d = np.linalg.norm(pts - np.asarray(tip, float), axis=1)
    mixed = None
    for k in np.argsort(d)[:600]:
        if d[k] > max_mm:
            break
        comp, vasc = true_compartment(pt, pts[k])
        if vasc >= 0.9:  # inside the lumen: the whole dose enters the vessel
            return pts[k], comp, vasc, float(d[k])
        if vasc >= 0.5 and mixed is None:
            mixed = pts[k], comp, vasc, float(d[k])
    return mixed


def collect(procedure: str, seed: int, pixels: int = 384, forced: bool = True,
            bmi: float = 28.0) -> list[dict]:
    """The DSA test doses of one session (and, ``forced``, two at vascular tips)."""
    import needleguide.session.confirm as C
    from needleguide.session import SessionConfig, run_session

    rec: list[dict] = []
    state: dict = {}
    orig = C._test_dose

    def wrapped(op, tip, t0, dsa):
        out = orig(op, tip, t0, dsa)
        comp, vasc = C.true_compartment(op.patient, tip)
        state["op"], state["tip"] = op, np.array(tip, float)
        rec.append({"kind": "session", "truth": comp, "vasc": vasc, "mode": out[3],
                    "view": out[2], "frames": [f.without_truth() for f in out[0]],
                    "session_alarm": out[1].alarm_time_s is not None or out[1].intravascular})
        return out

    C._test_dose = wrapped
    try:
        cfg = SessionConfig.build(procedure=procedure, modality="fluoro", dsa=True, seed=seed,
                                  bmi=bmi, fl_pixels=pixels, record_video=False)
        run_session(cfg)
    finally:
        C._test_dose = orig
    if forced and "op" in state:
        op, tip = state["op"], state["tip"]
        for venous in (False, True):
            hit = _vessel_tip(op, tip, venous)
            if hit is None:
                continue
            vt, comp, vasc, dist = hit
            frames, res, view, mode = orig(op, vt, 0.0, True)
            rec.append({"kind": "forced_venous" if venous else "forced_arterial",
                        "truth": comp, "vasc": vasc, "mode": mode, "view": view,
                        "dist_mm": dist, "frames": [f.without_truth() for f in frames],
                        "session_alarm": res.alarm_time_s is not None or res.intravascular})
    for i, r in enumerate(rec):
        r.update(procedure=procedure, seed=seed, index=i, pixels=pixels)
    return rec


def load(procedure: str, seed: int, cache: Path, pixels: int = 384) -> list[dict]:
    """:func:`collect`, cached as a pickle under ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    fn = cache / f"{procedure}_{seed}_{pixels}.pkl"
    if fn.exists():
        return pickle.loads(fn.read_bytes())
    rec = collect(procedure, seed, pixels)
    fn.write_bytes(pickle.dumps(rec))
    return rec


def classify(r: dict, params=None):
    from needleguide.guidance.contrast import classify_sequence

    return classify_sequence(r["frames"], mode=r["mode"], n_mask=3, params=params)


def summarise(rows: list[dict]) -> dict:
    """Per procedure: extravascular sequences and their alarms, intravascular ones and
    their alarms (sensitivity), cues."""
    out: dict = defaultdict(lambda: {"extra_n": 0, "extra_alarm": 0, "intra_n": 0,
                                     "intra_alarm": 0, "cues_extra": Counter(),
                                     "cues_intra": Counter(), "late": 0})
    for r in rows:
        s = out[r["procedure"]]
        if r["mode"] != "dsa":
            continue
        if r["vasc"] >= 0.5:
            s["intra_n"] += 1
            s["intra_alarm"] += int(r["alarm"])
            if r["alarm"]:
                s["cues_intra"][r["cause"]] += 1
        else:
            s["extra_n"] += 1
            s["extra_alarm"] += int(r["alarm"])
            if r["alarm"]:
                s["cues_extra"][r["cause"]] += 1
    return dict(out)


def _seeds(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    return out


def write_png(r: dict, res, folder: Path) -> None:
    """The subtracted frames side by side (contrast dark on grey, stretched ±4σ of the
    frame) with the opacified region of each frame outlined."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    sub = [f for f in r["frames"] if f.settings.get("dsa_role") != "mask"]
    tiles = []
    for f, ft in zip(sub, res.features, strict=False):
        v = np.asarray(f.pixels, np.float32)
        g = (np.clip((v - 0.5) / 0.12 * 0.5 + 0.5, 0, 1) * 255).astype(np.uint8)
        img = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        cv2.putText(img, f"{f.time_s:.2f}s a{ft.area_mm2:.0f} s{ft.signal:.1f}", (4, 16),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
        tiles.append(cv2.resize(img, (256, 256)))
    while len(tiles) % 5:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + 5]) for i in range(0, len(tiles), 5)]
    name = (f"{r['procedure']}_{r['seed']}_{r['index']}_{r['kind']}_{r['truth']}_"
            f"{'ALARM-' + res.alarm_cause if res.alarm_time_s is not None else 'ok'}.png")
    cv2.imwrite(str(folder / name), np.vstack(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procedures", nargs="*", default=list(PROCEDURES))
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/dsa_doses"))
    ap.add_argument("--pixels", type=int, default=384)
    ap.add_argument("--held-out", action="store_true",
                    help="seeds ≥ 2000 only (held out: run once, change nothing after)")
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    seeds = _seeds(a.seeds)
    if a.held_out and min(seeds) < 2000:
        ap.error("--held-out: seeds ≥ 2000")
    if not a.held_out and max(seeds) >= 1000:
        ap.error("tuning seeds are < 1000 (held-out seeds ≥ 2000 need --held-out)")
    rows = []
    t0 = time.time()
    for proc in a.procedures:
        for seed in seeds:
            try:
                recs = load(proc, seed, a.cache, a.pixels)
            except Exception as e:  # a session that cannot run is listed, not counted
                print(f"{proc} seed {seed}: {type(e).__name__}: {e}", file=sys.stderr)
                continue
            for r in recs:
                res = classify(r)
                alarm = res.alarm_time_s is not None or res.intravascular
                rows.append({k: r[k] for k in ("procedure", "seed", "index", "kind", "truth",
                                               "vasc", "mode", "view")}
                            | {"alarm": alarm, "cause": res.alarm_cause,
                               "alarm_time_s": res.alarm_time_s,
                               "arrival_s": res.arrival_time_s, "label": res.label,
                               "session_alarm": r["session_alarm"]})
                if a.png is not None:
                    write_png(r, res, a.png)
    summ = summarise(rows)
    print(f"{len(rows)} test doses, {time.time() - t0:.0f} s")
    print(f"{'procedure':26s} {'extravascular alarms':>22s} {'intravascular alarms':>22s}  cues")
    tot = [0, 0, 0, 0]
    for proc in a.procedures:
        s = summ.get(proc)
        if s is None:
            continue
        print(f"{proc:26s} {s['extra_alarm']:>10d} / {s['extra_n']:<10d} "
              f"{s['intra_alarm']:>10d} / {s['intra_n']:<10d}  "
              f"extra {dict(s['cues_extra'])} intra {dict(s['cues_intra'])}")
        tot = [tot[0] + s["extra_alarm"], tot[1] + s["extra_n"], tot[2] + s["intra_alarm"],
               tot[3] + s["intra_n"]]
    print(f"{'all':26s} {tot[0]:>10d} / {tot[1]:<10d} {tot[2]:>10d} / {tot[3]:<10d}")
    if a.json is not None:
        a.json.write_text(json.dumps({"rows": rows, "seeds": seeds}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
