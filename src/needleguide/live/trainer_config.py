"""The browser trainer's configuration and frames (the interface of
``needleguide.live.trainer``; the web server and the page code against it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from needleguide.errors import UserError
from needleguide.frame import Frame
from needleguide.live.config import check_patient_fields

#: kinds of the events the trainee is told (``TrainerFrame.events``, ``state()["events"]``)
EVENT_KINDS = ("pass", "bone_contact", "paraesthesia", "contrast", "alarm", "info",
               "refused", "done")


@dataclass(frozen=True)
class TrainerConfig:
    """One trainer session: procedure (catalogue id, ``needleguide procedures``), modality
    "us" | "fluoro", bmi 15–60 kg/m², seed 0 … 2³²−1 (phantom, speckle, noise, the needle's
    aim and bevel draws), level / side as the catalogue allows (None: the procedure's
    default), pixels 128–1024 (US: the scan-converted image's rows = columns; FL: the
    detector matrix). A bad value raises :class:`~needleguide.errors.UserError` naming
    the field."""

    procedure: str = "sacroiliac"
    modality: str = "us"
    bmi: float = 28.0
    seed: int = 1
    level: str | None = None
    side: str | None = None
    pixels: int = 512

    def __post_init__(self) -> None:
        if not isinstance(self.procedure, str):
            raise UserError(f"procedure: expected a catalogue id, got {self.procedure!r}")
        check_patient_fields(self)
        try:  # procedure, level and side against the catalogue
            self.session_config()
        except UserError as e:  # the catalogue names CLI flags ("--level: …")
            raise UserError(str(e).removeprefix("--")) from None

    def session_config(self, **kw: Any):
        """The session engine's :class:`~needleguide.session.models.SessionConfig` of this
        session (its validation names the field): the trainee finds the level, so the
        US level count is off."""
        from needleguide.session.models import SessionConfig

        return SessionConfig.build(
            procedure=self.procedure, modality=self.modality, bmi=float(self.bmi),
            seed=int(self.seed), level=self.level, side=self.side,
            fl_pixels=int(self.pixels), record_video=False, count_levels=False, **kw)


@dataclass
class TrainerFrame:
    """What the trainee sees after a tick.

    seq: frame counter (0, 1, …); t_s: session clock (s); rgb: uint8 H×W×3, the display
    with the overlays that are switched on drawn in; ack: the largest command ``id``
    applied before this frame was rendered (0 before any); events: new since the last
    frame, each {"t_s", "kind", "text"}; frame: the image without truth (FL: a held
    frame carries no dose and ``settings["last_image_hold"]``)."""

    seq: int
    t_s: float
    rgb: np.ndarray
    ack: int
    events: list[dict[str, Any]]
    frame: Frame


class TrainerLog:
    """What happened: the session's scored events (``events``: ``session.models.Event``,
    truth included, for the result) and what the trainee is told (``told``, each
    {"t_s", "kind", "text"}; ``take_new`` hands over those not yet shown)."""

    def __init__(self) -> None:
        self.events: list = []
        self.told: list[dict[str, Any]] = []
        self._new: list[dict[str, Any]] = []

    def tell(self, t_s: float, kind: str, text: str) -> None:
        e = {"t_s": round(float(t_s), 3), "kind": kind, "text": text}
        self.told.append(e)
        self._new.append(e)

    def score(self, event) -> None:
        self.events.append(event)

    @property
    def pending(self) -> bool:
        return bool(self._new)

    def take_new(self) -> list[dict[str, Any]]:
        out, self._new = self._new, []
        return out

    def last(self, n: int = 50) -> list[dict[str, Any]]:
        return [dict(e) for e in self.told[-n:]]


__all__ = ["EVENT_KINDS", "TrainerConfig", "TrainerFrame", "TrainerLog"]
