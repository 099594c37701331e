"""Virtual-trial populations: a small grammar of patient-factor distributions, validated
with pydantic, and the reproducible draw of one patient per (trial seed, procedure, index).

Grammar (inline, ``;`` between fields; or a YAML mapping ``field: DIST`` with the same
``DIST`` strings, numbers allowed for constants)::

    SPEC   := FIELD "=" DIST (";" FIELD "=" DIST)*
    FIELD  := bmi | degeneration | age | pregnant
    DIST   := NUMBER                          constant (pregnant: 0/1, true/false)
            | normal(MEAN, SD)[LO, HI]        truncated normal (redrawn outside [LO, HI]);
                                              [LO, HI] optional, default the field's range
            | uniform(LO, HI)
            | choice(V1, V2, ...; P1, P2, ...) discrete; probabilities optional (equal),
                                              they must sum to 1
            | bernoulli(P)                    1 with probability P (pregnant only)

Allowed ranges: ``bmi`` 15–60 kg/m² (the phantom's range), ``degeneration`` 0–3
(integers), ``age`` 0–120 years, ``pregnant`` 0/1. A field left out takes its default
(:data:`DEFAULTS`). ``age`` and ``pregnant`` do not change the simulation (the phantom has
no age or pregnancy); they are recorded and go to the modality advisor.

Draws: each field from its own generator ``numpy.random.default_rng([seed, proc, index,
field_no])`` (``proc``: CRC-32 of the procedure id), so the same (seed, procedure, index)
gives the same patient whatever the modality (paired design), and changing one field's
distribution leaves the others' draws alone. The session seed (anatomy, noise, the
operator's hand) comes from stream 0.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from needleguide.errors import SEED_MAX, UserError

FLAG = "--population"
#: field -> (low, high, unit, integer-valued)
RANGES: dict[str, tuple[float, float, str, bool]] = {
    "bmi": (15.0, 60.0, " kg/m²", False),
    "degeneration": (0.0, 3.0, "", True),
    "age": (0.0, 120.0, " years", False),
    "pregnant": (0.0, 1.0, "", True),
}
FIELDS = tuple(RANGES)
DEFAULTS = {"bmi": "28", "degeneration": "0", "age": "55", "pregnant": "0"}
DEFAULT_SPEC = ("bmi=normal(28,5)[18,45];degeneration=choice(0,1,2,3;0.4,0.3,0.2,0.1);"
                "age=uniform(30,80);pregnant=0")
KINDS = ("const", "normal", "uniform", "choice", "bernoulli")
_MAX_REDRAWS = 1000
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CALL = re.compile(r"^(?P<kind>[a-z]+)\((?P<args>[^()]*)\)\s*(?:\[(?P<bounds>[^\[\]]*)\])?$")


def _fmt(v: float) -> str:
    return f"{v:g}"


class Dist(BaseModel):
    """One field's distribution (parsed); :class:`Population` checks it against the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["const", "normal", "uniform", "choice", "bernoulli"]
    params: tuple[float, ...]
    weights: tuple[float, ...] | None = None
    bounds: tuple[float, float] | None = None

    def text(self) -> str:
        """The canonical spec string of this distribution."""
        p = ",".join(_fmt(x) for x in self.params)
        if self.kind == "const":
            return p
        s = f"{self.kind}({p}"
        if self.weights is not None:
            s += ";" + ",".join(_fmt(x) for x in self.weights)
        s += ")"
        if self.bounds is not None:
            s += f"[{_fmt(self.bounds[0])},{_fmt(self.bounds[1])}]"
        return s

    def check(self, field: str) -> None:
        """Raise ValueError (naming ``field`` and its allowed range) if this distribution
        can give a value outside the field's range or has bad parameters."""
        lo, hi, unit, integer = RANGES[field]
        allowed = f"the allowed range [{_fmt(lo)}, {_fmt(hi)}]{unit}"
        k, p = self.kind, self.params
        arity = {"const": 1, "normal": 2, "uniform": 2, "bernoulli": 1}
        if k in arity and len(p) != arity[k]:
            raise ValueError(f"{k} takes {arity[k]} number(s), got {len(p)}")
        if not all(math.isfinite(x) for x in (*p, *(self.weights or ()),
                                              *(self.bounds or ()))):
            raise ValueError("numbers must be finite")
        if self.bounds is not None and k != "normal":
            raise ValueError(f"[LO, HI] bounds apply to normal(...) only, not {k}")
        if self.weights is not None and k != "choice":
            raise ValueError(f"probabilities after ';' apply to choice(...) only, not {k}")
        if k == "bernoulli":
            if field != "pregnant":
                raise ValueError("bernoulli(P) is for pregnant only")
            if not 0.0 <= p[0] <= 1.0:
                raise ValueError(f"bernoulli probability {_fmt(p[0])} is outside [0, 1]")
            return
        if k == "normal":
            if p[1] <= 0:
                raise ValueError(f"normal sd must be > 0, got {_fmt(p[1])}")
            b_lo, b_hi = self.bounds if self.bounds is not None else (lo, hi)
            if not lo <= b_lo < b_hi <= hi:
                raise ValueError(f"normal bounds [{_fmt(b_lo)}, {_fmt(b_hi)}] must lie "
                                 f"within {allowed} with LO < HI")
            mass = _normal_mass(p[0], p[1], b_lo, b_hi)
            if mass < 1e-3:
                raise ValueError(f"normal({_fmt(p[0])},{_fmt(p[1])}) puts almost no "
                                 f"probability ({mass:.1e}) inside [{_fmt(b_lo)}, "
                                 f"{_fmt(b_hi)}]")
            if integer:
                raise ValueError(f"{k}(...) gives fractions; this field takes integers: use "
                                 "choice(...) or a constant")
            return
        values = p
        if k == "uniform":
            if not p[0] < p[1]:
                raise ValueError(f"uniform needs LO < HI, got ({_fmt(p[0])}, {_fmt(p[1])})")
            if integer:
                raise ValueError(f"{k}(...) gives fractions; this field takes integers: use "
                                 "choice(...) or a constant")
        if k == "choice":
            if not p:
                raise ValueError("choice needs at least one value")
            w = self.weights
            if w is not None:
                if len(w) != len(p):
                    raise ValueError(f"choice has {len(p)} values but {len(w)} "
                                     "probabilities")
                if any(x < 0 for x in w) or abs(sum(w) - 1.0) > 1e-6:
                    raise ValueError(f"choice probabilities must be ≥ 0 and sum to 1 (sum "
                                     f"{sum(w):g})")
        bad = [v for v in values if not lo <= v <= hi or (integer and v != int(v))]
        if bad:
            raise ValueError(f"value {_fmt(bad[0])} is outside {allowed}" if not integer
                             else f"value {_fmt(bad[0])} is not an integer in "
                             f"[{_fmt(lo)}, {_fmt(hi)}]")

    def draw(self, rng: np.random.Generator) -> float:
        """One value from this distribution."""
        k, p = self.kind, self.params
        if k == "const":
            return float(p[0])
        if k == "uniform":
            return float(rng.uniform(p[0], p[1]))
        if k == "bernoulli":
            return float(rng.random() < p[0])
        if k == "choice":
            w = None if self.weights is None else np.asarray(self.weights) / sum(self.weights)
            return float(p[int(rng.choice(len(p), p=w))])
        lo, hi = self.bounds if self.bounds is not None else (-math.inf, math.inf)
        for _ in range(_MAX_REDRAWS):
            x = float(rng.normal(p[0], p[1]))
            if lo <= x <= hi:
                return x
        return float(np.clip(p[0], lo, hi))  # pragma: no cover - mass checked ≥ 1e-3


def _normal_mass(mu: float, sd: float, lo: float, hi: float) -> float:
    c = lambda x: 0.5 * (1.0 + math.erf((x - mu) / (sd * math.sqrt(2.0))))  # noqa: E731
    return c(hi) - c(lo)


def _numbers(text: str, what: str) -> tuple[float, ...]:
    parts = [x.strip() for x in text.split(",")] if text.strip() else []
    for x in parts:
        if not re.fullmatch(_NUM, x):
            raise ValueError(f"{what}: {x!r} is not a number")
    return tuple(float(x) for x in parts)


def parse_dist(text: str | float | bool) -> Dist:
    """A :class:`Dist` from one ``DIST`` string (or a number / boolean from YAML)."""
    if isinstance(text, bool):
        return Dist(kind="const", params=(float(text),))
    if isinstance(text, int | float):
        return Dist(kind="const", params=(float(text),))
    s = str(text).strip().lower().replace(" ", "")
    if s in ("true", "false", "yes", "no"):
        return Dist(kind="const", params=(float(s in ("true", "yes")),))
    if re.fullmatch(_NUM, s):
        return Dist(kind="const", params=(float(s),))
    m = _CALL.match(s)
    if m is None or m["kind"] not in KINDS[1:]:
        raise ValueError(f"{str(text)!r} is not a distribution; use a number, "
                         "normal(MEAN,SD)[LO,HI], uniform(LO,HI), choice(V1,V2,...;P1,P2,...) "
                         "or bernoulli(P)")
    args, _, probs = m["args"].partition(";")
    bounds = None
    if m["bounds"] is not None:
        b = _numbers(m["bounds"], "bounds")
        if len(b) != 2:
            raise ValueError(f"bounds take two numbers [LO,HI], got {len(b)}")
        bounds = (b[0], b[1])
    return Dist(kind=m["kind"], params=_numbers(args, m["kind"]),
                weights=_numbers(probs, "probabilities") if probs else None, bounds=bounds)


class Population(BaseModel):
    """Validated distributions of the patient factors (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    bmi: Dist
    degeneration: Dist
    age: Dist
    pregnant: Dist

    @model_validator(mode="after")
    def _check(self) -> Population:
        for f in FIELDS:
            try:
                getattr(self, f).check(f)
            except ValueError as e:
                raise ValueError(f"{f}: {e}") from None
        return self

    def text(self) -> str:
        """Canonical inline spec (all fields, fixed order): two specs that mean the same
        give the same text (the trial manifest compares it)."""
        return ";".join(f"{f}={getattr(self, f).text()}" for f in FIELDS)

    def factors(self, rng: np.random.Generator,
                fields: tuple[str, ...] = ("bmi", "degeneration")) -> tuple:
        """``fields`` drawn in order from one generator (the labelled-case generators of
        ``evaluate`` draw their phantoms this way: the same machinery as the trials)."""
        out = []
        for f in fields:
            v = getattr(self, f).draw(rng)
            out.append(int(v) if f == "degeneration" else bool(v) if f == "pregnant" else v)
        return tuple(out)

    def patient(self, seed: int, procedure: str, index: int) -> Patient:
        """The patient of (trial seed, procedure, index): the same for every modality."""
        key = [int(seed), zlib.crc32(procedure.encode("utf-8")), int(index)]
        pseed = int(np.random.default_rng([*key, 0]).integers(0, SEED_MAX, endpoint=True))
        v = {f: getattr(self, f).draw(np.random.default_rng([*key, i + 1]))
             for i, f in enumerate(FIELDS)}
        return Patient(patient_seed=pseed, bmi=round(v["bmi"], 2),
                       degeneration=int(v["degeneration"]), age=round(v["age"], 1),
                       pregnant=bool(v["pregnant"]))


@dataclass(frozen=True)
class Patient:
    """One drawn patient: the session seed and the patient factors."""

    patient_seed: int
    bmi: float
    degeneration: int
    age: float
    pregnant: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _split_inline(spec: str) -> dict[str, str]:
    """``field=DIST;field=DIST`` → mapping; the ``;`` inside ``choice(...;...)`` is kept."""
    out: dict[str, str] = {}
    depth, cur, parts = 0, "", []
    for ch in spec:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == ";" and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    for part in (p.strip() for p in parts):
        if not part:
            continue
        name, eq, dist = part.partition("=")
        if not eq:
            raise UserError(f"{FLAG}: {part!r}: expected FIELD=DIST with FIELD one of "
                            f"{', '.join(FIELDS)}")
        out[name.strip().lower()] = dist.strip()
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"{FLAG}: {path}: not valid YAML ({' '.join(str(e).split())})") \
            from None
    if not isinstance(data, dict):
        raise UserError(f"{FLAG}: {path}: expected a mapping 'field: distribution' with "
                        f"fields {', '.join(FIELDS)}")
    return {str(k).lower(): v for k, v in data.items()}


def parse_population(spec: str | Path) -> Population:
    """A :class:`Population` from an inline spec or a YAML file (a path ending in .yaml /
    .yml, or any existing file); every mistake is one UserError naming the field."""
    s = str(spec).strip()
    path = Path(s).expanduser()
    is_file = s.lower().endswith((".yaml", ".yml")) or ("=" not in s and path.is_file())
    if is_file:
        if not path.is_file():
            raise UserError(f"{FLAG}: no such file: {s}")
        raw: dict[str, Any] = _read_yaml(path)
    else:
        raw = _split_inline(s)
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise UserError(f"{FLAG}: unknown field {unknown[0]!r}; fields: {', '.join(FIELDS)}")
    fields: dict[str, Dist] = {}
    for f in FIELDS:
        try:
            fields[f] = parse_dist(raw.get(f, DEFAULTS[f]))
        except (ValueError, ValidationError) as e:
            msg = e.errors()[0]["msg"] if isinstance(e, ValidationError) else str(e)
            raise UserError(f"{FLAG}: {f}: {msg}") from None
    try:
        return Population(**fields)
    except ValidationError as e:
        msg = str(e.errors()[0]["msg"]).removeprefix("Value error, ")
        raise UserError(f"{FLAG}: {msg}") from None


# the phantoms of ``evaluate`` (labelled cases): BMI and degeneration per generator
EVAL_NEEDLE = parse_population("bmi=uniform(19,38);degeneration=choice(0,1,2,3)")
EVAL_LEVELS = parse_population("bmi=uniform(19,40);degeneration=choice(0,1,2)")
EVAL_CONTRAST = parse_population("bmi=uniform(20,38);degeneration=choice(0,1,2)")

