"""Rigid 4x4 transforms named ``<From>To<To>`` (PLUS / SlicerIGT convention).

Patient frame is RAS (x right, y anterior, z superior), millimetres. A transform
``AToB`` maps homogeneous points expressed in frame A into frame B: ``p_B = AToB @ p_A``.
"""

from __future__ import annotations

import numpy as np

Transform = np.ndarray  # (4, 4) float64


def identity() -> Transform:
    """The 4x4 identity transform."""
    return np.eye(4)


def make_transform(rotation: np.ndarray | None = None, translation_mm=(0.0, 0.0, 0.0)) -> Transform:
    """Build a 4x4 transform from a 3x3 rotation (default identity) and a translation in mm."""
    t = np.eye(4)
    if rotation is not None:
        t[:3, :3] = np.asarray(rotation, dtype=float)
    t[:3, 3] = np.asarray(translation_mm, dtype=float)
    return t


def invert(t: Transform) -> Transform:
    """Inverse of a rigid (or general affine) 4x4 transform: ``AToB`` -> ``BToA``."""
    t = np.asarray(t, dtype=float)
    r = t[:3, :3]
    # Rigid fast path when R is orthonormal; otherwise a general inverse.
    if np.allclose(r @ r.T, np.eye(3), atol=1e-9):
        out = np.eye(4)
        out[:3, :3] = r.T
        out[:3, 3] = -r.T @ t[:3, 3]
        return out
    return np.linalg.inv(t)


def apply(t: Transform, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to points of shape (..., 3) in mm; returns the same shape."""
    p = np.asarray(points, dtype=float)
    return p @ t[:3, :3].T + t[:3, 3]


def apply_vector(t: Transform, vectors: np.ndarray) -> np.ndarray:
    """Apply only the linear part of a transform to direction vectors (..., 3)."""
    return np.asarray(vectors, dtype=float) @ t[:3, :3].T


def rotation_about_axis(axis, angle_rad: float) -> np.ndarray:
    """3x3 rotation matrix about a unit ``axis`` by ``angle_rad`` (right-hand rule)."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    x, y, z = a
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    C = 1 - c
    return np.array(
        [
            [c + x * x * C, x * y * C - z * s, x * z * C + y * s],
            [y * x * C + z * s, c + y * y * C, y * z * C - x * s],
            [z * x * C - y * s, z * y * C + x * s, c + z * z * C],
        ]
    )


def rot_x(angle_rad: float) -> np.ndarray:
    """3x3 rotation about +x (patient right axis)."""
    return rotation_about_axis((1, 0, 0), angle_rad)


def rot_y(angle_rad: float) -> np.ndarray:
    """3x3 rotation about +y (patient anterior axis)."""
    return rotation_about_axis((0, 1, 0), angle_rad)


def rot_z(angle_rad: float) -> np.ndarray:
    """3x3 rotation about +z (patient superior axis)."""
    return rotation_about_axis((0, 0, 1), angle_rad)


def frame_from_axes(origin_mm, x_axis, y_axis) -> Transform:
    """Transform whose columns are orthonormalised ``x_axis``, ``y_axis`` and their cross
    product, placed at ``origin_mm``: maps local coordinates into the parent frame."""
    x = np.asarray(x_axis, dtype=float)
    x = x / np.linalg.norm(x)
    y = np.asarray(y_axis, dtype=float)
    y = y - x * (x @ y)
    y = y / np.linalg.norm(y)
    z = np.cross(x, y)
    return make_transform(np.column_stack([x, y, z]), origin_mm)


def lps_to_ras() -> Transform:
    """The DICOM LPS -> RAS flip (negate x and y); it is its own inverse."""
    return np.diag([-1.0, -1.0, 1.0, 1.0])


def is_rigid(t: Transform, atol: float = 1e-6) -> bool:
    """True if ``t`` is a proper rigid transform (orthonormal rotation, det +1, last row 0001)."""
    t = np.asarray(t, dtype=float)
    r = t[:3, :3]
    return (
        t.shape == (4, 4)
        and np.allclose(t[3], [0, 0, 0, 1], atol=atol)
        and np.allclose(r @ r.T, np.eye(3), atol=atol)
        and abs(np.linalg.det(r) - 1) < atol
    )
