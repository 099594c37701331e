"""The HTML report: patient, the advisor's recommendation for this patient, per session
(side by side) the plan, metrics, events and key frames with guidance overlays, plots of
the tip distance and the cumulative dose, and a link to the procedure video."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from needleguide.atomic import write_text
from needleguide.report.media import plots_png, png_b64, thumb, write_video

CSS = """
body{font-family:system-ui,sans-serif;margin:20px;background:#111;color:#ddd}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #444}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #444;padding:3px 7px}
th{background:#222;text-align:left}.ok{color:#6d6}.bad{color:#f66}.cols{display:flex;gap:18px;
flex-wrap:wrap;align-items:flex-start}.col{flex:1;min-width:380px}.kf{display:inline-block;
margin:4px;vertical-align:top;width:300px;font-size:12px}.kf img{width:300px}
.note{color:#999;font-size:12px}
"""

METRIC_ROWS = (("final_tip_error_mm", "final tip-to-target error (mm)"),
               ("tolerance_mm", "tolerance (mm)"), ("success", "success"),
               ("passes", "passes"), ("procedure_time_s", "procedure time (s, simulated)"),
               ("fluoro_time_s", "fluoro time (s)"), ("dap_gy_cm2", "DAP (Gy·cm²)"),
               ("reference_air_kerma_mgy", "reference air kerma (mGy)"),
               ("contrast_ml", "contrast (mL)"), ("shots", "frames acquired"),
               ("detection_rate", "needle found by the analyser (share of steps)"))


def _e(x) -> str:
    return html.escape(str(x))


def _advice(procedure: str, bmi: float) -> str:
    from needleguide.advisor import AdviceRequest, advise

    try:
        a = advise(AdviceRequest.build(procedure=procedure, bmi=bmi)).to_json()
    except Exception as exc:  # the report must still be written
        return f"<p class=note>advisor unavailable: {_e(exc)}</p>"
    rows = "".join(
        f"<tr><td>{_e(r['modality'])}</td><td>{r['score']}</td><td>"
        f"{_e(' '.join(x['text'] for x in r['reasons']))}</td></tr>" for r in a["ranking"])
    warn = "".join(f"<li>{_e(w['text'])}</li>" for w in a.get("warnings", []))
    return (f"<h3>{_e(procedure)} (BMI {bmi:g})</h3><table><tr><th>modality</th>"
            f"<th>score 1–9</th><th>reasons (evidence in `needleguide advise`)</th></tr>{rows}"
            f"</table>" + (f"<ul class=note>{warn}</ul>" if warn else ""))


def _hits(m) -> str:
    """Per view: found / analysed frames (share)."""
    a = m.get("analyser") or {}
    return "; ".join(f"{v} {c['found']}/{c['frames']} ({100 * c['rate']:.0f}%)"
                     for v, c in a.items()) or "no frame analysed"


def _session(r) -> str:
    c, m, p = r.config, r.metrics, r.plan
    ok = "ok" if m["success"] else "bad"
    rows = "".join(f"<tr><td>{_e(lab)}</td><td>{_e(m[k])}</td></tr>" for k, lab in METRIC_ROWS)
    ev = "".join(f"<tr><td>{e.t_s:.0f}</td><td>{_e(e.kind)}</td><td>"
                 f"{'yes' if e.detected else 'NO'}</td><td>{_e(e.detail)}</td></tr>"
                 for e in r.events) or "<tr><td colspan=4>none</td></tr>"
    kf = "".join(f"<div class=kf><img src='{png_b64(thumb(img))}'><br>{_e(t)}</div>"
                 for t, img in r.key_frames)
    conf = "".join(f"<li>{_e(k)}: {_e(v)}</li>" for k, v in r.extra["confirm"].items())
    return f"""<div class=col><h2>{_e(r.extra['procedure_name'])} — {_e(c.modality)}
{' (DSA)' if c.dsa else ''}</h2>
<p class={ok}><b>{'SUCCESS' if m['success'] else 'NOT SUCCESSFUL'}</b>: tip
{m['final_tip_error_mm']:.1f} mm from {_e(p['target'])} (tolerance {m['tolerance_mm']:g} mm),
{m['passes']} pass(es).</p>
<p class=note>Plan: {p['gauge']} G × {p['needle_length_mm']:.0f} mm needle, skin entry
{_e(p['entry_mm'])} → target {_e(p['target_mm'])} (RAS mm), path {p['path_mm']} mm through
{_e(' → '.join(p['crossed']))}; avoiding {_e(', '.join(p['avoid']) or 'nothing listed')}
{'' if not p['blocked_mm'] else f"(no clear path: {p['blocked_mm']} mm blocked)"}.
Views: {_e(p['views'])}.</p>
<table>{rows}</table>
<p class=note>Needle analyser, frames where it found the needle: {_e(_hits(m))}.</p>
<h3>Events</h3><table><tr><th>t (s)</th><th>event</th><th>noticed</th><th>detail</th></tr>
{ev}</table>
<h3>Confirmation</h3><ul class=note>{conf}</ul>
<h3>Key frames</h3><p class=note>Green line and red cross: the needle analyser's output
(what the operator acted on); yellow cross: the target; cyan circle: the true tip (shown to
you, never to the operator).</p>{kf}</div>"""


def write_report(results, out_dir: Path, title: str) -> Path:
    """Write ``out_dir/report.html`` and ``out_dir/procedure.mp4``; return the HTML path."""
    out_dir = Path(out_dir)
    video = write_video(results, out_dir / "procedure.mp4")
    pats = {}
    for r in results:
        pats[(r.extra["patient"]["region"], r.config.bmi, r.config.degeneration,
              r.config.seed)] = r.extra["patient"]
    pat = "".join(f"<li>{_e(v['region'])} phantom, BMI {v['bmi']:g}, degeneration "
                  f"{v['degeneration']}, seed {v['seed']}</li>" for v in pats.values())
    advice = "".join(_advice(p, b) for p, b in
                     dict.fromkeys((r.config.procedure, r.config.bmi) for r in results))
    plots = "data:image/png;base64," + base64.b64encode(plots_png(results)).decode("ascii")
    cols = "".join(_session(r) for r in results)
    vid = (f"<p>Procedure video (sessions side by side): <a href='{video.name}'>"
           f"{video.name}</a></p>" if video else "")
    doc = f"""<!doctype html><html><head><meta charset=utf-8><title>{_e(title)}</title>
<style>{CSS}</style></head><body><h1>{_e(title)}</h1>
<h2>Patient</h2><ul>{pat}</ul>
<h2>Advisor's recommendation for this patient</h2>{advice}
<h2>Sessions</h2><div class=cols>{cols}</div>
<h2>Plots</h2><img src='{plots}' style='max-width:100%'>
{vid}
<p class=note>Simulated from physics on a virtual patient; the operator acts only on the
guidance analysers' outputs; the truth scores the session. Timings of the simulated clock
and the operator model are assumptions (docs/session.md).</p></body></html>"""
    return write_text(out_dir / "report.html", doc)
