"""The HTML report: patient, the advisor's recommendation for this patient, per session
(side by side) the plan, metrics, events and key frames with guidance overlays, plots of
the tip distance and the cumulative dose, and the procedure video (``<video>``). Every
value is rounded and carries its unit (:mod:`needleguide.report.text`)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from needleguide.atomic import write_text
from needleguide.report import text as t
from needleguide.report.media import plots_png, png_b64, poster, thumb, write_video

CSS = """
body{font-family:system-ui,sans-serif;margin:20px;background:#111;color:#ddd}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #444}h3{font-size:15px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #444;padding:3px 7px}
th{background:#222;text-align:left}.ok{color:#6d6}.bad{color:#f66}.cols{display:flex;gap:18px;
flex-wrap:wrap;align-items:flex-start}.col{flex:1;min-width:380px}.kf{display:inline-block;
margin:4px;vertical-align:top;width:300px;font-size:12px}.kf img{width:300px;display:block}
.note{color:#999;font-size:12px}.warn{color:#fc6;font-size:13px}td.n{text-align:right}
video{max-width:100%;background:#000}a{color:#8bf}
"""

DISPLAY_WORDS = {"black-bone": "black-bone display (bone dark, needle and contrast black)",
                 "white-bone": "white-bone display (radiographic: bone, needle and contrast "
                               "white)"}


def _e(x) -> str:
    return html.escape(str(x))


def _advice(procedure: str, bmi: float) -> str:
    from needleguide.advisor import AdviceRequest, advise

    try:
        a = advise(AdviceRequest.build(procedure=procedure, bmi=bmi)).to_json()
    except Exception as exc:  # the report must still be written
        return f"<p class=note>advisor unavailable: {_e(exc)}</p>"
    rows = "".join(
        f"<tr><td>{_e(r['modality'])}</td><td class=n>{r['score']}</td><td>"
        f"{_e(' '.join(x['text'] for x in r['reasons']))}</td></tr>" for r in a["ranking"])
    warn = "".join(f"<li>{_e(w['text'])}</li>" for w in a.get("warnings", []))
    return (f"<h3>{_e(procedure)} (BMI {bmi:g})</h3><table><tr><th>modality</th>"
            f"<th>score 1–9</th><th>reasons (evidence in `needleguide advise`)</th></tr>{rows}"
            f"</table>" + (f"<ul class=note>{warn}</ul>" if warn else ""))


def _metric_rows(r) -> list[tuple[str, str]]:
    m, fl = r.metrics, r.config.modality == "fluoro"
    no_x = "none (ultrasound)"
    steps = len(r.steps)
    used = sum(1 for s in r.steps if s.detected)
    return [
        ("final tip-to-target error", t.num(m["final_tip_error_mm"], 1, "mm")),
        ("tolerance", t.num(m["tolerance_mm"], 1, "mm")),
        ("result", "success" if m["success"] else "not successful"),
        ("passes", str(m["passes"])),
        ("procedure time (simulated clock)", t.duration(m["procedure_time_s"])),
        ("fluoroscopy time", t.num(m["fluoro_time_s"], 1, "s") if fl else no_x),
        ("dose-area product", t.num(1000 * m["dap_gy_cm2"], 0, "mGy·cm²") if fl else no_x),
        ("reference air kerma", t.num(m["reference_air_kerma_mgy"], 1, "mGy") if fl
         else no_x),
        ("contrast", t.num(m["contrast_ml"], 1, "mL") if fl else no_x),
        ("frames acquired", str(m["shots"])),
        ("steps steered by the needle analyser", f"{used} of {steps}"),
    ]


def _session(r) -> str:
    c, m, p = r.config, r.metrics, r.plan
    ok = "ok" if m["success"] else "bad"
    rows = "".join(f"<tr><td>{_e(k)}</td><td class=n>{_e(v)}</td></tr>"
                   for k, v in _metric_rows(r))
    ev = "".join(f"<tr><td class=n>{e.t_s:.0f}</td><td>{_e(t.words(e.kind))}</td><td>"
                 f"{'yes' if e.detected else 'NO'}</td><td>{_e(e.detail)}</td></tr>"
                 for e in r.events) or "<tr><td colspan=4>none</td></tr>"
    kf = "".join(f"<div class=kf><img src='{png_b64(thumb(img))}' alt='{_e(title)}'>"
                 f"{_e(title)}</div>" for title, img in r.key_frames)
    conf = "".join(f"<li>{_e(x)}</li>" for x in t.confirmation(r.extra["confirm"])) or \
        "<li>none</li>"
    guide = r.guidance_summary()
    never = not any(s.detected for s in r.steps)
    blocked = "" if not p["blocked_mm"] else \
        f" (no clear path: {t.num(p['blocked_mm'], 1, 'mm')} blocked)"
    shown = "" if c.modality != "fluoro" else \
        f"<p class=note>Fluoroscopy shown in the {_e(DISPLAY_WORDS[c.display])}.</p>"
    return f"""<div class=col><h2>{_e(r.extra['procedure_name'])} — {_e(c.modality)}
{' (DSA)' if c.dsa else ''}</h2>
<p class={ok}><b>{'SUCCESS' if m['success'] else 'NOT SUCCESSFUL'}</b>: tip
{t.num(m['final_tip_error_mm'], 1, 'mm')} from {_e(t.words(p['target']))} (tolerance
{t.num(m['tolerance_mm'], 1, 'mm')}), {m['passes']} pass{'es' if m['passes'] != 1 else ''}.</p>
<p class={'warn' if never else 'note'}>Guidance: {_e(guide)}.</p>
<p class=note>Plan: {p['gauge']} G × {t.num(p['needle_length_mm'], 0, 'mm')} needle, skin
entry {_e(t.point_mm(p['entry_mm']))} → target {_e(t.point_mm(p['target_mm']))} (RAS), path
{t.num(p['path_mm'], 1, 'mm')} through {_e(t.listing(p['crossed'], ' → '))}; avoiding
{_e(t.listing(p['avoid']) if p['avoid'] else 'nothing listed')}{_e(blocked)}.
Views: {_e(t.views(p['views'], c.modality))}.</p>{shown}
<table>{rows}</table>
<p class=note>Needle analyser, frames where it found the needle:
{_e(t.analyser_hits(m.get('analyser') or {}))}.</p>
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
    still = poster(results)
    vid = "" if not video else (
        f"<h2 id=video>Procedure video</h2><p class=note>The sessions side by side, frame by "
        f"frame (<a href='{video.name}'>{video.name}</a>).</p><video controls "
        f"preload=metadata width=960"
        + (f" poster='{png_b64(still)}'" if still is not None else "")
        + f"><source src='{video.name}' type='video/mp4'>Your browser cannot play MP4 here: "
        f"open <a href='{video.name}'>{video.name}</a>.</video>")
    doc = f"""<!doctype html><html><head><meta charset=utf-8><title>{_e(title)}</title>
<style>{CSS}</style></head><body><h1>{_e(title)}</h1>
<h2>Patient</h2><ul>{pat}</ul>
<h2>Advisor's recommendation for this patient</h2>{advice}
<h2 id=sessions>Sessions</h2><div class=cols>{cols}</div>
<h2 id=plots>Plots</h2>
<img src='{plots}' style='max-width:100%' alt='tip distance and dose per step'>
{vid}
<p class=note>Simulated from physics on a virtual patient; the operator acts only on the
guidance analysers' outputs; the truth scores the session. Timings of the simulated clock
and the operator model are assumptions (docs/session.md).</p></body></html>"""
    return write_text(out_dir / "report.html", doc)
