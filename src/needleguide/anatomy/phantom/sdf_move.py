"""Moving and clipping finished strokes: a translated shape and a z-clip, so that a region
model built in its own frame (the cervical phantom) can be placed on another spine."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from needleguide.anatomy.phantom.painter import Stroke
from needleguide.anatomy.phantom.sdf import F, HalfSpace, Intersect, Shape, Union


@dataclass
class Translated(Shape):
    """``shape`` moved by ``offset_mm`` (RAS)."""

    shape: Shape = None  # type: ignore[assignment]
    offset_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def sdf(self, p):
        off = np.asarray(self.offset_mm, F)[:, None]
        return self.shape.sdf(p - off)

    def bbox(self):
        lo, hi = self.shape.bbox()
        off = np.asarray(self.offset_mm, float)
        return np.asarray(lo, float) + off, np.asarray(hi, float) + off


def _parts(shape: Shape) -> list[Shape]:
    return shape.shapes if isinstance(shape, Union) and shape.smooth_mm == 0 else [shape]


def moved(st: Stroke, offset_mm: np.ndarray) -> Stroke:
    """The stroke translated by ``offset_mm``; a plain union stays a union of its moved
    parts (the painter paints each part over its own bounding box)."""
    off = np.asarray(offset_mm, float)
    parts = [Translated(s, off) for s in _parts(st.shape)]
    shape = parts[0] if len(parts) == 1 and not isinstance(st.shape, Union) else Union(parts)
    return Stroke(shape, st.label, st.only_into, st.never_into)


def clipped_below(st: Stroke, z_mm: float) -> Stroke | None:
    """The stroke's parts above the plane z = ``z_mm`` (None when nothing is left)."""
    keep: list[Shape] = []
    for s in _parts(st.shape):
        lo, hi = s.bbox()
        if hi[2] <= z_mm:
            continue
        if lo[2] < z_mm:
            s = Intersect([s, HalfSpace((0.0, 0.0, z_mm), (0.0, 0.0, -1.0))])
        keep.append(s)
    if not keep:
        return None
    shape = keep[0] if len(keep) == 1 and not isinstance(st.shape, Union) else Union(keep)
    return Stroke(shape, st.label, st.only_into, st.never_into)


__all__ = ["Translated", "moved", "clipped_below"]
