"""Checks on what the CT importer reads: finite voxels, a usable voxel -> patient affine,
NIfTI headers read without nibabel's silent fixes, and label maps on the CT's grid.

Each failed check raises one :class:`UserError` line naming the input and what is wrong.
nibabel "fixes" a zero voxel size in a NIfTI header to 1 mm and a negative one to its
absolute value while loading (and logs it); here the header is read as stored and such a
file is refused instead.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from needleguide.errors import UserError

MIN_VOXEL_MM = 1e-3  # a voxel edge below 1 µm is a broken header, not a scan
MIN_OVERLAP = 0.95  # fraction of a resampled label map's box that must lie on the CT


def check_finite(vol: np.ndarray, what: str, p: Path | str) -> None:
    """Refuse NaN or infinite voxels (a float volume only)."""
    if not np.issubdtype(vol.dtype, np.floating):
        return
    bad = int(vol.size - np.count_nonzero(np.isfinite(vol)))
    if bad:
        raise UserError(f"{what}: {p} has {bad} NaN or infinite voxel(s); every voxel must "
                        "be a finite number")


def check_affine(aff: np.ndarray, what: str, p: Path | str) -> np.ndarray:
    """A voxel -> patient affine with finite entries, voxel edges of at least 1 µm and
    three independent axes; returned as float64."""
    a = np.asarray(aff, dtype=float)
    if a.shape != (4, 4) or not np.all(np.isfinite(a)):
        raise UserError(f"{what}: {p} has a voxel-to-patient affine with NaN or infinite "
                        "entries")
    sp = np.linalg.norm(a[:3, :3], axis=0)
    if np.any(sp < MIN_VOXEL_MM):
        raise UserError(f"{what}: {p} has a zero voxel size in its affine (voxel edges "
                        f"{np.round(sp, 4).tolist()} mm); each must be > 0")
    if abs(np.linalg.det(a[:3, :3] / sp)) < 1e-3:
        raise UserError(f"{what}: {p} has a degenerate affine (its voxel axes are not "
                        "independent)")
    return a


def load_nifti(p: Path, what: str, as_float: bool = False):
    """(image, data array) of a NIfTI file whose stored header has positive, finite voxel
    sizes and a usable affine; data (float32 with ``as_float``, else as stored) squeezed
    to 3D when it has one volume."""
    import nibabel as nib

    quiet = logging.getLogger("nibabel.global")  # it prints the header fixes it makes
    level = quiet.level
    try:
        quiet.setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = nib.load(str(p))
            with nib.openers.ImageOpener(str(p)) as f:
                raw = type(img.header).from_fileobj(f, check=False)
            data = img.get_fdata(dtype=np.float32) if as_float else np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel raises many types for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"{what}: cannot read {p} as NIfTI ({type(e).__name__}: {first})"
                        ) from None
    finally:
        quiet.setLevel(level)
    pix = np.asarray(raw["pixdim"][1:4], dtype=float)
    if not np.all(np.isfinite(pix)) or np.any(pix <= 0):
        raise UserError(f"{what}: {p} stores voxel sizes (pixdim) {pix.tolist()}; each must "
                        "be a positive number (mm)")
    check_affine(img.affine, what, p)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 1:
        raise UserError(f"{what}: {p} holds shape {data.shape}; expected a 3D volume")
    return img, data


def same_grid(shape, aff, ct_shape, ct_aff, tol_vox: float = 0.01) -> bool:
    """True when both grids have the same voxel centres: the index map between them is an
    exact axis permutation/flip (within ``tol_vox`` voxels), so no interpolation is needed."""
    m = np.linalg.inv(ct_aff) @ aff  # label index -> CT index
    r = m[:3, :3]
    perm = np.rint(r)
    if np.abs(r - perm).max() > tol_vox or np.abs(m[:3, 3] - np.rint(m[:3, 3])).max() > tol_vox:
        return False
    if not (np.abs(perm).sum(axis=0) == 1).all() or not (np.abs(perm).sum(axis=1) == 1).all():
        return False
    corners = np.array([[0, 0, 0], np.array(shape) - 1], dtype=float)
    ct_idx = corners @ perm.T + np.rint(m[:3, 3])
    lo, hi = ct_idx.min(axis=0), ct_idx.max(axis=0)
    return bool(np.all(lo == 0) and np.all(hi == np.array(ct_shape) - 1))


def _box(shape, aff) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned patient-space box of a grid, voxel edges included."""
    c = np.array([[i, j, k] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5)
                  for k in (-0.5, shape[2] - 0.5)])
    w = c @ aff[:3, :3].T + aff[:3, 3]
    return w.min(axis=0), w.max(axis=0)


def overlap_fraction(shape, aff, ct_shape, ct_aff) -> float:
    """Fraction of the label grid's patient-space box that lies inside the CT's box."""
    lo, hi = _box(shape, aff)
    clo, chi = _box(ct_shape, ct_aff)
    inter = np.clip(np.minimum(hi, chi) - np.maximum(lo, clo), 0, None).prod()
    return float(inter / max((hi - lo).prod(), 1e-12))


def check_label_grid(p: Path, shape, aff, ct_shape, ct_aff, resample: bool) -> bool:
    """Whether a label volume must be resampled onto the CT grid; refuses another grid
    without ``resample`` and, with it, a map less than 95 % of whose box lies on the CT."""
    if tuple(shape) == tuple(ct_shape) and np.allclose(aff, ct_aff, atol=1e-3):
        return False
    if same_grid(shape, aff, ct_shape, ct_aff):
        return True  # same voxel centres, other axis order: exact re-indexing
    if not resample:
        raise UserError(
            f"labels: {p} is on another grid than the CT (shape {tuple(shape)}, spacing "
            f"{np.round(np.linalg.norm(aff[:3, :3], axis=0), 3).tolist()} mm vs "
            f"{tuple(ct_shape)}, {np.round(np.linalg.norm(ct_aff[:3, :3], axis=0), 3).tolist()}"
            " mm); pass --resample-labels to resample it (nearest) onto the CT grid")
    f = overlap_fraction(shape, aff, ct_shape, ct_aff)
    if f < MIN_OVERLAP:
        raise UserError(f"labels: only {100 * f:.0f}% of {p}'s extent lies on the CT (at "
                        f"least {100 * MIN_OVERLAP:.0f}% required); is it the CT's label map?")
    return True
