"""Validated advisor inputs: patient factors, operator experience, equipment.

Every bad value becomes one :class:`needleguide.errors.UserError` line naming the CLI flag
and its allowed range or choices (``--bmi: 500.0 is outside the allowed range [10, 100]
kg/m²``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from needleguide.errors import UserError, check_range
from needleguide.procedures import PROCEDURE_IDS

Experience = Literal["novice", "competent", "expert"]
EXPERIENCE: tuple[str, ...] = ("novice", "competent", "expert")
ALLERGY: tuple[str, ...] = ("none", "mild", "severe")

# Plausibility ranges (input checking only; they carry no clinical meaning).
RANGES: dict[str, tuple[float, float, str]] = {
    "age": (0.0, 120.0, " years"),
    "bmi": (10.0, 100.0, " kg/m²"),
    "egfr": (0.0, 200.0, " mL/min/1.73 m²"),
}


class AdviceRequest(BaseModel):
    """Everything the advisor needs. Build with :meth:`build` to get UserErrors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    procedure: str
    pregnant: bool = False
    age: float | None = None
    bmi: float | None = None
    contrast_allergy: Literal["none", "mild", "severe"] = "none"
    egfr: float | None = None
    diabetes: bool = False
    anticoagulated: bool = False
    degenerative: bool = False
    hardware: bool = False
    level: str | None = None
    us_experience: Experience = "competent"
    fluoro_experience: Experience = "competent"
    has_us: bool = True
    has_fluoro: bool = True
    has_dsa: bool = True
    has_ct: bool = True

    @field_validator("procedure")
    @classmethod
    def _procedure(cls, v: str) -> str:
        if v not in PROCEDURE_IDS:
            raise UserError(f"--procedure: unknown value {v!r}; choose one of: "
                            f"{', '.join(PROCEDURE_IDS)}")
        return v

    @field_validator("age", "bmi", "egfr")
    @classmethod
    def _ranges(cls, v: float | None, info) -> float | None:
        if v is None:
            return None
        lo, hi, unit = RANGES[info.field_name]
        return check_range(f"--{info.field_name}", v, lo, hi, unit)

    @property
    def dsa_available(self) -> bool:
        """DSA needs a fluoroscope."""
        return self.has_dsa and self.has_fluoro

    def available(self, modality: str) -> bool:
        return {
            "us": self.has_us, "fluoro": self.has_fluoro, "fluoro-dsa": self.dsa_available,
            "ct": self.has_ct, "landmark": True,
        }[modality]

    def equipment_flag(self, modality: str) -> str:
        """The CLI flag that removed ``modality``."""
        if modality == "fluoro-dsa" and not self.has_fluoro:
            return "--no-fluoro"
        return {"us": "--no-us", "fluoro": "--no-fluoro", "fluoro-dsa": "--no-dsa",
                "ct": "--no-ct"}[modality]

    @classmethod
    def build(cls, **kwargs: Any) -> AdviceRequest:
        """Validate ``kwargs``; the level is checked against the procedure's levels."""
        try:
            req = cls.model_validate(kwargs)
        except ValidationError as e:
            raise UserError(_one_line(e)) from None
        from needleguide.procedures import get_procedure

        get_procedure(req.procedure).resolve_level(req.level)
        return req


def _one_line(e: ValidationError) -> str:
    parts = []
    for err in e.errors():
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, UserError):
            parts.append(str(ctx_err))
            continue
        field = "--" + "-".join(str(x) for x in err["loc"]).replace("_", "-")
        if err["type"] == "literal_error":
            parts.append(f"{field}: unknown value {err['input']!r}; choose one of: "
                         f"{err['ctx']['expected']}")
        elif err["type"] == "extra_forbidden":
            parts.append(f"{field}: not an advisor input")
        else:
            parts.append(f"{field}: {err['msg']} (got {err['input']!r})")
    return "; ".join(parts)
