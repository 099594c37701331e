"""What is injected: agent, iodine concentration, volume, rate, start time.

An :class:`Injection` is validated by pydantic at the API/CLI boundary. Iodinated contrast
carries iodine (mg I/mL, e.g. iohexol 180/240/300); every other agent carries none and is
seen only as fluid (ultrasound) or, diluted into contrast already in place, as a fading of
the contrast (fluoroscopy).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from needleguide.errors import UserError


class Agent(StrEnum):
    """Injectable agents."""

    CONTRAST = "contrast"  # iodinated (iohexol, iopamidol), non-ionic
    LOCAL_ANAESTHETIC = "local_anaesthetic"  # lidocaine, bupivacaine, ropivacaine
    STEROID_PARTICULATE = "steroid_particulate"  # methylprednisolone / triamcinolone acetate
    STEROID_NON_PARTICULATE = "steroid_non_particulate"  # dexamethasone sodium phosphate
    SALINE = "saline"


#: Commercial iohexol strengths (mg I/mL).
IOHEXOL_MG_ML = (140.0, 180.0, 240.0, 300.0, 350.0)


class Injection(BaseModel):
    """One injection through the needle.

    agent: what is injected; concentration_mg_ml: iodine (mg I/mL), only for contrast
    (default 300; must be 0 / omitted for the other agents); volume_ml: total volume (mL);
    rate_ml_s: injection rate (mL/s, constant); start_s: session time when it starts (s).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: Agent = Agent.CONTRAST
    concentration_mg_ml: float | None = Field(None, ge=0.0, le=400.0)
    volume_ml: float = Field(1.0, gt=0.0, le=50.0)
    rate_ml_s: float = Field(0.5, gt=0.0, le=10.0)
    start_s: float = Field(0.0, ge=0.0, le=36000.0)

    @model_validator(mode="after")
    def _iodine_only_in_contrast(self) -> Injection:
        if self.agent != Agent.CONTRAST and self.concentration_mg_ml not in (None, 0.0):
            raise ValueError(f"concentration_mg_ml: {self.agent.value} carries no iodine")
        if self.agent == Agent.CONTRAST and self.concentration_mg_ml == 0.0:
            raise ValueError("concentration_mg_ml: contrast needs a positive iodine concentration")
        return self

    @property
    def iodine_mg_ml(self) -> float:
        """Iodine concentration of the injectate (mg I/mL): 300 by default for contrast."""
        if self.agent != Agent.CONTRAST:
            return 0.0
        return 300.0 if self.concentration_mg_ml is None else float(self.concentration_mg_ml)

    @property
    def duration_s(self) -> float:
        return self.volume_ml / self.rate_ml_s

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def injected_ml(self, t_s: float) -> float:
        """Volume delivered by time ``t_s`` (mL)."""
        return float(min(max(t_s - self.start_s, 0.0), self.duration_s) * self.rate_ml_s)


def make_injection(**kw) -> Injection:
    """An :class:`Injection` from keyword arguments; a bad value raises one clear UserError."""
    try:
        return Injection(**kw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "injection"
        raise UserError(f"{field}: {err.get('input')!r} rejected ({err['msg']})") from None
