"""Our private block in the DICOM files we write: each frame's own settings, so that what
we write reads back as the same Frames (display polarity, probe settings, pose).

Private creator ``needleguide 1.0`` in group 0x0071; element (0071,xx01), UT: a JSON list,
one object per frame, ``{"spacing_mm", "ImageToPatient", "settings", "time_s",
"modality"}``. Never the truth. Other readers ignore it; ours uses it when present.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from needleguide.frame import Frame

PRIVATE_CREATOR = "needleguide 1.0"
PRIVATE_GROUP = 0x0071


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(type(x).__name__)


def add_frame_meta(ds, frames: Sequence[Frame]) -> None:
    """Write the per-frame JSON into ``ds``'s private block."""
    items = [{"spacing_mm": [float(v) for v in f.spacing_mm],
              "ImageToPatient": np.asarray(f.ImageToPatient, float).round(6).tolist(),
              "settings": f.settings, "time_s": float(f.time_s), "modality": f.modality}
             for f in frames]
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x01, "UT", json.dumps(items, default=_jsonable, separators=(",", ":")))


def frame_meta(ds) -> list[dict] | None:
    """The per-frame JSON list of a file we wrote, else None (also when unreadable)."""
    try:
        block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
        items = json.loads(block[0x01].value)
    except (KeyError, ValueError, TypeError):
        return None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return None
    return items


__all__ = ["PRIVATE_CREATOR", "PRIVATE_GROUP", "add_frame_meta", "frame_meta"]
