"""A CT slab that cuts vertebrae at its ends: the cut levels are flagged and take their
superior axis from the complete ones (a displaced centroid once tilted a named view 30°)."""

from __future__ import annotations

import dataclasses

import nibabel as nib
import numpy as np

from needleguide.anatomy.importer import import_ct
from needleguide.anatomy.phantom import build_phantom
from needleguide.anatomy.synthetic_ct import save_ct_nifti, synthetic_ct, totalseg_masks


def test_levels_cut_by_the_scan_take_the_axis_of_the_complete_ones(tmp_path):
    p = build_phantom("lumbar", spacing_mm=2.0)
    z = p.vertebrae["L2"].center_mm[2]
    k = np.rint(p.voxel_of([0.0, 0.0, z])[2]).astype(int)
    half = int(round(45.0 / 2.0))  # a 90 mm slab centred on L2: L1 and L3 are cut
    sl = slice(k - half, k + half)
    aff = p.VoxelToPatient.copy()
    aff[:3, 3] += aff[:3, 2] * (k - half)
    cut = dataclasses.replace(p, labels=p.labels[:, :, sl].copy(), VoxelToPatient=aff,
                              renderer=None)
    hu = synthetic_ct(p)[:, :, sl]
    save_ct_nifti(hu, aff, tmp_path / "ct.nii.gz")
    seg = tmp_path / "seg"
    seg.mkdir()
    for name, m in totalseg_masks(cut).items():
        if m.any():
            nib.save(nib.Nifti1Image(m.astype(np.uint8), aff), seg / f"{name}.nii.gz")
    ct = import_ct(tmp_path / "ct.nii.gz", seg)
    assert ct.vertebrae["L2"].extra["truncated"] is False
    flagged = [n for n, v in ct.vertebrae.items() if v.extra["truncated"]]
    assert flagged and "L2" not in flagged
    for n, v in ct.vertebrae.items():
        truth = p.vertebrae[n].superior
        assert np.degrees(np.arccos(np.clip(v.superior @ truth, -1, 1))) < 12.0, n


def test_a_level_whose_posterior_elements_outweigh_its_body_faces_the_column_way():
    """Upper thoracic levels collect the long spinous processes from above, so their mask's
    centroid lies behind the canal; their anterior axis (and body) follow the column."""
    from needleguide.anatomy.importer_spine import vertebrae_from_levels

    vol = np.zeros((60, 90, 100), np.uint8)
    cord = np.zeros(vol.shape, bool)
    cord[28:32, 38:42, :] = True  # the canal at y = 40 (1 mm voxels, RAS = index)
    for n in range(5):
        z0 = 5 + 18 * n
        vol[15:45, 50:80, z0:z0 + 14] = n + 1   # body: anterior (+y) of the canal
        vol[27:33, 10:34, z0:z0 + 14] = n + 1   # posterior elements
    vol[5:55, 0:34, 5 + 36:5 + 36 + 14] = 3    # level 3: a heavy posterior mass
    names = ("L1", "L2", "L3", "L4", "L5")
    v = vertebrae_from_levels(vol, np.eye(4), names, cord)
    for nm in names:
        assert v[nm].anterior[1] > 0.8  # (the neighbours of L3 tilt with its centroid)
        assert 55.0 < v[nm].center_mm[1] < 75.0  # the body's centre, not the posterior mass
    assert v["L3"].extra["anterior_from"] == "column"
    assert v["L2"].extra["anterior_from"] == "centroid"
