"""Transforms of a live session: validation of incoming 4x4 poses and the needle frame.

Needle frame (``NeedleToReference``, ``NeedleTipToReference``, the analyser's
``detected_tip_to_reference``): origin at the needle tip, +z along the shaft from the tip
toward the hub, x and y across the shaft (any right-handed pair; x is chosen
perpendicular to RAS x where it can be). All in Reference = patient RAS mm. The scene's
``Needle.NeedleTipToPatient`` points +z the other way (hub → tip); this module converts.
"""

from __future__ import annotations

import numpy as np

from needleguide import geometry
from needleguide.anatomy.patient import Patient
from needleguide.scene import Needle

RIGID_TOL = 1e-2  # |RᵀR − I| and |det R − 1| allowed in an incoming pose (tracker noise)


def check_pose(name: str, matrix) -> np.ndarray:
    """A float64 copy of ``matrix`` if it is a finite rigid 4x4 transform (mm), else a
    ``ValueError`` naming ``name``."""
    try:
        m = np.array(matrix, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a 4x4 numeric matrix") from None
    if m.shape != (4, 4):
        raise ValueError(f"{name}: expected a 4x4 matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name}: the matrix holds NaN or infinite values")
    if not np.allclose(m[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise ValueError(f"{name}: the last row must be [0, 0, 0, 1]")
    r = m[:3, :3]
    if np.abs(r.T @ r - np.eye(3)).max() > RIGID_TOL or abs(np.linalg.det(r) - 1.0) > RIGID_TOL:
        raise ValueError(f"{name}: the rotation part is not a rotation (rigid transforms "
                         f"only, orthonormal within {RIGID_TOL})")
    if np.abs(m[:3, 3]).max() > 1e4:
        raise ValueError(f"{name}: translation beyond 10 m; expected millimetres")
    return m


def pose_from_z(origin_mm, z_axis) -> np.ndarray:
    """A right-handed pose with ``origin_mm`` and unit +z along ``z_axis``."""
    z = np.asarray(z_axis, float)
    z = z / np.linalg.norm(z)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    return geometry.make_transform(np.column_stack([x, np.cross(z, x), z]),
                                   np.asarray(origin_mm, float))


def needle_pose(needle: Needle) -> np.ndarray:
    """``NeedleToReference`` of a scene needle (origin at the tip, +z toward the hub)."""
    return pose_from_z(needle.tip, -needle.axis)


def needle_from_pose(patient: Patient, pose: np.ndarray, gauge: int, length_mm: float
                     ) -> Needle:
    """The scene needle of an external ``NeedleToReference``: tip at the origin, the
    shaft along +z; the inserted length is the distance from the tip back along the
    shaft to the skin (0 when the tip is outside the body)."""
    tip = pose[:3, 3]
    back = pose[:3, 2] / np.linalg.norm(pose[:3, 2])
    inserted = 0.0
    if int(patient.label_at(tip[None])[0]) != 0:
        skin, _, _ = patient.walk_to_skin(tip, back, max_mm=length_mm, step_mm=0.5)
        inserted = length_mm if skin is None else float(np.linalg.norm(skin - tip))
    return Needle(gauge=gauge, length_mm=length_mm, tip_mm=tuple(tip),
                  direction=tuple(-back), inserted_length_mm=min(inserted, length_mm))
