"""Read a patient folder back: what ``needleguide phantom`` or ``needleguide import-ct`` wrote.

A folder holds ``labels.nii.gz`` (required) and, when present, ``tissues.json``,
``landmarks.json``, ``vertebrae.json``, ``centerlines.json``, ``meta.json`` and ``ct.nii.gz``
(Hounsfield units on the label grid: the patient is then a ``CTPatient`` and the
fluoroscope renders it from its HU). Bad folders raise one clear :class:`UserError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from needleguide.anatomy.patient import Centerline, Landmark, Patient, Vertebra
from needleguide.anatomy.tissues import Tissue, TissueTable, default_tissue_table
from needleguide.errors import UserError


def _json(p: Path) -> Any:
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"patient: cannot read {p} ({type(e).__name__}: {e})") from None


def _vec(d: dict, key: str, p: Path, n: int = 3) -> np.ndarray:
    v = np.asarray(d.get(key), dtype=float)
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise UserError(f"patient: {p.name}: {key!r} must be {n} finite numbers")
    return v


def load_patient_dir(folder: str | Path) -> Patient:
    """The Patient (or CTPatient, when ``ct.nii.gz`` is there) stored in ``folder``."""
    from needleguide.anatomy.nifti import load_volume

    d = Path(folder)
    if not d.is_dir():
        raise UserError(f"patient: {d} is not a folder (give a `needleguide phantom` or "
                        f"`needleguide import-ct` output folder)")
    if not (d / "labels.nii.gz").is_file():
        raise UserError(f"patient: {d} holds no labels.nii.gz (not a `needleguide phantom` "
                        f"or `import-ct` output folder)")
    labels, aff = load_volume(d / "labels.nii.gz")
    if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"patient: {d / 'labels.nii.gz'} must be a 3-D integer label volume")
    if labels.min() < 0 or labels.max() > 255:
        raise UserError(f"patient: {d / 'labels.nii.gz'} has labels outside 0–255")
    labels = np.asarray(labels, dtype=np.uint8)
    if not np.all(np.isfinite(aff)) or abs(np.linalg.det(aff[:3, :3])) < 1e-9:
        raise UserError(f"patient: {d / 'labels.nii.gz'} has a degenerate affine")
    tissues = default_tissue_table()
    if (d / "tissues.json").is_file():
        rows = _json(d / "tissues.json")
        try:
            tissues = TissueTable(Tissue(**{k: v for k, v in r.items()
                                            if k in Tissue.model_fields})
                                  for r in rows.values())
        except (TypeError, ValueError) as e:
            raise UserError(f"patient: {d / 'tissues.json'} is not a tissue table "
                            f"({str(e).splitlines()[0]})") from None
    landmarks = {}
    if (d / "landmarks.json").is_file():
        p = d / "landmarks.json"
        landmarks = {k: Landmark(k, _vec(v, "ras_mm", p), v.get("tissue", ""),
                                 v.get("description", "")) for k, v in _json(p).items()}
    vertebrae = {}
    if (d / "vertebrae.json").is_file():
        p = d / "vertebrae.json"
        known = {"center_mm", "superior", "anterior", "body_height_mm", "body_width_mm",
                 "body_depth_mm"}
        vertebrae = {k: Vertebra(k, _vec(v, "center_mm", p), _vec(v, "superior", p),
                                 _vec(v, "anterior", p), float(v.get("body_height_mm", 0)),
                                 float(v.get("body_width_mm", 0)),
                                 float(v.get("body_depth_mm", 0)),
                                 {kk: vv for kk, vv in v.items() if kk not in known})
                     for k, v in _json(p).items()}
    centerlines = {}
    if (d / "centerlines.json").is_file():
        for k, v in _json(d / "centerlines.json").items():
            centerlines[k] = Centerline(k, v["kind"], np.asarray(v["points_mm"], float),
                                        np.asarray(v["radii_mm"], float), int(v["label"]),
                                        float(v.get("velocity_mm_s", 0.0)), v.get("parent"))
    meta = _json(d / "meta.json") if (d / "meta.json").is_file() else {}
    meta = {**meta, "folder": str(d)}
    kw = dict(labels=labels, VoxelToPatient=aff, tissues=tissues, landmarks=landmarks,
              centerlines=centerlines, vertebrae=vertebrae, meta=meta)
    if (d / "ct.nii.gz").is_file():
        from needleguide.anatomy.importer import CTPatient

        hu, aff_ct = load_volume(d / "ct.nii.gz")
        hu = np.asarray(hu, dtype=np.float32)
        if hu.shape != labels.shape or not np.allclose(aff_ct, aff, atol=1e-3):
            raise UserError(f"patient: {d / 'ct.nii.gz'} is not on the grid of labels.nii.gz")
        if not np.all(np.isfinite(hu)):
            raise UserError(f"patient: {d / 'ct.nii.gz'} holds NaN or infinite values")
        return CTPatient(**kw, hu=hu)
    return Patient(**kw)
