"""Session configuration, events, per-step records and the result (metrics per the fixed
interface of issue 8: ``simulate --json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from needleguide.errors import SEED_MAX, UserError
from needleguide.frame import Frame

if TYPE_CHECKING:
    from needleguide.fluoro.dose_events import IrradiationEvent

MODALITIES = ("fluoro", "us")
DISPLAYS = ("black-bone", "white-bone")
FORCED_TIPS = ("intravascular",)


class SessionConfig(BaseModel):
    """What to simulate. ``force_tip``: after the needle is placed, move its tip into that
    compartment (tests of the confirmation step); ``dsa``: confirm with DSA instead of live
    fluoroscopy; ``display``: fluoroscopy display polarity (what the operator and the
    report see; the analysers read either); ``fl_pixels``: detector matrix; ``step_mm``:
    advance per step; ``keep_frames``: keep every frame shown (without truth) in the
    result's ``imaging`` (for DICOM export; a fluoroscopy session at 384² holds about
    0.6 MB per frame); ``count_levels``: under ultrasound, find a lumbar level by counting
    up from the sacrum with the US level analyser (``session/level_check.py``; off: the
    probe is put at the true level)."""

    model_config = ConfigDict(extra="forbid")
    procedure: str = "lumbar-transforaminal"
    level: str | None = None
    side: str | None = None
    modality: str = "fluoro"
    bmi: float = Field(default=28.0, ge=15.0, le=60.0)
    degeneration: int = Field(default=0, ge=0, le=3)
    seed: int = Field(default=1, ge=0, le=SEED_MAX)
    dsa: bool = False
    display: str = "black-bone"
    fl_pixels: int = Field(default=384, ge=128, le=1024)
    step_mm: float = Field(default=5.0, ge=1.0, le=20.0)
    max_passes: int = Field(default=4, ge=1, le=10)
    phantom_spacing_mm: float = Field(default=1.5, ge=0.5, le=3.0)
    force_tip: str | None = None
    record_video: bool = True
    keep_frames: bool = False
    count_levels: bool = True

    @classmethod
    def build(cls, **kw: Any) -> SessionConfig:
        """A config from keyword arguments; a bad value is one :class:`UserError`."""
        from pydantic import ValidationError

        try:
            cfg = cls(**kw)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise UserError(f"{loc}: {err['msg']}") from None
        if cfg.modality not in MODALITIES:
            raise UserError(f"modality: {cfg.modality!r}; choose one of {', '.join(MODALITIES)}")
        if cfg.display not in DISPLAYS:
            raise UserError(f"display: {cfg.display!r}; choose one of {', '.join(DISPLAYS)}")
        from needleguide.procedures import get_procedure

        proc = get_procedure(cfg.procedure)  # unknown id: one UserError listing the ids
        if proc.phantom_region is None:
            raise UserError(f"procedure: {cfg.procedure!r} has no phantom region to simulate "
                            f"on")
        proc.resolve_level(cfg.level)
        proc.resolve_side(cfg.side)
        if cfg.force_tip is not None and cfg.force_tip not in FORCED_TIPS:
            raise UserError(f"force_tip: {cfg.force_tip!r}; choose one of {FORCED_TIPS}")
        return cfg


@dataclass
class Event:
    """Something that happened: simulated time (s), kind, whether the operator/analysers
    noticed it, and a short detail."""

    t_s: float
    kind: str
    detected: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"t_s": round(float(self.t_s), 2), "kind": self.kind,
                "detected": bool(self.detected), "detail": self.detail}


@dataclass
class StepRecord:
    """One needle step: time (s), pass number, commanded insertion (mm), true tip-to-target
    distance (mm, scoring), the analyser's estimate of the tip's distance from the planned
    path (mm; None when not detected), detection flag and cumulative DAP (Gy·cm²)."""

    t_s: float
    pass_no: int
    inserted_mm: float
    tip_to_target_mm: float
    est_offset_mm: float | None
    detected: bool
    dap_gy_cm2: float
    air_kerma_mgy: float
    true_offset_mm: float = 0.0  # true tip's distance from the planned line (scoring)
    est_vs_true_mm: float | None = None  # analyser estimate vs true tip (scoring)


@dataclass
class ImagingGroup:
    """Frames a session showed, grouped as they are stored (one DICOM object each): a
    view's fluoroscopy shots during the advance, a spot image, a contrast run (DSA: frame
    1 is the mask), the ultrasound frames of the advance or of the injection. ``modality``
    "fluoro" | "us"; ``mode`` "pulsed" | "spot" | "dsa" | "bmode"; frames without truth."""

    label: str
    modality: str
    view: str
    mode: str
    frames: list[Frame] = field(default_factory=list)
    mask_frame_numbers: list[int] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of the frames' pixels."""
        return int(sum(f.pixels.nbytes for f in self.frames))


@dataclass
class SessionResult:
    """Everything a report needs: config, plan summary, metrics, events, steps, key frames
    (title, RGB uint8), the video frames (RGB uint8), the frames shown (``imaging``,
    when ``config.keep_frames``) and the fluoroscope's irradiation events
    (``dose_events``; their dose sums to the metrics' fluoro time, DAP and air kerma)."""

    config: SessionConfig
    metrics: dict[str, Any]
    events: list[Event]
    steps: list[StepRecord]
    plan: dict[str, Any]
    key_frames: list[tuple[str, np.ndarray]] = field(default_factory=list)
    video: list[np.ndarray] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    imaging: list[ImagingGroup] = field(default_factory=list)
    dose_events: list[IrradiationEvent] = field(default_factory=list)

    def guidance_summary(self) -> str:
        """In words: on how many steps the needle analyser's output steered the operator,
        and what the operator went by otherwise (report and console)."""
        n = len(self.steps)
        used = sum(1 for s in self.steps if s.detected)
        plan = ("the plan (entry point and angle), the depth markings on the needle and "
                "touch (bone contact)")
        if n == 0:
            return "no needle step was imaged"
        if used == 0:
            return f"the needle analyser never found the needle: the operator went by {plan}"
        if used < n:
            return (f"the needle analyser steered {used} of {n} steps; on the others the "
                    f"operator went by {plan}")
        return f"the needle analyser steered all {n} steps"

    def interface_json(self) -> dict[str, Any]:
        """The fixed ``simulate --json`` object, plus the needle analyser's hits per view
        (``analyser``: frames, found, rate) and the share of steps it steered
        (``detection_rate``)."""
        m = self.metrics
        return {"procedure": self.config.procedure, "modality": self.config.modality,
                "seed": self.config.seed,
                "final_tip_error_mm": m["final_tip_error_mm"],
                "tolerance_mm": m["tolerance_mm"], "success": m["success"],
                "passes": m["passes"], "procedure_time_s": m["procedure_time_s"],
                "fluoro_time_s": m["fluoro_time_s"], "dap_gy_cm2": m["dap_gy_cm2"],
                "reference_air_kerma_mgy": m["reference_air_kerma_mgy"],
                "contrast_ml": m["contrast_ml"],
                "analyser": m.get("analyser", {}),
                "detection_rate": m.get("detection_rate", 0.0),
                "events": [{"t_s": e.to_json()["t_s"], "kind": e.kind,
                            "detected": bool(e.detected)} for e in self.events]}
