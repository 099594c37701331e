"""Validated request bodies of the trainer's HTTP API, and the error body every refusal
carries: ``{"error": {"field": ..., "message": ...}}``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from needleguide.errors import SEED_MAX, UserError

Allergy = Literal["none", "mild", "severe"]


class Patient(BaseModel):
    """Patient factors the advisor weighs (units as the advisor's: years, kg/m²,
    mL/min/1.73 m²)."""

    model_config = ConfigDict(extra="forbid")

    bmi: float = Field(28.0, ge=15.0, le=60.0)
    age: float | None = Field(None, ge=0.0, le=120.0)
    pregnant: bool = False
    contrast_allergy: Allergy = "none"
    egfr: float | None = Field(None, ge=0.0, le=200.0)
    diabetes: bool = False
    anticoagulated: bool = False


class AdviseBody(Patient):
    """``POST /api/advise``."""

    procedure: str = Field(min_length=1, max_length=64)
    level: str | None = Field(None, max_length=16)


class SessionBody(AdviseBody):
    """``POST /api/sessions``: what to simulate (the patient factors are kept with the
    session; the phantom is drawn from ``bmi`` and ``seed``)."""

    modality: Literal["us", "fluoro"] = "us"
    side: Literal["left", "right"] | None = None
    seed: int = Field(1, ge=0, le=SEED_MAX)
    pixels: int = Field(512, ge=128, le=1024)


def field_of(message: str) -> str:
    """The field a :class:`UserError` message names (its text before the first colon)."""
    head = message.split(":", 1)[0].strip()
    return head.lstrip("-").replace("-", "_") if head and " " not in head else ""


def error_body(message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON every refusal carries."""
    return {"error": {"field": field if field is not None else field_of(message),
                      "message": message}}


def parse(model: type[BaseModel], data: Any) -> BaseModel:
    """``model`` validated from ``data``; a :class:`UserError` naming the first bad field
    and its allowed range or choices otherwise."""
    if not isinstance(data, dict):
        raise UserError("body: expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        name = ".".join(str(x) for x in err["loc"]) or "body"
        ctx = err.get("ctx") or {}
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "not a known field"
        elif kind == "literal_error":
            msg = f"unknown value {err.get('input')!r}; choose one of: {ctx.get('expected')}"
        elif kind in ("greater_than_equal", "less_than_equal"):
            lo = model.model_fields[name].metadata if name in model.model_fields else []
            bounds = [getattr(m, a) for m in lo for a in ("ge", "le") if hasattr(m, a)]
            rng = f" [{bounds[0]}, {bounds[1]}]" if len(bounds) == 2 else ""
            msg = f"{err.get('input')} is outside the allowed range{rng}"
        else:
            msg = err["msg"]
        raise UserError(f"{name}: {msg}") from None
