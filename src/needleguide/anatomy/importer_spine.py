"""Vertebra poses from per-level vertebra masks (e.g. TotalSegmentator ``vertebrae_L4``).

For each level present, in cranio-caudal order:
- superior axis: direction of the column through the neighbouring levels' centroids; a
  level cut by the scan's first or last slice (``extra["truncated"]``) is left out of that
  and takes the axis of the nearest complete level (central difference; one-sided at the
  ends); with fewer than two complete levels, the scanner's long axis (+z);
- canal centre: the spinal cord mask inside the level's slab when there is one, else the
  largest hole of the vertebra projected along the superior axis (the vertebral foramen);
- anterior axis: from the canal towards the vertebra's centroid (the body outweighs the
  posterior elements), made orthogonal to the superior axis; +y when no canal is found.
  Where the posterior elements outweigh the body (the long, overlapping spinous processes
  of the upper thoracic spine, given to the level whose slab holds them, pull the
  centroid behind the canal) that points backwards: a level whose axis points away from
  the column's consensus (the normalised sum over levels) takes the consensus instead;
- body: the mask voxels more than one canal radius anterior of the canal centre; its centre
  and its 2-98th percentile extents along superior / right / anterior give the dimensions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from needleguide import geometry
from needleguide.anatomy.patient import Landmark, Vertebra

MIN_LEVEL_MM3 = 500.0  # smaller level masks (partly in the field of view) are skipped
DEFAULT_CANAL_RADIUS_MM = 8.0


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def _extent(t: np.ndarray, voxel_mm: float) -> float:
    lo, hi = np.percentile(t, [2.0, 98.0])
    return float(hi - lo + voxel_mm)


def _canal_from_hole(pts: np.ndarray, c: np.ndarray, s: np.ndarray, grid_mm: float):
    """Centre (RAS) and radius (mm) of the largest hole of the mask projected along ``s``."""
    a0 = _unit(np.array([0.0, 1.0, 0.0]) - s[1] * s)
    r0 = np.cross(a0, s)
    uv = np.stack([(pts - c) @ r0, (pts - c) @ a0], axis=1)
    lo = uv.min(axis=0) - 2 * grid_mm
    ij = np.rint((uv - lo) / grid_mm).astype(int)
    occ = np.zeros(ij.max(axis=0) + 3, dtype=bool)
    occ[ij[:, 0], ij[:, 1]] = True
    occ = ndimage.binary_closing(occ, iterations=1)
    holes = ndimage.binary_fill_holes(occ) & ~occ
    lab, n = ndimage.label(holes)
    if n == 0:
        return None, None
    sizes = ndimage.sum_labels(holes, lab, index=np.arange(1, n + 1))
    k = int(np.argmax(sizes)) + 1
    if sizes[k - 1] * grid_mm**2 < 20.0:  # < 20 mm²: not a vertebral foramen
        return None, None
    hij = np.argwhere(lab == k).mean(axis=0)
    u, v = hij * grid_mm + lo
    return c + u * r0 + v * a0, float(np.sqrt(sizes[k - 1] * grid_mm**2 / np.pi))


def vertebrae_from_levels(
    level_volume: np.ndarray,
    VoxelToPatient: np.ndarray,
    level_names: tuple[str, ...],
    cord_mask: np.ndarray | None = None,
) -> dict[str, Vertebra]:
    """Vertebra poses from a volume whose value v > 0 marks level ``level_names[v - 1]``
    (names in cranio-caudal order). ``cord_mask``: spinal cord voxels, same grid, or None."""
    spacing = np.linalg.norm(VoxelToPatient[:3, :3], axis=0)
    voxel_mm3 = float(np.prod(spacing))
    idx = np.nonzero(level_volume)
    if idx[0].size == 0:
        return {}
    vals = level_volume[idx]
    pts_all = geometry.apply(VoxelToPatient, np.stack(idx, axis=1).astype(float))
    order = np.argsort(vals, kind="stable")
    vals, pts_all = vals[order], pts_all[order]
    present, starts, counts = np.unique(vals, return_index=True, return_counts=True)
    keep = counts * voxel_mm3 >= MIN_LEVEL_MM3
    present, starts, counts = present[keep], starts[keep], counts[keep]
    if present.size == 0:
        return {}
    pts = [pts_all[s0:s0 + n] for s0, n in zip(starts, counts, strict=True)]
    cents = np.array([p.mean(axis=0) for p in pts])
    # a level cut by the scan's first or last slice has a displaced centroid (often just
    # its posterior elements): it takes its superior axis from the complete levels
    k_all = np.stack(idx, axis=1)[order][:, 2]
    k_lo, k_hi = 0, level_volume.shape[2] - 1
    cut = np.array([bool(np.any((k_all[s0:s0 + n] == k_lo) | (k_all[s0:s0 + n] == k_hi)))
                    for s0, n in zip(starts, counts, strict=True)])
    whole = np.flatnonzero(~cut)
    cord_pts = None
    if cord_mask is not None and cord_mask.any():
        cord_pts = geometry.apply(VoxelToPatient, np.argwhere(cord_mask).astype(float))
    m = len(present)
    frames = []
    for n in range(m):
        if whole.size >= 2:
            j = int(whole[np.argmin(np.abs(whole - n))])  # n itself when complete
            q = int(np.searchsorted(whole, j))
            up, down = whole[max(q - 1, 0)], whole[min(q + 1, whole.size - 1)]
            s = _unit(cents[up] - cents[down])  # caudal -> cranial
            axis_from = "levels"
        else:  # fewer than two complete levels: the scanner's long axis (RAS +z)
            s = np.array([0.0, 0.0, 1.0])
            axis_from = "scanner"
        p, c = pts[n], cents[n]
        along = (p - c) @ s
        half = max(0.5 * _extent(along, float(spacing.min())), 5.0)
        canal, canal_r, canal_src = None, None, "none"
        if cord_pts is not None:
            d = cord_pts - c
            t = d @ s
            radial = np.linalg.norm(d - np.outer(t, s), axis=1)
            near = (np.abs(t) <= half) & (radial <= 45.0)
            if near.sum() >= 3:
                canal = cord_pts[near].mean(axis=0)
                canal -= ((canal - c) @ s) * s
                canal_r, canal_src = DEFAULT_CANAL_RADIUS_MM, "spinal_cord"
        if canal is None:
            canal, canal_r = _canal_from_hole(p, c, s, float(max(spacing.min(), 0.5)))
            canal_src = "foramen" if canal is not None else "none"
        a = np.array([0.0, 1.0, 0.0]) if canal is None else (c - canal)
        a = _unit(a - (a @ s) * s)
        anterior_from = "centroid" if canal is not None else "default"
        if np.linalg.norm(a) < 0.5 or (canal is not None and np.linalg.norm(c - canal) < 1.0):
            a = _unit(np.array([0.0, 1.0, 0.0]) - s[1] * s)
            anterior_from = "default"
        frames.append((s, axis_from, canal, canal_r, canal_src, a, anterior_from))
    consensus = _unit(np.sum([f[5] for f in frames], axis=0))
    out: dict[str, Vertebra] = {}
    for n in range(m):
        s, axis_from, canal, canal_r, canal_src, a, anterior_from = frames[n]
        p, c = pts[n], cents[n]
        if m >= 3 and float(a @ consensus) < 0.0:  # points backwards: the column's instead
            a = _unit(consensus - (consensus @ s) * s)
            anterior_from = "column"
        r = np.cross(a, s)
        ref = canal if canal is not None else c
        t_ant = (p - ref) @ a
        body = p[t_ant > (canal_r or 0.0)] if canal is not None else p
        if body.shape[0] < 10:
            body = p
        bc = body.mean(axis=0)
        v = float(spacing.min())
        name = level_names[int(present[n]) - 1]
        out[name] = Vertebra(
            name=name, center_mm=bc, superior=s, anterior=a,
            body_height_mm=round(_extent((body - bc) @ s, v), 2),
            body_width_mm=round(_extent((body - bc) @ r, v), 2),
            body_depth_mm=round(_extent((body - bc) @ a, v), 2),
            extra={"source": "labelmap", "volume_ml": round(float(counts[n]) * voxel_mm3 / 1e3, 2),
                   "truncated": bool(cut[n]), "axis_from": axis_from,
                   "canal_from": canal_src, "anterior_from": anterior_from,
                   "canal_mm": None if canal is None else np.round(canal, 3).tolist()},
        )
    return out


def vertebra_landmarks(vertebrae: dict[str, Vertebra], label_at, tissues) -> dict[str, Landmark]:
    """``<level>.body`` (body centre) and ``<level>.canal`` landmarks; each records the
    tissue actually found there (``label_at``: RAS points -> labels)."""
    out: dict[str, Landmark] = {}
    for name, v in vertebrae.items():
        pts = {f"{name}.body": v.center_mm}
        if v.extra.get("canal_mm") is not None:
            pts[f"{name}.canal"] = np.asarray(v.extra["canal_mm"], dtype=float)
        for lm, p in pts.items():
            tissue = tissues[int(label_at(np.asarray(p)[None])[0])].name
            out[lm] = Landmark(lm, np.asarray(p, dtype=float), tissue,
                               "derived from the imported vertebra masks")
    return out


_VERTEBRA_KEYS = ("center_mm", "superior", "anterior", "body_height_mm", "body_width_mm",
                  "body_depth_mm")


def read_geometry_sidecars(folder) -> tuple[dict[str, Landmark], dict[str, Vertebra]]:
    """Landmarks and vertebrae from ``landmarks.json`` / ``vertebrae.json`` in ``folder``
    (as ``needleguide phantom`` and ``import-ct`` write them); missing files give {}."""
    import json
    from pathlib import Path

    from needleguide.errors import UserError

    folder = Path(folder)
    out_l: dict[str, Landmark] = {}
    out_v: dict[str, Vertebra] = {}
    try:
        f = folder / "landmarks.json"
        if f.exists():
            for name, d in json.loads(f.read_text(encoding="utf-8")).items():
                out_l[name] = Landmark(name, np.asarray(d["ras_mm"], dtype=float),
                                       str(d.get("tissue", "")), str(d.get("description", "")))
        f = folder / "vertebrae.json"
        if f.exists():
            for name, d in json.loads(f.read_text(encoding="utf-8")).items():
                out_v[name] = Vertebra(
                    name, np.asarray(d["center_mm"], float), np.asarray(d["superior"], float),
                    np.asarray(d["anterior"], float), float(d["body_height_mm"]),
                    float(d["body_width_mm"]), float(d["body_depth_mm"]),
                    extra={k: v for k, v in d.items() if k not in _VERTEBRA_KEYS})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"labels: unreadable {f} ({type(e).__name__}: {e})") from None
    return out_l, out_v
