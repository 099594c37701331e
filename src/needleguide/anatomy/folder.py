"""Read a patient folder back: what ``needleguide phantom`` or ``needleguide import-ct`` wrote.

A folder holds ``labels.nii.gz`` (required) and, when present, ``tissues.json``,
``landmarks.json``, ``vertebrae.json``, ``centerlines.json``, ``meta.json`` and ``ct.nii.gz``
(Hounsfield units on the label grid: the patient is then a ``CTPatient`` and the
fluoroscope renders it from its HU). Bad folders raise one clear :class:`UserError`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from needleguide.anatomy.patient import Centerline, Landmark, Patient, Vertebra
from needleguide.anatomy.tissues import Tissue, TissueTable, default_tissue_table
from needleguide.errors import UserError


def _json(p: Path) -> dict:
    """A JSON object from ``p``; anything else is one UserError."""
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"patient: cannot read {p} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from None
    if not isinstance(obj, dict):
        raise UserError(f"patient: {p} must hold a JSON object, not {type(obj).__name__}")
    return obj


def _entries(p: Path) -> dict[str, dict]:
    """A JSON object of named JSON objects (landmarks, vertebrae, centerlines, tissues)."""
    obj = _json(p)
    bad = [k for k, v in obj.items() if not isinstance(v, dict)]
    if bad:
        raise UserError(f"patient: {p.name}: entry {bad[0]!r} must be a JSON object")
    return obj


def _vec(d: dict, key: str, p: Path, n: int = 3) -> np.ndarray:
    try:
        v = np.asarray(d.get(key), dtype=float)
    except (TypeError, ValueError):
        v = np.zeros(0)
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise UserError(f"patient: {p.name}: {key!r} must be {n} finite numbers")
    return v


def _num(d: dict, key: str, p: Path, default: float = 0.0) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise UserError(f"patient: {p.name}: {key!r} must be a finite number")
    return float(v)


def _volume(p: Path) -> tuple[np.ndarray, np.ndarray]:
    from needleguide.anatomy.nifti import load_volume

    data, aff = load_volume(p)
    try:
        data = np.asarray(data)  # a truncated file fails only here
    except Exception as e:  # noqa: BLE001 - nibabel / zlib raise many types
        raise UserError(f"patient: cannot read {p} ({type(e).__name__})") from None
    if data.ndim != 3 or data.size == 0:
        raise UserError(f"patient: {p} must be a 3-D volume, not of shape {data.shape}")
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)) or \
            abs(np.linalg.det(aff[:3, :3])) < 1e-9:
        raise UserError(f"patient: {p} has a degenerate affine")
    return data, aff


def _centerline(k: str, v: dict, p: Path) -> Centerline:
    try:
        pts = np.asarray(v["points_mm"], float)
        radii = np.asarray(v["radii_mm"], float)
        kind, label = v["kind"], v["label"]
    except (KeyError, TypeError, ValueError):
        raise UserError(f"patient: {p.name}: centerline {k!r} needs kind, points_mm (N×3), "
                        "radii_mm (N) and label") from None
    if pts.ndim != 2 or pts.shape[1:] != (3,) or radii.shape != pts.shape[:1] or \
            not (np.all(np.isfinite(pts)) and np.all(np.isfinite(radii))) or \
            kind not in ("artery", "vein", "nerve") or isinstance(label, bool) or \
            not isinstance(label, int) or not 0 <= label <= 255:
        raise UserError(f"patient: {p.name}: centerline {k!r} needs kind artery|vein|nerve, "
                        "finite points_mm (N×3) and radii_mm (N), label 0–255")
    parent = v.get("parent")
    return Centerline(k, kind, pts, radii, label, _num(v, "velocity_mm_s", p),
                      parent if isinstance(parent, str) else None)


def load_patient_dir(folder: str | Path) -> Patient:
    """The Patient (or CTPatient, when ``ct.nii.gz`` is there) stored in ``folder``; any
    unreadable or inconsistent file is one UserError naming it."""
    d = Path(folder)
    if not d.is_dir():
        raise UserError(f"patient: {d} is not a folder (give a `needleguide phantom` or "
                        f"`needleguide import-ct` output folder)")
    if not (d / "labels.nii.gz").is_file():
        raise UserError(f"patient: {d} holds no labels.nii.gz (not a `needleguide phantom` "
                        f"or `import-ct` output folder)")
    labels, aff = _volume(d / "labels.nii.gz")
    if not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"patient: {d / 'labels.nii.gz'} must be a 3-D integer label volume")
    if labels.min() < 0 or labels.max() > 255:
        raise UserError(f"patient: {d / 'labels.nii.gz'} has labels outside 0–255")
    labels = np.asarray(labels, dtype=np.uint8)
    tissues = default_tissue_table()
    if (d / "tissues.json").is_file():
        rows = _entries(d / "tissues.json")
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
        landmarks = {k: Landmark(k, _vec(v, "ras_mm", p), str(v.get("tissue", "")),
                                 str(v.get("description", "")))
                     for k, v in _entries(p).items()}
    vertebrae = {}
    if (d / "vertebrae.json").is_file():
        p = d / "vertebrae.json"
        known = {"center_mm", "superior", "anterior", "body_height_mm", "body_width_mm",
                 "body_depth_mm"}
        vertebrae = {k: Vertebra(k, _vec(v, "center_mm", p), _vec(v, "superior", p),
                                 _vec(v, "anterior", p), _num(v, "body_height_mm", p),
                                 _num(v, "body_width_mm", p), _num(v, "body_depth_mm", p),
                                 {kk: vv for kk, vv in v.items() if kk not in known})
                     for k, v in _entries(p).items()}
    centerlines = {}
    if (d / "centerlines.json").is_file():
        p = d / "centerlines.json"
        centerlines = {k: _centerline(k, v, p) for k, v in _entries(p).items()}
    meta = _json(d / "meta.json") if (d / "meta.json").is_file() else {}
    meta = {**meta, "folder": str(d)}
    kw = dict(labels=labels, VoxelToPatient=aff, tissues=tissues, landmarks=landmarks,
              centerlines=centerlines, vertebrae=vertebrae, meta=meta)
    if (d / "ct.nii.gz").is_file():
        from needleguide.anatomy.importer import CTPatient

        hu, aff_ct = _volume(d / "ct.nii.gz")
        if hu.shape != labels.shape or not np.allclose(aff_ct, aff, atol=1e-3):
            raise UserError(f"patient: {d / 'ct.nii.gz'} is not on the grid of labels.nii.gz")
        if not np.issubdtype(hu.dtype, np.number) or np.iscomplexobj(hu):
            raise UserError(f"patient: {d / 'ct.nii.gz'} must hold real numbers (HU)")
        hu = np.asarray(hu, dtype=np.float32)
        if not np.all(np.isfinite(hu)):
            raise UserError(f"patient: {d / 'ct.nii.gz'} holds NaN or infinite values")
        return CTPatient(**kw, hu=hu)
    return Patient(**kw)
