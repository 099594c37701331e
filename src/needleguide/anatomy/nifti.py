"""NIfTI read/write of label volumes (nibabel), written atomically."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from needleguide.atomic import atomic_path
from needleguide.errors import UserError


def save_labels(labels: np.ndarray, VoxelToPatient: np.ndarray, path: str | Path) -> Path:
    """Write a uint8 label volume with its RAS affine to ``path`` (.nii or .nii.gz)."""
    return save_volume(np.asarray(labels, dtype=np.uint8), VoxelToPatient, path)


def save_volume(data: np.ndarray, VoxelToPatient: np.ndarray, path: str | Path) -> Path:
    """Write a volume (its dtype kept) with its RAS affine (mm, qform = sform) atomically."""
    img = nib.Nifti1Image(np.asarray(data), np.asarray(VoxelToPatient, float))
    img.header.set_xyzt_units("mm")
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def load_volume(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI volume: (data array, voxel -> RAS affine). Clear error if unreadable."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"file: {p} does not exist")
    try:
        img = nib.load(str(p))
        data = np.asanyarray(img.dataobj)
    except Exception as e:  # nibabel raises many types for bad files
        raise UserError(f"file: cannot read {p} as NIfTI ({type(e).__name__}: {e})") from None
    return data, np.asarray(img.affine, dtype=float)
