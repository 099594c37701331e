"""CDS Hooks 2.0 response (``{"cards": [...]}``) from an :class:`Advice`.

Card fields follow the CDS Hooks 2.0 card schema: ``uuid``, ``summary`` (< 140 chars),
``detail`` (markdown), ``indicator`` (info | warning | critical), ``source`` (``label``;
``url`` only where one exists), ``links`` (``label``, ``url``, ``type: absolute``),
``suggestions`` (``label``, ``uuid``, ``isRecommended``) with ``selectionBehavior``.
UUIDs are name-based (uuid5), so the same advice gives the same response.
Suggestions only ever name an imaging modality, never a drug or contrast agent.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from needleguide.advisor.engine import Advice, band
from needleguide.advisor.evidence import load_evidence
from needleguide.procedures import get_procedure

SUMMARY_MAX = 139  # the specification asks for fewer than 140 characters
MODALITY_LABELS = {
    "us": "ultrasound", "fluoro": "fluoroscopy", "fluoro-dsa": "fluoroscopy with DSA",
    "ct": "CT", "landmark": "landmark (no imaging)",
}
_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://needleguide.invalid/advisor")


def _summary(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= SUMMARY_MAX:
        return text
    cut = text[: SUMMARY_MAX - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(_NS, "|".join(parts)))


def _links(row_ids: list[str]) -> list[dict[str, str]]:
    """Absolute links for cited rows whose citation carries a PMID or PMC id."""
    ev = load_evidence()
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for rid in row_ids:
        cit = ev[rid].citation
        for pmc in re.findall(r"PMC\d+", cit):
            url = f"https://www.ncbi.nlm.nih.gov/pmc/articles/{pmc}/"
            if url not in seen:
                seen.add(url)
                links.append({"label": f"{rid} ({pmc})", "url": url, "type": "absolute"})
        for pmid in re.findall(r"PMID (\d+)", cit):
            url = f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"
            if url not in seen:
                seen.add(url)
                links.append({"label": f"{rid} (PMID {pmid})", "url": url, "type": "absolute"})
    return links


def _evidence_md(row_ids: list[str]) -> str:
    ev = load_evidence()
    return "\n".join(f"- `{r}`: {ev[r].value} — {ev[r].citation} ({ev[r].certainty})"
                     for r in row_ids)


def to_cds_hooks(advice: Advice) -> dict[str, Any]:
    """A CDS Hooks response: one recommendation card, then one card per warning."""
    proc = get_procedure(advice.procedure)
    version = advice.evidence_version
    source = {"label": f"needleguide modality advisor (evidence table v{version})"}
    top = next((r for r in advice.ranking if r.available), advice.ranking[0])
    top_rows = sorted({e for x in top.reasons for e in x.evidence})
    rank_md = "\n".join(
        f"{i + 1}. **{MODALITY_LABELS[r.modality]}**: {r.score}/9 ({r.band})"
        + "".join(f"\n   - {x.text} [{', '.join(x.evidence)}]" for x in r.reasons)
        for i, r in enumerate(advice.ranking))
    changes_md = "".join(f"\n- {c.text} [{', '.join(c.evidence)}]" for c in advice.changes)
    detail = (f"{rank_md}\n\n**Evidence for the first choice**\n\n{_evidence_md(top_rows)}"
              + (f"\n\n**What would change the ranking**{changes_md}" if changes_md else ""))
    indicator = "info" if top.score >= 7 else "warning" if top.score >= 4 else "critical"
    cards: list[dict[str, Any]] = [{
        "uuid": _uid(advice.procedure, "ranking"),
        "summary": _summary(f"{proc.name}: {MODALITY_LABELS[top.modality]} first "
                            f"({top.score}/9, {band(top.score)})"),
        "detail": detail,
        "indicator": indicator,
        "source": source,
        "suggestions": [
            {"label": _summary(f"Use {MODALITY_LABELS[r.modality]} guidance ({r.score}/9)"),
             "uuid": _uid(advice.procedure, "suggest", r.modality),
             "isRecommended": r.modality == top.modality}
            for r in advice.ranking if r.available and r.score >= 7
        ] or [{"label": _summary(f"Use {MODALITY_LABELS[top.modality]} guidance "
                                 f"({top.score}/9)"),
               "uuid": _uid(advice.procedure, "suggest", top.modality),
               "isRecommended": True}],
        "selectionBehavior": "at-most-one",
        "links": _links(top_rows),  # may be empty: links are optional
        "extension": {"org.needleguide.ranking": [
            {"modality": r.modality, "score": r.score} for r in advice.ranking]},
    }]
    for i, w in enumerate(advice.warnings):
        cards.append({
            "uuid": _uid(advice.procedure, "warning", str(i), w.text),
            "summary": _summary(w.text),
            "detail": f"{w.text}\n\n{_evidence_md(w.evidence)}",
            "indicator": w.severity,
            "source": source,
            "links": _links(w.evidence),
        })
    for card in cards:
        if not card["links"]:
            del card["links"]
    return {"cards": cards}
