"""Structures finer than the label map that shape contrast patterns, derived on a local
spread grid from the patient's labels and centerlines (never painted into the patient):

* a seeded, lattice-anchored resistance texture (epidural fat lobules, muscle fibres),
* the dural root sleeves: the sac's CSF running along each nerve root toward its ganglion
  (a myelogram fills them), and the cauda equina's roots as strands in the sac that the
  contrast flows around (filling defects),
* tubes around centerlines (vessels, the epidural venous plexus lattice).

Every size is an *assumption* (docs/injectate.md "Patterns"); a patient without the
structure (an imported CT without nerve-root centerlines) simply gets none of it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from needleguide.anatomy.patient import Centerline, Patient


def _hash_normal(seed: int, salt: int, ijk: list[np.ndarray]) -> np.ndarray:
    """Standard normal deviates that depend only on (seed, salt, global voxel index):
    splitmix64 of the packed index, Box–Muller of two 32-bit halves."""
    m = np.uint64(0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        key = np.uint64((seed * 0x9E3779B1 + salt * 0x85EBCA77 + 0x27D4EB2F) & 0xFFFFFFFF)
        x = (ijk[0].astype(np.uint64) * np.uint64(0x100000001B3)
             ^ ijk[1].astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
             ^ ijk[2].astype(np.uint64) * np.uint64(0x165667B19E3779F9)) ^ (key << np.uint64(20))
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & m
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & m
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & m
        x = x ^ (x >> np.uint64(31))
    u1 = ((x >> np.uint64(32)).astype(np.float64) + 0.5) / 4294967296.0
    u2 = ((x & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) / 4294967296.0
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def texture(grid, seed: int, lengths_mm: tuple[float, float], salt: int = 0) -> np.ndarray:
    """Unit-variance Gaussian field on ``grid`` correlated over ``lengths_mm`` (across, and
    along RAS z — the canal and the paraspinal fibres). Its white noise is a function of
    the global voxel index (``seed``, ``salt``), filtered on the grid padded by 4σ: a voxel
    gets the same value on any grid of the lattice (a grown grid, a second injection)."""
    sig = np.array([lengths_mm[0], lengths_mm[0], lengths_mm[1]]) / grid.spacing_mm
    pad = np.ceil(4.0 * sig).astype(int)
    lo = np.array(grid.lo) - pad
    shape = np.array(grid.shape) + 2 * pad
    ijk = np.meshgrid(*[np.arange(a, a + n) for a, n in zip(lo, shape, strict=True)],
                      indexing="ij", sparse=True)
    ijk = [np.broadcast_to(v, tuple(shape)) for v in ijk]
    g = ndimage.gaussian_filter(_hash_normal(seed, salt, ijk), tuple(sig), mode="constant")
    g = g[pad[0]:pad[0] + grid.shape[0], pad[1]:pad[1] + grid.shape[1],
          pad[2]:pad[2] + grid.shape[2]]
    # the filter's own gain on unit white noise (exact for the truncated kernel)
    delta = np.zeros(tuple(2 * pad + 1))
    delta[tuple(pad)] = 1.0
    gain = float(np.sqrt(np.sum(ndimage.gaussian_filter(delta, tuple(sig), mode="constant")
                                ** 2)))
    return g / max(gain, 1e-9)


def _sample(points: np.ndarray, radii: np.ndarray, step_mm: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points, arclengths and radii along a polyline every ``step_mm``."""
    p = np.asarray(points, float)
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    s = np.concatenate(([0.0], np.cumsum(seg)))
    if s[-1] <= 0:
        return p[:1], s[:1], np.asarray(radii, float)[:1]
    ss = np.linspace(0.0, s[-1], max(2, int(np.ceil(s[-1] / step_mm)) + 1))
    pts = np.stack([np.interp(ss, s, p[:, k]) for k in range(3)], axis=1)
    return pts, ss, np.interp(ss, s, np.asarray(radii, float))


def tube_mask(grid, pts: np.ndarray, radii: np.ndarray, min_vox: float = 0.6) -> np.ndarray:
    """Voxels of ``grid`` within the radius of the nearest of the sample points ``pts``
    (at least ``min_vox`` voxel, so that a thin tube stays connected)."""
    h = grid.spacing_mm
    out = np.zeros(grid.shape, bool)
    if len(pts) == 0:
        return out
    rmax = max(float(np.max(radii)), min_vox * h)
    lo = np.floor((pts.min(0) - rmax) / h).astype(int) - np.array(grid.lo)
    hi = np.ceil((pts.max(0) + rmax) / h).astype(int) - np.array(grid.lo) + 1
    lo = np.clip(lo, 0, np.array(grid.shape))
    hi = np.clip(hi, 0, np.array(grid.shape))
    if np.any(hi <= lo):
        return out
    ijk = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)],
                               indexing="ij"), axis=-1).reshape(-1, 3)
    d, i = cKDTree(pts).query((ijk + np.array(grid.lo)) * h)
    inside = d <= np.maximum(np.asarray(radii)[i], min_vox * h)
    out[tuple(ijk[inside].T)] = True
    return out


def nerve_roots(patient: Patient) -> list[Centerline]:
    """The nerve-root centerlines (``<V>.nerve_root.<side>``): from inside the thecal sac,
    through the lateral recess and the ganglion, out of the foramen."""
    return [c for c in patient.centerlines.values() if ".nerve_root." in c.name]


def dural_sleeves(patient: Patient, grid, labels: np.ndarray, sleeve_mm: float = 1.6,
                  reach: float = 0.85) -> np.ndarray:
    """The CSF-filled dural sleeve of every nerve root: a cuff of ``sleeve_mm`` around the
    root from where it leaves the sac to ``reach`` of the way to its ganglion (the third
    centerline point), in tissue that is not bone, root or ganglion."""
    out = np.zeros(grid.shape, bool)
    roots = nerve_roots(patient)
    if not roots:
        return out
    keep = ~np.isin(labels, patient.tissues.labels_in_group("bone") + [0]
                    + [patient.tissues.label(n) for n in ("nerve_root", "drg", "disc")
                       if n in patient.tissues])
    for c in roots:
        p = np.asarray(c.points_mm, float)
        if len(p) < 3:
            continue
        a = np.linalg.norm(np.diff(p[:3], axis=0), axis=1)
        pts, s, r = _sample(p[:3], np.asarray(c.radii_mm, float)[:3], 0.4 * grid.spacing_mm)
        sel = s <= reach * a.sum()
        out |= tube_mask(grid, pts[sel], r[sel] + sleeve_mm)
    return out & keep


def cauda_strands(patient: Patient, grid, csf: np.ndarray, down: np.ndarray,
                  radius_mm: float = 1.1, rise_mm: float = 90.0) -> np.ndarray:
    """The roots of the cauda equina as strands in the sac (filling defects of a
    myelogram): each root below the conus runs from where it leaves the sac (its first
    centerline point) up the canal for ``rise_mm``, converging toward the midline as it
    rises (the roots that leave lower lie more medially higher up), hanging toward the
    dependent wall (``down``: gravity in the patient's position). Only voxels of the sac
    (``csf``) are returned."""
    out = np.zeros(grid.shape, bool)
    roots = [c for c in nerve_roots(patient) if c.name.split(".")[0][0] in "LS"]
    if not roots or not csf.any():
        return out
    ax = np.array([0.0, 0.0, 1.0])
    cen = {}
    for c in roots:  # the sac's centre at each root's exit: midpoint of the pair
        v = c.name.split(".")[0]
        cen.setdefault(v, []).append(np.asarray(c.points_mm[0], float))
    down = np.asarray(down, float) / np.linalg.norm(down)
    for c in roots:
        v = c.name.split(".")[0]
        mid = np.mean(cen[v], axis=0)
        p0 = np.asarray(c.points_mm[0], float)
        lat = p0 - mid
        lat -= ax * (lat @ ax)
        # toward the dependent wall of the sac: the roots sag in the prone or supine sac
        sag = down - ax * (down @ ax)
        zs = np.linspace(0.0, rise_mm, 24)
        w = np.clip(zs / rise_mm, 0.0, 1.0)
        pts = (mid[None] + ax[None] * zs[:, None] + lat[None] * (1.0 - 0.75 * w)[:, None]
               + sag[None] * (2.5 * w)[:, None])
        dense, _, r = _sample(pts, np.full(len(pts), radius_mm), 0.4 * grid.spacing_mm)
        out |= tube_mask(grid, dense, r, min_vox=0.5)
    return out & csf




def recess_pouches(grid, space: np.ndarray, room: np.ndarray, volume_mm3: float,
                   superior: np.ndarray, inferior_share: float = 0.65) -> np.ndarray:
    """Synovial recesses of a joint: two pouches beyond the poles of its space (the
    space's longest principal axis, oriented by ``superior``), the inferior one holding
    ``inferior_share`` of ``volume_mm3`` (the lumbar facet's inferior recess is the larger;
    a sacroiliac joint's is its only one with ``inferior_share`` 1). Each pouch is an
    ellipsoid (along : across : thickness 1.6 : 1.1 : 0.7) just beyond its pole, in
    ``room`` (capsule and soft tissue, never bone); empty without a space."""
    out = np.zeros(grid.shape, bool)
    idx = np.flatnonzero(space)
    if idx.size < 4 or volume_mm3 <= 0:
        return out
    pts = grid.points_mm(idx)
    c = pts.mean(axis=0)
    _, _, vt = np.linalg.svd(pts - c, full_matrices=False)
    a1, a2, a3 = vt
    if a1 @ superior < 0:
        a1 = -a1
    proj = (pts - c) @ a1
    allp = grid.points_mm(np.arange(grid.size)).reshape(*grid.shape, 3) - c
    u, v, w = allp @ a1, allp @ a2, allp @ a3
    for share, pole in ((1.0 - inferior_share, proj.max()), (inferior_share, proj.min())):
        vol = share * volume_mm3
        if vol <= 0:
            continue
        k = (vol / (4.0 / 3.0 * np.pi * 1.6 * 1.1 * 0.7)) ** (1.0 / 3.0)
        ra, rb, rc = 1.6 * k, 1.1 * k, max(0.7 * k, 0.75 * grid.spacing_mm)
        uc = pole + np.sign(pole) * 0.6 * ra
        out |= ((u - uc) / ra) ** 2 + (v / rb) ** 2 + (w / rc) ** 2 <= 1.0
    return out & room & ~space


def plexus_lattice(patient: Patient, label: int, step_mm: float = 0.5,
                   anastomosis_mm: float = 0.8, foraminal_mm: float = 0.9
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """Sample points and radii of the epidural venous plexus as a lattice: its
    longitudinal channels (the vein centerlines of ``label`` named ``*plexus*``), a
    retrovertebral anastomosis between the two channels at each vertebra's mid-height
    (where the basivertebral vein joins), and an intervertebral vein from the channel to
    each foramen of its side (the plexus drains through the foramina). None when the
    patient has no such channel."""
    chans = [c for c in patient.centerlines.values()
             if c.label == label and c.kind == "vein" and "plexus" in c.name]
    if not chans:
        return None
    pts, rad = [], []
    dense = {}
    for c in chans:
        p, _, r = _sample(np.asarray(c.points_mm, float), np.asarray(c.radii_mm, float),
                          step_mm)
        pts.append(p)
        rad.append(r)
        dense[c.name] = p

    def tube(a, b, r):
        n = max(2, int(np.ceil(np.linalg.norm(b - a) / step_mm)) + 1)
        pts.append(a[None] + np.linspace(0.0, 1.0, n)[:, None] * (b - a)[None])
        rad.append(np.full(n, r))

    sides = {s: [p for n, p in dense.items() if n.endswith(s)] for s in ("right", "left")}
    if sides["right"] and sides["left"]:
        for v in patient.vertebrae.values():
            c0, up = np.asarray(v.center_mm, float), np.asarray(v.superior, float)
            ends = []
            for s in ("right", "left"):
                p = sides[s][0]
                k = int(np.argmin(np.abs((p - c0) @ up) + 0.05 * np.linalg.norm(p - c0, axis=1)))
                if abs(float((p[k] - c0) @ up)) < 6.0:
                    ends.append(p[k])
            if len(ends) == 2:
                tube(ends[0], ends[1], anastomosis_mm)
    for name, lm in patient.landmarks.items():
        if ".foramen." not in name or name.count("-") != 1:
            continue
        side = name.rsplit(".", 1)[1]
        if not sides.get(side):
            continue
        p = sides[side][0]
        q = np.asarray(lm.position_mm, float)
        k = int(np.argmin(np.linalg.norm(p - q, axis=1)))
        if np.linalg.norm(p[k] - q) < 30.0:
            tube(p[k], q, foraminal_mm)
    return np.concatenate(pts), np.concatenate(rad)


__all__ = ["cauda_strands", "dural_sleeves", "nerve_roots", "plexus_lattice", "recess_pouches",
           "texture", "tube_mask"]
