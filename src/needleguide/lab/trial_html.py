"""HTML of the virtual-trial report (the content comes from
:func:`needleguide.lab.trial_report.build_report`); the session report's style."""

from __future__ import annotations

import html
from typing import Any

from needleguide.report import text as t
from needleguide.report.html import CSS

EXTRA_CSS = ".yes{color:#6d6}.no{color:#f66}.inc{color:#fc6}td.w{max-width:520px}"


def _e(x: Any) -> str:
    return html.escape(str(x))


def _ci(ci: list | None, digits: int, unit: str = "", scale: float = 1.0) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return (f" <span class=note>({t.num(ci[0] * scale, digits)}–"
            f"{t.num(ci[1] * scale, digits, unit)})</span>")


def _rate(p: dict) -> str:
    if not p["n"]:
        return t.DASH
    return f"{t.num(100 * p['rate'], 1, '%')} ({p['k']}/{p['n']}){_ci(p['ci95'], 1, '%', 100)}"


def _num(d: dict | None, stat: str, digits: int, unit: str, scale: float = 1.0,
         none: str = t.DASH) -> str:
    if d is None:
        return none
    v = d.get(stat)
    if v is None:
        return t.DASH
    s = t.num(v * scale, digits, unit) + _ci(d["ci95"], digits, unit, scale)
    if d.get("iqr") and d["iqr"][0] is not None and stat == "median":
        s += (f"<br><span class=note>IQR {t.num(d['iqr'][0] * scale, digits)}–"
              f"{t.num(d['iqr'][1] * scale, digits, unit)}</span>")
    return s


def _groups(groups: list[dict]) -> str:
    head = ("<tr><th>procedure</th><th>modality</th><th>procedures (failed tasks)</th>"
            "<th>success</th><th>tip error, median</th><th>passes, mean</th>"
            "<th>procedure time, median</th><th>fluoro time, median</th>"
            "<th>DAP, median</th><th>intravascular missed</th></tr>")
    body = []
    for g in groups:
        iv = g["intravascular"]
        ivs = (f"{iv['missed']} of {iv['events']}" + (
            f": {_rate(iv['missed_share'])}" if iv["events"] else ""))
        us = "none (ultrasound)"
        body.append(
            f"<tr><td>{_e(g['procedure'])}</td><td>{_e(g['modality'])}</td>"
            f"<td class=n>{g['procedures']} ({g['failed_tasks']})</td>"
            f"<td>{_rate(g['success'])}</td>"
            f"<td>{_num(g['tip_error_mm'], 'median', 1, 'mm')}</td>"
            f"<td>{_num(g['passes'], 'mean', 2, '')}</td>"
            f"<td>{_num(g['procedure_time_s'], 'median', 0, 's')}</td>"
            f"<td>{_num(g['fluoro_time_s'], 'median', 1, 's', none=us)}</td>"
            f"<td>{_num(g['dap_gy_cm2'], 'median', 0, 'mGy·cm²', 1000.0, none=us)}</td>"
            f"<td>{ivs}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _causes(causes: list[dict]) -> str:
    if not causes:
        return "<p class=note>No unsuccessful procedures.</p>"
    rows = []
    for c in causes:
        for j, x in enumerate(c["causes"]):
            first = (f"<td rowspan={len(c['causes'])}>{_e(c['procedure'])}</td><td rowspan="
                     f"{len(c['causes'])}>{_e(c['modality'])}</td><td rowspan="
                     f"{len(c['causes'])} class=n>{c['unsuccessful']}</td>") if j == 0 else ""
            rows.append(f"<tr>{first}<td>{_e(t.words(x['cause']))}</td><td class=n>"
                        f"{x['count']}</td><td class=n>{t.num(100 * x['share'], 0, '%')}"
                        f"</td></tr>")
    return ("<table><tr><th>procedure</th><th>modality</th><th>unsuccessful</th>"
            "<th>cause</th><th>count</th><th>share of unsuccessful</th></tr>"
            + "".join(rows) + "</table>")


def _verdict(v: str) -> str:
    cls = {"yes": "yes", "no": "no", "inconclusive": "inc"}.get(v, "note")
    return f"<span class={cls}>{_e(v)}</span>"


def _repro(rep: list[dict]) -> str:
    rows = []
    for r in rep:
        arms = "<br>".join(
            f"{_e(a['arm'])}: {t.num(a['value'], 3)}{_ci(a['ci95'], 3)} "
            f"<span class=note>n={a['n']}</span>" for a in r["arms"])
        eff = "" if not r["effect"] else (
            f"<br>{_e(r['effect']['kind'])}: {t.num(r['effect']['value'], 3)}"
            f"{_ci(r['effect']['ci95'], 3)}")
        rows.append(
            f"<tr><td>{_e(r['id'])}<br><span class=note>{_e(', '.join(r['evidence_keys']))}"
            f"</span></td><td class=w>{_e(r['clinical'])}</td><td>{_e(r['measure'])}</td>"
            f"<td>{arms}{eff}</td><td>{_e(r['direction_expected'] or t.DASH)}</td>"
            f"<td>{_verdict(r['direction_reproduced'])}</td>"
            f"<td>{_verdict(r['size_reproduced'])}</td>"
            f"<td class='w note'>{_e(r['why'])}</td></tr>")
    return ("<table><tr><th>figure (evidence keys)</th><th>clinical figure</th>"
            "<th>measure</th><th>simulated (95% CI)</th><th>expected (a vs b)</th>"
            "<th>direction reproduced</th><th>size reproduced</th><th>why</th></tr>"
            + "".join(rows) + "</table>")


def _failed(failed: list[dict]) -> str:
    if not failed:
        return "<p class=note>None.</p>"
    return ("<table><tr><th>task</th><th>patient seed</th><th>worker</th><th>error</th></tr>"
            + "".join(f"<tr><td>{_e(f['task_key'])}</td><td class=n>{_e(f['patient_seed'])}"
                      f"</td><td>{_e(f['worker'])}</td><td class=w>{_e(f['error'])}</td></tr>"
                      for f in failed) + "</table>")


def render(rep: dict[str, Any], plots: dict[str, str]) -> str:
    m = rep["methods"]
    imgs = "".join(
        f"<h3>{cap}</h3><img src='{plots[k]}' style='max-width:100%' alt='{cap}'>"
        for k, cap in (("success", "Success rate by BMI (95% Wilson CI)"),
                       ("tip", "Final tip error against BMI")) if k in plots) or \
        "<p class=note>No procedures to plot.</p>"
    return f"""<!doctype html><html><head><meta charset=utf-8><title>{_e(rep['title'])}</title>
<style>{CSS}{EXTRA_CSS}</style></head><body><h1>{_e(rep['title'])}</h1>
<p>{rep['procedures']} simulated procedures; {rep['failed_tasks_count']} failed tasks (listed
below, not counted). Brackets: 95% confidence intervals — {_e(m['proportions'])} for rates,
{_e(m['medians_means_ratios'])} (B = {m['bootstrap_B']}, seed {m['bootstrap_seed']}) for
medians, means and ratios; {_e(m['differences_of_proportions'])} for differences of
rates.</p>
<h2 id=groups>Per procedure and modality</h2>{_groups(rep['groups'])}
<h2 id=bmi>Against BMI</h2>{imgs}
<h2 id=causes>Causes of failure</h2>{_causes(rep['failure_causes'])}
<h2 id=reproduction>Clinical figures reproduced?</h2>
<p class=note>Each clinical figure of EVIDENCE.md that the simulation can address, against
the same figure computed from the simulated procedures. Direction: the simulated 95% CI of
the effect (a − b or a / b) lies on the clinical side of no difference (yes), on the other
side (no), or includes no difference (inconclusive). Size: the clinical value lies in the
simulated CI (or within the stated tolerance).</p>{_repro(rep['reproduction'])}
<h2 id=failed>Failed tasks</h2>{_failed(rep['failed_tasks'])}
<p class=note>Simulated from physics on virtual patients; the operator acts on the guidance
analysers' outputs and the truth scores each procedure. Timings of the simulated clock and
the operator model are assumptions (docs/session.md).</p></body></html>"""
