"""TotalSegmentator multilabel maps without a sidecar or header table: v1 and v2 are told
apart from the ids and the CT under them, an undecidable map is refused."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from needleguide.anatomy import totalseg
from needleguide.anatomy.importer import import_ct
from needleguide.anatomy.patient import Patient
from needleguide.anatomy.synthetic_ct import save_ct_nifti, synthetic_ct
from needleguide.errors import UserError
from test_import import T, toy_spine

LEVELS = {"L1": 54.0, "L2": 18.0, "L3": -18.0, "L4": -54.0}  # the toy's four vertebrae


def lumbar_scene() -> tuple[Patient, dict[str, np.ndarray]]:
    """The toy trunk with kidneys, psoas, IVC, liver, colon (air inside) and a sacrum
    painted in, and the TotalSegmentator-style mask of each structure (patient left +x)."""
    toy = toy_spine()
    L = T.label
    lab = toy.labels.copy()
    x, y, z = (toy.VoxelToPatient[a, a] * np.indices(toy.shape)[a] + toy.VoxelToPatient[a, 3]
               for a in range(3))
    body = lab != 0
    lab[body & (np.hypot(x + 18, y - 30) <= 6)] = L("ivc")
    for sx in (1, -1):
        lab[body & (np.hypot(x - 28 * sx, y - 2) <= 7) & (z < 40)] = L("psoas")
        lab[body & (((x - 40 * sx) / 6) ** 2 + ((y + 8) / 10) ** 2 + ((z - 30) / 25) ** 2
                    <= 1)] = L("kidney")
    liver = body & (x > 22) & (x < 50) & (y > 10) & (z > 45)
    lab[liver] = L("soft_tissue")
    colon = body & (np.hypot(x - 35, y - 22) <= 7) & (z > -40) & (z < 10)
    lab[colon] = L("soft_tissue")
    lab[colon & (np.hypot(x - 35, y - 22) <= 4)] = L("internal_air")
    sacrum = body & ((x / 20) ** 2 + ((y - 10) / 14) ** 2 <= 1) & (z < -72)
    lab[sacrum] = L("sacrum")
    left, right = x < 0, x > 0  # RAS: the patient's left is −x
    bone = np.isin(lab, [L("vertebral_body"), L("lamina"), L("spinous_process")])
    masks = {f"vertebrae_{n}": bone & (np.abs(z - zc) <= 17) for n, zc in LEVELS.items()}
    muscle, psoas, kidney = (lab == L(n) for n in ("paraspinal_muscle", "psoas", "kidney"))
    masks.update({
        "sacrum": sacrum, "spinal_cord": lab == L("spinal_cord"), "aorta": lab == L("aorta"),
        "inferior_vena_cava": lab == L("ivc"), "liver": liver, "colon": colon,
        "autochthon_left": muscle & left, "autochthon_right": muscle & right,
        "iliopsoas_left": psoas & left, "iliopsoas_right": psoas & right,
        "kidney_left": kidney & left, "kidney_right": kidney & right})
    return Patient(labels=lab, VoxelToPatient=toy.VoxelToPatient, tissues=T), masks


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp("scene")
    p, masks = lumbar_scene()
    save_ct_nifti(synthetic_ct(p, noise_hu=15, seed=1), p.VoxelToPatient, d / "ct.nii.gz")
    return d, p, masks


def _multilabel(d, p, masks, table: dict[int, str], name: str, extra: dict | None = None):
    """A bare multilabel NIfTI (no sidecar, no header table) with ``table``'s ids."""
    ids = {n: v for v, n in table.items()}
    ml = np.zeros(p.shape, np.uint8)
    for n, m in masks.items():
        if n in ids:  # v1 has no spinal_cord
            ml[m] = ids[n]
    for v, m in (extra or {}).items():
        ml[m] = v
    img = nib.Nifti1Image(ml, p.VoxelToPatient)
    assert not img.header.extensions
    nib.save(img, d / name)
    return d / name


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_totalseg_version_recognised_and_mapped_by_name(scene, version):
    d, p, masks = scene
    table = totalseg.TOTAL_V1 if version == "v1" else totalseg.TOTAL_V2
    seg = _multilabel(d, p, masks, table, f"{version}.nii.gz")
    assert not (d / f"{version}.json").exists()
    q = import_ct(d / "ct.nii.gz", seg)
    assert q.meta["label_table"] == f"totalseg-{version}"
    assert q.meta["label_table_from"] == "detected"
    assert q.meta["unknown_structures"] == {}
    assert list(q.vertebrae) == ["L1", "L2", "L3", "L4"]
    assert abs(q.vertebrae["L1"].center_mm[2] - LEVELS["L1"]) < 3.0
    for name, tissue in [("vertebrae_L1", "vertebral_body"), ("kidney_left", "kidney"),
                         ("iliopsoas_right", "psoas"), ("autochthon_left", "paraspinal_muscle"),
                         ("inferior_vena_cava", "ivc"), ("aorta", "aorta"),
                         ("sacrum", "sacrum")]:
        assert (q.labels[masks[name]] == T.label(tissue)).all(), name
    air = masks["colon"] & (q.hu < -400)
    assert air.sum() > 50 and (q.labels[air] == T.label("internal_air")).all()
    # the other version's table is contradicted by the CT; ours by the ids and the body at 0
    ev = q.meta["label_table_evidence"]
    other = "totalseg-v2" if version == "v1" else "totalseg-v1"
    assert "failed" in ev[other] and not ev[other].startswith("0 of")
    assert "not in it" in ev["ours"] or "id 0" in ev["ours"]
    # naming the family lets the ids decide the version; read as ours it is refused
    r = import_ct(d / "ct.nii.gz", seg, label_names="totalseg")
    assert r.meta["label_table"] == f"totalseg-{version}" and list(r.vertebrae) == list(
        q.vertebrae)


def test_undecidable_id_set_is_refused(scene):
    d, p, masks = scene  # only the aorta and the IVC: ids 7 and 8 in v1, pancreas and
    seg = _multilabel(d, p, {}, {}, "vessels.nii.gz",  # adrenal_gland_right in v2
                      {7: masks["aorta"], 8: masks["inferior_vena_cava"]})
    with pytest.raises(UserError) as e:
        import_ct(d / "ct.nii.gz", seg)
    msg = str(e.value)
    assert "\n" not in msg and "cannot tell" in msg and "--label-names" in msg
    assert "totalseg-v1 and totalseg-v2" in msg
    q = import_ct(d / "ct.nii.gz", seg, label_names="totalseg-v1")
    assert q.meta["structures"] == {"aorta": "aorta", "inferior_vena_cava": "ivc"}


def test_unknown_ids_are_listed_once(scene):
    import subprocess
    import sys

    d, p, masks = scene
    seg = _multilabel(d, p, masks, totalseg.TOTAL_V2, "v2x.nii.gz",
                      {200: masks["liver"], 201: masks["colon"]})
    r = subprocess.run([sys.executable, "-m", "needleguide", "import-ct", str(d / "ct.nii.gz"),
                        "--labels", str(seg), "--out", str(d / "o")], capture_output=True,
                       text=True, timeout=120)  # the real stderr, loggers included
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "totalseg-v2" in lines[0] and "vertebrae L1, L2, L3, L4" in lines[0]
    n = int(masks["liver"].sum() + masks["colon"].sum())
    assert lines[1] == (f"warning: 2 unknown structure(s) -> soft_tissue ({n} voxels): "
                        "id 200, id 201")
