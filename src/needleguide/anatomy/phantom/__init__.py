"""Parametric phantom built from signed distance functions (see docs/anatomy.md)."""

from __future__ import annotations

from needleguide.anatomy.patient import Patient
from needleguide.anatomy.phantom.model import PhantomModel, PhantomParams
from needleguide.errors import UserError


def build_model(region: str = "lumbar", bmi: float = 24.0, degeneration: int = 0,
                seed: int = 0, spacing_mm: float = 1.0) -> PhantomModel:
    """Validate the parameters and build the analytic model of ``region``."""
    params = validate_params(region=region, bmi=bmi, degeneration=degeneration, seed=seed,
                             spacing_mm=spacing_mm)
    if params.region == "lumbar":
        from needleguide.anatomy.phantom import lumbar

        return lumbar.build(params)
    if params.region == "spine":
        from needleguide.anatomy.phantom import wholespine

        return wholespine.build(params)
    from needleguide.anatomy.phantom import cervical

    return cervical.build(params)


def build_phantom(region: str = "lumbar", bmi: float = 24.0, degeneration: int = 0,
                  seed: int = 0, spacing_mm: float = 1.0) -> Patient:
    """Build and render the phantom patient (labels at ``spacing_mm``, RAS affine)."""
    return build_model(region, bmi, degeneration, seed, spacing_mm).to_patient()


def validate_params(**kw) -> PhantomParams:
    """PhantomParams from keyword arguments; a bad value raises one clear UserError."""
    from pydantic import ValidationError

    try:
        return PhantomParams(**kw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "phantom"
        ctx = err.get("ctx") or {}
        if "expected" in ctx:
            raise UserError(f"{field}: {err['input']!r} is not valid; choose one of: "
                            f"{ctx['expected']}") from None
        limits = {"bmi": "[15, 60] kg/m²", "degeneration": "0–3", "spacing_mm": "[0.25, 3] mm",
                  "seed": "[0, 2^32-1]"}
        rng = limits.get(field, err["msg"])
        raise UserError(f"{field}: {err['input']!r} is outside the allowed range {rng}") from None


__all__ = ["PhantomModel", "PhantomParams", "build_model", "build_phantom", "validate_params"]
