"""Small synthetic patients for checks, tests and the benchmark (not anatomy).

``layered_patient``: horizontal layers (skin, fat, muscle, ...) under a flat skin surface
at y = 0 (the body occupies y < 0; the probe looks along −y), optionally with a bone block
and a vessel tube. Layers are tissue names from the default table.
"""

from __future__ import annotations

import numpy as np

from needleguide import geometry
from needleguide.anatomy.patient import Centerline, Patient
from needleguide.anatomy.tissues import default_tissue_table


def layered_patient(layers: list[tuple[str, float]], size_mm=(60.0, 120.0, 60.0),
                    spacing_mm: float = 0.25, bone_top_mm: float | None = None,
                    bone_x_mm: tuple[float, float] = (-100.0, 100.0),
                    vessel: tuple[float, float, float, str] | None = None,
                    vessel_velocity_mm_s: float = 0.0) -> Patient:
    """A block of tissue under a flat skin at y = 0 (body at y < 0, RAS, mm).

    layers: (tissue name, thickness mm) from the skin down; the last layer fills the rest.
    bone_top_mm: depth of the top of a bone ('lamina') block spanning ``bone_x_mm`` in x.
    vessel: (x_mm, depth_mm, radius_mm, tissue) — a tube along z.
    """
    tt = default_tissue_table()
    sx, sy, sz = size_mm
    n = np.round(np.array([sx, sy, sz]) / spacing_mm).astype(int) + 1
    aff = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
    aff[:3, 3] = [-sx / 2, -sy, -sz / 2]
    x = aff[0, 3] + np.arange(n[0]) * spacing_mm
    y = aff[1, 3] + np.arange(n[1]) * spacing_mm
    depth = -y  # depth below the skin
    lab_y = np.zeros(n[1], np.uint8)
    top = 0.0
    for i, (name, thick) in enumerate(layers):
        last = i == len(layers) - 1
        sel = (depth >= top) & ((depth < top + thick) | last)
        lab_y[sel] = tt.label(name)
        top += thick
    labels = np.broadcast_to(lab_y[None, :, None], tuple(n)).copy()
    if bone_top_mm is not None:
        bx = (x >= bone_x_mm[0]) & (x <= bone_x_mm[1])
        by = depth >= bone_top_mm
        labels[np.ix_(bx, by, np.ones(n[2], bool))] = tt.label("lamina")
    centerlines = {}
    if vessel is not None:
        vx, vd, vr, vname = vessel
        X, Y = np.meshgrid(x, y, indexing="ij")
        m = (X - vx) ** 2 + (Y + vd) ** 2 <= vr**2
        labels[m, :] = tt.label(vname)
        kind = "vein" if vname in ("internal_jugular", "ivc") else "artery"
        pts = np.array([[vx, -vd, -sz / 2], [vx, -vd, sz / 2]])
        centerlines[vname] = Centerline(vname, kind, pts, np.array([vr, vr]), tt.label(vname),
                                        vessel_velocity_mm_s)
    return Patient(labels=labels, VoxelToPatient=aff, tissues=tt, centerlines=centerlines)


def probe_on_top(x_mm: float = 0.0, z_mm: float = 0.0, press_mm: float = 0.5,
                 sagittal: bool = False) -> np.ndarray:
    """``ProbeToPatient`` for a probe on the flat skin of :func:`layered_patient`, beam
    along −y, array along +x (or +z when ``sagittal``)."""
    beam = np.array([0.0, -1.0, 0.0])
    lat = np.array([0.0, 0.0, 1.0]) if sagittal else np.array([1.0, 0.0, 0.0])
    return geometry.frame_from_axes([x_mm, -press_mm, z_mm], lat, beam)
