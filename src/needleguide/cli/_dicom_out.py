"""``--dicom`` of the fluoroscopy commands: the contrast run's XA objects and the radiation
dose report, written into one study (``DIR/dicom/``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_dose_report(folder: Path, study, fluoroscopes: Sequence, series_number: int
                      ) -> Path:
    """SR0001.dcm: the X-Ray Radiation Dose SR of the irradiation events logged by
    ``fluoroscopes`` (each one's ``events`` in its log's order, one after the other)."""
    from needleguide.io.dicom_rdsr import write_dose_sr

    events = [e for fl in fluoroscopes for e in fl.events]
    return write_dose_sr(folder / "SR0001.dcm", study, events, series_number)


def monitor_copy(frame):
    """``frame`` without truth and with half-precision pixels (a 512² run of hundreds of
    frames stays in memory until it is written; half precision is within one grey level
    of the 12 bits written)."""
    return dataclasses.replace(frame, truth=None, pixels=frame.pixels.astype(np.float16))


def write_contrast_dicom(folder: Path, renderer, live: dict[str, list], dsa_times_s,
                         pattern: str, seed: int, concentration_mg_ml: float) -> list[Path]:
    """The contrast run as one study in ``folder``: per view (AP, lateral) the live run
    (XA, the clip's frames), then per view a DSA run — the native mask at 0 s and one
    exposure at each of ``dsa_times_s`` (s), frame 1 the mask (MaskOperation AVG_SUB,
    viewing mode SUB) — and SR0001.dcm, the dose report of every exposure of the
    command. ``renderer``: the :class:`~needleguide.cli.contrast.FluoroRenderer`;
    ``live``: view -> its live Frames."""
    from needleguide.io.dicom_study import phantom_study
    from needleguide.io.dicom_xa import write_xa_run

    study = phantom_study("lumbar", 24.0, seed, f"contrast {pattern}")
    files = []
    n = 0
    for v, frames in live.items():
        n += 1
        files.append(write_xa_run(folder / f"XA{n:04d}.dcm", study, frames, n,
                                  f"live {v}, contrast {pattern}",
                                  contrast_mg_ml=concentration_mg_ml))
    for v in live:
        fl, carm = renderer.fl[v], renderer.carm[v]
        scenes = [renderer.scene.with_time(0.0)] + [renderer.scene.with_time(float(t))
                                                     for t in dsa_times_s]
        frames = [monitor_copy(fl.frame(sc, "dsa", carm)) for sc in scenes]
        n += 1
        files.append(write_xa_run(folder / f"XA{n:04d}.dcm", study, frames, n,
                                  f"DSA {v}, contrast {pattern}", mask_frame_numbers=[1],
                                  contrast_mg_ml=concentration_mg_ml))
    files.append(write_dose_report(folder, study, list(renderer.fl.values()), 99))
    return files


__all__ = ["monitor_copy", "write_contrast_dicom", "write_dose_report"]
