"""The modality advisor: base appraisal + factor rules -> ranked 1-9 scores with reasons,
warnings and what would change the ranking. Deterministic: same request, same advice.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from needleguide.advisor.evidence import MODALITIES, load_evidence
from needleguide.advisor.inputs import AdviceRequest
from needleguide.advisor.rules import (
    BMI_FLAG_DEFAULT,
    RULES,
    Adjust,
    Context,
    Note,
    Rule,
    Warn,
)
from needleguide.procedures import PROCEDURE_IDS, get_procedure, load_catalogue

Grade = Literal["favoured", "standard", "may-be", "no-data", "disfavoured", "not-recommended",
                "against-guideline"]
GRADE_SCORES: dict[str, int] = {
    "favoured": 8, "standard": 7, "may-be": 5, "no-data": 4, "disfavoured": 3,
    "not-recommended": 2, "against-guideline": 1,
}
# Ties: available before unavailable, then this fixed order (no evidence ranks ties).
TIE_ORDER: tuple[str, ...] = MODALITIES
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# Rows the engine itself cites (DSA default appraisal; the ACR 1-9 scale).
ENGINE_ROWS: tuple[str, ...] = ("iv-yeungnam-spine", "gl-acr-ac")


def band(score: int) -> str:
    """ACR wording of a 1-9 score."""
    return ("usually not appropriate" if score <= 3 else "may be appropriate" if score <= 6
            else "usually appropriate")


# ---------------------------------------------------------------- appraisals
class Appraisal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    grade: Grade
    text: str = Field(min_length=10)
    evidence: tuple[str, ...] = Field(min_length=1)

    @property
    def score(self) -> int:
        return GRADE_SCORES[self.grade]


class AppraisalTable(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str
    appraisals: dict[str, dict[str, Appraisal]]

    @model_validator(mode="after")
    def _complete(self) -> AppraisalTable:
        if sorted(self.appraisals) != sorted(PROCEDURE_IDS):
            raise ValueError("appraisals must cover exactly the catalogue's procedure ids")
        for pid, by_mod in self.appraisals.items():
            unknown = set(by_mod) - set(MODALITIES)
            missing = {"us", "fluoro", "ct", "landmark"} - set(by_mod)
            if unknown or missing:
                raise ValueError(f"{pid}: unknown modalities {sorted(unknown)}, "
                                 f"missing {sorted(missing)}")
        return self

    def get(self, procedure: str, modality: str) -> Appraisal:
        by_mod = self.appraisals[procedure]
        if modality == "fluoro-dsa" and modality not in by_mod:
            fl = by_mod["fluoro"]
            return Appraisal(grade=fl.grade, evidence=(*fl.evidence, "iv-yeungnam-spine"),
                             text="As FL: DSA adds subtraction (whole-spine intravascular "
                             "detection 14.2% vs 11.4% live FL), no procedure-specific data")
        return by_mod[modality]

    def cited(self) -> set[str]:
        return {i for by in self.appraisals.values() for a in by.values() for i in a.evidence}


@lru_cache(maxsize=1)
def load_appraisals() -> AppraisalTable:
    """The shipped appraisals, cross-checked against the evidence table and catalogue."""
    text = resources.files("needleguide.advisor").joinpath("appraisals.yaml").read_text("utf-8")
    table = AppraisalTable.model_validate(yaml.safe_load(text))
    problems = missing_evidence(table)
    if problems:
        raise ValueError(f"advisor data cite unknown evidence rows: {problems}")
    return table


def missing_evidence(table: AppraisalTable | None = None,
                     rules: list[Rule] | None = None) -> dict[str, list[str]]:
    """Where appraisals, rules and catalogue entries cite rows absent from the table."""
    ev = load_evidence()
    out: dict[str, list[str]] = {}
    if table is not None:
        for pid, by_mod in table.appraisals.items():
            for mod, a in by_mod.items():
                if m := ev.missing(a.evidence):
                    out[f"appraisal {pid}/{mod}"] = m
    if m := ev.missing(ENGINE_ROWS):
        out["engine"] = m
    for r in RULES if rules is None else rules:
        if m := ev.missing(r.evidence):
            out[f"rule {r.id}"] = m
    for p in load_catalogue():
        refs = list(p.evidence)
        for vol in (p.contrast_ml, p.injectate_ml):
            if vol is not None:
                refs += list(vol.evidence)
        if m := ev.missing(refs):
            out[f"procedure {p.id}"] = m
    return out


# ---------------------------------------------------------------- output models
class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    evidence: list[str] = Field(min_length=1)


class RankedModality(BaseModel):
    model_config = ConfigDict(frozen=True)

    modality: str
    score: int = Field(ge=1, le=9)
    available: bool = True
    reasons: list[Reason]

    @property
    def band(self) -> str:
        return band(self.score)


class AdvisorWarning(BaseModel):
    model_config = ConfigDict(frozen=True)

    severity: Literal["info", "warning", "critical"]
    text: str
    evidence: list[str] = Field(min_length=1)


class Advice(BaseModel):
    model_config = ConfigDict(frozen=True)

    procedure: str
    level: str | None
    ranking: list[RankedModality]
    warnings: list[AdvisorWarning]
    changes: list[Reason] = []
    evidence_version: str
    rules_fired: list[str] = []

    @property
    def first(self) -> RankedModality:
        return self.ranking[0]

    def score(self, modality: str) -> int:
        return next(r.score for r in self.ranking if r.modality == modality)

    def position(self, modality: str) -> int:
        return [r.modality for r in self.ranking].index(modality)

    def cited(self) -> set[str]:
        rows = {e for r in self.ranking for x in r.reasons for e in x.evidence}
        rows |= {e for w in self.warnings for e in w.evidence}
        return rows | {e for c in self.changes for e in c.evidence}

    def to_json(self) -> dict[str, Any]:
        """The fixed interface schema; 'what would change' items are info warnings."""
        return {
            "procedure": self.procedure,
            "ranking": [
                {"modality": r.modality, "score": r.score,
                 "reasons": [{"text": x.text, "evidence": list(x.evidence)} for x in r.reasons]}
                for r in self.ranking
            ],
            "warnings": [
                {"severity": w.severity, "text": w.text, "evidence": list(w.evidence)}
                for w in self.warnings
            ] + [
                {"severity": "info", "text": f"Would change the ranking: {c.text}",
                 "evidence": list(c.evidence)} for c in self.changes
            ],
        }


# ---------------------------------------------------------------- the engine
def _run_rules(ctx: Context, phase: str, fired: list[str]) -> list[Adjust | Note | Warn]:
    effects: list[Adjust | Note | Warn] = []
    for r in RULES:
        if r.phase != phase:
            continue
        out = r.fn(ctx)
        for e in out:
            stray = set(e.evidence) - set(r.evidence)
            if stray or not e.evidence:
                raise RuntimeError(f"rule {r.id} cites undeclared rows {sorted(stray)}")
        if out:
            fired.append(r.id)
        effects.extend(out)
    return effects


def advise(request: AdviceRequest | None = None, *, bmi_flag: float = BMI_FLAG_DEFAULT,
           explain_changes: bool = True, **kwargs: Any) -> Advice:
    """Rank every modality for a procedure and patient.

    Pass an :class:`AdviceRequest` or its fields as keywords (``procedure="caudal",
    pregnant=True``). ``bmi_flag`` is the configurable BMI default of EVIDENCE.md §4.
    """
    req = request if request is not None else AdviceRequest.build(**kwargs)
    proc = get_procedure(req.procedure)
    table = load_appraisals()
    level = proc.resolve_level(req.level)
    fired: list[str] = []

    scores: dict[str, int] = {}
    reasons: dict[str, list[Reason]] = {}
    for m in MODALITIES:
        a = table.get(proc.id, m)
        scores[m] = a.score
        reasons[m] = [Reason(text=f"{a.grade} ({a.score}): {a.text}", evidence=list(a.evidence))]

    ctx = Context(req=req, proc=proc, level=level, bmi_flag=bmi_flag)
    warnings: list[AdvisorWarning] = []
    for e in _run_rules(ctx, "score", fired):
        if isinstance(e, Adjust):
            scores[e.modality] += e.delta
            reasons[e.modality].append(Reason(text=f"{e.delta:+d}: {e.text}",
                                              evidence=list(e.evidence)))
        elif isinstance(e, Note):
            reasons[e.modality].append(Reason(text=e.text, evidence=list(e.evidence)))
        else:
            warnings.append(AdvisorWarning(severity=e.severity, text=e.text,
                                           evidence=list(e.evidence)))
    scores = {m: min(9, max(1, s)) for m, s in scores.items()}

    would_be: dict[str, int] = {}
    for m in MODALITIES:
        if not req.available(m):
            would_be[m] = scores[m]
            base = table.get(proc.id, m).evidence
            reasons[m].append(Reason(
                text=f"Not available ({req.equipment_flag(m)}): scored 1; would be "
                f"{scores[m]} ({band(scores[m])})", evidence=list(base)))
            scores[m] = 1

    order = sorted(MODALITIES, key=lambda m: (-scores[m], not req.available(m),
                                              TIE_ORDER.index(m)))
    ranking = [RankedModality(modality=m, score=scores[m], available=req.available(m),
                              reasons=reasons[m]) for m in order]

    wctx = Context(req=req, proc=proc, level=level, bmi_flag=bmi_flag,
                   ranking=tuple((m, scores[m]) for m in order), unavailable_scores=would_be)
    for e in _run_rules(wctx, "warn", fired):
        if isinstance(e, Warn):
            warnings.append(AdvisorWarning(severity=e.severity, text=e.text,
                                           evidence=list(e.evidence)))
    warnings += _availability_warnings(proc.id, order, scores, would_be, table)
    warnings.append(_certainty_note(ranking[0]))
    warnings.sort(key=lambda w: SEVERITY_ORDER[w.severity])  # stable: rule order kept

    advice = Advice(procedure=proc.id, level=level, ranking=ranking, warnings=warnings,
                    evidence_version=load_evidence().version, rules_fired=fired)
    if explain_changes:
        advice = advice.model_copy(update={"changes": _changes(req, advice, bmi_flag)})
    return advice


def _availability_warnings(pid: str, order: list[str], scores: dict[str, int],
                           would_be: dict[str, int], table: AppraisalTable
                           ) -> list[AdvisorWarning]:
    if not would_be:
        return []
    best_avail = max(scores[m] for m in order if m not in would_be)
    best_un = max(would_be, key=lambda m: (would_be[m], -TIE_ORDER.index(m)))
    if would_be[best_un] <= best_avail:
        return []
    first = next(m for m in order if m not in would_be)
    sev = "critical" if best_avail <= 3 else "warning" if best_avail <= 6 else "info"
    return [AdvisorWarning(
        severity=sev,
        text=f"Best available modality is {first} ({best_avail}, {band(best_avail)}); "
        f"{best_un} would score {would_be[best_un]}: consider deferring or referring",
        evidence=list(table.get(pid, best_un).evidence))]


def _certainty_note(top: RankedModality) -> AdvisorWarning:
    ev = load_evidence()
    behind = {e for r in top.reasons for e in r.evidence}
    rows = sorted(behind | {"gl-acr-ac"})
    levels = sorted({ev[i].certainty for i in behind},
                    key=["moderate", "consensus", "low", "very-low", "not-graded"].index)
    return AdvisorWarning(
        severity="info",
        text=f"Certainty behind '{top.modality}': {', '.join(levels)}; trials are small and "
        "mostly single-centre. Scores follow the ACR 1-9 pattern (ACR criteria themselves "
        "cover diagnostic imaging only): ordinal guidance",
        evidence=rows)


def _changes(req: AdviceRequest, advice: Advice, bmi_flag: float) -> list[Reason]:
    """Counterfactuals: relax each present factor and report when the order changes.

    Each cites the rows behind what was relaxed: the re-enabled modality's appraisal, or
    the rows the factor's rules cited in this advice.
    """
    proc = get_procedure(req.procedure)
    table = load_appraisals()
    # (text, update, modality whose appraisal is cited | None, rule ids whose rows are cited)
    cands: list[tuple[str, dict[str, Any], str | None, tuple[str, ...]]] = []
    if not req.has_fluoro:
        cands.append(("With a fluoroscope available", {"has_fluoro": True}, "fluoro", ()))
    elif not req.has_dsa:
        cands.append(("With DSA available", {"has_dsa": True}, "fluoro-dsa", ()))
    if not req.has_us:
        cands.append(("With US available", {"has_us": True}, "us", ()))
    if not req.has_ct:
        cands.append(("With CT available", {"has_ct": True}, "ct", ()))
    if req.pregnant:
        cands.append(("If not pregnant", {"pregnant": False}, None, ("pregnancy",)))
    if req.age is not None and req.age < 18:
        cands.append(("In an adult", {"age": None}, None, ("paediatric",)))
    if req.bmi is not None and req.bmi >= bmi_flag:
        cands.append((f"If BMI < {bmi_flag:g}", {"bmi": None}, None,
                      ("bmi-lumbar-us", "bmi-caudal")))
    if req.contrast_allergy == "severe":
        cands.append(("Without a severe contrast allergy", {"contrast_allergy": "none"}, None,
                      ("contrast-allergy",)))
    if req.us_experience == "novice":
        cands.append(("With a competent US operator", {"us_experience": "competent"}, None,
                      ("us-operator",)))
    if req.degenerative or req.hardware:
        cands.append(("Without degenerative change or hardware",
                      {"degenerative": False, "hardware": False}, None,
                      ("degenerative-lumbar",)))
    if req.level is not None and req.level != proc.default_level:
        cands.append((f"At {proc.default_level} instead of {req.level}", {"level": None}, None,
                      ("level-l5s1", "level-c7")))

    now = [r.modality for r in advice.ranking]
    cited = advice.cited()
    out: list[Reason] = []
    for text, upd, modality, rule_ids in cands:
        alt = advise(req.model_copy(update=upd), bmi_flag=bmi_flag, explain_changes=False)
        if [r.modality for r in alt.ranking] == now:
            continue
        if modality is not None:
            rows = list(table.get(proc.id, modality).evidence)
        else:
            declared = [e for r in RULES if r.id in rule_ids for e in r.evidence]
            rows = [e for e in dict.fromkeys(declared) if e in cited] or declared
        ranking = " > ".join(f"{r.modality} {r.score}" for r in alt.ranking)
        out.append(Reason(text=f"{text}: {ranking}", evidence=rows))
    return out
