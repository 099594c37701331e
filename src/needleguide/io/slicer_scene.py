"""A patient as a 3D Slicer scene: ``patient.mrml`` + label map + colour table + models.

Files (all in one folder; each written atomically, the ``.mrml`` last, so a scene file is
never there without its data; callers that need the whole set to appear at once write into
an output set, as ``needleguide phantom --slicer`` does):

- ``labelmap.nrrd``: uint8 labels, gzip, ``space: left-posterior-superior``; ``space
  directions``/``space origin`` are the patient's RAS affine with x and y negated (Slicer,
  ITK and DICOM store LPS; Slicer shows RAS).
- ``tissues.ctbl``: Slicer's colour-table text format (``label name R G B A``, 0–255; spaces
  in names as ``_``, which Slicer shows as spaces); label 0 (air) transparent.
- ``model_<structure>.vtk``: surfaces from ``skimage.measure.marching_cubes`` on a lightly
  smoothed mask (bone, discs, nerves, vessels, skin — those the patient has), coarsened
  until each has at most ``max_faces`` triangles; legacy VTK 4.2 binary PolyData written by
  hand (POINTS, POLYGONS, point NORMALS) with ``SPACE=LPS`` in the header line, as Slicer's
  vtkMRMLModelStorageNode writes and reads it (coordinates in LPS mm).
- ``landmarks.mrk.json``: the named landmarks as a Markups fiducial list (Slicer markups
  schema v1.0.3, ``coordinateSystem: LPS``).
- ``patient.mrml``: MRML XML: ``LabelMapVolume`` (+ ``LabelMapVolumeDisplay`` using the
  ``ColorTable``, + ``VolumeArchetypeStorage``), ``ColorTable`` + ``ColorTableStorage``,
  one ``Model`` + ``ModelDisplay`` + ``ModelStorage`` (``coordinateSystem="LPS"``) per
  surface, ``MarkupsFiducial`` + ``MarkupsDisplay`` + ``MarkupsJsonStorage``; node links
  through ``references="role:id;..."`` as vtkMRMLNode writes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from needleguide.atomic import atomic_path, write_json, write_text

MRML_NAME = "patient.mrml"
LABELMAP_NAME = "labelmap.nrrd"
COLORS_NAME = "tissues.ctbl"
MARKUPS_NAME = "landmarks.mrk.json"
MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                  "Markups/Resources/Schema/markups-schema-v1.0.3.json#")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: surface models: name → (how to pick the labels, opacity)
STRUCTURES: dict[str, tuple[str, float]] = {
    "bone": ("group:bone", 1.0),
    "discs": ("name:disc", 1.0),
    "nerves": ("group:neural", 1.0),
    "vessels": ("group:vessel", 1.0),
    "skin": ("body", 0.25),
}


def _labels_for(patient, rule: str) -> list[int]:
    kind, _, what = rule.partition(":")
    present = set(np.unique(patient.labels).tolist())
    t = patient.tissues
    if kind == "group":
        ids = t.labels_in_group(what)
    elif kind == "name":
        ids = [x.label for x in t if x.name == what]
    else:  # the body: every label but 0
        ids = [x for x in present if x != 0]
    return [i for i in ids if i in present]


def labelmap_header(voxel_to_ras: np.ndarray) -> dict[str, Any]:
    """pynrrd header fields for a label volume with this RAS affine, stored in LPS."""
    a = RAS_TO_LPS @ np.asarray(voxel_to_ras, float)
    return {"space": "left-posterior-superior", "space directions": a[:3, :3].T.copy(),
            "space origin": a[:3, 3].copy(), "kinds": ["domain"] * 3, "encoding": "gzip"}


def write_labelmap(path: Path, labels: np.ndarray, voxel_to_ras: np.ndarray) -> Path:
    import nrrd

    with atomic_path(path) as tmp:
        nrrd.write(str(tmp), np.asarray(labels, np.uint8), labelmap_header(voxel_to_ras),
                   index_order="F", compression_level=6)
    return path


def color_table_text(tissues) -> str:
    lines = ["# Color table file tissues.ctbl (needleguide tissue labels)",
             f"# {max(x.label for x in tissues) + 1} values"]
    for x in sorted(tissues, key=lambda x: x.label):
        r, g, b = x.color
        alpha = 0 if x.label == 0 else 255
        lines.append(f"{x.label} {x.name.replace(' ', '_') or '_'} {r} {g} {b} {alpha}")
    return "\n".join(lines) + "\n"


def surface(mask: np.ndarray, voxel_to_ras: np.ndarray, max_faces: int = 40000,
            spacing_mm: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices RAS mm (n, 3), triangles (m, 3) int, unit normals RAS (n, 3)) of a mask.

    The mask is padded (closed surfaces at the volume's faces), smoothed (Gaussian, 0.7
    voxel) and meshed at level 0.5 with marching-cube steps of about 1.5 mm, coarser until
    there are at most ``max_faces`` triangles. Vertices are clipped to the voxel-centre
    box, so they lie inside the volume's bounds.
    """
    from scipy import ndimage
    from skimage.measure import marching_cubes

    nz = np.nonzero(np.any(mask, axis=(1, 2))), np.nonzero(np.any(mask, axis=(0, 2))), \
        np.nonzero(np.any(mask, axis=(0, 1)))
    lo = np.array([max(int(a[0][0]) - 2, 0) for a in nz])  # crop to the mask's box (speed)
    hi = np.array([min(int(a[0][-1]) + 3, n) for a, n in zip(nz, mask.shape, strict=True)])
    sub = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    m = ndimage.gaussian_filter(np.pad(sub.astype(np.float32), 1), 0.7)
    step = max(1, int(round(1.5 / max(spacing_mm, 1e-3))))
    while True:
        v, f, nrm, _ = marching_cubes(m, 0.5, step_size=step, allow_degenerate=False)
        if len(f) <= max_faces or step >= 16:
            break
        step = max(step + 1, int(step * np.sqrt(len(f) / max_faces) + 0.999))
    v = np.clip(v - 1.0 + lo, 0.0, np.array(mask.shape, float) - 1.0)
    a = np.asarray(voxel_to_ras, float)
    verts = v @ a[:3, :3].T + a[:3, 3]
    # skimage's normals follow the gradient's descent: outwards for a 1-inside mask; map
    # index-space normals to RAS with the inverse transpose
    n = nrm @ np.linalg.inv(a[:3, :3])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return verts, f.astype(np.int64), n


def vtk_polydata_bytes(verts_lps: np.ndarray, faces: np.ndarray, normals_lps: np.ndarray,
                       title: str) -> bytes:
    """Legacy VTK 4.2 binary PolyData (big-endian), header line carrying ``SPACE=LPS``."""
    n, m = len(verts_lps), len(faces)
    head = f"# vtk DataFile Version 4.2\n{title} SPACE=LPS\nBINARY\nDATASET POLYDATA\n"
    polys = np.hstack([np.full((m, 1), 3, np.int64), faces]).astype(">i4")
    parts = [head.encode("ascii"), f"POINTS {n} float\n".encode("ascii"),
             np.asarray(verts_lps, ">f4").tobytes(), b"\n",
             f"POLYGONS {m} {4 * m}\n".encode("ascii"), polys.tobytes(), b"\n",
             f"POINT_DATA {n}\nNORMALS Normals float\n".encode("ascii"),
             np.asarray(normals_lps, ">f4").tobytes(), b"\n"]
    return b"".join(parts)


def read_vtk_points(path: Path) -> np.ndarray:
    """The POINTS (n, 3) of a binary legacy VTK file as written here (in the file's space)."""
    data = Path(path).read_bytes()
    i = data.index(b"POINTS ")
    j = data.index(b"\n", i)
    n = int(data[i:j].split()[1])
    return np.frombuffer(data, ">f4", 3 * n, j + 1).reshape(n, 3).astype(float)


def markups_json(landmarks: dict) -> dict[str, Any]:
    pts = []
    for i, (name, lm) in enumerate(landmarks.items()):
        p = RAS_TO_LPS[:3, :3] @ np.asarray(lm.position_mm, float)
        pts.append({"id": str(i + 1), "label": name, "description": lm.description,
                    "associatedNodeID": "", "position": [round(float(c), 4) for c in p],
                    "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
                    "selected": True, "locked": True, "visibility": True,
                    "positionStatus": "defined"})
    return {"@schema": MARKUPS_SCHEMA,
            "markups": [{"type": "Fiducial", "coordinateSystem": "LPS",
                         "coordinateUnits": "mm", "locked": True, "labelFormat": "%N-%d",
                         "controlPoints": pts}]}


def _node(tag: str, **atts: Any) -> str:
    body = " ".join(f"{k}={quoteattr(str(v))}" for k, v in atts.items())
    return f" <{tag} {body}></{tag}>"


def _rgb01(color) -> str:
    return " ".join(f"{c / 255.0:.6g}" for c in color)


def mrml_text(patient, models: list[tuple[str, str, tuple[int, int, int], float]],
              with_markups: bool) -> str:
    """The MRML XML referencing the files (relative paths, beside the .mrml)."""
    a = np.asarray(patient.VoxelToPatient, float)
    spacing = np.linalg.norm(a[:3, :3], axis=0)
    dirs = a[:3, :3] / spacing
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<MRML  version="Slicer4.4.0" userTags="">',
           _node("ColorTable", id="vtkMRMLColorTableNode1", name="needleguide tissues",
                 references="storage:vtkMRMLColorTableStorageNode1;"),
           _node("ColorTableStorage", id="vtkMRMLColorTableStorageNode1", name="",
                 hideFromEditors="true", fileName=COLORS_NAME),
           _node("LabelMapVolumeDisplay", id="vtkMRMLLabelMapVolumeDisplayNode1", name="",
                 hideFromEditors="true", visibility="true",
                 references="colorNodeID:vtkMRMLColorTableNode1;"),
           _node("VolumeArchetypeStorage", id="vtkMRMLVolumeArchetypeStorageNode1", name="",
                 hideFromEditors="true", fileName=LABELMAP_NAME, useCompression="1"),
           _node("LabelMapVolume", id="vtkMRMLLabelMapVolumeNode1", name="patient labels",
                 spacing=" ".join(f"{s:.9g}" for s in spacing),
                 origin=" ".join(f"{s:.9g}" for s in a[:3, 3]),
                 ijkToRASDirections=" ".join(f"{d:.9g}" for d in dirs.ravel()),
                 references="display:vtkMRMLLabelMapVolumeDisplayNode1;"
                            "storage:vtkMRMLVolumeArchetypeStorageNode1;")]
    for k, (name, fname, color, opacity) in enumerate(models, start=1):
        out += [_node("ModelStorage", id=f"vtkMRMLModelStorageNode{k}", name="",
                      hideFromEditors="true", fileName=fname, coordinateSystem="LPS"),
                _node("ModelDisplay", id=f"vtkMRMLModelDisplayNode{k}", name="",
                      hideFromEditors="true", color=_rgb01(color), opacity=f"{opacity:g}",
                      visibility="true", visibility2D="true", visibility3D="true",
                      backfaceCulling="true", scalarVisibility="false"),
                _node("Model", id=f"vtkMRMLModelNode{k}", name=name,
                      references=f"display:vtkMRMLModelDisplayNode{k};"
                                 f"storage:vtkMRMLModelStorageNode{k};")]
    if with_markups:
        out += [_node("MarkupsDisplay", id="vtkMRMLMarkupsDisplayNode1", name="",
                      hideFromEditors="true", visibility="true"),
                _node("MarkupsJsonStorage", id="vtkMRMLMarkupsJsonStorageNode1", name="",
                      hideFromEditors="true", fileName=MARKUPS_NAME,
                      coordinateSystem="LPS"),
                _node("MarkupsFiducial", id="vtkMRMLMarkupsFiducialNode1", name="landmarks",
                      references="display:vtkMRMLMarkupsDisplayNode1;"
                                 "storage:vtkMRMLMarkupsJsonStorageNode1;")]
    out.append("</MRML>")
    return "\n".join(out) + "\n"


def write_slicer_scene(folder: Path | str, patient, max_faces: int = 40000) -> Path:
    """Write the scene files of ``patient`` into ``folder``; return the ``.mrml`` path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    a = np.asarray(patient.VoxelToPatient, float)
    write_labelmap(folder / LABELMAP_NAME, patient.labels, a)
    write_text(folder / COLORS_NAME, color_table_text(patient.tissues))
    spacing = float(np.mean(np.linalg.norm(a[:3, :3], axis=0)))
    models = []
    for name, (rule, opacity) in STRUCTURES.items():
        ids = _labels_for(patient, rule)
        if not ids:
            continue
        mask = np.isin(patient.labels, ids)
        if mask.sum() < 8:
            continue
        verts, faces, normals = surface(mask, a, max_faces, spacing)
        if len(faces) == 0:
            continue
        counts = np.bincount(patient.labels[mask].ravel(), minlength=256)
        main = int(np.argmax(counts)) if rule != "body" else 1
        color = tuple(patient.tissues[main].color) if main in patient.tissues else (200,) * 3
        fname = f"model_{name}.vtk"
        lps = RAS_TO_LPS[:3, :3]
        blob = vtk_polydata_bytes(verts @ lps.T, faces, normals @ lps.T,
                                  f"needleguide {name} surface.")
        with atomic_path(folder / fname) as tmp:
            tmp.write_bytes(blob)
        models.append((name, fname, color, opacity))
    with_markups = bool(patient.landmarks)
    if with_markups:
        write_json(folder / MARKUPS_NAME, markups_json(patient.landmarks))
    return write_text(folder / MRML_NAME, mrml_text(patient, models, with_markups))


def scene_files(mrml: Path | str) -> list[Path]:
    """The files a scene written here references (``fileName`` attributes), resolved."""
    import xml.etree.ElementTree as ET

    root = ET.parse(mrml).getroot()
    base = Path(mrml).parent
    return [base / e.attrib["fileName"] for e in root.iter() if "fileName" in e.attrib]


__all__ = ["write_slicer_scene", "scene_files", "read_vtk_points", "labelmap_header",
           "markups_json"]
