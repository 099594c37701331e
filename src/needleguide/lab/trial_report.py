"""The virtual-trial report: ``trial.html`` and ``trial.json`` from the trial's rows.

Per procedure × modality: procedures (and failed tasks), success rate, tip error (median,
IQR), passes, procedure time, fluoroscopy time, DAP and intravascular injections missed —
each with a 95 % CI (:mod:`needleguide.lab.trial_stats`: Wilson for proportions, seeded
percentile bootstrap, B = 2000, for medians and means); success and tip error against BMI
(PNG plots embedded in the HTML); the causes of failure; the reproduction of the clinical
figures (:mod:`needleguide.lab.reproduction`). A failed task (status "failed": the
simulation itself broke) is listed, never counted as a procedure.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from needleguide.atomic import write_json, write_text
from needleguide.lab import trial_stats as st
from needleguide.lab.reproduction import reproduction_table

BMI_EDGES = (25.0, 30.0, 35.0, 40.0)  # bins: < 25, 25-30, 30-35, 35-40, >= 40
MODALITY_ORDER = ("us", "fluoro", "fluoro-dsa")
COLOURS = {"us": "#1f77b4", "fluoro": "#ff7f0e", "fluoro-dsa": "#2ca02c"}
FL = ("fluoro", "fluoro-dsa")


def _e(x: Any) -> str:
    return html.escape(str(x))


def _key(r: dict) -> tuple[str, str]:
    return str(r.get("procedure")), str(r.get("modality"))


def _order(keys) -> list[tuple[str, str]]:
    def k(x: tuple[str, str]):
        m = MODALITY_ORDER.index(x[1]) if x[1] in MODALITY_ORDER else len(MODALITY_ORDER)
        return x[0], m, x[1]
    return sorted(set(keys), key=k)


def _nums(rows: list[dict], field: str) -> np.ndarray:
    v = [r.get(field) for r in rows]
    x = np.asarray([float(a) for a in v if a is not None], float)
    return x[np.isfinite(x)]


def _numeric(rows: list[dict], field: str, stat: str) -> dict[str, Any]:
    x = _nums(rows, field)
    out: dict[str, Any] = {"n": int(len(x)), stat: st.finite(st.point(x, stat)),
                           "ci95": st.interval(st.bootstrap_ci(x, st.stat_of(stat)))}
    if stat == "median":
        q = np.percentile(x, [25, 75]) if len(x) else [None, None]
        out["iqr"] = [st.finite(q[0]), st.finite(q[1])]
    return out


def _prop(k: int, n: int) -> dict[str, Any]:
    return {"k": int(k), "n": int(n), "rate": st.finite(k / n) if n else None,
            "ci95": st.interval(st.wilson(k, n))}


def group_summary(ok: list[dict], failed: list[dict]) -> list[dict[str, Any]]:
    """One summary per procedure × modality (see the module docstring)."""
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in ok:
        by[_key(r)].append(r)
    nfail = Counter(_key(r) for r in failed)
    out = []
    for key in _order([*by, *nfail]):
        rows = by.get(key, [])
        fl = key[1] in FL
        ev = sum(int(r.get("intravascular_events") or 0) for r in rows)
        miss = sum(int(r.get("intravascular_missed") or 0) for r in rows)
        out.append({
            "procedure": key[0], "modality": key[1], "procedures": len(rows),
            "failed_tasks": int(nfail.get(key, 0)),
            "success": _prop(sum(bool(r.get("success")) for r in rows), len(rows)),
            "tip_error_mm": _numeric(rows, "final_tip_error_mm", "median"),
            "passes": _numeric(rows, "passes", "mean"),
            "procedure_time_s": _numeric(rows, "procedure_time_s", "median"),
            "fluoro_time_s": _numeric(rows, "fluoro_time_s", "median") if fl else None,
            "dap_gy_cm2": _numeric(rows, "dap_gy_cm2", "median") if fl else None,
            "intravascular": {"events": ev, "missed": miss, "missed_share": _prop(miss, ev)},
        })
    return out


def failure_causes(ok: list[dict]) -> list[dict[str, Any]]:
    """Counts and shares (of the unsuccessful procedures) of each failure cause."""
    by: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for r in ok:
        if not r.get("success"):
            by[_key(r)][r.get("failure_cause") or "unspecified"] += 1
    out = []
    for key in _order(by):
        c = by[key]
        tot = sum(c.values())
        out.append({"procedure": key[0], "modality": key[1], "unsuccessful": tot,
                    "causes": [{"cause": k, "count": v, "share": st.finite(v / tot)}
                               for k, v in c.most_common()]})
    return out


def _bin(bmi: float | None) -> int | None:
    if bmi is None or not math.isfinite(float(bmi)):
        return None
    return int(np.searchsorted(BMI_EDGES, float(bmi), side="right"))


def bmi_labels() -> list[str]:
    e = BMI_EDGES
    return ([f"< {e[0]:g}"] + [f"{a:g}–{b:g}" for a, b in zip(e[:-1], e[1:], strict=True)]
            + [f"≥ {e[-1]:g}"])


def success_by_bmi(ok: list[dict]) -> list[dict[str, Any]]:
    """Success rate (Wilson CI) per procedure × modality × BMI bin (lower edge inclusive)."""
    cells: dict[tuple[str, str, int], list[bool]] = defaultdict(list)
    for r in ok:
        b = _bin(r.get("bmi"))
        if b is not None:
            cells[(*_key(r), b)].append(bool(r.get("success")))
    labels = bmi_labels()
    return [{"procedure": p, "modality": m, "bmi_bin": labels[b], **_prop(sum(v), len(v))}
            for (p, m, b), v in sorted(cells.items())]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def bmi_plots(ok: list[dict]) -> dict[str, str]:
    """Two PNG data URIs: success rate per BMI bin with Wilson bars, and tip error against
    BMI; one panel per procedure, one colour per modality."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    procs = sorted({str(r.get("procedure")) for r in ok})
    if not procs:
        return {}
    nc = min(3, len(procs))
    nr = math.ceil(len(procs) / nc)
    labels = bmi_labels()
    out = {}
    for kind in ("success", "tip"):
        fig, axes = plt.subplots(nr, nc, figsize=(4.4 * nc, 3.2 * nr), dpi=80, squeeze=False)
        for ax in axes.flat[len(procs):]:
            ax.set_visible(False)
        for ax, p in zip(axes.flat, procs, strict=False):
            rows = [r for r in ok if r.get("procedure") == p]
            title = p
            mods = [m for _, m in _order(_key(r) for r in rows)]
            for j, m in enumerate(mods):
                sub = [r for r in rows if r.get("modality") == m]
                col = COLOURS.get(m, "grey")
                if kind == "success":
                    _success_panel(ax, sub, j, len(mods), m, col)
                else:
                    _tip_panel(ax, sub, m, col)
            if kind == "success":
                ax.set_xticks(range(len(labels)), labels, fontsize=7)
                ax.set(ylim=(-0.02, 1.05), ylabel="success rate", xlabel="BMI (kg/m²)")
            else:
                tol = sorted({float(r["tolerance_mm"]) for r in rows
                              if r.get("tolerance_mm") is not None})
                for v in tol:
                    ax.axhline(v, color="#c33", ls="--", lw=1, label=f"tolerance {v:g} mm")
                ax.set(ylabel="final tip error (mm)", xlabel="BMI (kg/m²)")
                err = _nums(rows, "final_tip_error_mm")
                top = max(float(np.percentile(err, 97)) * 1.15 if len(err) else 1.0,
                          2.0 * max(tol, default=1.0))
                ax.set_ylim(0, top)
                above = int(np.sum(err > top))
                if above:  # outliers: drawn on the top edge, counted in the title
                    xs = [float(r["bmi"]) for r in rows if r.get("bmi") is not None
                          and (r.get("final_tip_error_mm") or 0.0) > top]
                    ax.plot(xs, [top] * len(xs), "^", color="k", ms=4, clip_on=False)
                    title = f"{p} ({above} above {top:.0f} mm: ▲)"
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6)
        fig.tight_layout()
        out[kind] = _png(fig)
        plt.close(fig)
    return out


def _success_panel(ax, rows, j, nmod, m, col) -> None:
    cells: dict[int, list[bool]] = defaultdict(list)
    for r in rows:
        b = _bin(r.get("bmi"))
        if b is not None:
            cells[b].append(bool(r.get("success")))
    xs, ys, lo, hi = [], [], [], []
    for b in sorted(cells):
        v = cells[b]
        p = sum(v) / len(v)
        ci = st.wilson(sum(v), len(v)) or (p, p)
        xs.append(b + (j - (nmod - 1) / 2) * 0.15)
        ys.append(p)
        lo.append(max(0.0, p - ci[0]))
        hi.append(max(0.0, ci[1] - p))
    if xs:
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", color=col, ms=4, capsize=2, label=m)


def _tip_panel(ax, rows, m, col) -> None:
    pts = [(float(r["bmi"]), float(r["final_tip_error_mm"]), bool(r.get("success")))
           for r in rows if r.get("bmi") is not None and r.get("final_tip_error_mm") is not None]
    good = [(x, y) for x, y, s in pts if s]
    bad = [(x, y) for x, y, s in pts if not s]
    if good:
        ax.scatter(*zip(*good, strict=True), s=10, color=col, label=f"{m} success")
    if bad:
        ax.scatter(*zip(*bad, strict=True), s=14, color=col, marker="x",
                   label=f"{m} not successful")


def failed_tasks(failed: list[dict]) -> list[dict[str, Any]]:
    keep = ("task_key", "procedure", "modality", "index", "patient_seed", "bmi", "worker",
            "error")
    return [{k: r.get(k) for k in keep} for r in failed]


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def build_report(rows, title: str) -> dict[str, Any]:
    """The report's JSON content (without the plots)."""
    ok, failed = st.split_status(st.table_rows(rows))
    return _clean({
        "title": title,
        "procedures": len(ok), "failed_tasks_count": len(failed),
        "methods": {"ci_level": 0.95, "proportions": "Wilson score interval",
                    "differences_of_proportions": "Newcombe hybrid score interval",
                    "medians_means_ratios": "percentile bootstrap over procedures",
                    "bootstrap_B": st.BOOT_B, "bootstrap_seed": st.BOOT_SEED,
                    "bmi_bins": bmi_labels(),
                    "failed_tasks": "listed, not counted as procedures"},
        "groups": group_summary(ok, failed),
        "success_by_bmi": success_by_bmi(ok),
        "failure_causes": failure_causes(ok),
        "failed_tasks": failed_tasks(failed),
        "reproduction": reproduction_table(ok),
    })


def write_trial_report(rows, out_dir: Path, title: str) -> dict[str, Any]:
    """Write ``out_dir/trial.html`` and ``out_dir/trial.json`` (each atomically); return the
    JSON dict. ``rows``: a list of dicts or a pyarrow Table."""
    from needleguide.lab.trial_html import render

    out_dir = Path(out_dir)
    rows = st.table_rows(rows)
    rep = build_report(rows, title)
    ok, _ = st.split_status(rows)
    plots = bmi_plots(ok)
    rep["plots"] = sorted(plots)
    write_json(out_dir / "trial.json", rep)
    write_text(out_dir / "trial.html", render(rep, plots))
    return rep

