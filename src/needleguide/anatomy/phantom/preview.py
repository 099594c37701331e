"""Labelled slice pictures of a phantom (PNG with a colour legend), for both regions.

Slices are rendered directly from the analytic model on an oblique plane (e.g. parallel to
the L4–L5 disc, as a CT gantry tilt would give) at a fine pixel size, so that the picture
shows the anatomy, not the voxel grid. Display conventions: axial — patient right on the
left, anterior up (radiological); sagittal — anterior on the left, superior up; coronal —
patient right on the left, superior up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from needleguide.anatomy.phantom.model import PhantomModel


@dataclass
class SliceSpec:
    """A plane: centre (RAS mm), unit row axis ``u`` (image right), unit column axis ``v``
    (image up), half sizes (mm), title and file stem."""

    stem: str
    title: str
    center: np.ndarray
    u: np.ndarray
    v: np.ndarray
    half_u: float
    half_v: float
    zoom_center: tuple[float, float] | None = None  # (u, v) mm from the centre
    zoom_half_mm: float = 45.0


def render_slice(model: PhantomModel, spec: SliceSpec, pixel_mm: float = 0.5) -> np.ndarray:
    """Labels (rows = image rows top-down, cols = left-right) on the plane ``spec``."""
    nu = int(round(2 * spec.half_u / pixel_mm)) + 1
    nv = int(round(2 * spec.half_v / pixel_mm)) + 1
    u = np.asarray(spec.u, float) / np.linalg.norm(spec.u)
    v = np.asarray(spec.v, float) / np.linalg.norm(spec.v)
    w = np.cross(u, v)
    aff = np.eye(4)
    aff[:3, 0] = u * pixel_mm
    aff[:3, 1] = -v * pixel_mm  # index j grows downwards in the image
    aff[:3, 2] = w * pixel_mm
    aff[:3, 3] = np.asarray(spec.center, float) - u * spec.half_u + v * spec.half_v
    lab = model.render((nu, nv, 1), aff)[:, :, 0]
    return lab.T  # (rows = v, cols = u)


def save_png(model: PhantomModel, spec: SliceSpec, path: str | Path, pixel_mm: float = 0.5,
             marks: dict[str, np.ndarray] | None = None) -> Path:
    """Render ``spec`` and write a PNG with a legend of the tissues present (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from needleguide.atomic import atomic_path

    lab = render_slice(model, spec, pixel_mm)
    lut = model.tissues.color_lut()
    rgb = lut[lab]
    present = [int(x) for x in np.unique(lab)]
    fig = plt.figure(figsize=(15.5, 7.8), dpi=110)
    ax = fig.add_axes([0.02, 0.05, 0.42, 0.88])
    ext = (-spec.half_u, spec.half_u, -spec.half_v, spec.half_v)
    ax.imshow(rgb, extent=ext, interpolation="nearest")
    ax.set_title(spec.title, fontsize=11)
    ax.set_xlabel("mm")
    zax = fig.add_axes([0.45, 0.05, 0.34, 0.88])
    zc = np.asarray(spec.zoom_center if spec.zoom_center is not None else (0.0, 0.0), float)
    zh = spec.zoom_half_mm
    zax.imshow(rgb, extent=ext, interpolation="nearest")
    zax.set_xlim(zc[0] - zh, zc[0] + zh)
    zax.set_ylim(zc[1] - zh, zc[1] + zh)
    zax.set_title(f"zoom ({2 * zh:.0f} mm)", fontsize=10)
    ax.add_patch(plt.Rectangle((zc[0] - zh, zc[1] - zh), 2 * zh, 2 * zh, fill=False,
                               ec="white", lw=1.0, ls="--"))
    if marks:
        u = spec.u / np.linalg.norm(spec.u)
        v = spec.v / np.linalg.norm(spec.v)
        w = np.cross(u, v)
        for name, p in marks.items():
            d = np.asarray(p, float) - spec.center
            pu, pv = d @ u, d @ v
            if abs(d @ w) < 2.0 and abs(pu - zc[0]) < zh and abs(pv - zc[1]) < zh:
                zax.plot(pu, pv, "+", color="black", ms=8, mew=1.4)
                zax.annotate(name, (pu, pv), fontsize=6.5, xytext=(4, 3),
                             textcoords="offset points")
    handles = [Patch(facecolor=np.array(model.tissues[k].color) / 255.0, edgecolor="0.3",
                     label=f"{k:2d} {model.tissues[k].name}") for k in present]
    lax = fig.add_axes([0.80, 0.04, 0.2, 0.9])
    lax.axis("off")
    lax.legend(handles=handles, loc="upper left", fontsize=8, frameon=False,
               ncol=1 if len(handles) <= 36 else 2)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def standard_slices(model: PhantomModel) -> list[SliceSpec]:
    """Axial (disc-parallel) at L4–5 and through the L4 pedicles, mid-sagittal, parasagittal
    through the right foramina, coronal — or the cervical analogues (C6, C5–C6)."""
    lo, hi = (np.asarray(b, float) for b in model.bounds_mm)
    V = model.vertebrae
    L = model.landmarks
    cervical = model.params.region == "cervical"
    ax_level, ax_pair, fprefix = ("C6", "C5-C6", "C") if cervical else ("L4", "L4-L5", "L")
    half_x = 0.5 * (hi[0] - lo[0])
    half_y = 0.5 * (hi[1] - lo[1])
    half_z = 0.5 * (hi[2] - lo[2])
    mid = 0.5 * (lo + hi)
    specs: list[SliceSpec] = []
    R = np.array([1.0, 0, 0])
    zoom_ax, zoom_sag, zoom_cor = (30.0, 50.0, 60.0) if cervical else (50.0, 75.0, 100.0)
    drop = 10.0 if cervical else 25.0

    def uv(c, u, v, p):
        d = np.asarray(p, float) - c
        return (float(d @ u), float(d @ v))

    def recentre(c, ant):
        return c + ant * float((mid - c) @ ant)

    if ax_level in V:
        vt = V[ax_level]
        below = _level_below(V, ax_level)
        up = _unit(vt.superior + (below.superior if below is not None else vt.superior))
        ant = _unit(np.cross(up, R))
        if below is not None and f"{ax_pair}.disc" in L:
            c = np.asarray(L[f"{ax_pair}.disc"].position_mm, float)
        elif below is not None:
            c = 0.5 * (vt.center_mm + below.center_mm)
        else:
            c = vt.center_mm
        focus = c - ant * (12.0 if cervical else 22.0)
        c = recentre(c, ant)
        specs.append(SliceSpec(f"axial_{ax_pair}", f"Axial at {ax_pair} (parallel to the disc)",
                               c, -R, ant, half_x, half_y, uv(c, -R, ant, focus), zoom_ax))
        ped = vt.extra.get("pedicle_right")
        cp = vt.center_mm.copy()
        if ped is not None:
            cp = cp + vt.superior * float((np.asarray(ped) - vt.center_mm) @ vt.superior)
        a2 = _unit(vt.anterior)
        focus = cp - a2 * (12.0 if cervical else 22.0)
        cp = recentre(cp, a2)
        specs.append(SliceSpec(f"axial_{ax_level}", f"Axial at {ax_level} (through the "
                               f"pedicles)", cp, -R, a2, half_x, half_y,
                               uv(cp, -R, a2, focus), zoom_ax))
    focus = vt.center_mm if ax_level in V else mid
    A, S = np.array([0, -1.0, 0]), np.array([0, 0, 1.0])
    c = np.array([0.0, mid[1], mid[2]])
    specs.append(SliceSpec("sagittal_mid", "Mid-sagittal", c, A, S, half_y, half_z,
                           uv(c, A, S, focus + np.array([0, -drop * 0.8, -drop])), zoom_sag))
    fx = [np.asarray(lm.position_mm)[0] for k, lm in L.items()
          if k.startswith(fprefix) and ".foramen.right" in k]
    x_for = float(np.median(fx)) if fx else 20.0
    c = np.array([x_for, mid[1], mid[2]])
    specs.append(SliceSpec("sagittal_right_foramina",
                           f"Parasagittal through the right foramina (x = {x_for:.0f} mm)",
                           c, A, S, half_y, half_z,
                           uv(c, A, S, focus + np.array([0, -drop * 0.8, -drop])), zoom_sag))
    ys = [v.center_mm[1] for v in V.values()]
    y_cor = float(np.median(ys)) if ys else mid[1]
    c = np.array([0.0, y_cor, mid[2]])
    specs.append(SliceSpec("coronal", f"Coronal through the vertebral bodies (y = {y_cor:.0f}"
                           " mm)", c, -R, S, half_x, half_z,
                           uv(c, -R, S, focus + np.array([0, 0, -1.6 * drop])), zoom_cor))
    return specs


def _level_below(V: dict, name: str):
    keys = list(V)
    if name not in keys:
        return None
    i = keys.index(name)
    order_desc = keys  # vertebrae are stored cranial -> caudal
    if i + 1 < len(order_desc):
        return V[order_desc[i + 1]]
    return None


def write_standard_pngs(model: PhantomModel, out_dir: str | Path, pixel_mm: float = 0.5
                        ) -> list[Path]:
    """All standard slices as PNGs in ``out_dir``; returns their paths."""
    out = []
    marks = {k: v.position_mm for k, v in model.landmarks.items()}
    for spec in standard_slices(model):
        out.append(save_png(model, spec, Path(out_dir) / f"{spec.stem}.png", pixel_mm,
                            marks=marks))
    return out
