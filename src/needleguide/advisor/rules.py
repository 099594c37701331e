"""Patient-, level- and operator-factor rules. Each rule declares the evidence rows it
rests on; every effect it produces may cite only those rows (checked by the engine and
by tests), so every printed sentence traces back to ../shared/EVIDENCE.md.

Score rules run before ranking and move scores by whole steps; warning rules run after
ranking (they may depend on which modality came first). Neither kind invents figures:
the numbers in their texts are the cited rows' numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from needleguide.advisor.inputs import AdviceRequest
from needleguide.procedures import Procedure

Severity = Literal["info", "warning", "critical"]
IONISING: tuple[str, ...] = ("fluoro", "fluoro-dsa", "ct")
LUMBAR_SPINE = frozenset({"lumbar-transforaminal", "lumbar-interlaminar",
                          "lumbar-medial-branch", "lumbar-facet"})
CERVICAL_FACET = frozenset({"third-occipital", "cervical-medial-branch", "c7-medial-branch"})
# EVIDENCE.md section 4: the configurable default for flagging US-only lumbar facet/MBB/TF.
BMI_FLAG_DEFAULT = 30.0
BMI_FLAGGED = frozenset({"lumbar-medial-branch", "lumbar-facet", "lumbar-transforaminal"})


@dataclass(frozen=True)
class Adjust:
    """Move ``modality``'s score by ``delta`` steps, with the reason."""

    modality: str
    delta: int
    text: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Note:
    """A reason attached to ``modality`` that does not change its score."""

    modality: str
    text: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Warn:
    severity: Severity
    text: str
    evidence: tuple[str, ...]


Effect = Adjust | Note | Warn


@dataclass(frozen=True)
class Context:
    req: AdviceRequest
    proc: Procedure
    level: str | None
    bmi_flag: float
    ranking: tuple[tuple[str, int], ...] = ()  # (modality, score), best first; warn phase
    unavailable_scores: dict[str, int] = field(default_factory=dict)  # before removal

    @property
    def first(self) -> str | None:
        return self.ranking[0][0] if self.ranking else None


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    evidence: tuple[str, ...]
    phase: Literal["score", "warn"]
    fn: Callable[[Context], list[Effect]]


RULES: list[Rule] = []


def rule(rule_id: str, evidence: list[str], phase: Literal["score", "warn"] = "score"):
    """Register a rule resting on ``evidence`` rows."""

    def deco(fn: Callable[[Context], list[Effect]]):
        RULES.append(Rule(rule_id, (fn.__doc__ or "").strip(), tuple(evidence), phase, fn))
        return fn

    return deco


def _ev(*ids: str) -> tuple[str, ...]:
    return tuple(ids)


# ---------------------------------------------------------------- score rules
@rule("pregnancy", ["gl-acog-723", "gl-acr-spr-pregnancy", "pf-pregnancy", "dose-ct-vs-fl",
                    "dose-manchikanti-2002", "dose-manchikanti-2003"])
def _pregnancy(c: Context) -> list[Effect]:
    """Pregnancy: US is the modality of choice; ionising imaging demoted (CT most, higher
    dose), not withheld; dose documented and minimised."""
    if not c.req.pregnant:
        return []
    ev = _ev("gl-acog-723", "pf-pregnancy")
    out: list[Effect] = [
        Adjust("fluoro", -1, "Pregnancy: US is the modality of choice (ACOG); FL only with "
               "dose minimisation", ev),
        Adjust("fluoro-dsa", -1, "Pregnancy: US is the modality of choice (ACOG); DSA only "
               "with dose minimisation", ev),
        Adjust("ct", -2, "Pregnancy: ionising, and CT's effective dose was 5.73 vs 0.55 mSv "
               "for FL", _ev("gl-acog-723", "dose-ct-vs-fl")),
        Note("us", "Pregnancy: US is a modality of choice (ACOG)", ev),
    ]
    pelvic = c.proc.region in ("lumbar", "sacral", "pelvis")
    out.append(Warn(
        "warning" if pelvic else "info",
        "Pregnancy: document it; necessary ionising imaging should not be withheld; under "
        "50 mGy is not associated with anomalies or loss; a medical physicist estimates "
        "conceptus dose when needed" + (" (beam near the pelvis)" if pelvic else ""),
        _ev("gl-acog-723", "gl-acr-spr-pregnancy")))
    out.append(Warn(
        "info", "FL time in pain practice averaged 7.7 s per procedure (1,729 procedures), "
        "from 3.7 s (caudal/interlaminar) to 61 s (discography)",
        _ev("dose-manchikanti-2002", "dose-manchikanti-2003")))
    return out


@rule("paediatric", ["pf-pregnancy"])
def _paediatric(c: Context) -> list[Effect]:
    """Children (age < 18, not pregnant): prefer US where evidence is comparable."""
    if c.req.age is None or c.req.age >= 18 or c.req.pregnant:
        return []
    ev = _ev("pf-pregnancy")
    return [Adjust(m, -1, "Paediatric patient: prefer US where evidence is comparable; "
                   "else FL with dose minimisation", ev) for m in IONISING]


@rule("bmi-lumbar-us", ["bmi-rauch-2009", "bmi-no-cutoff"])
def _bmi_lumbar(c: Context) -> list[Effect]:
    """BMI at or above the configurable flag (default 30): US-only lumbar facet/MBB/TF
    demoted (Rauch: 62% success, needle not trackable)."""
    if c.req.bmi is None or c.req.bmi < c.bmi_flag or c.proc.id not in BMI_FLAGGED:
        return []
    ev = _ev("bmi-rauch-2009", "bmi-no-cutoff")
    return [
        Adjust("us", -2, f"BMI {c.req.bmi:g} >= {c.bmi_flag:g}: US lumbar MBB success 62% "
               "(52/84) at BMI >30, depth 76±15 mm, needle not trackable", ev),
        Warn("warning", f"BMI {c.req.bmi:g}: US-only lumbar facet/MBB/TF is flagged at "
             f"BMI >= {c.bmi_flag:g} ('cannot be performed by ultrasound guidance "
             "exclusively', Rauch); no validated cut-off exists", ev),
    ]


@rule("bmi-hip", ["bmi-smith-hip", "bmi-no-cutoff"])
def _bmi_hip(c: Context) -> list[Effect]:
    """Hip: no BMI penalty for US within the studied BMI 20-39."""
    if c.proc.id != "hip" or c.req.bmi is None:
        return []
    if c.req.bmi <= 39:
        return [Note("us", f"BMI {c.req.bmi:g}: hip US accuracy 97% across BMI 20-39; "
                     "no BMI penalty", _ev("bmi-smith-hip", "bmi-no-cutoff"))]
    return [Warn("info", f"BMI {c.req.bmi:g} is above the BMI 20-39 range in which hip US "
                 "reached 97%; no data beyond it", _ev("bmi-smith-hip", "bmi-no-cutoff"))]


@rule("bmi-caudal", ["bmi-chen-caudal", "bmi-hiatus-palpation", "bmi-no-cutoff"])
def _bmi_caudal(c: Context) -> list[Effect]:
    """Caudal: US not penalised for BMI; a high BMI makes the hiatus hard to palpate."""
    if c.proc.id != "caudal" or c.req.bmi is None or c.req.bmi < c.bmi_flag:
        return []
    return [
        Note("us", "Linear probe adequate even above 100 kg; skin-to-sacrum under 8 cm: "
             "no BMI penalty", _ev("bmi-chen-caudal", "bmi-no-cutoff")),
        Adjust("landmark", -1, "BMI predicts a poorly palpable sacral hiatus",
               _ev("bmi-hiatus-palpation")),
    ]


@rule("contrast-allergy", ["gl-benzon-2021", "gl-provenzano-2019", "pf-contrast-allergy",
                           "gl-shetty-2007"])
def _allergy(c: Context) -> list[Effect]:
    """Contrast allergy: severity-stratified (Benzon); a severe prior reaction demotes the
    contrast-dependent checks of FL and DSA; gadolinium is never suggested where
    intrathecal injection is possible (Provenzano)."""
    sev = c.req.contrast_allergy
    if sev == "none":
        return []
    ev = _ev("gl-benzon-2021", "pf-contrast-allergy")
    if sev == "mild":
        return [Warn("info", "Prior mild contrast reaction: hypersensitivity risk with "
                     "1.5-3 mL extravascular contrast is low; manage by the "
                     "severity-stratified advisory (Benzon 2021)", ev)]
    out: list[Effect] = [
        Adjust("fluoro", -1, "Severe prior contrast reaction: FL's intravascular check "
               "needs contrast, which falls under the severity-stratified advisory", ev),
        Adjust("fluoro-dsa", -1, "Severe prior contrast reaction: DSA needs contrast, which "
               "falls under the severity-stratified advisory", ev),
        Warn("warning", "Severe contrast allergy: follow the severity-stratified advisory "
             "(Benzon 2021); US avoids contrast but loses intravascular detection", ev),
    ]
    if c.proc.neuraxial:
        out.append(Warn("warning", "Do not substitute gadolinium: it is 'not a safe "
                        "alternative' where intrathecal injection is possible (Provenzano "
                        "2019); with gadolinium, confident placement was 76.3%",
                        _ev("gl-provenzano-2019", "pf-contrast-allergy", "gl-shetty-2007")))
    return out


@rule("renal", ["gl-acr-nkf-2020", "pf-ckd", "gl-benzon-2021"])
def _renal(c: Context) -> list[Effect]:
    """eGFR: informational only; the ACR-NKF thresholds are for IV contrast."""
    if c.req.egfr is None or c.req.egfr >= 45:
        return []
    ev = _ev("gl-acr-nkf-2020", "pf-ckd", "gl-benzon-2021")
    band = "<30: prophylaxis threshold" if c.req.egfr < 30 else "30-44: 'consider' band"
    return [Warn("info", f"eGFR {c.req.egfr:g} ({band} for IV contrast, ACR-NKF); pain "
                 "procedures use 1.5-3 mL extravascular contrast, so CKD alone is a weak "
                 "reason to avoid FL (inference)", ev)]


@rule("diabetes", ["pf-ckd"])
def _diabetes(c: Context) -> list[Effect]:
    """Diabetes: informational only."""
    if not c.req.diabetes:
        return []
    return [Warn("info", "Diabetes: informational only for modality choice; renal "
                 "function (eGFR) governs contrast precautions", _ev("pf-ckd"))]


@rule("anticoagulation", ["sgb-complications", "sgb-path-anatomy", "ctf-jee-rct",
                          "sij-intravascular"])
def _anticoagulation(c: Context) -> list[Effect]:
    """Anticoagulation: no modality comparison in the evidence table; where US shows
    vessels on the path, say so."""
    if not c.req.anticoagulated:
        return []
    if c.proc.id == "stellate-ganglion":
        return [Warn("warning", "Anticoagulated: 1 haematoma death among 260 reported "
                     "stellate complications; a major vessel crosses the anterior path in "
                     "29% (C6) / 43% (C7), visible on US", _ev("sgb-complications",
                                                             "sgb-path-anatomy"))]
    seen = {"cervical-transforaminal": ("US showed foraminal vessels in 21/60",
                                        "ctf-jee-rct"),
            "sacroiliac": ("US showed vessels around the SIJ in 34/55", "sij-intravascular")}
    if c.proc.id in seen:
        text, row = seen[c.proc.id]
        return [Warn("info", f"Anticoagulated: no modality comparison in the evidence "
                     f"table; {text}", _ev(row))]
    return []


@rule("degenerative-lumbar", ["pf-spine-fl", "lil-us-level"])
def _degenerative(c: Context) -> list[Effect]:
    """Degenerative or long-segment lumbar spine (hardware encoded as long-segment, an
    inference): FL (+/- DSA) preferred; palpation poor in deformity."""
    if c.proc.id not in LUMBAR_SPINE or not (c.req.degenerative or c.req.hardware):
        return []
    what = "degenerative" if c.req.degenerative else "instrumented (long-segment, inferred)"
    return [
        Adjust("us", -1, f"{what.capitalize()} lumbar spine: FL (+/- DSA) preferred",
               _ev("pf-spine-fl")),
        Adjust("landmark", -1, "Deformity: palpation found the level in 50% vs US 82.5%",
               _ev("lil-us-level")),
        Note("fluoro", f"{what.capitalize()} lumbar spine: FL (+/- DSA) preferred",
             _ev("pf-spine-fl")),
    ]


@rule("level-l5s1", ["ltf-gofeld-series"])
def _l5s1(c: Context) -> list[Effect]:
    """Lumbar TF at L5-S1: US access impossible in 8%."""
    if c.proc.id != "lumbar-transforaminal" or c.level != "L5-S1":
        return []
    return [Adjust("us", -2, "L5-S1: US access to the foramen was impossible in 8%",
                   _ev("ltf-gofeld-series"))]


@rule("level-c7", ["pf-level-choi", "sgb-path-anatomy"])
def _c7(c: Context) -> list[Effect]:
    """C7: US level identification only 85%; at C7 the stellate path crosses more vessels
    and oesophagus, which FL and landmarks cannot show."""
    out: list[Effect] = []
    c7 = c.level in ("C7", "C6-C7", "C7-T1")
    if c7 and c.proc.id in ("c7-medial-branch", "cervical-transforaminal", "stellate-ganglion",
                            "cervical-medial-branch"):
        out.append(Warn("warning", f"Level {c.level}: US identifies cervical levels in 93.3% "
                        "but C7 in only 85%; confirm the level", _ev("pf-level-choi")))
    if c.proc.id == "stellate-ganglion" and c.level == "C7":
        for m in ("fluoro", "fluoro-dsa", "landmark"):
            out.append(Adjust(m, -1, "At C7 a major vessel crosses the anterior path in 43% "
                              "and the oesophagus covers over half of it in 44%; this "
                              "modality does not show them", _ev("sgb-path-anatomy")))
    return out


@rule("us-operator", ["pf-operator-chen-2011", "pf-operator-yu-2021"])
def _us_operator(c: Context) -> list[Effect]:
    """US operator experience: a novice is demoted (long learning curve); no extra credit
    for experts (no comparative data)."""
    exp = c.req.us_experience
    if exp == "novice":
        out: list[Effect] = [Adjust("us", -2, "Novice US operator: US has a long learning "
                                    "curve", _ev("pf-operator-chen-2011"))]
        if c.proc.id in LUMBAR_SPINE:
            out.append(Note("us", "Lumbar level-finding with US plateaued after about 3 days "
                            "of training", _ev("pf-operator-yu-2021")))
        return out
    if exp == "expert":
        return [Note("us", "Expert US operator: the learning curve is behind; no extra "
                     "credit (no expert-vs-competent data)", _ev("pf-operator-chen-2011"))]
    return []


# ---------------------------------------------------------------- warning rules
_BLIND_SPOT: dict[str, tuple[str, tuple[str, ...]]] = {
    "cervical-transforaminal": (
        "Ultrasound cannot exclude intravascular injection; cervical transforaminal needs "
        "live FL, DSA if available (DSA 32.8% vs live FL 17.9% detected)",
        ("ctf-reviews", "iv-us-blind-spot", "iv-mclean-cervical", "gl-rathmell-2015")),
    "lumbar-transforaminal": (
        "US cannot show intravascular spread: 6.5% intravascular even after US placement, "
        "and aspiration detects 25% (live FL 60%); inject contrast under live FL (DSA if "
        "available) before the steroid",
        ("ltf-intravascular-after-us", "iv-us-blind-spot", "iv-hong-lumbar",
         "iv-lee-aspiration")),
    "lumbar-medial-branch": (
        "US cannot show intravascular spread: 2/101 intravascular injections were missed "
        "without FL in the US series", ("lmbb-shim-intravascular", "iv-us-blind-spot")),
    "lumbar-interlaminar": (
        "US cannot show epidural or intravascular contrast; no US-vs-FL RCT exists",
        ("iv-us-blind-spot", "lil-no-rct")),
    "caudal": (
        "US cannot show intravascular spread; the RCT's 2 intravascular injections were "
        "detected in the FL arm", ("caudal-rct-intravascular", "iv-us-blind-spot")),
    "sacroiliac": (
        "US showed vessels around the SIJ in 34/55 but cannot show intravascular spread; "
        "3 intravascular injections were seen under FL", ("sij-intravascular",
                                                           "iv-us-blind-spot")),
}


@rule("us-intravascular-blind-spot",
      ["ctf-reviews", "iv-us-blind-spot", "iv-mclean-cervical", "gl-rathmell-2015",
       "ltf-intravascular-after-us", "iv-hong-lumbar", "iv-lee-aspiration",
       "lmbb-shim-intravascular",
       "lil-no-rct", "caudal-rct-intravascular", "sij-intravascular"], phase="warn")
def _blind_spot(c: Context) -> list[Effect]:
    """US cannot show intravascular spread: critical for cervical TF; a warning where US
    ranks first for another spinal procedure with intravascular risk; else info."""
    if c.proc.id not in _BLIND_SPOT:
        return []
    text, ev = _BLIND_SPOT[c.proc.id]
    if c.proc.id == "cervical-transforaminal":
        sev: Severity = "critical"
    else:
        sev = "warning" if c.first == "us" else "info"
    return [Warn(sev, text, ev)]


@rule("cervical-tf-steroid", ["gl-rathmell-2015"], phase="warn")
def _steroid(c: Context) -> list[Effect]:
    """Cervical TF: non-particulate steroid."""
    if c.proc.id != "cervical-transforaminal":
        return []
    return [Warn("warning", "Cervical TF: non-particulate steroid only (Rathmell 2015, "
                 "paraphrase; wording to verify)", _ev("gl-rathmell-2015"))]


@rule("cervical-rfa", ["gl-hurley-2022-rfa"], phase="warn")
def _rfa(c: Context) -> list[Effect]:
    """Cervical facet blocks before RFA: the RFA itself calls for FL."""
    if c.proc.id not in CERVICAL_FACET:
        return []
    return [Warn("info", "If this block is prognostic before radiofrequency ablation: FL for "
                 "the RFA (Grade A for imaging, Grade B for FL)", _ev("gl-hurley-2022-rfa"))]


@rule("stellate-complications", ["sgb-complications"], phase="warn")
def _sgb(c: Context) -> list[Effect]:
    """Stellate: complications reported under both modalities."""
    if c.proc.id != "stellate-ganglion" or c.req.anticoagulated:
        return []
    return [Warn("info", "260 stellate complication cases reported, 64 with US and 70 with "
                 "FL (1 haematoma death): neither modality removes the risk",
                 _ev("sgb-complications"))]
