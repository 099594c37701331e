"""CT DICOM series I/O (pydicom): read a folder of slices into HU + RAS affine, and write
a volume as a valid CT series (LPS geometry, one file per slice, written atomically).

Geometry (DICOM PS3.3 C.7.6.2): ImageOrientationPatient holds the LPS direction of a row
(column index increasing) then of a column (row index increasing); PixelSpacing is
(between rows, between columns); ImagePositionPatient is the LPS centre of the first
pixel. Slices are sorted by their position along the normal (row x column). The volume is
indexed ``[i = column, j = row, k = slice]`` so that the affine's columns are
``row_dir * dc``, ``col_dir * dr`` and the slice step, then converted LPS -> RAS.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from needleguide import geometry
from needleguide.errors import UserError

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _dicom_candidates(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _numbers(ds, tag: str, n: int, f: Path) -> np.ndarray:
    """``n`` finite numbers from a multi-valued DICOM attribute, else one clear UserError."""
    try:
        v = np.array([float(x) for x in ds.get(tag)], dtype=float)
    except (TypeError, ValueError):
        v = np.array([])
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise UserError(f"ct: {tag} of {f} must be {n} finite numbers, got {ds.get(tag)!r}")
    return v


def read_dicom_series(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Read a CT series from a folder (or the folder of one of its files).

    Returns (hu float32 [i=column, j=row, k=slice], VoxelToPatient RAS 4x4, info dict).
    With several series in the folder, the one with the most slices is read (or the
    series of the file given). A folder without readable image slices is a UserError.
    """
    import pydicom

    p = Path(path)
    if not p.exists():
        raise UserError(f"ct: {p} does not exist")
    folder = p if p.is_dir() else p.parent
    wanted_series = None
    if p.is_file():
        try:
            wanted_series = str(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID)
        except Exception as e:  # pydicom raises many types for corrupted files
            raise UserError(f"ct: cannot read {p} as DICOM ({type(e).__name__})") from None
    series: dict[str, list] = {}
    for f in _dicom_candidates(folder):
        try:
            ds = pydicom.dcmread(f)
        except Exception:  # corrupted or not DICOM (pydicom raises many types): skipped
            continue
        if not all(t in ds for t in ("ImagePositionPatient", "ImageOrientationPatient",
                                     "PixelSpacing", "PixelData", "Rows", "Columns")):
            continue
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((f, ds))
    if not series:
        raise UserError(f"ct: no DICOM image slices with patient geometry found in {folder}")
    uid = wanted_series if wanted_series in series else max(series, key=lambda s: len(series[s]))
    items = series[uid]
    if len(items) < 2:
        raise UserError(f"ct: the DICOM series in {folder} has a single slice; need a volume")
    ds0 = items[0][1]
    iop = _numbers(ds0, "ImageOrientationPatient", 6, items[0][0])
    row_dir, col_dir = iop[:3], iop[3:]
    if (abs(np.linalg.norm(row_dir) - 1) > 0.01 or abs(np.linalg.norm(col_dir) - 1) > 0.01
            or abs(row_dir @ col_dir) > 0.01):
        raise UserError(f"ct: ImageOrientationPatient {iop.tolist()} of {items[0][0]} is not "
                        "two orthogonal unit vectors")
    normal = np.cross(row_dir, col_dir)
    spacing = _numbers(ds0, "PixelSpacing", 2, items[0][0])
    if np.any(spacing <= 0):
        raise UserError(f"ct: PixelSpacing {spacing.tolist()} of {items[0][0]} must be two "
                        "positive numbers (mm)")
    for f, ds in items:
        if not np.allclose(_numbers(ds, "ImageOrientationPatient", 6, f), iop, atol=1e-4):
            raise UserError(f"ct: slices of the series in {folder} have different orientations")
        if not np.allclose(_numbers(ds, "PixelSpacing", 2, f), spacing, rtol=1e-4):
            raise UserError(f"ct: slices of the series in {folder} have different PixelSpacing")
    ipp = np.array([_numbers(ds, "ImagePositionPatient", 3, f) for f, ds in items])
    order = np.argsort(ipp @ normal)
    ipp = ipp[order]
    items = [items[i] for i in order]
    pos = ipp @ normal
    gaps = np.diff(pos)
    if np.any(gaps < 1e-3):
        raise UserError(f"ct: duplicate slice positions in the DICOM series in {folder}")
    if np.ptp(gaps) > 0.01 * max(abs(gaps.mean()), 1e-6) + 1e-3:
        raise UserError(
            f"ct: slice spacing varies in {folder} ({gaps.min():.3f}-{gaps.max():.3f} mm); "
            "resample the series to uniform spacing first")
    dr, dc = (float(v) for v in spacing)
    step = (ipp[-1] - ipp[0]) / (len(ipp) - 1)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc
    lps[:3, 1] = col_dir * dr
    lps[:3, 2] = step
    lps[:3, 3] = ipp[0]
    rows, cols = int(ds0.Rows), int(ds0.Columns)
    hu = np.empty((cols, rows, len(items)), dtype=np.float32)
    for k, (f, full) in enumerate(items):
        try:
            px = full.pixel_array
        except Exception as e:  # compressed without a decoder, corrupt pixel data
            raise UserError(f"ct: cannot decode pixel data of {f} ({type(e).__name__}: {e})"
                            ) from None
        if px.shape != (rows, cols):
            raise UserError(f"ct: slice {f} is {px.shape}, expected {(rows, cols)}")
        slope = float(full.get("RescaleSlope", 1.0))
        inter = float(full.get("RescaleIntercept", 0.0))
        hu[:, :, k] = (px.astype(np.float32) * slope + inter).T
    info = {"series_uid": uid, "n_slices": len(items), "folder": str(folder),
            "modality": str(ds0.get("Modality", "")), "LPSVoxelToPatient": lps.tolist()}
    return hu, geometry.lps_to_ras() @ lps, info


def _uid(*parts: object) -> str:
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[str(p) for p in parts]))


def write_dicom_series(
    hu: np.ndarray,
    VoxelToPatient: np.ndarray,
    folder: str | Path,
    *,
    patient_name: str = "needleguide^phantom",
    patient_id: str = "NG0001",
    series_description: str = "needleguide synthetic CT",
    uid_seed: str = "needleguide",
) -> Path:
    """Write ``hu`` (HU, indexed [i, j, k] on the RAS ``VoxelToPatient`` grid) as a CT
    image series, one slice per k, to ``folder`` (replaced as a whole, atomically).

    Stored as uint16 with RescaleIntercept -1024 (HU clipped to [-1024, 64511]); the i and j
    axes must be orthogonal to the slice axis. UIDs are derived from ``uid_seed`` so the
    same input gives the same files.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    hu = np.asarray(hu)
    if hu.ndim != 3:
        raise UserError(f"hu: expected a 3D volume, got shape {hu.shape}")
    lps = geometry.lps_to_ras() @ np.asarray(VoxelToPatient, dtype=float)
    sx, sy, sz = np.linalg.norm(lps[:3, :3], axis=0)
    row_dir, col_dir = lps[:3, 0] / sx, lps[:3, 1] / sy
    normal = np.cross(row_dir, col_dir)
    slice_dir = lps[:3, 2] / sz
    if abs(row_dir @ col_dir) > 1e-6 or abs(abs(normal @ slice_dir) - 1) > 1e-6:
        raise UserError("VoxelToPatient: the slice axis must be orthogonal to the image plane "
                        "to write a DICOM series")
    stored = np.clip(np.rint(hu.astype(np.float64) + 1024.0), 0, 65535).astype(np.uint16)
    study_uid = _uid(uid_seed, "study")
    series_uid = _uid(uid_seed, "series")
    frame_uid = _uid(uid_seed, "frame")
    now = datetime.datetime.now(datetime.UTC)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for k in range(hu.shape[2]):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = _uid(uid_seed, "slice", k)
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset(str(tmp_dir / f"IM{k + 1:05d}.dcm"), {}, file_meta=meta,
                             preamble=b"\0" * 128)
            ds.SOPClassUID = CT_IMAGE_STORAGE
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.FrameOfReferenceUID = frame_uid
            ds.Modality = "CT"
            ds.PatientName, ds.PatientID = patient_name, patient_id
            ds.StudyDate = ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
            ds.StudyTime = ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
            ds.SeriesDescription = series_description
            ds.Manufacturer = "needleguide"
            ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
            ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
            ds.PatientPosition = "HFS"
            pos = lps[:3, 3] + k * lps[:3, 2]
            ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
            ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_dir, *col_dir)]
            ds.SliceLocation = f"{pos @ normal:.6f}"
            ds.SliceThickness = f"{sz:.6f}"
            ds.PixelSpacing = [f"{sy:.6f}", f"{sx:.6f}"]  # (between rows, between columns)
            ds.Rows, ds.Columns = int(hu.shape[1]), int(hu.shape[0])
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
            ds.PixelRepresentation = 0
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
            ds.WindowCenter, ds.WindowWidth = "300", "1800"
            ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
            ds.save_as(tmp_dir / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
        _replace_dir(tmp_dir, folder)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return folder


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder ``src`` onto ``dst`` (an old ``dst`` is removed after)."""
    old = None
    if dst.exists():
        if not dst.is_dir():
            raise UserError(f"--out: {dst} exists and is not a folder")
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old.", dir=dst.parent))
        os.replace(dst, old / dst.name)
    os.replace(src, dst)
    if old is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(old)
