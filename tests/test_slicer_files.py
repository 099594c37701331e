"""PLUS / 3D Slicer files: ``.seq.nrrd`` recordings and the patient's ``.mrml`` scene.

What Slicer's readers need, checked against their sources (read, not copied):

* Slicer core, ``Libs/MRML/Core/vtkMRMLVolumeSequenceStorageNode.cxx`` and
  ``Libs/vtkITK/vtkITKImageSequenceReader.cxx`` (Slicer/Slicer), and
  ``Docs/developer_guide/modules/sequences.md``: a NRRD axis of kind ``list`` (the frames),
  at most 3 domain axes (+ one pixel-component axis), ``axis 3 index type`` /
  ``axis 3 index values`` (the index, one value per frame), ``labels``/``units`` of the list
  axis (index name, unit), ``DataNodeClassName``.
* Slicer core, ``Libs/MRML/Core/vtkMRMLLinearTransformSequenceStorageNode.cxx``
  (``ReadSequenceFileTransforms``, used by SlicerIGSIO's metafile importer): header lines
  ``name:=value`` under 1000 characters, ``Seq_FrameNNNN_<Name>Transform`` with 16 numbers
  (vtkAddonMathUtilities::FromString wants a square count), ``Seq_FrameNNNN_Timestamp``,
  ``UltrasoundImageOrientation``, ``UltrasoundImageType``; the matrix is used as
  TransformToParent unchanged (no LPS flip).
* IGSIO ``SequenceIO/vtkIGSIONrrdSequenceIO.cxx`` (PLUS's NRRD reader/writer): ``kinds``
  with ``domain`` (≤ 3) / ``list`` / ``vector``, ``sizes``, ``type``, ``encoding``,
  ``ultrasound image orientation``, ``ultrasound image type``,
  ``Seq_FrameNNNN_<Name>TransformStatus`` (OK / INVALID).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from needleguide.errors import UserError
from needleguide.io.plus_sequence import SequenceRecorder, read_sequence, record_frames

#: header fields every recording must carry (see the module docstring for the sources)
SLICER_VOLUME_SEQUENCE_FIELDS = ("kinds", "sizes", "space", "space directions",
                                 "space origin", "labels", "units", "DataNodeClassName",
                                 "axis 3 index type", "axis 3 index values")
PLUS_FIELDS = ("UltrasoundImageOrientation", "UltrasoundImageType",
               "ultrasound image orientation", "ultrasound image type",
               "ElementNumberOfChannels")
PLUS_FRAME_FIELDS = ("Timestamp", "ImageStatus", "ImageToReferenceTransform",
                     "ImageToReferenceTransformStatus")


def _pose(tx: float = 0.0, sc: float = 0.2, sr: float = 0.25) -> np.ndarray:
    """Pixel (i = col, j = row) → RAS mm: columns run right, rows posterior (depth)."""
    p = np.eye(4)
    p[:3, 0] = [sc, 0.0, 0.0]          # i = column → right
    p[:3, 1] = [0.0, -sr, 0.0]         # j = row → posterior (depth)
    p[:3, 2] = [0.0, 0.0, 1.0]
    p[:3, 3] = [10.0 + tx, 40.0, -5.0]
    return p


def _rot_z(deg: float, t) -> np.ndarray:
    a = np.radians(deg)
    m = np.eye(4)
    m[:2, :2] = [[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]
    m[:3, 3] = t
    return m


def _record(path, n=4, rgb=False, moving=True):
    rng = np.random.default_rng(0)
    frames, probes, tips, times = [], [], [], []
    with SequenceRecorder(path) as rec:
        for f in range(n):
            img = rng.integers(0, 256, (24, 32, 3) if rgb else (24, 32), dtype=np.uint8)
            probe = _rot_z(5.0 * f, [1.0 * f, 2.0, 3.0])
            tip = _rot_z(-3.0 * f, [0.5, -f, 7.25])
            t = 12.5 + 0.04 * f
            rec.add(img, _pose(f if moving else 0.0), {"ProbeToReference": probe,
                                                       "NeedleTipToReference": tip}, t)
            frames.append(img), probes.append(probe), tips.append(tip), times.append(t)
    return np.array(frames), np.array(probes), np.array(tips), np.array(times)


def test_recording_reread_with_pynrrd(tmp_path):
    import nrrd

    p = tmp_path / "rec.seq.nrrd"
    frames, probes, tips, times = _record(p)
    data, h = nrrd.read(str(p), index_order="C")
    assert list(h["kinds"]) == ["domain", "domain", "domain", "list"]
    assert list(h["sizes"]) == [32, 24, 1, 4]            # col, row, k, frame
    assert data.shape == (4, 1, 24, 32) and data.dtype == np.uint8
    assert np.array_equal(data[:, 0], frames)
    d = np.asarray(h["space directions"], float)
    assert np.allclose(np.linalg.norm(d[:2], axis=1), [0.2, 0.25])  # spacing col, row
    assert np.all(np.isnan(d[3]))                                    # list axis: none
    assert np.allclose(h["space origin"], _pose(0)[:3, 3])           # the first frame's
    assert h["space"] == "right-anterior-superior"
    for key in SLICER_VOLUME_SEQUENCE_FIELDS + PLUS_FIELDS:
        assert key in h, key
    for f in range(4):
        for field in PLUS_FRAME_FIELDS + ("ProbeToReferenceTransform",
                                          "NeedleTipToReferenceTransformStatus"):
            assert f"Seq_Frame{f:04d}_{field}" in h
    assert h["axis 3 index values"].split() == [f"{t:.3f}" for t in times]
    assert h["labels"][-1] == "time" and h["units"][-1] == "s"
    assert h["UltrasoundImageType"] == "BRIGHTNESS"
    vals = h["Seq_Frame0002_ProbeToReferenceTransform"].split()
    assert len(vals) == 16 and np.allclose(np.array(vals, float).reshape(4, 4), probes[2])
    # Slicer's PLUS-header parser reads 1000 characters a line and stops at a line without
    # ':' — every Seq_Frame line must come before the one long index-values line
    header = p.read_bytes().split(b"\n\n", 1)[0].decode("ascii").splitlines()
    seq_lines = [i for i, s in enumerate(header) if s.startswith("Seq_Frame")]
    assert all(len(header[i]) < 1000 for i in seq_lines)
    assert max(seq_lines) < header.index(next(s for s in header
                                              if s.startswith("axis 3 index values")))


def test_read_sequence_round_trip(tmp_path):
    p = tmp_path / "rec.seq.nrrd"
    frames, probes, tips, times = _record(p, n=5)
    got, t, tr = read_sequence(p)
    assert np.array_equal(got, frames)
    assert np.allclose(t, times)
    assert set(tr) == {"ImageToReference", "ProbeToReference", "NeedleTipToReference"}
    assert np.allclose(tr["ProbeToReference"], probes)
    assert np.allclose(tr["NeedleTipToReference"], tips)
    assert np.allclose(tr["ImageToReference"][3], _pose(3))


def test_rgb_recording(tmp_path):
    import nrrd

    p = tmp_path / "rgb.seq.nrrd"
    frames, probes, _, times = _record(p, n=3, rgb=True)
    data, h = nrrd.read(str(p), index_order="C")
    assert list(h["kinds"]) == ["vector", "domain", "domain", "domain", "list"]
    assert list(h["sizes"]) == [3, 32, 24, 1, 3]
    assert h["UltrasoundImageType"] == "RGB_COLOR" and h["ElementNumberOfChannels"] == "3"
    assert h["DataNodeClassName"] == "vtkMRMLVectorVolumeNode"
    got, t, tr = read_sequence(p)
    assert got.shape == (3, 24, 32, 3) and np.array_equal(got, frames)
    assert np.allclose(tr["ProbeToReference"], probes) and np.allclose(t, times)


def test_uint16_and_invalid_transform(tmp_path):
    p = tmp_path / "u16.seq.nrrd"
    with SequenceRecorder(p) as rec:
        rec.add(np.full((4, 5), 1000, np.uint16), _pose(), {"ProbeToReference": np.eye(4)}, 0)
        rec.add(np.full((4, 5), 2000, np.uint16), _pose(), {"ProbeToReference": None}, 0.1)
    frames, _, tr = read_sequence(p)
    assert frames.dtype == np.uint16 and frames[1, 0, 0] == 2000
    assert np.allclose(tr["ProbeToReference"][0], np.eye(4))
    assert np.all(np.isnan(tr["ProbeToReference"][1]))   # status INVALID


def test_recorder_refuses_bad_input_and_leaves_nothing(tmp_path):
    p = tmp_path / "bad.seq.nrrd"
    rec = SequenceRecorder(p)
    rec.add(np.zeros((4, 5), np.uint8), _pose(), {}, 0.0)
    with pytest.raises(UserError, match="frames must match"):
        rec.add(np.zeros((4, 6), np.uint8), _pose(), {}, 0.1)
    with pytest.raises(UserError, match="t_s"):
        rec.add(np.zeros((4, 5), np.uint8), _pose(), {}, 0.0)
    with pytest.raises(UserError, match="4x4"):
        rec.add(np.zeros((4, 5), np.uint8), np.eye(3), {}, 0.2)
    with pytest.raises(UserError, match="transform name"):
        rec.add(np.zeros((4, 5), np.uint8), _pose(), {"probe": np.eye(4)}, 0.2)
    with pytest.raises(UserError, match="image"):
        rec.add(np.zeros((4, 5), np.float32), _pose(), {}, 0.2)
    rec.abort()
    with pytest.raises(RuntimeError), SequenceRecorder(p) as r2:
        r2.add(np.zeros((4, 5), np.uint8), _pose(), {}, 0.0)
        raise RuntimeError("stop")
    with pytest.raises(UserError, match="no frames"):
        SequenceRecorder(p).close()
    assert list(tmp_path.iterdir()) == []      # no file, no temporary leftovers


def test_record_frames_from_needleguide_frames(tmp_path):
    from needleguide.frame import Frame

    rng = np.random.default_rng(1)
    i2p = _rot_z(20.0, [5.0, 6.0, 7.0])
    frames = [Frame(pixels=rng.random((16, 20)).astype(np.float32), spacing_mm=(0.3, 0.2),
                    ImageToPatient=i2p, time_s=0.1 * k, modality="us") for k in range(3)]
    p = record_frames(tmp_path / "f.seq.nrrd", frames,
                      [{"NeedleTipToPatient": _rot_z(k, [0, 0, k])} for k in range(3)])
    got, t, tr = read_sequence(p)
    assert got.shape == (3, 16, 20) and got.dtype == np.uint8
    assert np.allclose(t, [0.0, 0.1, 0.2])
    # pixel (col 7, row 3) lands where the Frame puts it
    ras = tr["ImageToReference"][1] @ [7, 3, 0, 1]
    assert np.allclose(ras[:3], frames[1].pixel_to_patient(7, 3))
    assert np.allclose(tr["NeedleTipToPatient"][2], _rot_z(2, [0, 0, 2]))


# ---- the Slicer scene -------------------------------------------------------------------
def _small_patient():
    from needleguide.anatomy.patient import Landmark, Patient

    lab = np.zeros((30, 26, 34), np.uint8)
    lab[3:27, 3:23, 3:31] = 1        # skin shell …
    lab[4:26, 4:22, 4:30] = 2        # … around fat
    lab[10:20, 8:16, 6:14] = 6       # a vertebral body
    lab[10:20, 8:16, 14:17] = 15     # a disc
    lab[10:20, 8:16, 17:25] = 6
    lab[21:23, 9:11, 5:29] = 33      # a nerve root
    a = np.array([[0.0, -1.5, 0.0, 40.0],    # i → anterior, j → left: axes permuted
                  [1.5, 0.0, 0.0, -20.0],
                  [0.0, 0.0, 2.0, 100.0],
                  [0.0, 0.0, 0.0, 1.0]])
    lms = {"L4.body": Landmark("L4.body", a[:3, :3] @ [15, 12, 10] + a[:3, 3],
                               "vertebral_body", "centre of L4"),
           "root": Landmark("root", a[:3, :3] @ [22, 10, 20] + a[:3, 3], "nerve_root")}
    return Patient(labels=lab, VoxelToPatient=a, landmarks=lms)


def _check_scene(folder, patient):
    import nrrd

    from needleguide.io.slicer_scene import read_vtk_points, scene_files

    mrml = folder / "patient.mrml"
    root = ET.parse(mrml).getroot()
    assert root.tag == "MRML"
    ids = {e.attrib["id"] for e in root}
    for e in root:       # every reference points at a node of the scene
        for part in filter(None, e.attrib.get("references", "").split(";")):
            role, _, refs = part.partition(":")
            assert role in ("display", "storage", "colorNodeID")
            assert all(r in ids for r in refs.split())
    tags = [e.tag for e in root]
    for tag in ("LabelMapVolume", "VolumeArchetypeStorage", "LabelMapVolumeDisplay",
                "ColorTable", "ColorTableStorage", "Model", "ModelStorage", "ModelDisplay"):
        assert tag in tags, tag
    files = scene_files(mrml)
    assert files and all(f.is_file() for f in files)
    # label map: same labels, and its LPS geometry is the patient's RAS affine
    lab, h = nrrd.read(str(folder / "labelmap.nrrd"))
    assert h["space"] == "left-posterior-superior"
    assert np.array_equal(lab, patient.labels)
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(h["space directions"], float).T
    lps[:3, 3] = h["space origin"]
    assert np.allclose(np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps, patient.VoxelToPatient)
    # colour table: every label of the patient, with the tissue's colour
    ctbl = {int(s.split()[0]): s.split() for s in
            (folder / "tissues.ctbl").read_text().splitlines() if s and s[0] != "#"}
    for lbl in np.unique(patient.labels):
        t = patient.tissues[int(lbl)]
        assert ctbl[int(lbl)][1] == t.name and list(map(int, ctbl[int(lbl)][2:5])) == \
            list(t.color)
    # models: inside the volume's bounds (in RAS after the LPS flip)
    lo, hi = patient.bounds_mm()
    models = [f for f in files if f.suffix == ".vtk"]
    assert {m.name for m in models} >= {"model_bone.vtk", "model_skin.vtk"}
    for m in models:
        head = m.read_bytes()[:200].split(b"\n")
        assert head[0] == b"# vtk DataFile Version 4.2" and b"SPACE=LPS" in head[1]
        ras = read_vtk_points(m) * [-1.0, -1.0, 1.0]
        assert len(ras) > 10
        assert np.all(ras >= lo - 1e-3) and np.all(ras <= hi + 1e-3), m.name
    return files


def test_slicer_scene_small_patient(tmp_path):
    p = _small_patient()
    from needleguide.io.slicer_scene import write_slicer_scene

    mrml = write_slicer_scene(tmp_path / "scene", p)
    files = _check_scene(mrml.parent, p)
    assert {f.name for f in files} >= {"model_discs.vtk", "model_nerves.vtk",
                                       "landmarks.mrk.json"}
    mk = json.loads((mrml.parent / "landmarks.mrk.json").read_text())
    assert "markups-schema-v1.0.3.json" in mk["@schema"]
    cps = mk["markups"][0]["controlPoints"]
    assert mk["markups"][0]["type"] == "Fiducial" and [c["label"] for c in cps] == \
        ["L4.body", "root"]
    assert np.allclose(np.array(cps[0]["position"]) * [-1, -1, 1],
                       p.landmarks["L4.body"].position_mm, atol=1e-3)
    # bone surface near the body: vertices within the vertebral body's RAS box (+ a voxel)
    from needleguide.io.slicer_scene import read_vtk_points

    bone = read_vtk_points(mrml.parent / "model_bone.vtk") * [-1.0, -1.0, 1.0]
    ijk = (np.linalg.inv(p.VoxelToPatient) @ np.c_[bone, np.ones(len(bone))].T).T[:, :3]
    assert np.all(ijk.min(0) > [8, 6, 4]) and np.all(ijk.max(0) < [21, 17, 26])
    assert not [f for f in mrml.parent.iterdir() if f.name.startswith(".")]


def test_phantom_cli_slicer(tmp_path, capsys):
    from needleguide.anatomy.nifti import load_volume
    from needleguide.anatomy.patient import Landmark, Patient
    from needleguide.cli import main

    out = tmp_path / "ph"
    rc = main(["phantom", "--spacing", "3", "--no-pngs", "--slicer", "--out", str(out)])
    assert rc == 0
    assert "3D Slicer scene" in capsys.readouterr().err
    labels, affine = load_volume(out / "labels.nii.gz")
    lms = json.loads((out / "landmarks.json").read_text())
    p = Patient(labels=labels, VoxelToPatient=affine,
                landmarks={k: Landmark(k, np.array(v["ras_mm"]), v["tissue"])
                           for k, v in lms.items()})
    files = _check_scene(out, p)
    names = {f.name for f in files}
    assert {"model_vessels.vtk", "model_nerves.vtk", "model_discs.vtk"} <= names
    assert sum(f.stat().st_size for f in files if f.suffix == ".vtk") < 6e6
    manifest = json.loads((out / ".needleguide.json").read_text())
    assert {"patient.mrml", "labelmap.nrrd", "tissues.ctbl"} <= set(manifest["files"])
    mk = json.loads((out / "landmarks.mrk.json").read_text())
    assert len(mk["markups"][0]["controlPoints"]) == len(lms)
