"""Synthetic CT: Hounsfield units rendered from a Patient's labelmap, saved as NIfTI or DICOM.

Each tissue gets a nominal CT number (HU at ~120 kVp, values in docs/import.md):
air -1000, fat -100, muscle 50, blood 40, CSF 10, disc 80, cancellous bone 300, thin dense
cortical structures (pedicles, laminae, processes) 1200, steel 3000. Labels without an
explicit entry get the value of their X-ray material. Optional Gaussian blur (scanner
point-spread) and seeded Gaussian noise (quantum noise) make it look like a scan.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from needleguide.anatomy.patient import Patient
from needleguide.anatomy.tissues import TissueTable
from needleguide.errors import check_range

# Nominal HU by X-ray material key (fallback for tissues without an explicit value)
HU_BY_MATERIAL: dict[str, float] = {
    "air": -1000.0, "adipose": -100.0, "muscle": 50.0, "blood": 40.0, "csf": 10.0,
    "cartilage": 90.0, "soft_tissue": 45.0, "skin": 30.0, "cancellous_bone": 300.0,
    "cortical_bone": 1200.0, "steel": 3000.0,
}

# Explicit values where a tissue differs from its material's nominal number
HU_BY_TISSUE: dict[str, float] = {
    "internal_air": -1000.0, "disc": 80.0, "facet_joint_space": 20.0, "sij_space": 20.0,
    "hip_cartilage": 100.0, "trachea_wall": 100.0, "ligamentum_flavum": 70.0,
    "facet_capsule": 60.0, "hip_capsule": 60.0, "sacrococcygeal_ligament": 60.0,
    "interspinous_ligament": 60.0, "dura": 50.0, "spinal_cord": 35.0, "nerve_root": 35.0,
    "drg": 35.0, "medial_branch": 35.0, "third_occipital_nerve": 35.0, "thyroid": 90.0,
    "kidney": 30.0, "oesophagus": 40.0, "soft_tissue": 40.0,
    "vertebral_body": 300.0, "sacrum": 280.0, "coccyx": 250.0, "ilium": 320.0,
    "femoral_head": 320.0, "femoral_neck": 350.0, "acetabulum": 380.0,
    "bone_cancellous": 300.0, "pedicle": 1200.0, "lamina": 1200.0,
    "spinous_process": 1000.0, "transverse_process": 1000.0,
    "superior_articular_process": 1200.0, "inferior_articular_process": 1200.0,
    "anterior_tubercle": 1000.0, "occiput": 1300.0, "rib": 900.0, "bone_cortical": 1400.0,
    "metal": 3000.0, "lung": -750.0, "clavicle": 900.0, "sternum": 300.0,
}


CORTEX_HU = 1000.0  # cortical shell of a 1 mm voxel (0.5–1 mm cortex at ~1500 HU, averaged)


def hu_lut(tissues: TissueTable) -> np.ndarray:
    """256-entry float32 lookup: label id -> nominal HU (unknown labels: soft tissue 40)."""
    lut = np.full(256, 40.0, dtype=np.float32)
    for t in tissues:
        lut[t.label] = HU_BY_TISSUE.get(t.name, HU_BY_MATERIAL.get(t.material, 40.0))
    return lut


def synthetic_ct(
    patient: Patient,
    noise_hu: float = 0.0,
    blur_mm: float = 0.0,
    seed: int | np.random.Generator | None = 0,
    cortex_mm: float = 0.0,
    texture_hu: float = 0.0,
) -> np.ndarray:
    """HU volume (float32, same grid as ``patient.labels``) rendered from the labelmap.

    noise_hu: standard deviation of additive Gaussian noise (HU, 0-500);
    blur_mm: standard deviation of a Gaussian point-spread function (mm, 0-10);
    seed: seed or Generator for the noise (same seed, same voxels);
    cortex_mm: bone voxels within this distance of non-bone are cortex, at least
    ``CORTEX_HU`` (0: off); texture_hu: σ of the trabecular texture inside bone whose
    nominal CT number is below 700 HU (0: off; ``anatomy.bone``, seeded by the patient).
    """
    check_range("noise_hu", noise_hu, 0.0, 500.0, " HU")
    check_range("blur_mm", blur_mm, 0.0, 10.0, " mm")
    check_range("cortex_mm", cortex_mm, 0.0, 4.0, " mm")
    check_range("texture_hu", texture_hu, 0.0, 400.0, " HU")
    hu = hu_lut(patient.tissues)[patient.labels]
    if cortex_mm > 0 or texture_hu > 0:
        from needleguide.anatomy.bone import cortical_shell, trabecular_texture

        found = cortical_shell(patient.labels, patient.tissues, patient.spacing_mm,
                               max(cortex_mm, 1e-3))
        if found is not None:
            sl, sub, shell = found
            h = hu[sl]
            if cortex_mm > 0:
                h[shell] = np.maximum(h[shell], CORTEX_HU)
            if texture_hu > 0:
                inner = sub & ~shell if cortex_mm > 0 else sub.copy()
                inner &= h < 700.0
                tex = trabecular_texture(sub.shape, patient.spacing_mm,
                                         int(patient.meta.get("seed", 0)))
                h[inner] += np.float32(texture_hu) * tex[inner]
    if blur_mm > 0:
        from scipy import ndimage

        hu = ndimage.gaussian_filter(hu, sigma=blur_mm / patient.spacing_mm, mode="nearest")
    if noise_hu > 0:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_hu)
    return hu


def hu_to_density_g_cm3(hu: np.ndarray) -> np.ndarray:
    """Mass density (g/cm³, float32) from HU by a bilinear calibration: air/fat/water
    mixtures below 0 HU (rho = 1 + HU/1000, at least 0.0012), bone-like above
    (rho = 1 + 0.0006 HU: 300 HU -> 1.18, 1500 HU -> 1.9), in the spirit of Schneider et al.
    (Phys Med Biol 1996). For imagers that want density from an imported CT (``.hu``);
    metal is not calibrated (CT saturates): use the ``metal`` label (steel) there."""
    h = np.asarray(hu, dtype=np.float32)
    rho = np.where(h < 0, 1.0 + h / 1000.0, 1.0 + 0.0006 * h)
    return np.maximum(rho, 0.0012).astype(np.float32)


def save_ct_nifti(hu: np.ndarray, VoxelToPatient: np.ndarray, path: str | Path) -> Path:
    """Write a HU volume as int16 NIfTI (rounded, clipped to [-1024, 32767]), atomically."""
    from needleguide.anatomy.nifti import save_volume

    return save_volume(np.clip(np.rint(hu), -1024, 32767).astype(np.int16), VoxelToPatient, path)


def save_ct_dicom(hu: np.ndarray, VoxelToPatient: np.ndarray, folder: str | Path,
                  **kw) -> Path:
    """Write a HU volume as a CT DICOM series (see ``importer_dicom.write_dicom_series``)."""
    from needleguide.anatomy.importer_dicom import write_dicom_series

    return write_dicom_series(hu, VoxelToPatient, folder, **kw)


def totalseg_masks(patient: Patient) -> dict[str, np.ndarray]:
    """What TotalSegmentator would output for the phantom: boolean masks by its names
    (``vertebrae_T11`` … ``vertebrae_L5`` / ``vertebrae_C*`` — each spine bone voxel given to
    the level whose end-plate slab holds it —, ``sacrum``, ``spinal_cord``, ``hip_left`` /
    ``hip_right``, ``iliopsoas_*``, ``autochthon_*``, ``gluteus_maximus_*``), on the
    patient's grid. For testing the CT path on anatomy whose truth is known."""
    from needleguide import geometry

    t = patient.tissues
    labels = patient.labels
    spine = [n for n in ("vertebral_body", "pedicle", "lamina", "spinous_process",
                         "transverse_process", "superior_articular_process",
                         "inferior_articular_process", "anterior_tubercle") if n in t]
    names = [n for n in patient.vertebrae if n[0] in "CTL"]
    out: dict[str, np.ndarray] = {}
    idx = np.argwhere(np.isin(labels, [t.label(n) for n in spine]))
    if names and idx.size:
        pts = geometry.apply(patient.VoxelToPatient, idx.astype(float))
        slab = np.stack([np.abs((pts - patient.vertebrae[n].center_mm)
                                @ patient.vertebrae[n].superior) for n in names], axis=1)
        who = np.argmin(slab, axis=1)
        for q, n in enumerate(names):
            m = np.zeros(labels.shape, bool)
            m[tuple(idx[who == q].T)] = True
            out[f"vertebrae_{n}"] = m
    x_mid = float(np.median(geometry.apply(patient.VoxelToPatient,
                                           np.argwhere(labels > 0)[::997].astype(float))[:, 0]))
    xs = geometry.apply(patient.VoxelToPatient,
                        np.stack([np.arange(labels.shape[0]), np.zeros(labels.shape[0]),
                                  np.zeros(labels.shape[0])], axis=1).astype(float))[:, 0]
    right = (xs > x_mid)[:, None, None]
    for ours, theirs, sided in (("sacrum", "sacrum", False), ("spinal_cord", "spinal_cord", False),
                                ("ilium", "hip", True), ("psoas", "iliopsoas", True),
                                ("paraspinal_muscle", "autochthon", True),
                                ("gluteal_muscle", "gluteus_maximus", True)):
        if ours not in t:
            continue
        m = labels == t.label(ours)
        if not m.any():
            continue
        if sided:
            out[f"{theirs}_right"] = m & right
            out[f"{theirs}_left"] = m & ~right
        else:
            out[theirs] = m
    return out
