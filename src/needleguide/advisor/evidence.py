"""The evidence table: every figure of ../shared/EVIDENCE.md as a validated, versioned row.

``load_evidence()`` reads ``evidence.yaml`` (shipped with the package), validates each row
with pydantic and returns an :class:`EvidenceTable`; an unknown id is a clear error.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Modality = Literal["us", "fluoro", "fluoro-dsa", "ct", "landmark"]
MODALITIES: tuple[str, ...] = ("us", "fluoro", "fluoro-dsa", "ct", "landmark")

Kind = Literal[
    "accuracy", "safety", "efficiency", "outcome", "radiation", "intravascular-detection",
    "guideline", "bmi", "patient-factor", "anatomy", "gap",
]
Design = Literal[
    "rct", "meta-analysis", "systematic-review", "observational", "retrospective", "cadaver",
    "feasibility", "anatomical", "guideline", "review", "synthesis",
]
Certainty = Literal["moderate", "low", "very-low", "consensus", "not-graded"]


class EvidenceRow(BaseModel):
    """One figure or statement of EVIDENCE.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    section: Literal["1", "2", "3", "4", "5"]
    kind: Kind
    procedures: tuple[str, ...] = ()
    modality: Modality | None
    comparator: str | None
    value: str = Field(min_length=3)
    n: int | None = Field(default=None, ge=1)
    design: Design
    citation: str = Field(min_length=3)
    attribution: Literal["exact", "row"]
    certainty: Certainty
    favours: Literal["us", "fluoro", "fluoro-dsa", "ct", "landmark", "neither"] | None
    note: str = ""

    def short(self) -> str:
        """``id: value (citation)`` for reports."""
        return f"{self.id}: {self.value} ({self.citation})"


class Correction(BaseModel):
    """A citation the slide deck got wrong and what EVIDENCE.md section 7 puts instead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    wrong: str
    right: str
    rows: tuple[str, ...] = ()


class EvidenceTable(BaseModel):
    """The whole table: version, rows (unique ids), corrections, gaps."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    date: str
    source: str
    overall_certainty: str
    rows: tuple[EvidenceRow, ...]
    corrections: tuple[Correction, ...] = ()
    gaps: tuple[str, ...] = ()

    @field_validator("rows")
    @classmethod
    def _unique(cls, rows: tuple[EvidenceRow, ...]) -> tuple[EvidenceRow, ...]:
        seen: set[str] = set()
        for r in rows:
            if r.id in seen:
                raise ValueError(f"duplicate evidence row id {r.id!r}")
            seen.add(r.id)
        return rows

    @model_validator(mode="after")
    def _corrections_point_at_rows(self) -> EvidenceTable:
        ids = {r.id for r in self.rows}
        for c in self.corrections:
            missing = [i for i in c.rows if i not in ids]
            if missing:
                raise ValueError(f"correction {c.wrong!r} names unknown rows {missing}")
        return self

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(r.id for r in self.rows)

    def __getitem__(self, row_id: str) -> EvidenceRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(f"unknown evidence row {row_id!r}")

    def __contains__(self, row_id: object) -> bool:
        return row_id in self.ids

    def for_procedure(self, procedure: str) -> list[EvidenceRow]:
        """Rows naming ``procedure`` (general rows, with no procedure, are not included)."""
        return [r for r in self.rows if procedure in r.procedures]

    def missing(self, row_ids) -> list[str]:
        """The ids in ``row_ids`` that are not rows of this table."""
        ids = self.ids
        return [i for i in row_ids if i not in ids]


def parse_evidence(data: dict) -> EvidenceTable:
    """Validate an already-loaded YAML mapping."""
    return EvidenceTable.model_validate(data)


@lru_cache(maxsize=1)
def load_evidence() -> EvidenceTable:
    """The shipped evidence table (cached; immutable)."""
    text = resources.files("needleguide.advisor").joinpath("evidence.yaml").read_text("utf-8")
    return parse_evidence(yaml.safe_load(text))
