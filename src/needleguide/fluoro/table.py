"""The patient table in the beam: a carbon-fibre top and pad under the prone patient.

Slab ``y_top … y_top + thickness`` (RAS y, anterior: the prone patient's anterior skin
rests on it) of width ``width_mm`` across x, unbounded along z. Each pixel's ray from the
focal spot crosses it over an exact chord (ray–slab clipping); the areal density of
carbon fibre along the ray is chord × (areal density per perpendicular ray / thickness).
On the spinal AP and obliques the beam passes the table before the patient (source under
the table); on a lateral it passes the table's edge only where the field reaches it.
"""

from __future__ import annotations

import numpy as np


def table_chord_g_cm2(source_mm: np.ndarray, pixels_mm: np.ndarray, y_top_mm: float,
                      x_centre_mm: float, thickness_mm: float, width_mm: float,
                      areal_g_cm2: float) -> np.ndarray:
    """Carbon-fibre areal density (g/cm²) along the rays source → pixel centres
    (``pixels_mm`` (..., 3) RAS mm) through the table slab (see module docstring)."""
    s = np.asarray(source_mm, float)
    d = np.asarray(pixels_mm, float) - s
    length = np.linalg.norm(d, axis=-1)
    t0 = np.zeros(d.shape[:-1])
    t1 = np.ones(d.shape[:-1])
    for ax, lo, hi in ((1, y_top_mm, y_top_mm + thickness_mm),
                       (0, x_centre_mm - width_mm / 2, x_centre_mm + width_mm / 2)):
        da = d[..., ax]
        with np.errstate(divide="ignore", invalid="ignore"):
            ta = (lo - s[ax]) / da
            tb = (hi - s[ax]) / da
        par = np.abs(da) < 1e-12
        inside = (s[ax] >= lo) & (s[ax] <= hi)
        t0 = np.where(par, np.where(inside, t0, 1.0), np.maximum(t0, np.minimum(ta, tb)))
        t1 = np.where(par, np.where(inside, t1, 0.0), np.minimum(t1, np.maximum(ta, tb)))
    chord_mm = np.maximum(t1 - t0, 0.0) * length
    return (chord_mm * (areal_g_cm2 / thickness_mm)).astype(np.float32)


def table_basis_g_cm2(src: np.ndarray, p00: np.ndarray, dd: np.ndarray, n: int,
                      bounds_mm: tuple[np.ndarray, np.ndarray], s) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """The table's soft-tissue- and bone-equivalent areal densities (g/cm²) per pixel of
    an ``n``² detector (rays from ``src`` to ``p00 + col·dd[0] + row·dd[1]``), its top at
    the most anterior body voxel of ``bounds_mm`` (lo, hi RAS), centred on the body;
    ``s``: the FluoroSettings (``table_*``)."""
    from needleguide.fluoro.volume import material_basis

    lo, hi = bounds_mm
    pix = p00 + np.arange(n)[None, :, None] * dd[0] + np.arange(n)[:, None, None] * dd[1]
    cf = table_chord_g_cm2(src, pix, float(hi[1]), float((lo[0] + hi[0]) / 2),
                           s.table_thickness_mm, s.table_width_mm, s.table_g_cm2)
    ta, tb = material_basis("carbon_fibre")
    return np.float32(ta) * cf, np.float32(tb) * cf
