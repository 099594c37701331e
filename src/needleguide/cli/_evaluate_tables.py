"""The tables ``needleguide evaluate`` prints (rich): shares as percentages, distances in
mm, angles in degrees, times in seconds; a dash where there is nothing to measure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

DASH = "—"


def pct(x: Any) -> str:
    return DASH if x is None else f"{100 * float(x):.0f} %"


def unit(u: str, digits: int = 1) -> Callable[[Any], str]:
    sep = "" if u == "°" else " "

    def f(x: Any) -> str:
        return DASH if x is None else f"{float(x):.{digits}f}{sep}{u}"

    return f


def _seeds(pair) -> str:
    a, b = pair
    return f"seed {a}" if a == b else f"seeds {a}–{b}"


def _table(title: str, cols: list[str]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(cols):
        t.add_column(c, justify="left" if i == 0 else "right")
    return t


def print_tables(target: str, r: dict, out: Console | None = None) -> None:
    """Print the evaluation ``r`` of ``target`` as tables."""
    out = out or Console()
    {"levels": _levels, "contrast": _contrast, "needle": _needle}[target](r, out)


def _levels(r: dict, out: Console) -> None:
    t = _table("vertebral level labels: share labelled right",
               ["view", "ours", "baseline (profile peaks)", "frames all right (ours)"])
    names = {"fluoro_ap": ("fluoroscopy AP", "ap"), "fluoro_lateral": ("fluoroscopy lateral",
                                                                        "lateral"),
             "us_sweep": ("ultrasound sweep", None)}
    for k, (name, v) in names.items():
        whole = pct((r.get("frames_all_right") or {}).get(v)) if v else \
            pct((r.get("us_sweep") or {}).get("sweeps_all_right"))
        t.add_row(name, pct(r["accuracy"].get(k)), pct(r["baseline"]["accuracy"].get(k)), whole)
    out.print(t)
    per = r.get("per_level") or {}
    if per:
        t = _table("per vertebra (both fluoroscopy views, ours)", ["vertebra", "labelled right"])
        for k, v in per.items():
            t.add_row(k, pct(v))
        out.print(t)
    us = r.get("us_sweep")
    if isinstance(us, dict):
        t = _table("ultrasound sweep (ours)", ["measure", "value"])
        for name, v in (("frames", str(us.get("frames", DASH))),
                        ("sacrum found", pct(us.get("sacrum_found"))),
                        ("level error, median", unit("levels", 1)(us.get("level_error_median"))),
                        ("level error, 95th percentile",
                         unit("levels", 1)(us.get("level_error_p95"))),
                        ("confident frames", pct(us.get("confident_share"))),
                        ("confident frames labelled right", pct(us.get("confident_accuracy")))):
            t.add_row(name, v)
        out.print(t)
    out.print(f"phantoms: {_seeds(r['seeds'])}; analyser {r['fps']:.0f} frames/s at 512²",
              highlight=False)


def _contrast(r: dict, out: Console) -> None:
    s = unit("s", 2)
    rows = [("6-class accuracy", pct, lambda d: d["accuracy"]),
            ("intravascular sensitivity", pct, lambda d: d["intravascular"]["sensitivity"]),
            ("intravascular specificity", pct, lambda d: d["intravascular"]["specificity"]),
            ("alarm after injection start, median", s, lambda d: d["alarm_latency_s"]["median"]),
            ("alarm after injection start, 95th pct", s, lambda d: d["alarm_latency_s"]["p95"]),
            ("alarm after arrival in the vessel, median", s,
             lambda d: d["alarm_latency_after_arrival_s"]["median"]),
            ("alarm after arrival in the vessel, 95th pct", s,
             lambda d: d["alarm_latency_after_arrival_s"]["p95"]),
            ("alarm within 1 s of arrival", pct, lambda d: d["alarm_within_1s_of_arrival"])]
    t = _table("contrast pattern and intravascular alarm",
               ["measure", "live", "DSA", "baseline (one spot)"])
    for name, fmt, get in rows:
        t.add_row(name, *[fmt(get(r[k])) for k in ("live", "dsa", "baseline")])
    out.print(t)
    conf = r["live"].get("confusion") or {}
    preds = sorted({p for row in conf.values() for p in row})
    if conf:
        t = _table("live: truth (rows) → classifier (columns), cases",
                   ["truth", *[p.replace("_", " ") for p in preds]])
        for truth, row in conf.items():
            t.add_row(truth.replace("_", " "),
                      *[str(row.get(p, 0)) if row.get(p) else "·" for p in preds])
        out.print(t)
    held = ("held out (seeds ≥ 1000 were not used in tuning)" if r.get("held_out") else
            "NOT held out (seeds below 1000 include the tuning seeds 0–23)")
    out.print(f"{r['cases']} cases on phantoms with {_seeds(r['seeds'])}: {held}; analyser "
              f"{r['fps']:.0f} frames/s at 512²", highlight=False)
    for s_ in r.get("skipped") or []:
        out.print(f"skipped: {s_}", highlight=False)


def _needle(r: dict, out: Console) -> None:
    mm, deg = unit("mm", 2), unit("°", 1)
    t = _table("needle detection: ours vs baseline (Canny + Hough)",
               ["measure", "modality", "ours", "baseline"])
    for mod in ("us", "fluoro"):
        ours, base = r.get(mod, {}), r.get("baseline", {}).get(mod, {})
        for key, name, fmt in (("tip_error_mm", "tip error", mm),
                               ("angle_error_deg", "angle error", deg)):
            for q, qn in (("median", "median"), ("p95", "95th percentile")):
                t.add_row(f"{name}, {qn}", mod, fmt(ours.get(key, {}).get(q)),
                          fmt(base.get(key, {}).get(q)))
        for key, name, fmt in (("detection_rate", "detected (needle frames)", pct),
                               ("false_positive_rate", "false positives (needle-free)", pct),
                               ("fps", "speed", unit("frames/s", 0))):
            t.add_row(name, mod, fmt(ours.get(key)), fmt(base.get(key)))
        so, sb = ours.get("tip_seen", {}), base.get("tip_seen", {})
        t.add_row("tip seen to its end", mod, pct(so.get("rate")), pct(sb.get("rate")))
        t.add_row("tip error where seen, median", mod,
                  mm(so.get("tip_error_mm", {}).get("median")),
                  mm(sb.get("tip_error_mm", {}).get("median")))
        t.add_section()
    out.print(t)
    t = _table("ours by angle band (US: to the skin; fluoroscopy: to the beam)",
               ["modality", "band", "needle frames", "detected", "tip error median",
                "tip error 95th pct"])
    for mod in ("us", "fluoro"):
        for band, m in r.get(mod, {}).get("breakdown", {}).get("angle_band", {}).items():
            t.add_row(mod, f"{band}°", str(m["n_needle_frames"]), pct(m["detection_rate"]),
                      mm(m["tip_error_mm"]["median"]), mm(m["tip_error_mm"]["p95"]))
    if t.row_count:
        out.print(t)
    sq = r.get("sequence") or {}
    if sq.get("motion"):
        t = _table("US tip from motion: advance, pause, jiggle, hold sequences (same frames)",
                   ["measure", "ours (motion)", "single frame", "tracked"])
        cols = [sq.get(k, {}) for k in ("motion", "single_frame", "tracked")]
        t.add_row("tip error, median", *[mm(c.get("tip_error_mm", {}).get("median"))
                                         for c in cols])
        t.add_row("tip error, 95th percentile", *[mm(c.get("tip_error_mm", {}).get("p95"))
                                                  for c in cols])
        for key, name in (("detection_rate", "detected (needle frames)"),
                          ("tip_within_2mm_rate", "tip within 2 mm (needle frames)"),
                          ("false_positive_rate", "false positives (needle-free)")):
            t.add_row(name, *[pct(c.get(key)) for c in cols])
        out.print(t)
        out.print(f"{sq['n_sequences']} needle + {sq['n_needle_free_sequences']} needle-free "
                  f"sequences, {sq['motion']['n_needle_frames']} needle frames; motion "
                  f"analyser {sq['fps']:.0f} frames/s", highlight=False)
    seed = r.get("seed")
    if r.get("held_out"):
        held = "held out (never used in tuning)"
    else:
        from needleguide.lab.eval_needle import SEEN_RUN_SEEDS

        first = max(SEEN_RUN_SEEDS) + 1
        held = (f"NOT held out: runs with seeds below {first} (or their phantoms) were used "
                f"or looked at while tuning; use --seed {first} or above for held-out figures")
    phantoms = r.get("phantom_seeds") or []
    out.print(f"seed {seed} ({len(phantoms)} phantom{'s' if len(phantoms) != 1 else ''}): "
              f"{held}", highlight=False)
