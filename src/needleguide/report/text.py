"""Words and numbers for the report: every value rounded and with its unit, no Python
reprs (dicts, lists, ``None``, ``True``) anywhere."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

DASH = "—"


def num(x: Any, digits: int = 1, unit: str = "") -> str:
    """A number rounded to ``digits`` decimals (trailing zeros kept), with a unit; None or
    NaN is a dash."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    if isinstance(x, bool):
        return yes_no(x)
    s = f"{float(x):.{digits}f}"
    if s.startswith("-") and float(s) == 0.0:
        s = s[1:]
    s = s.replace("-", "−")
    if unit in ("°", "%"):
        return f"{s}{unit}" if unit == "°" else f"{s} %"
    return f"{s} {unit}".rstrip() if unit else s


def yes_no(x: Any) -> str:
    return DASH if x is None else ("yes" if x else "no")


def point_mm(p: Iterable[float] | None) -> str:
    """(R, A, S) in mm, one decimal."""
    if p is None:
        return DASH
    return "(" + ", ".join(num(v, 1) for v in p) + ") mm"


def words(name: str | None) -> str:
    """An identifier as words: 'intra_articular_sij' -> 'intra articular sij'."""
    return DASH if name is None else str(name).replace("_", " ")


def listing(items: Iterable[Any], sep: str = ", ") -> str:
    items = [words(i) for i in items]
    return sep.join(items) if items else DASH


def duration(s: float | None) -> str:
    """Seconds as 's' below two minutes, else 'm min s s'."""
    if s is None:
        return DASH
    s = float(s)
    if s < 120:
        return num(s, 0, "s")
    return f"{int(s // 60)} min {int(round(s % 60)):02d} s"


def views(v: dict[str, Any], modality: str) -> str:
    """The plan's imaging views in words."""
    if modality == "us":
        parts = [f"{words(v.get('working'))} view, {v.get('probe', '')} probe "
                 f"{num(v.get('frequency_mhz'), 1, 'MHz')}, depth "
                 f"{num(v.get('depth_mm'), 0, 'mm')}"]
        tilt = v.get("probe_tilt_deg")
        if tilt:
            parts.append(f"probe tilted {num(tilt, 0, '°')} heel-toe to see into the joint")
        return "; ".join(parts)
    parts = [f"working view {words(v.get('working'))}"]
    ang = v.get("working_angles_deg")
    if ang:
        parts[0] += (f" (turned to the joint line: orbit {num(ang.get('orbit'), 1, '°')}, "
                     f"tilt {num(ang.get('tilt'), 1, '°')})")
    if v.get("check"):
        parts.append(f"check pair {listing(v['check'], ' and ')}")
    return "; ".join(parts)


def confirmation(info: dict[str, Any]) -> list[str]:
    """The position check and the test doses, one sentence each."""
    out = []
    if "check_used" in info:
        d = info.get("check_depths_mm") or []
        depth = " and ".join(num(x, 1, "mm") for x in d)
        out.append(f"Position check (two views): tips triangulated at "
                   f"{point_mm(info.get('check_estimate_mm'))}, rays "
                   f"{num(info.get('check_ray_gap_mm'), 1, 'mm')} apart, depths along the "
                   f"shaft {depth or DASH}; "
                   + ("used to correct the depth." if info["check_used"] else
                      "not used (the views disagree or the estimate is implausible): the "
                      "depth stayed as inserted."))
    for k in sorted(x for x in info if x.startswith("test_")):
        t = info[k]
        n = k.split("_", 1)[1]
        truth = (f"truth: {words(t.get('true_compartment'))}, vascular share "
                 f"{num(100 * (t.get('true_vascular_share') or 0.0), 0, '%')}")
        if t.get("mode") == "us":
            out.append(f"Test injection {n} (ultrasound, 1 mL): spread "
                       f"{'visible' if t.get('visible') else 'not visible'} "
                       f"({num(t.get('spread_mm2'), 0, 'mm²')}); {truth}.")
        else:
            alarm = t.get("alarm_time_s")
            out.append(f"Contrast test dose {n} ({'DSA' if t.get('mode') == 'dsa' else 'live'}"
                       f", {words(t.get('view'))} view): classifier says "
                       f"{words(t.get('label'))} (confidence {num(t.get('confidence'), 2)}), "
                       + ("no intravascular alarm" if alarm is None else
                          f"intravascular alarm at {num(alarm, 1, 's')}")
                       + f"; {truth}.")
    return out


def analyser_hits(analyser: dict[str, dict[str, Any]]) -> str:
    """Per view: found / analysed frames (share)."""
    return "; ".join(f"{words(v)} {c['found']} of {c['frames']} "
                     f"({num(100 * c['rate'], 0, '%')})" for v, c in analyser.items()) \
        or "no frame analysed"
