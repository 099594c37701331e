"""The Frame: one image from an imager (simulated or real), with geometry, settings and dose.

Pixel geometry: pixel (row r, column c) has image coordinates ``(c * spacing_mm[1],
r * spacing_mm[0], 0)`` in mm (x along columns, y down the rows, origin at the centre of
pixel (0, 0)). ``ImageToPatient`` maps those image mm to patient RAS mm. Analysers get a
Frame with ``truth=None`` (:meth:`Frame.without_truth`): they must never rely on it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from needleguide import geometry

Modality = Literal["us", "fluoro"]


@dataclass(frozen=True)
class Dose:
    """Radiation dose increment of one frame (zeros for ultrasound).

    air_kerma_mgy: air kerma at the interventional reference point (mGy).
    dap_gy_cm2: dose-area product (Gy·cm²).
    fluoro_time_s: beam-on time attributed to the frame (s; pulses × pulse interval).
    """

    air_kerma_mgy: float = 0.0
    dap_gy_cm2: float = 0.0
    fluoro_time_s: float = 0.0

    def __add__(self, other: Dose) -> Dose:
        return Dose(
            self.air_kerma_mgy + other.air_kerma_mgy,
            self.dap_gy_cm2 + other.dap_gy_cm2,
            self.fluoro_time_s + other.fluoro_time_s,
        )


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of a simulated frame; never read by guidance analysers.

    tip_px: needle tip (col, row) in pixels or None; tip_mm: tip in patient RAS mm;
    shaft_px: ((col, row), (col, row)) visible shaft end points in pixels; needle_visible:
    whether the needle is in the image; labels_visible: tissue label names in view;
    compartment: injectate compartment name (or None); vertebrae_px: each vertebra whose
    body centre projects into the image, name → (col, row) of that centre in pixels
    (fluoroscopy); extra: anything else, JSON-able.
    """

    tip_px: tuple[float, float] | None = None
    tip_mm: tuple[float, float, float] | None = None
    shaft_px: tuple[tuple[float, float], tuple[float, float]] | None = None
    needle_visible: bool = False
    labels_visible: tuple[str, ...] = ()
    compartment: str | None = None
    vertebrae_px: dict[str, tuple[float, float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Frame:
    """One image: pixels, pixel spacing (row, col) in mm, ``ImageToPatient``, time (s),
    modality, acquisition settings (JSON-able dict), dose increment and optional truth."""

    pixels: np.ndarray
    spacing_mm: tuple[float, float]
    ImageToPatient: np.ndarray
    time_s: float
    modality: Modality
    settings: dict[str, Any] = field(default_factory=dict)
    dose: Dose = field(default_factory=Dose)
    truth: FrameTruth | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.pixels.shape[:2])  # type: ignore[return-value]

    def without_truth(self) -> Frame:
        """The same frame with ``truth`` removed: what an analyser is allowed to see."""
        return dataclasses.replace(self, truth=None)

    def pixel_to_image_mm(self, cols, rows) -> np.ndarray:
        """Pixel (col, row) arrays -> image-plane mm (..., 3) with z = 0."""
        cols = np.asarray(cols, dtype=float)
        rows = np.asarray(rows, dtype=float)
        return np.stack(
            [cols * self.spacing_mm[1], rows * self.spacing_mm[0], np.zeros_like(cols)], axis=-1
        )

    def pixel_to_patient(self, cols, rows) -> np.ndarray:
        """Pixel (col, row) arrays -> patient RAS mm (..., 3) via ``ImageToPatient``."""
        return geometry.apply(self.ImageToPatient, self.pixel_to_image_mm(cols, rows))

    def metadata(self) -> dict[str, Any]:
        """JSON-able description of everything but the pixels (truth included if present)."""
        d: dict[str, Any] = {
            "modality": self.modality,
            "shape": list(self.shape),
            "spacing_mm": list(map(float, self.spacing_mm)),
            "ImageToPatient": np.asarray(self.ImageToPatient).tolist(),
            "time_s": float(self.time_s),
            "settings": _jsonable(self.settings),
            "dose": dataclasses.asdict(self.dose),
        }
        if self.truth is not None:
            d["truth"] = _jsonable(dataclasses.asdict(self.truth))
        return d

    def to_json(self) -> str:
        return json.dumps(self.metadata(), indent=2)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x
