"""Procedure catalogue: targets, US and FL approaches, needles, volumes, structures to avoid.

>>> from needleguide.procedures import get_procedure
>>> get_procedure("lumbar-transforaminal").target_names()
['L4-L5.foramen.right']
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import yaml

from needleguide.procedures.models import (
    FL_VIEWS,
    PROCEDURE_IDS,
    US_VIEWS,
    Catalogue,
    NeedleSpec,
    Procedure,
    UsApproach,
    VolumeRange,
)

__all__ = [
    "FL_VIEWS", "PROCEDURE_IDS", "US_VIEWS", "Catalogue", "NeedleSpec", "Procedure",
    "UsApproach", "VolumeRange", "get_procedure", "load_catalogue", "parse_catalogue",
]


def parse_catalogue(data: dict) -> Catalogue:
    """Validate a loaded YAML mapping (keys starting with ``_`` are YAML anchors only)."""
    return Catalogue.model_validate({k: v for k, v in data.items() if not k.startswith("_")})


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    """The shipped catalogue (cached, immutable)."""
    text = resources.files("needleguide.procedures").joinpath("catalogue.yaml").read_text("utf-8")
    return parse_catalogue(yaml.safe_load(text))


def get_procedure(procedure_id: str) -> Procedure:
    """One procedure; an unknown id raises UserError listing every valid id."""
    return load_catalogue().get(procedure_id)
