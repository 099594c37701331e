"""The sonographer counts levels: which lumbar level the probe (and so the needle) ends up
at when the level is found on ultrasound, as clinicians do — by sliding a paramedian
sagittal probe up from the sacrum and counting the interlaminar gaps.

:func:`identify_level_us` runs a sweep of the session's own phantom
(:func:`~needleguide.session.level_sweep.make_sweep`), labels it with the guidance
analyser (:func:`~needleguide.guidance.levels_us.label_sweep`, pixels only), stops on the
frame the analyser calls the intended level, and reads where that frame truly is. When the
analyser's count is off by a level, the operator works one level off — a wrong-level
procedure, from mechanism (the analyser's error on this patient), not from a rate.

Level positions ``u``: 0 at the L5–S1 interlaminar space, 1 at L4–L5, …; a vertebra
``Lk`` sits half a level above the space below it (its lamina).
"""

from __future__ import annotations

import re

import numpy as np

from needleguide.guidance.levels_us_count import INTERSPACES

_SPACE = re.compile(r"^L([1-5])-(?:L([1-5])|S1)$")
_VERT = re.compile(r"^L([1-5])$")


def level_u(level: str) -> float | None:
    """Level position of an interspace ("L4-L5": 1.0) or a lumbar vertebra ("L4": 1.5);
    None for anything the lumbar count does not reach."""
    if level in INTERSPACES:
        return float(INTERSPACES.index(level))
    m = _VERT.match(level)
    if m:
        k = int(m.group(1))
        return float(5 - k) + 0.5
    return None


def shifted(level: str, by: int) -> str | None:
    """``level`` moved ``by`` levels cranially (negative: caudally); None off the lumbar
    spine."""
    u = level_u(level)
    if u is None:
        return None
    v = u + by
    if level in INTERSPACES:
        i = int(round(v))
        return INTERSPACES[i] if 0 <= i < len(INTERSPACES) - 1 else None
    k = 5 - int(np.floor(v))
    return f"L{k}" if 1 <= k <= 5 else None


def identify_level_us(patient, level: str, side: str, seed: int) -> tuple[str, dict]:
    """(the level the operator ends up at, what the count did) for an intended lumbar
    ``level`` (module docstring). The level is kept when the sweep or its labelling fails
    (the operator then goes by the count of the spinous processes: not modelled)."""
    from needleguide.guidance.levels_us import label_sweep
    from needleguide.session.level_sweep import make_sweep

    u_t = level_u(level)
    info: dict = {"method": "US sweep from the sacrum", "intended": level}
    if u_t is None:
        return level, {**info, "result": "not a lumbar level: not counted"}
    try:
        sw = make_sweep(patient, seed=seed, side=side)
        res = label_sweep(sw.frames, with_panorama=False)
    except ValueError as e:
        return level, {**info, "result": f"sweep failed ({e})"}
    u_est = np.array([lb.u for lb in res.labels], float)
    ok = np.isfinite(u_est)
    if not ok.any():
        return level, {**info, "result": "the count found no anchor"}
    i = int(np.flatnonzero(ok)[np.argmin(np.abs(u_est[ok] - u_t))])
    off = int(np.round(float(sw.u_true[i]) - u_t))
    reached = shifted(level, off) if off else level
    info.update(frames=len(sw.frames), stop_frame=i, u_labelled=round(float(u_est[i]), 2),
                u_true=round(float(sw.u_true[i]), 2), offset_levels=off,
                confidence=round(float(res.labels[i].confidence), 2))
    if reached is None:
        return level, {**info, "result": f"off by {off} level(s), beyond the lumbar spine: "
                                         "kept the intended level"}
    info["result"] = "right level" if reached == level else f"wrong level: {reached}"
    return reached, info


__all__ = ["identify_level_us", "level_u", "shifted"]
