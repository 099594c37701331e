"""Does a virtual trial reproduce the clinical figures of EVIDENCE.md?

Each figure the simulation can address is a declarative entry of ``reproduction.yaml``
(:class:`Figure`): the evidence rows it comes from, the arms (modalities, procedures, BMI
filter), what is measured on every simulated procedure and how the arms are compared. The
simulated figure is always computed from the trial's rows — from what happened in each
simulated procedure — never from a coded rate.

Per figure (:func:`reproduction_table`):

* ``direction_reproduced``: for ``expect`` lower/higher, *yes* when the simulated 95 % CI of
  the effect (a − b, or a / b) lies wholly on the clinical side of no difference, *no* when
  it lies wholly on the other side, *inconclusive* when it includes no difference; for
  ``expect: neither``, *yes* when the CI includes no difference, else *no*; *not enough
  data* when an arm has fewer than ``min_n`` procedures (events for ``iv_*``) or its
  modality is absent; *n/a* for a single-arm figure.
* ``size_reproduced``: *yes* when the clinical value lies in the simulated CI (a clinical
  range: overlaps it), or within the figure's stated ``tolerance``; *n/a* without a
  clinical number.
* ``why``: the reason when a figure is not reproduced or not comparable, with what the
  simulation does not model (``limits``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import numpy as np
import yaml

from needleguide.lab import trial_stats as st

PROPORTIONS = ("success", "failure", "first_pass_success", "intravascular_any")
EVENTS = ("iv_caught", "iv_missed")
NUMERIC = ("procedure_time_s", "passes", "fluoro_time_s", "final_tip_error_mm")
MEASURES = PROPORTIONS + EVENTS + NUMERIC


@dataclass(frozen=True)
class Arm:
    modalities: tuple[str, ...]
    procedures: tuple[str, ...] | None = None  # None: every procedure
    bmi_above: float | None = None  # BMI > bmi_above
    bmi_at_most: float | None = None  # BMI <= bmi_at_most

    def label(self) -> str:
        s = f"{'/'.join(self.procedures) if self.procedures else 'all procedures'} · " \
            f"{'/'.join(self.modalities)}"
        if self.bmi_above is not None:
            s += f" · BMI > {self.bmi_above:g}"
        if self.bmi_at_most is not None:
            s += f" · BMI ≤ {self.bmi_at_most:g}"
        return s

    def select(self, rows: list[dict]) -> list[dict]:
        out = []
        for r in rows:
            if r.get("modality") not in self.modalities:
                continue
            if self.procedures is not None and r.get("procedure") not in self.procedures:
                continue
            bmi = r.get("bmi")
            if self.bmi_above is not None and not (bmi is not None and bmi > self.bmi_above):
                continue
            if self.bmi_at_most is not None and not (bmi is not None
                                                     and bmi <= self.bmi_at_most):
                continue
            out.append(r)
        return out


@dataclass(frozen=True)
class Figure:
    id: str
    keys: tuple[str, ...]
    clinical: str
    measure: str
    a: Arm
    b: Arm | None = None
    effect: Literal["diff", "ratio"] = "diff"
    expect: Literal["lower", "higher", "neither"] | None = None
    clinical_value: float | None = None
    clinical_range: tuple[float, float] | None = None
    size_on: Literal["effect", "a", "b", "arms"] = "effect"
    summary: Literal["mean", "median"] = "mean"
    tolerance: float | None = None
    min_n: int = 10
    limits: str = ""


def _arm(d: dict[str, Any]) -> Arm:
    unknown = set(d) - {"modalities", "procedures", "bmi_above", "bmi_at_most"}
    if unknown or not d.get("modalities"):
        raise ValueError(f"arm {d}: needs modalities; unknown fields {sorted(unknown)}")
    procs = d.get("procedures")
    return Arm(tuple(d["modalities"]), tuple(procs) if procs else None,
               d.get("bmi_above"), d.get("bmi_at_most"))


def parse_figures(data: dict[str, Any]) -> list[Figure]:
    """Validate the mapping (as loaded from YAML) into figures."""
    out: list[Figure] = []
    for f in data["figures"]:
        f = dict(f)
        f["keys"] = tuple(f["keys"])
        f["a"] = _arm(f["a"])
        f["b"] = _arm(f["b"]) if f.get("b") else None
        if f.get("clinical_range") is not None:
            f["clinical_range"] = tuple(float(x) for x in f["clinical_range"])
        fig = Figure(**f)
        if fig.measure not in MEASURES:
            raise ValueError(f"{fig.id}: unknown measure {fig.measure!r}")
        if (fig.b is None) != (fig.expect is None):
            raise ValueError(f"{fig.id}: a comparison needs both an arm b and expect")
        if fig.size_on in ("b", "arms", "effect") and fig.b is None and (
                fig.clinical_value is not None or fig.clinical_range is not None):
            raise ValueError(f"{fig.id}: size_on {fig.size_on} needs an arm b")
        out.append(fig)
    ids = [f.id for f in out]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate figure ids")
    return out


def load_figures() -> list[Figure]:
    text = resources.files("needleguide.lab").joinpath("reproduction.yaml").read_text("utf-8")
    return parse_figures(yaml.safe_load(text))


def _value(r: dict, measure: str) -> Any:
    if measure == "success":
        return bool(r.get("success"))
    if measure == "failure":
        return not r.get("success")
    if measure == "first_pass_success":
        return bool(r.get("success")) and int(r.get("passes") or 0) == 1
    if measure == "intravascular_any":
        return int(r.get("intravascular_events") or 0) > 0
    if measure in EVENTS:
        ev, miss = int(r.get("intravascular_events") or 0), int(r.get("intravascular_missed")
                                                                or 0)
        return (ev - miss if measure == "iv_caught" else miss, ev)
    v = r.get(measure)
    return float("nan") if v is None else float(v)


def _arm_stats(fig: Figure, arm: Arm, rows: list[dict]) -> dict[str, Any]:
    sel = arm.select(rows)
    vals = [_value(r, fig.measure) for r in sel]
    out: dict[str, Any] = {"arm": arm.label(), "procedures": len(sel)}
    if fig.measure in PROPORTIONS:
        k, n = sum(vals), len(vals)
        out.update(n=n, k=k, value=k / n if n else None, ci=st.wilson(k, n))
    elif fig.measure in EVENTS:
        k, n = sum(v[0] for v in vals), sum(v[1] for v in vals)
        out.update(n=n, k=k, value=k / n if n else None, ci=st.wilson(k, n))
    else:
        x = np.asarray([v for v in vals if np.isfinite(v)], float)
        out.update(n=len(x), value=st.point(x, fig.summary),
                   ci=st.bootstrap_ci(x, st.stat_of(fig.summary)))
    out["_sample"] = vals
    return out


def _effect(fig: Figure, a: dict, b: dict) -> tuple[float | None, st.Interval | None]:
    if a["value"] is None or b["value"] is None:
        return None, None
    if fig.effect == "diff":
        point = a["value"] - b["value"]
        if fig.measure in PROPORTIONS:
            return point, st.newcombe_diff(a["k"], a["n"], b["k"], b["n"])

        def comb(x, y):
            return x - y
    else:
        point = a["value"] / b["value"] if b["value"] else None

        def comb(x, y):
            return x / y
    if fig.measure in EVENTS:
        xa, xb, stat = a["_sample"], b["_sample"], st.pooled_share
    elif fig.measure in PROPORTIONS:
        xa, xb, stat = [float(v) for v in a["_sample"]], [float(v) for v in b["_sample"]], \
            st.mean_stat
    else:
        xa = [v for v in a["_sample"] if np.isfinite(v)]
        xb = [v for v in b["_sample"] if np.isfinite(v)]
        stat = st.stat_of(fig.summary)
    return point, st.bootstrap_two(xa, xb, stat, comb)


def _inside(ci: st.Interval | None, fig: Figure, point: float | None) -> bool | None:
    if ci is None:
        return None
    if fig.clinical_range is not None:
        lo, hi = fig.clinical_range
        return ci[0] <= hi and ci[1] >= lo
    v = fig.clinical_value
    assert v is not None
    tol = fig.tolerance is not None and point is not None and abs(point - v) <= fig.tolerance
    return bool(ci[0] - 1e-9 <= v <= ci[1] + 1e-9 or tol)


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def evaluate(fig: Figure, rows: list[dict]) -> dict[str, Any]:
    """One figure against the procedures ``rows`` (failed tasks already removed)."""
    arms = [_arm_stats(fig, fig.a, rows)] + ([_arm_stats(fig, fig.b, rows)] if fig.b else [])
    unit = "intravascular events" if fig.measure in EVENTS else "procedures"
    short = [(arm, s) for arm, s in zip((fig.a, fig.b), arms, strict=False)
             if s["n"] < fig.min_n]
    why: list[str] = []
    for arm, s in short:
        why.append(f"no {'/'.join(arm.modalities)} procedures in the rows for {arm.label()}"
                   if s["procedures"] == 0 else
                   f"{arm.label()}: {s['n']} {unit} (fewer than {fig.min_n})")
    point, eff_ci = (_effect(fig, arms[0], arms[1]) if fig.b and not short else (None, None))
    null = 0.0 if fig.effect == "diff" else 1.0
    if short:
        direction = "not enough data"
    elif fig.b is None:
        direction = "n/a"
    elif eff_ci is None:
        direction = "not enough data"
        why.append("the effect is undefined on these rows (an empty denominator)")
    elif fig.expect == "neither":
        direction = "yes" if eff_ci[0] <= null <= eff_ci[1] else "no"
        if direction == "no":
            why.append(f"the simulation shows a difference ({fig.effect} {_fmt(point)}, 95% "
                       f"CI {_fmt(eff_ci[0])} to {_fmt(eff_ci[1])}) where the clinic found "
                       f"none")
    else:
        below, above = eff_ci[1] < null, eff_ci[0] > null
        want_below = fig.expect == "lower"
        if below or above:
            direction = "yes" if below == want_below else "no"
        else:
            direction = "inconclusive"
        if direction == "no":
            why.append(f"the simulated arm a is {'higher' if want_below else 'lower'} "
                       f"({fig.effect} {_fmt(point)}, 95% CI {_fmt(eff_ci[0])} to "
                       f"{_fmt(eff_ci[1])}), the clinic found it {fig.expect}")
        elif direction == "inconclusive":
            why.append(f"the simulated 95% CI ({_fmt(eff_ci[0])} to {_fmt(eff_ci[1])}) "
                       f"includes no difference")
    size = _size(fig, arms, point, eff_ci, short, why)
    if fig.limits and (direction in ("no", "inconclusive") or size == "no"):
        why.append(f"not modelled / differs: {fig.limits}")
    return {
        "id": fig.id, "evidence_keys": list(fig.keys), "clinical": fig.clinical,
        "measure": fig.measure + (f" ({fig.summary})" if fig.measure in NUMERIC else ""),
        "compares": " vs ".join(s["arm"] for s in arms),
        "arms": [{"arm": s["arm"], "n": s["n"], "procedures": s["procedures"],
                  "value": st.finite(s["value"]), "ci95": st.interval(s["ci"])}
                 for s in arms],
        "effect": None if fig.b is None else {
            "kind": fig.effect + (" a-b" if fig.effect == "diff" else " a/b"),
            "value": st.finite(point), "ci95": st.interval(eff_ci)},
        "clinical_value": fig.clinical_value,
        "clinical_range": list(fig.clinical_range) if fig.clinical_range else None,
        "size_on": fig.size_on, "tolerance": fig.tolerance,
        "direction_expected": fig.expect, "direction_reproduced": direction,
        "size_reproduced": size, "why": "; ".join(why)}


def _size(fig: Figure, arms: list[dict], point: float | None, eff_ci: st.Interval | None,
          short: list, why: list[str]) -> str:
    if fig.clinical_value is None and fig.clinical_range is None:
        return "n/a"
    if short:
        return "not enough data"
    if fig.size_on == "effect":
        checks = [("effect", eff_ci, point)]
    else:
        idx = {"a": [0], "b": [1], "arms": [0, 1]}[fig.size_on]
        checks = [(("a", "b")[i], arms[i]["ci"], arms[i]["value"]) for i in idx]
    res = [(name, _inside(ci, fig, p), ci) for name, ci, p in checks]
    if any(r is None for _, r, _ in res):
        return "not enough data"
    bad = [(name, ci) for name, r, ci in res if not r]
    clin = (f"{fig.clinical_range[0]:g}-{fig.clinical_range[1]:g}" if fig.clinical_range
            else f"{fig.clinical_value:g}")
    for name, ci in bad:
        why.append(f"the clinical {clin} lies outside the simulated {name} CI "
                   f"({_fmt(ci[0])} to {_fmt(ci[1])})"
                   + (f" and beyond the tolerance ±{fig.tolerance:g}"
                      if fig.tolerance is not None else ""))
    return "no" if bad else "yes"


def reproduction_table(rows, figures: list[Figure] | None = None) -> list[dict]:
    """The clinical figures against the simulated rows (list of dicts or a pyarrow Table);
    failed tasks are left out. One dict per figure (see the module docstring)."""
    ok, _ = st.split_status(st.table_rows(rows))
    figs = load_figures() if figures is None else figures
    cites = _citations()
    out = []
    for f in figs:
        r = evaluate(f, ok)
        r["sources"] = [cites.get(k, "") for k in f.keys]
        out.append(r)
    return out


@lru_cache(maxsize=1)
def _citations() -> dict[str, str]:
    """Evidence row id -> citation, from the advisor's evidence table (read as data: the
    advisor package itself is not imported)."""
    text = resources.files("needleguide").joinpath("advisor/evidence.yaml").read_text("utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return {r["id"]: r.get("citation", "") for r in yaml.load(text, Loader=loader)["rows"]}
