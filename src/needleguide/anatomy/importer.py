"""Import a real CT (NIfTI or DICOM series) as a Patient, with or without a labelmap.

Without a labelmap the HU volume is classified into materials (thresholds in
:class:`HUThresholds`, sources in docs/import.md) and mapped onto tissue labels:
outside air -> ``air`` (0), air inside the body -> ``internal_air``, fat ->
``subcutaneous_fat``, soft tissue -> ``soft_tissue`` (its outer ``skin_mm`` -> ``skin``),
bone -> ``bone_cancellous`` / ``bone_cortical``, metal -> ``metal``. The body is the largest
connected non-air component with its holes filled slice by slice (the CT table and
blankets fall away; lungs and bowel gas stay inside).

With a labelmap (our label ids, or TotalSegmentator structure names: a folder of
``NAME.nii.gz`` masks, or a multilabel NIfTI named by a ``{id: name}`` JSON sidecar, by its
header label table, or by the TotalSegmentator v1 or v2 class map, decided from the ids
and the CT by ``label_tables``) the named voxels get their
mapped tissue and the unlabelled ones the HU classification. ``vertebrae_*`` masks give
``Patient.vertebrae`` and ``<level>.body`` / ``<level>.canal`` landmarks; with our own ids,
``landmarks.json`` / ``vertebrae.json`` beside the labelmap are read back.

The volume is reoriented to the closest RAS axes (exact axis permutation/flip, no
resampling) and, with ``spacing_mm``, resampled to isotropic voxels (HU linear, labels
nearest). The returned :class:`CTPatient` keeps the HU volume on the label grid (``.hu``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from needleguide.anatomy import totalseg
from needleguide.anatomy.importer_checks import (
    check_affine,
    check_finite,
    check_label_grid,
    load_nifti,
)
from needleguide.anatomy.label_tables import check_label_names, names_for
from needleguide.anatomy.patient import Patient
from needleguide.anatomy.patient import resample_labels as resample_nearest
from needleguide.anatomy.tissues import TissueTable, default_tissue_table
from needleguide.errors import UserError, check_range

UNLABELLED = 255  # internal marker: no labelmap entry, fill from HU
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HUThresholds:
    """Material boundaries in HU (lower bound of each class; see docs/import.md)."""

    fat: float = -400.0  # air below; fat from here (adipose -190..-30, partial volume below)
    soft: float = -30.0  # soft tissue / muscle -29..150 (Mitsiopoulos 1998)
    bone: float = 150.0  # cancellous bone above the muscle range
    cortical: float = 700.0  # dense cortical bone
    metal: float = 2500.0  # above the densest cortical bone (~2000 HU)


@dataclass(frozen=True)
class CTPatient(Patient):
    """A Patient imported from CT: ``hu`` (float32 HU) shares the labels' grid."""

    hu: np.ndarray | None = field(default=None, repr=False, compare=False)

    def roi(self, center_mm, size_mm, spacing_mm: float) -> CTPatient:
        """Region of interest (see Patient.roi); the HU volume is resampled linearly."""
        sub = super().roi(center_mm, size_mm, spacing_mm)
        hu = None
        if self.hu is not None:
            hu = _resample_linear(self.hu, self.VoxelToPatient, sub.shape, sub.VoxelToPatient)
        return dataclasses.replace(sub, hu=hu)


def _resample_linear(vol, src_aff, shape, dst_aff, cval: float = -1000.0) -> np.ndarray:
    m = np.linalg.inv(src_aff) @ dst_aff
    return ndimage.affine_transform(vol, m[:3, :3], offset=m[:3, 3], output_shape=shape,
                                    order=1, mode="constant", cval=cval).astype(np.float32)


# ---- reading ----------------------------------------------------------------------------
def _is_nifti(p: Path) -> bool:
    return p.name.lower().endswith((".nii", ".nii.gz"))


def read_ct(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """HU volume (float32), voxel -> RAS affine and info from a NIfTI file, a DICOM series
    folder or one file of a DICOM series. Bad input (unreadable, NaN or infinite voxels,
    zero/negative/NaN voxel size, degenerate affine) raises one clear UserError."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"ct: {p} does not exist")
    if p.is_dir() or not _is_nifti(p):
        from needleguide.anatomy.importer_dicom import read_dicom_series

        if p.is_file() and not _looks_like_dicom(p):
            raise UserError(f"ct: {p} is neither NIfTI (.nii, .nii.gz) nor DICOM")
        hu, aff, info = read_dicom_series(p)
        info = {**info, "format": "dicom"}
    else:
        img, hu = load_nifti(p, "ct", as_float=True)
        hu, aff, info = _as_3d(hu, p), img.affine, {"format": "nifti", "file": str(p)}
    check_finite(hu, "ct", p)
    return hu, check_affine(aff, "ct", p), info


def _looks_like_dicom(p: Path) -> bool:
    with open(p, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:132] == b"DICM" or p.suffix.lower() in (".dcm", ".ima")


def _as_3d(vol: np.ndarray, p: Path) -> np.ndarray:
    if vol.ndim == 4 and vol.shape[3] == 1:
        vol = vol[..., 0]
    if vol.ndim != 3 or min(vol.shape) < 2:
        raise UserError(f"ct: {p} holds a volume of shape {vol.shape}; expected 3D")
    return vol


def _onto_grid(p: Path, data, aff, shape, ct_aff, resample: bool) -> np.ndarray:
    if not check_label_grid(p, data.shape, aff, shape, ct_aff, resample):
        return np.asarray(data)
    return resample_nearest(np.asarray(data), aff, tuple(shape), ct_aff)


def read_labelmap(
    labels_path: str | Path, hu: np.ndarray, ct_affine: np.ndarray,
    tissues: TissueTable, label_names: str | Path | None = None,
    air_hu: float = HUThresholds.fat, resample: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A labelmap on the CT grid: (tissue ids, 255 = unlabelled; level volume, v > 0 =
    ``totalseg.LEVELS[v-1]``; info with the structures found and the unknown ones).

    A map on another grid than the CT is refused unless ``resample`` (nearest; then at
    least 95 % of its extent must lie on the CT); which table names a multilabel map's ids
    is decided by :func:`label_tables.names_for` (refused when the evidence does not)."""
    p = Path(labels_path)
    if not p.exists():
        raise UserError(f"labels: {p} does not exist")
    shape = hu.shape
    ids = np.full(shape, UNLABELLED, dtype=np.uint8)
    levels = np.zeros(shape, dtype=np.uint8)
    unknown: dict[str, int] = {}
    found: dict[str, str] = {}
    ribs: dict[str, list[float]] = {}
    soft = tissues.label("soft_tissue")

    def paint(mask: np.ndarray, name: str, box: tuple = (slice(None),) * 3) -> None:
        """Give ``name``'s tissue to ``mask`` (a boolean sub-volume at ``box``)."""
        if not mask.any():
            return
        if name in totalseg.FROM_HU:
            found[name] = "(HU classification)"
            return
        tname = name if name in tissues else totalseg.tissue_for(name)
        sub = ids[box]
        if tname is None or tname not in tissues:
            unknown[name] = unknown.get(name, 0) + int(mask.sum())
            sub[mask] = soft
            return
        found[name] = tname
        sub[mask] = tissues.label(tname)
        if totalseg.base_name(name) in totalseg.AIR_SPLIT:
            sub[mask & (hu[box] < air_hu)] = tissues.label("internal_air")
        lv = totalseg.level_of(name)
        if lv is not None:
            levels[box][mask] = totalseg.LEVELS.index(lv) + 1
        if totalseg.is_rib(name):  # the rib number survives in meta["ribs"]
            c = np.argwhere(mask).mean(axis=0) + [s.start or 0 for s in box]
            ribs[name] = np.round(ct_affine[:3, :3] @ c + ct_affine[:3, 3], 1).tolist()

    extra: dict = {}
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if _is_nifti(f) and not f.name.startswith("."))
        if not files:
            raise UserError(f"labels: no NIfTI masks (NAME.nii.gz) in the folder {p}")
        for f in files:
            img, data = load_nifti(f, "labels")
            name = f.name[: -7 if f.name.lower().endswith(".gz") else -4]
            mask = (np.asarray(data) > 0.5).astype(np.uint8)
            paint(_onto_grid(f, mask, img.affine, shape, ct_affine, resample).astype(bool),
                  name)
        mode = "masks"
    else:
        img, data = load_nifti(p, "labels")
        if not np.issubdtype(data.dtype, np.integer):
            check_finite(np.asarray(data), "labels", p)
            data = np.rint(data).astype(np.int32)
        if data.size and (data.min() < 0 or data.max() > 65535):
            raise UserError(f"labels: {p} holds label ids outside 0-65535 "
                            f"({int(data.min())}..{int(data.max())})")
        data = _onto_grid(p, data, img.affine, shape, ct_affine, resample)
        names, extra = names_for(p, img, label_names, data, hu, ct_affine, tissues, air_hu)
        if names is None:
            mode = "ids"
            present = np.unique(data)
            ok = np.array([int(v) in tissues and v != UNLABELLED for v in present], dtype=bool)
            lut = np.full(int(max(present.max(), 0)) + 1, soft, dtype=np.uint8)
            lut[present[ok]] = present[ok].astype(np.uint8)
            ids = lut[data]
            for v in present[~ok]:
                unknown[f"id {int(v)}"] = int((data == v).sum())
            found = {str(int(v)): tissues[int(v)].name for v in present[ok]}
        else:
            mode = "names"
            for v, box in enumerate(ndimage.find_objects(data), start=1):
                if box is not None:  # bounding box of id v: one pass per structure's box
                    paint(data[box] == v, names.get(v, f"id {v}"), box)
    if unknown:
        log.warning("%d unknown structure(s) in %s mapped to soft_tissue (%d voxels): %s",
                    len(unknown), p, sum(unknown.values()), ", ".join(sorted(unknown)))
    info = {"labels_mode": mode, "labels_path": str(p), **extra, "structures": found,
            "unknown_structures": unknown, "unknown_voxels": int(sum(unknown.values()))}
    if ribs:
        info["ribs"] = dict(sorted(ribs.items()))
    return ids, levels, info


# ---- HU classification --------------------------------------------------------------------
def body_mask(hu: np.ndarray, air_hu: float = HUThresholds.fat) -> np.ndarray:
    """Voxels inside the body: largest connected non-air component, holes filled per
    axial slice (axis 2 must be the cranio-caudal axis)."""
    solid = hu >= air_hu
    lab, n = ndimage.label(solid)
    if n == 0:
        return solid
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    body = lab == int(np.argmax(sizes))
    del lab
    for k in range(body.shape[2]):
        body[:, :, k] = ndimage.binary_fill_holes(body[:, :, k])
    return body


def hu_to_labels(hu: np.ndarray, VoxelToPatient: np.ndarray, tissues: TissueTable | None = None,
                 thresholds: HUThresholds = HUThresholds(), skin_mm: float = 2.0) -> np.ndarray:
    """Tissue labels (uint8) from HU by material thresholds (see the module docstring)."""
    t = tissues or default_tissue_table()
    thr = thresholds
    edges = np.array([thr.fat, thr.soft, thr.bone, thr.cortical, thr.metal], dtype=np.float32)
    classes = np.array([t.label(n) for n in ("internal_air", "subcutaneous_fat", "soft_tissue",
                                             "bone_cancellous", "bone_cortical", "metal")],
                       dtype=np.uint8)
    labels = np.full(hu.shape, classes[0], dtype=np.uint8)
    for edge, cls in zip(edges, classes[1:], strict=True):  # uint8 passes, no int64 index
        labels[hu >= edge] = cls
    body = body_mask(hu, thr.fat)
    labels[~body] = t.label("air")
    if skin_mm > 0:
        sp = np.linalg.norm(VoxelToPatient[:3, :3], axis=0)
        soft, skin = t.label("soft_tissue"), t.label("skin")
        for k in range(hu.shape[2]):
            sl = body[:, :, k]
            if not sl.any():
                continue
            d = ndimage.distance_transform_edt(np.pad(sl, 1), sampling=sp[:2])[1:-1, 1:-1]
            lk = labels[:, :, k]
            lk[sl & (d <= skin_mm) & (lk == soft)] = skin
    return labels


# ---- orientation and resampling -----------------------------------------------------------
def to_closest_ras(vols: list[np.ndarray], affine: np.ndarray):
    """Permute/flip volumes so that axes run along +x, +y, +z as closely as possible."""
    from nibabel import orientations as ornt_mod

    try:
        ornt = ornt_mod.io_orientation(affine)
    except Exception as e:  # nibabel OrientationError: an affine check let it through
        raise UserError(f"ct: cannot orient the volume ({type(e).__name__}: {e})") from None
    out = [np.ascontiguousarray(ornt_mod.apply_orientation(v, ornt)) for v in vols]
    return out, affine @ ornt_mod.inv_ornt_aff(ornt, vols[0].shape)


def resample_grid(shape, affine: np.ndarray, spacing_mm: float):
    """Shape and affine of an isotropic ``spacing_mm`` grid with the same axes and extent."""
    sp = np.linalg.norm(affine[:3, :3], axis=0)
    n = np.floor((np.array(shape) - 1) * sp / spacing_mm + 1e-6).astype(int) + 1
    aff = affine.copy()
    aff[:3, :3] = affine[:3, :3] / sp * spacing_mm
    return (int(n[0]), int(n[1]), int(n[2])), aff


# ---- the importer -------------------------------------------------------------------------
def import_ct(
    ct_path: str | Path,
    labels_path: str | Path | None = None,
    spacing_mm: float | None = None,
    label_names: str | Path | None = None,
    thresholds: HUThresholds = HUThresholds(),
    skin_mm: float = 2.0,
    tissues: TissueTable | None = None,
    resample_labels: bool = False,
) -> CTPatient:
    """Import a CT (NIfTI file, DICOM folder or DICOM file) and an optional labelmap.

    labels_path: our label ids (NIfTI), a TotalSegmentator multilabel NIfTI, or a folder of
    TotalSegmentator masks; label_names: None (auto: sidecar JSON, header table, else our
    ids, or the TotalSegmentator v1/v2 class map decided from the ids and HU; refused when
    that does not decide), 'ours', 'totalseg' (v1 or v2, decided), 'totalseg-v1',
    'totalseg-v2' or a JSON file {id: name}; resample_labels: allow a labelmap on another
    grid (resampled nearest onto the CT's; >= 95 % of it must lie on the CT);
    spacing_mm: resample to isotropic voxels (0.25-5 mm), None keeps the CT grid.
    """
    t = tissues or default_tissue_table()
    if spacing_mm is not None:
        check_range("spacing_mm", spacing_mm, 0.25, 5.0, " mm")
    if label_names is not None:
        check_label_names(label_names)
    hu, aff, info = read_ct(ct_path)
    vols = [hu]
    if labels_path is not None:
        ids, levels, linfo = read_labelmap(labels_path, hu, aff, t, label_names, thresholds.fat,
                                           resample_labels)
        vols += [ids, levels]
        info.update(linfo)
    vols, aff = to_closest_ras(vols, aff)
    if spacing_mm is not None:
        shape, new = resample_grid(vols[0].shape, aff, spacing_mm)
        vols = [_resample_linear(vols[0], aff, shape, new)] + [
            resample_nearest(v, aff, shape, new) for v in vols[1:]]
        aff = new
    hu = vols[0].astype(np.float32, copy=False)
    labels = hu_to_labels(hu, aff, t, thresholds, skin_mm)
    vertebrae, landmarks = {}, {}
    if labels_path is not None:
        ids, levels = vols[1], vols[2]
        labels = np.where(ids == UNLABELLED, labels, ids).astype(np.uint8)
        from needleguide.anatomy.importer_spine import vertebra_landmarks, vertebrae_from_levels

        cord = labels == t.label("spinal_cord")
        vertebrae = vertebrae_from_levels(levels, aff, totalseg.LEVELS, cord)
        if info.get("labels_mode") == "ids":  # our own labels: our own geometry files
            from needleguide.anatomy.importer_spine import read_geometry_sidecars

            landmarks, vertebrae = read_geometry_sidecars(Path(labels_path).parent)
    meta = {"source": "ct", "ct_path": str(ct_path),
            "hu_thresholds": dataclasses.asdict(thresholds), "skin_mm": skin_mm,
            **{k: v for k, v in info.items() if k != "LPSVoxelToPatient"}}
    p = CTPatient(labels=labels, VoxelToPatient=aff, tissues=t, vertebrae=vertebrae,
                  meta=meta, hu=hu)
    if vertebrae and not landmarks:
        landmarks = vertebra_landmarks(vertebrae, p.label_at, t)
    if landmarks:
        p = dataclasses.replace(p, landmarks=landmarks)
    return p
