"""Pydantic models of the procedure catalogue (``catalogue.yaml``).

Targets are landmark-name templates in the phantom naming convention, with ``{level}`` and
``{side}`` placeholders (``"{level}.foramen.{side}"`` -> ``"L4-L5.foramen.right"``).
Procedures with no phantom region (peripheral joints and nerves, thoracic spine) say so
with ``phantom_region: null``; peripheral ones list no landmark targets at all.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from needleguide.anatomy.tissues import default_tissue_table
from needleguide.errors import UserError, check_choice

PROCEDURE_IDS: tuple[str, ...] = (
    "third-occipital", "cervical-medial-branch", "c7-medial-branch", "stellate-ganglion",
    "cervical-transforaminal", "lumbar-transforaminal", "lumbar-interlaminar",
    "lumbar-medial-branch", "lumbar-facet", "thoracic-facet", "sacroiliac", "caudal", "hip",
    "knee", "shoulder", "genicular", "carpal-tunnel", "lfcn",
)
# View names the ultrasound and fluoroscopy imagers understand (phantom procedures only).
US_VIEWS: tuple[str, ...] = (
    "paramedian-sagittal", "transverse-spinous", "transverse-facet", "sij-transverse",
    "caudal-transverse", "caudal-longitudinal", "c6-transverse", "c2c3-longitudinal",
    "hip-anterior-oblique",
)
FL_VIEWS: tuple[str, ...] = (
    "ap", "lateral", "oblique-right", "oblique-left", "contralateral-oblique", "ferguson",
)
SIDES: tuple[str, ...] = ("left", "right")
_SEG = r"(C[1-7]|T(1[0-2]|[1-9])|L[1-5]|S1)"
LEVEL_PATTERN = re.compile(rf"^{_SEG}(-{_SEG})?$")

Basis = Literal["evidence", "assumption"]


class UsApproach(BaseModel):
    """How the needle is guided under ultrasound."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    probe: Literal["linear", "curvilinear"]
    view: str  # the view the needle is guided in
    survey_view: str | None = None  # a view for counting levels / orientation first
    technique: Literal["in-plane", "out-of-plane"]
    direction: str = ""  # e.g. "lateral to medial"
    note: str = ""


class NeedleSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gauge: int = Field(ge=18, le=30)
    length_mm: float = Field(gt=10, le=200)
    kind: str = "Quincke spinal"
    basis: Basis = "assumption"


class VolumeRange(BaseModel):
    """A typical volume range in mL, with where it comes from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_ml: float = Field(gt=0, le=50)
    max_ml: float = Field(gt=0, le=50)
    basis: Basis
    evidence: tuple[str, ...] = ()
    note: str = ""

    @model_validator(mode="after")
    def _ordered(self) -> VolumeRange:
        if self.max_ml < self.min_ml:
            raise ValueError(f"max_ml {self.max_ml} < min_ml {self.min_ml}")
        if self.basis == "evidence" and not self.evidence:
            raise ValueError("a volume with basis 'evidence' must cite evidence rows")
        return self


class Procedure(BaseModel):
    """One catalogue entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    region: Literal["cervical", "thoracic", "lumbar", "sacral", "pelvis", "peripheral"]
    phantom_region: Literal["lumbar", "cervical"] | None
    targets: tuple[str, ...] = ()
    target_description: str
    levels: tuple[str, ...] = ()
    phantom_levels: tuple[str, ...] | None = None  # levels the phantom names (None: all)
    default_level: str | None = None
    default_side: Literal["left", "right"] | None = None
    neuraxial: bool = False  # intrathecal / epidural injection possible (gadolinium rule)
    us: UsApproach
    fluoro_views: tuple[str, ...] = ()
    needle: NeedleSpec
    contrast_ml: VolumeRange | None
    injectate_ml: VolumeRange
    avoid: tuple[str, ...] = ()  # tissue names of needleguide.anatomy.tissues
    avoid_other: tuple[str, ...] = ()  # structures with no tissue label (free text)
    tolerance_mm: float = Field(gt=0, le=20)
    # the needle is advanced until it rests on the target bone (periosteal end point:
    # medial branch, third occipital nerve on the pillar, hip head-neck junction)
    bony_endpoint: bool = False
    tolerance_basis: Basis = "assumption"
    evidence: tuple[str, ...] = Field(min_length=1)
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Procedure:
        if self.id not in PROCEDURE_IDS:
            raise ValueError(f"unknown procedure id {self.id!r}")
        for lv in self.levels:
            if not LEVEL_PATTERN.match(lv):
                raise ValueError(f"{self.id}: bad level name {lv!r}")
        if self.levels and self.default_level not in self.levels:
            raise ValueError(f"{self.id}: default_level must be one of {self.levels}")
        if not self.levels and self.default_level is not None:
            raise ValueError(f"{self.id}: default_level without levels")
        if self.phantom_levels is not None and (
                not set(self.phantom_levels) <= set(self.levels)
                or self.default_level not in self.phantom_levels):
            raise ValueError(f"{self.id}: phantom_levels must be levels and hold the default")
        uses_level = any("{level}" in t for t in self.targets)
        if uses_level and not self.levels:
            raise ValueError(f"{self.id}: targets use {{level}} but no levels are listed")
        uses_side = any("{side}" in t for t in (*self.targets, *self.fluoro_views))
        if uses_side and self.default_side is None:
            raise ValueError(f"{self.id}: targets use {{side}} but default_side is null")
        if self.phantom_region is not None:
            if not self.targets:
                raise ValueError(f"{self.id}: a phantom procedure needs landmark targets")
            for v in (self.us.view, self.us.survey_view):
                if v is not None and v not in US_VIEWS:
                    raise ValueError(f"{self.id}: US view {v!r} is not one of {US_VIEWS}")
        elif self.region == "peripheral" and self.targets:
            raise ValueError(f"{self.id}: peripheral procedures have no phantom landmarks")
        tissue_names = {t.name for t in default_tissue_table()}
        unknown = [t for t in self.avoid if t not in tissue_names]
        if unknown:
            raise ValueError(f"{self.id}: avoid names unknown tissues {unknown}")
        for v in self.fluoro_views:
            name = v.replace("{side}", "right")
            if name not in FL_VIEWS:
                raise ValueError(f"{self.id}: FL view {v!r} is not one of {FL_VIEWS}")
        return self

    # ---- resolution ------------------------------------------------------------------
    def resolve_level(self, level: str | None) -> str | None:
        """The level to use: ``level`` checked against this procedure's levels, or the default."""
        if level is None:
            return self.default_level
        if not self.levels:
            raise UserError(f"--level: procedure {self.id!r} takes no level (got {level!r})")
        return check_choice("--level", level, list(self.levels))

    def simulated_levels(self) -> tuple[str, ...]:
        """Levels whose targets exist in the phantom (empty for level-less procedures)."""
        if self.phantom_region is None:
            return ()
        return self.levels if self.phantom_levels is None else self.phantom_levels

    def resolve_side(self, side: str | None) -> str | None:
        if side is None:
            return self.default_side
        if self.default_side is None:
            raise UserError(f"--side: procedure {self.id!r} is midline and takes no side")
        return check_choice("--side", side, list(SIDES))

    def target_names(self, level: str | None = None, side: str | None = None) -> list[str]:
        """Landmark names of the targets with ``{level}``/``{side}`` filled in."""
        lv = self.resolve_level(level)
        sd = self.resolve_side(side)
        return [t.format(level=lv, side=sd) for t in self.targets]

    def fluoro_view_names(self, side: str | None = None) -> list[str]:
        sd = self.resolve_side(side)
        return [v.format(side=sd) for v in self.fluoro_views]


class Catalogue(BaseModel):
    """All procedures, in the fixed order of :data:`PROCEDURE_IDS`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    procedures: tuple[Procedure, ...]

    @model_validator(mode="after")
    def _complete(self) -> Catalogue:
        ids = [p.id for p in self.procedures]
        if sorted(ids) != sorted(PROCEDURE_IDS) or len(ids) != len(set(ids)):
            missing = sorted(set(PROCEDURE_IDS) - set(ids))
            extra = sorted(set(ids) - set(PROCEDURE_IDS))
            raise ValueError(f"catalogue ids mismatch: missing {missing}, unexpected {extra}")
        return self

    def get(self, procedure_id: str) -> Procedure:
        """The procedure called ``procedure_id``; an unknown id lists every valid one."""
        check_choice("--procedure", procedure_id, list(PROCEDURE_IDS))
        return next(p for p in self.procedures if p.id == procedure_id)

    def __iter__(self):  # type: ignore[override]
        order = {pid: i for i, pid in enumerate(PROCEDURE_IDS)}
        return iter(sorted(self.procedures, key=lambda p: order[p.id]))

    def __len__(self) -> int:
        return len(self.procedures)
