"""Live-session configuration, frames and events (the interface the OpenIGTLink server and
the browser trainer code against)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from needleguide.errors import SEED_MAX, UserError
from needleguide.frame import Frame

MODALITIES = ("us", "fluoro")
EVENT_KINDS = ("pass", "contrast", "alarm", "done", "info")
PIXELS_RANGE = (128, 1024)
ADVANCE_RANGE_MM_S = (0.1, 50.0)
BMI_RANGE = (15.0, 60.0)


def _number(name: str, value: Any, lo: float, hi: float, unit: str = "",
            integer: bool = False) -> None:
    """Raise :class:`UserError` naming ``name`` unless ``value`` is a number in [lo, hi]."""
    ok_type = isinstance(value, (int, np.integer)) if integer else \
        isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, bool) or not ok_type:
        kind = "an integer" if integer else "a number"
        raise UserError(f"{name}: expected {kind} in [{lo}, {hi}]{unit}, got {value!r}")
    if not (lo <= value <= hi) or not np.isfinite(value):
        raise UserError(f"{name}: {value}{unit} is outside the allowed range "
                        f"[{lo}, {hi}]{unit}")


def check_patient_fields(cfg: Any) -> None:
    """The fields a live and a trainer session share: ``modality``, ``bmi``, ``seed``,
    ``pixels`` in range, ``procedure`` / ``level`` / ``side`` names (or None); a
    :class:`UserError` naming the field otherwise."""
    if cfg.modality not in MODALITIES:
        raise UserError(f"modality: {cfg.modality!r}; choose one of {', '.join(MODALITIES)}")
    _number("bmi", cfg.bmi, *BMI_RANGE, " kg/m²")
    _number("seed", cfg.seed, 0, SEED_MAX, integer=True)
    _number("pixels", cfg.pixels, *PIXELS_RANGE, " px", integer=True)
    for name in ("procedure", "level", "side"):
        v = getattr(cfg, name)
        if v is not None and not isinstance(v, str):
            raise UserError(f"{name}: expected a name, got {v!r}")


@dataclass(frozen=True)
class LiveConfig:
    """What one live session simulates.

    procedure: catalogue id (``needleguide procedures``); modality: "us" | "fluoro";
    bmi: 15–60 kg/m²; seed: 0 … 2³²−1 (phantom, speckle, noise); level / side: as the
    catalogue allows (None: the procedure's default); pixels: image matrix, 128–1024 —
    fluoroscopy: the detector's pixels per side; ultrasound: the scan-converted image's
    rows = columns (the imager's ``output_px``); advance_mm_s: the virtual operator's
    insertion speed (mm/s, 0.1–50); auto: the virtual operator drives the needle (an
    external ``NeedleToReference`` takes the needle over). A bad value raises
    :class:`~needleguide.errors.UserError` (a ``ValueError``) naming the field."""

    procedure: str = "lumbar-transforaminal"
    modality: str = "us"
    bmi: float = 28.0
    seed: int = 1
    level: str | None = None
    side: str | None = None
    pixels: int = 512
    advance_mm_s: float = 2.0
    auto: bool = True

    def __post_init__(self) -> None:
        check_patient_fields(self)
        _number("advance_mm_s", self.advance_mm_s, *ADVANCE_RANGE_MM_S, " mm/s")
        if not isinstance(self.auto, bool):
            raise UserError(f"auto: expected true or false, got {self.auto!r}")
        self.session_config()  # procedure, level and side against the catalogue

    def session_config(self, **kw: Any):
        """The session engine's :class:`~needleguide.session.models.SessionConfig` for
        this live session (its validation names the field)."""
        from needleguide.session.models import SessionConfig

        return SessionConfig.build(
            procedure=self.procedure, modality=self.modality, bmi=float(self.bmi),
            seed=int(self.seed), level=self.level, side=self.side,
            fl_pixels=int(self.pixels), record_video=False, **kw)


@dataclass(frozen=True)
class LiveEvent:
    """Something that happened, on the session clock (s): ``kind`` one of "pass" (a needle
    pass starts), "contrast" (the test injection starts), "alarm" (the intravascular
    alarm fired), "done" (the procedure ended), "info" (anything else); ``text`` in
    words."""

    t_s: float
    kind: str
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"t_s": round(float(self.t_s), 3), "kind": self.kind, "text": self.text}


@dataclass
class LiveFrame:
    """One rendered and analysed frame.

    t_s: session clock (s); frame: the image without truth; seq: frame counter (0, 1, …);
    image_to_reference: 4x4 mapping a pixel index (i = column, j = row, k = 0, 1) to
    Reference (patient RAS) mm, i.e. ``frame.ImageToPatient @ diag(spacing_col,
    spacing_row, 1, 1)`` (pixel centres; the PLUS ``ImageToReference`` of an image whose
    pixel spacing is folded in); transforms: named 4x4 poses in Reference mm (see
    docs/live.md: "ProbeToReference" (US), "NeedleToReference", "NeedleTipToReference",
    "CArmToReference" (FL)); detected_tip_to_reference: the needle analyser's tip as a
    pose in the needle-frame convention (origin at the tip, +z toward the hub), or None;
    events: new since the previous tick; us_meta: ultrasound only, the PLUS/OpenIGTLink US
    fields ("ProbeType", "Depths" mm, "SpacingX" / "SpacingY" mm per pixel along columns
    / rows, "FrequencyMhz"), else {}."""

    t_s: float
    frame: Frame
    seq: int
    image_to_reference: np.ndarray
    transforms: dict[str, np.ndarray]
    detected_tip_to_reference: np.ndarray | None
    events: list[LiveEvent] = field(default_factory=list)
    us_meta: dict[str, Any] = field(default_factory=dict)
