"""``needleguide contrast``: put the needle tip in a compartment of the lumbar phantom,
inject contrast, and write a live-fluoroscopy clip, a contact sheet (AP and lateral, live
and subtracted, several times) and DSA frames.

Images come from the cone-beam fluoroscope (``needleguide.fluoro``: two C-arms, AP and
lateral, biplane-style, black-bone display, DSA by log subtraction) — or, with
``--renderer simple``, from a parallel-beam Beer–Lambert projection at an effective 60 keV
(μ/ρ from PHYSICS.md) with Poisson noise, kept as a dependency-light stand-in.
"""

from __future__ import annotations

from pathlib import Path

import typer

from needleguide.cli._common import console, out_dir

#: μ/ρ (cm²/g) at 60 keV, PHYSICS.md (water, ICRU-44 soft tissue and cortical bone,
#: stainless steel); adipose and cancellous bone are *assumptions* for the display.
MU_RHO_60KEV = {"air": 0.0, "adipose": 0.200, "skin": 0.205, "muscle": 0.205,
                "soft_tissue": 0.205, "blood": 0.206, "csf": 0.206, "water": 0.206,
                "cartilage": 0.210, "cancellous_bone": 0.260, "cortical_bone": 0.315,
                "steel": 1.19}
IODINE_MU_PER_MG_ML_MM = 7.58e-4  # 1/mm per mg I/mL at 60 keV (7.58 cm²/g)
PHOTONS_PER_PIXEL = 3000.0  # behind the patient, per 1 mm² pixel and frame: ≈ 0.1 µGy
# (1.5 µGy/s at 15 pulses/s, 3.1e4 photons/mm²/µGy; PHYSICS.md), held by the AEC at the
# median path of the mask frame
DEFAULTS = {  # pattern: (volume mL, rate mL/s)
    "epidural": (3.0, 0.5), "intravascular": (1.5, 0.5), "intrathecal": (3.0, 0.5),
    "intra-articular": (0.6, 0.15), "soft-tissue": (3.0, 0.5)}


def register(app: typer.Typer) -> None:
    @app.command("contrast")
    def contrast(
        pattern: str = typer.Option(..., help="epidural | intravascular | intrathecal | "
                                    "intra-articular | soft-tissue"),
        seed: int = typer.Option(0, help="phantom and noise seed"),
        out: Path = typer.Option(..., help="output folder"),
        level: str = typer.Option("L4-L5", help="disc level, e.g. L4-L5"),
        side: str = typer.Option("right", help="right | left"),
        concentration: float = typer.Option(300.0, help="iodine, mg I/mL"),
        volume: float = typer.Option(None, help="mL (default per pattern)"),
        rate: float = typer.Option(None, help="mL/s (default per pattern)"),
        fps: float = typer.Option(10.0, help="frames per second of the clip"),
        renderer: str = typer.Option("fluoro", help="fluoro (cone-beam C-arm) | simple"),
    ) -> None:
        """Inject contrast with the tip in a chosen compartment; write contrast.mp4,
        contact_sheet.png, dsa/*.png and summary.json."""
        from needleguide.errors import check_choice, check_range
        from needleguide.scene.injectate.placement import PATTERNS

        check_choice("pattern", pattern, PATTERNS)
        check_range("fps", fps, 1.0, 30.0)
        check_range("seed", seed, 0, 2**32 - 1)
        check_choice("renderer", renderer, ("fluoro", "simple"))
        files = run(pattern, seed, out_dir(out), level, side, concentration, volume, rate, fps,
                    renderer)
        for f in files:
            console.print(f"wrote {f}")


VIEWS = ("ap", "lateral")


def run(pattern: str, seed: int, out: Path, level: str = "L4-L5", side: str = "right",
        concentration: float = 300.0, volume: float | None = None, rate: float | None = None,
        fps: float = 10.0, renderer: str = "fluoro") -> list[Path]:
    import numpy as np

    from needleguide.anatomy.phantom import build_phantom
    from needleguide.atomic import write_json
    from needleguide.scene.injectate import Injectate, make_injection
    from needleguide.scene.injectate.placement import tip_for_pattern

    patient = build_phantom("lumbar", seed=seed, spacing_mm=1.5)
    tip = tip_for_pattern(patient, pattern, level, side)
    v0, r0 = DEFAULTS[pattern]
    inj = make_injection(agent="contrast", concentration_mg_ml=concentration,
                         volume_ml=v0 if volume is None else volume,
                         rate_ml_s=r0 if rate is None else rate, start_s=1.0)
    injectate = Injectate(patient, seed=seed).inject(tip, inj)
    needle = needle_for(patient, tip, pattern, level, side)
    if renderer == "fluoro":
        view = FluoroRenderer(patient, injectate, needle, tip, level, side, seed)
    else:
        view = SimpleRenderer(patient, injectate, needle, tip, level, seed)
    times = np.arange(0.0, inj.end_s + 3.0 + 1e-9, 1.0 / fps)
    sheet_t = sorted({0.5, inj.start_s + 0.25 * inj.duration_s, inj.start_s + 0.5 * inj.duration_s,
                      inj.end_s, inj.end_s + 1.0, inj.end_s + 3.0})
    frames = [np.concatenate([view.live(v, float(t)) for v in VIEWS], axis=1) for t in times]
    files = [write_mp4(out / "contrast.mp4", frames, fps, [f"{t:4.1f} s" for t in times])]
    full = {(v, t): (view.live(v, t), view.dsa(v, t)) for t in sheet_t for v in VIEWS}
    crops = {v: view.crop(v, injectate.iodine_mg_ml(inj.end_s)) for v in VIEWS}
    sheet = {k: (a[crops[k[0]]], b[crops[k[0]]]) for k, (a, b) in full.items()}
    files.append(contact_sheet(out / "contact_sheet.png", sheet, sheet_t, pattern,
                               injectate.summary(inj.end_s)))
    files += write_dsa(out / "dsa", full, sheet_t)
    files.append(write_json(out / "summary.json", {
        "pattern": pattern, "seed": seed, "level": level, "side": side,
        "tip_mm": np.round(tip, 2).tolist(), "injection": inj.model_dump(mode="json"),
        "summaries": [injectate.summary(float(t)) for t in sheet_t],
        "renderer": view.name}))
    return files


def needle_for(patient, tip_mm, pattern: str, level: str, side: str):
    """A 22 G needle from the skin to the tip along the pattern's usual approach."""
    import numpy as np

    from needleguide.scene import Needle
    from needleguide.scene.injectate.placement import _level_axes

    sup, ant = _level_axes(patient, level)
    sgn = 1.0 if side == "right" else -1.0
    lateral = {"intra-articular": 0.35, "intravascular": 0.8}.get(pattern, 0.0)
    out_dir_ = -ant + lateral * sgn * np.cross(ant, sup) - 0.15 * sup
    out_dir_ /= np.linalg.norm(out_dir_)
    steps = np.arange(0.0, 300.0, 0.5)
    labels = patient.label_at(np.asarray(tip_mm, float) + steps[:, None] * out_dir_)
    outside = np.flatnonzero(labels == 0)
    path = float(steps[outside[0]]) if outside.size else 80.0
    length = next((x for x in (89.0, 127.0, 152.0, 178.0) if x >= path + 15.0), 200.0)
    entry = np.asarray(tip_mm, float) + path * out_dir_
    return Needle.from_entry_and_target(entry, tip_mm, gauge=22, length_mm=length,
                                        inserted_mm=min(path, length))


class FluoroRenderer:
    """Two C-arms (AP and lateral of the level) of ``needleguide.fluoro``."""

    name = "needleguide.fluoro cone-beam C-arm (AP + lateral), black-bone display"

    def __init__(self, patient, injectate, needle, tip_mm, level: str, side: str, seed: int):
        from needleguide.fluoro import Fluoroscope, FluoroSettings, named_view
        from needleguide.scene import Scene

        settings = FluoroSettings(display="black-bone")
        self.carm = {v: named_view(patient, v, level, side) for v in VIEWS}
        self.fl = {v: Fluoroscope(patient, settings, seed=seed + k, carm=self.carm[v])
                   for k, v in enumerate(VIEWS)}
        self.scene = Scene(patient=patient, needle=needle, injectate=injectate)
        self.tip = tip_mm

    def live(self, view: str, t_s: float):
        f = self.fl[view].frame(self.scene.with_time(t_s), carm=self.carm[view])
        return _u8(f.pixels)

    def dsa(self, view: str, t_s: float):
        from needleguide.fluoro import dsa_sequence

        # the lateral path is long (few quanta): a wider subtraction window tames the noise
        frames = dsa_sequence(self.fl[view], [self.scene.with_time(0.0),
                                              self.scene.with_time(t_s)], carm=self.carm[view],
                              window=0.4 if view == "ap" else 0.6)
        return _u8(frames[1].pixels)

    def crop(self, view: str, field=None, min_px: int = 200, max_px: int = 360):
        """A square around the projection of the contrast (or of the tip), for the sheet."""
        import numpy as np

        carm = self.carm[view]
        n = carm.geometry.pixels
        pts = np.asarray(self.tip, float)[None]
        if field is not None:
            shape = np.array(field.values.shape) - 1
            corners = np.array([[i, j, k] for i in (0, shape[0]) for j in (0, shape[1])
                                for k in (0, shape[2])], float)
            pts = corners @ field.VoxelToPatient[:3, :3].T + field.VoxelToPatient[:3, 3]
        cr = carm.project(pts)
        lo, hi = cr.min(axis=0), cr.max(axis=0)
        size = int(np.clip(1.6 * np.max(hi - lo) + 60, min_px, max_px))
        c, r = (lo + hi) / 2
        c0 = int(min(max(c - size / 2, 0), n - size))
        r0 = int(min(max(r - size / 2, 0), n - size))
        return slice(r0, r0 + size), slice(c0, c0 + size)


class SimpleRenderer:
    """The parallel-beam stand-in (:class:`Projector`) behind the renderer interface."""

    name = "parallel-beam 60 keV Beer-Lambert stand-in (cli/contrast.py)"

    def __init__(self, patient, injectate, needle, tip_mm, level: str, seed: int):
        import numpy as np

        self.proj = Projector(patient, tip_mm, level, needle)
        self.injectate = injectate
        self.rng = np.random.default_rng(seed)

    def live(self, view: str, t_s: float):
        line = self.proj.live(view, self.injectate.iodine_mg_ml(t_s), self.rng)
        return self.proj.display(line, view)

    def dsa(self, view: str, t_s: float):
        line = self.proj.live(view, self.injectate.iodine_mg_ml(t_s), self.rng)
        return self.proj.dsa(line, self.proj.mask_frame(view))

    def crop(self, view: str, field=None):
        return slice(None), slice(None)


def _u8(pixels):
    import numpy as np

    return (255 * np.clip(pixels, 0, 1)).astype(np.uint8)


class Projector:
    """Parallel-beam AP (through y) and lateral (through x) projections of the anatomy
    around the level, plus the needle and the iodine."""

    def __init__(self, patient, tip_mm, level: str, needle, spacing_mm: float = 1.0,
                 size_mm=(120.0, 150.0, 130.0)):
        import numpy as np

        from needleguide.scene.injectate.grid import LocalGrid

        names = [n for n in level.split("-") if n in patient.vertebrae]
        center = np.mean([patient.vertebrae[n].center_mm for n in names], axis=0) \
            if names else np.asarray(tip_mm, float)
        self.grid = LocalGrid.around(center, size_mm, spacing_mm)
        labels = self.grid.labels(patient)
        mu = np.zeros(256)
        for t in patient.tissues:
            mu[t.label] = MU_RHO_60KEV.get(t.material, 0.205) * t.density_g_cm3 / 10.0
        vol = mu[labels]
        h = spacing_mm
        self.base = {"ap": vol.sum(axis=1) * h, "lateral": vol.sum(axis=0) * h}
        back = -np.asarray(needle.direction, float)
        pts = np.asarray(tip_mm, float) + np.arange(0.0, needle.inserted_length_mm, 0.25)[
            :, None] * back
        flat, inside = self.grid.flat_of(pts)
        ijk = np.stack(np.unravel_index(flat[inside], self.grid.shape), axis=1)
        self.needle = {}
        od = needle.outer_diameter_mm
        steel = MU_RHO_60KEV["steel"] * 8.0 / 10.0 * od * np.pi / 4  # μ × mean chord (mm)
        for v, (a, b) in {"ap": (0, 2), "lateral": (1, 2)}.items():
            img = np.zeros(self.base[v].shape)
            img[ijk[:, a], ijk[:, b]] = steel
            self.needle[v] = img

    def iodine(self, view: str, field):
        import numpy as np

        img = np.zeros(self.base[view].shape)
        if field is None:
            return img
        g, h = self.grid, self.grid.spacing_mm
        off = np.rint(field.VoxelToPatient[:3, 3] / h).astype(int) - np.array(g.lo)
        lo = np.maximum(off, 0)
        hi = np.minimum(off + np.array(field.values.shape), np.array(g.shape))
        if np.any(hi <= lo):
            return img
        sub = field.values[tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, off,
                                                                          strict=True))]
        ax = 1 if view == "ap" else 0
        keep = [0, 2] if view == "ap" else [1, 2]
        proj = sub.sum(axis=ax) * h * IODINE_MU_PER_MG_ML_MM
        img[lo[keep[0]]:hi[keep[0]], lo[keep[1]]:hi[keep[1]]] += proj
        return img

    def mask_frame(self, view: str):
        """Noise-free mask (line integral) before contrast, for subtraction."""
        return self.base[view] + self.needle[view]

    def live(self, view: str, field, rng):
        """Noisy line integral −ln(N/N0) of one live frame (N0 set by the AEC)."""
        import numpy as np

        mask = self.mask_frame(view)
        ref = float(np.median(mask))
        line = mask + self.iodine(view, field)
        n = rng.poisson(PHOTONS_PER_PIXEL * np.exp(-(line - ref)))
        return ref - np.log(np.maximum(n, 0.5) / PHOTONS_PER_PIXEL)

    def display(self, line, view: str):
        """uint8 image, rows = superior up, attenuation dark (fluoroscopy convention);
        AP: patient right on the image left; lateral: anterior on the image left."""
        import numpy as np

        img = np.fliplr(np.flipud(line.T))  # (z, x|y), superior up, flipped columns
        lo, hi = np.percentile(self.mask_frame(view), [1, 99.5])
        g = 1.0 - np.clip((img - lo) / (hi - lo + 1e-9), 0, 1)
        return (255 * g).astype(np.uint8)

    @staticmethod
    def dsa(line, mask):
        """Log-subtracted frame: iodine dark on mid-grey."""
        import numpy as np

        d = np.fliplr(np.flipud((line - mask).T))
        return (255 * np.clip(0.6 * np.exp(-d / 0.8), 0, 1)).astype(np.uint8)


def write_mp4(path: Path, frames, fps: float, captions) -> Path:
    import imageio.v2 as imageio
    import numpy as np

    from needleguide.atomic import atomic_path

    k = max(1, 480 // frames[0].shape[0])
    big = [np.kron(f, np.ones((k, k), np.uint8)) for f in frames]
    h, w = big[0].shape
    H, W = (h + 15) // 16 * 16, (w + 15) // 16 * 16
    with atomic_path(path) as tmp:
        with imageio.get_writer(tmp, fps=fps, codec="libx264", format="FFMPEG",
                                macro_block_size=16, quality=7) as wr:
            for f, cap in zip(big, captions, strict=True):
                pad = np.zeros((H, W), np.uint8)
                pad[:h, :w] = f
                _stamp(pad, cap)
                wr.append_data(np.repeat(pad[..., None], 3, axis=2))
    return path


def _stamp(img, text: str) -> None:
    """Burn a small caption into the top-left corner (OpenCV's Hershey font)."""
    import cv2

    cv2.putText(img, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, 255, 2, cv2.LINE_AA)


def contact_sheet(path: Path, sheet, times, pattern: str, summary) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from needleguide.atomic import atomic_path

    rows = [("ap", 0, "AP live"), ("ap", 1, "AP DSA"), ("lateral", 0, "lateral live"),
            ("lateral", 1, "lateral DSA")]
    fig, axes = plt.subplots(len(rows), len(times), figsize=(2.2 * len(times), 10.5), dpi=110)
    for r, (v, k, name) in enumerate(rows):
        for c, t in enumerate(times):
            ax = axes[r, c]
            ax.imshow(sheet[(v, t)][k], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t = {t:.1f} s", fontsize=9)
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    shares = ", ".join(f"{k} {v:.0%}" for k, v in summary["sites"][0]["shares"].items())
    fig.suptitle(f"contrast: {pattern} — tip compartment: {shares}", fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def write_dsa(folder: Path, sheet, times) -> list[Path]:
    import imageio.v2 as imageio

    from needleguide.atomic import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i, t in enumerate(times):
        for v in ("ap", "lateral"):
            p = folder / f"dsa_{v}_{i:02d}_{t:04.1f}s.png"
            with atomic_path(p) as tmp:
                imageio.imwrite(tmp, sheet[(v, t)][1])
            files.append(p)
    return files
