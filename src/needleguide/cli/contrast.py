"""``needleguide contrast``: put the needle tip in a compartment of the lumbar phantom,
inject contrast, and write a live-fluoroscopy clip, a contact sheet (AP and lateral, live
and subtracted, several times) and DSA frames.

Images come from the cone-beam fluoroscope (``needleguide.fluoro``: two C-arms, AP and
lateral, biplane-style, in the --display polarity, DSA by log subtraction) — or, with
``--renderer simple``, from a parallel-beam Beer–Lambert projection at an effective 60 keV
(μ/ρ from PHYSICS.md) with Poisson noise, kept as a dependency-light stand-in
(:mod:`needleguide.cli._contrast_simple`). With ``--dicom`` (fluoro renderer) the live
and DSA runs of both views also go into one DICOM study in dicom/ (XA objects and the
dose report; :mod:`needleguide.cli._dicom_out`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from needleguide.cli._common import console
from needleguide.cli._contrast_simple import SimpleRenderer


def _defaults(pattern: str) -> tuple[float, float]:
    """Volume (mL) and rate (mL/s) of the pattern's injection (``placement.INJECTIONS``)."""
    from needleguide.scene.injectate.placement import INJECTIONS

    return INJECTIONS[pattern]


def register(app: typer.Typer) -> None:
    from needleguide.cli._common import DEFAULT_DISPLAY, DISPLAY_HELP, FORCE_HELP, SEED_HELP

    @app.command("contrast")
    def contrast(
        pattern: str = typer.Option(..., help="epidural (interlaminar) | transforaminal | "
                                    "caudal | intravascular (arterial) | venous | "
                                    "intrathecal | intra-articular | facet | sacroiliac | "
                                    "soft-tissue"),
        seed: int = typer.Option(0, help=SEED_HELP + " (phantom and noise)."),
        out: Path = typer.Option(..., help="output folder"),
        level: str = typer.Option("L4-L5", help="disc level, e.g. L4-L5"),
        side: str = typer.Option("right", help="right | left"),
        concentration: float = typer.Option(300.0, help="iodine, mg I/mL"),
        volume: float = typer.Option(None, help="mL (default per pattern)"),
        rate: float = typer.Option(None, help="mL/s (default per pattern)"),
        fps: float = typer.Option(10.0, help="frames per second of the clip (1–30)"),
        renderer: str = typer.Option("fluoro", help="fluoro (cone-beam C-arm) | simple"),
        display: str = typer.Option(DEFAULT_DISPLAY, help=DISPLAY_HELP),
        dicom: bool = typer.Option(False, "--dicom",
                                   help="Also write DICOM into DIR/dicom/: the live and DSA "
                                        "runs as X-Ray Angiographic images and the dose "
                                        "report (needs --renderer fluoro)."),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Inject contrast with the tip in a chosen compartment; write contrast.mp4,
        contact_sheet.png, dsa/*.png and summary.json."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from needleguide.cli._common import announce_compile, check_display, writing
        from needleguide.errors import UserError, check_choice, check_range, check_seed
        from needleguide.scene.injectate import make_injection
        from needleguide.scene.injectate.placement import PATTERNS

        check_choice("--pattern", pattern, PATTERNS)
        check_range("--fps", fps, 1.0, 30.0)
        check_seed(seed)
        check_choice("--side", side, ("right", "left"))
        check_choice("--renderer", renderer, ("fluoro", "simple"))
        check_display(display)
        if dicom and renderer != "fluoro":
            raise UserError("--dicom: needs --renderer fluoro (the simple stand-in has no "
                            "C-arm geometry or technique to record)")
        v0, r0 = _defaults(pattern)
        make_injection(agent="contrast", concentration_mg_ml=concentration,
                       volume_ml=v0 if volume is None else volume,
                       rate_ml_s=r0 if rate is None else rate, start_s=1.0)
        with writing(out, "contrast", force) as d:
            announce_compile("needleguide.anatomy", "needleguide.fluoro",
                             "needleguide.scene", about="1 min")
            with Progress(TextColumn("{task.description}"), BarColumn(),
                          MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
                task = bar.add_task("building the phantom", total=None)

                def tick(done: int, total: int, what: str) -> None:
                    bar.update(task, completed=done, total=total, description=what)

                files = run(pattern, seed, d, level, side, concentration, volume, rate, fps,
                            renderer, display, progress=tick, dicom=dicom)
        tops = [f.relative_to(d).parts[0] for f in files]
        kinds = {"dsa": "PNGs", "dicom": "DICOM files"}
        console.print(f"wrote {out}: " + ", ".join(
            n + (f"/ ({tops.count(n)} {kinds[n]})" if n in kinds else "")
            for n in sorted(set(tops))), soft_wrap=True, highlight=False)


VIEWS = ("ap", "lateral")


def run(pattern: str, seed: int, out: Path, level: str = "L4-L5", side: str = "right",
        concentration: float = 300.0, volume: float | None = None, rate: float | None = None,
        fps: float = 10.0, renderer: str = "fluoro", display: str = "black-bone",
        progress: Callable[[int, int, str], None] | None = None,
        dicom: bool = False) -> list[Path]:
    """Write the clip, contact sheet, DSA frames and summary into ``out`` (with ``dicom``
    and the fluoro renderer also the DICOM study in ``out/dicom``); returns the files.
    ``progress(done, total, what)`` is called per rendered frame."""
    import numpy as np

    from needleguide.anatomy.phantom import build_phantom
    from needleguide.atomic import write_json
    from needleguide.scene.injectate import Injectate, make_injection
    from needleguide.scene.injectate.placement import needle_for, tip_for_pattern

    tick = progress or (lambda done, total, what: None)
    patient = build_phantom("lumbar", seed=seed, spacing_mm=1.5)
    tip = tip_for_pattern(patient, pattern, level, side)
    v0, r0 = _defaults(pattern)
    inj = make_injection(agent="contrast", concentration_mg_ml=concentration,
                         volume_ml=v0 if volume is None else volume,
                         rate_ml_s=r0 if rate is None else rate, start_s=1.0)
    tick(0, 1, "injecting (the contrast's spread)")
    injectate = Injectate(patient, seed=seed).inject(tip, inj)
    needle = needle_for(patient, tip, pattern, level, side)
    if renderer == "fluoro":
        view = FluoroRenderer(patient, injectate, needle, tip, level, side, seed, display)
    else:
        view = SimpleRenderer(patient, injectate, needle, tip, level, seed, display)
    times = np.arange(0.0, inj.end_s + 3.0 + 1e-9, 1.0 / fps)
    sheet_t = sorted({0.5, inj.start_s + 0.25 * inj.duration_s, inj.start_s + 0.5 * inj.duration_s,
                      inj.end_s, inj.end_s + 1.0, inj.end_s + 3.0})
    n = len(times) + len(sheet_t)
    frames = []
    live = {v: [] for v in VIEWS} if dicom and renderer == "fluoro" else None
    for i, t in enumerate(times):
        tick(i, n, "live frames (AP + lateral)")
        frames.append(np.concatenate([view.live(v, float(t)) for v in VIEWS], axis=1))
        if live is not None:
            from needleguide.cli._dicom_out import monitor_copy

            for v in VIEWS:
                live[v].append(monitor_copy(view.last_frame[v]))
    files = [write_mp4(out / "contrast.mp4", frames, fps, [f"{t:4.1f} s" for t in times])]
    full = {}
    for i, t in enumerate(sheet_t):
        tick(len(times) + i, n, "contact sheet and DSA")
        for v in VIEWS:
            full[(v, t)] = (view.live(v, t), view.dsa(v, t))
    tick(n, n, "writing")
    crops = {v: view.crop(v, injectate.iodine_mg_ml(inj.end_s)) for v in VIEWS}
    sheet = {k: (a[crops[k[0]]], b[crops[k[0]]]) for k, (a, b) in full.items()}
    files.append(contact_sheet(out / "contact_sheet.png", sheet, sheet_t, pattern,
                               injectate.summary(inj.end_s)))
    files += write_dsa(out / "dsa", full, sheet_t)
    files.append(write_json(out / "summary.json", {
        "pattern": pattern, "seed": seed, "level": level, "side": side,
        "tip_mm": np.round(tip, 2).tolist(), "injection": inj.model_dump(mode="json"),
        "summaries": [injectate.summary(float(t)) for t in sheet_t],
        "renderer": view.name, "display": display}))
    if live is not None:
        from needleguide.cli._dicom_out import write_contrast_dicom

        tick(n, n, "writing DICOM")
        files += write_contrast_dicom(out / "dicom", view, live, sheet_t, pattern, seed,
                                      concentration)
    return files


class FluoroRenderer:
    """Two C-arms (AP and lateral of the level) of ``needleguide.fluoro``."""

    def __init__(self, patient, injectate, needle, tip_mm, level: str, side: str, seed: int,
                 display: str = "black-bone"):
        from needleguide.fluoro import Fluoroscope, FluoroSettings, named_view
        from needleguide.scene import Scene

        self.name = f"needleguide.fluoro cone-beam C-arm (AP + lateral), {display} display"
        settings = FluoroSettings(display=display)
        self.carm = {v: named_view(patient, v, level, side) for v in VIEWS}
        self.fl = {v: Fluoroscope(patient, settings, seed=seed + k, carm=self.carm[v])
                   for k, v in enumerate(VIEWS)}
        self.scene = Scene(patient=patient, needle=needle, injectate=injectate)
        self.tip = tip_mm
        self.last_frame: dict = {}  # view -> the Frame the monitor shows

    def live(self, view: str, t_s: float):
        """What the monitor shows at ``t_s``: pulses at the pulse rate since the last one
        (a new run starts 1 s before ``t_s``), through the live chain's recursive filter."""
        import numpy as np

        fl = self.fl[view]
        period = 1.0 / fl.settings.pulse_rate
        last = getattr(self, "_last_t", {}).get(view)
        start = last if last is not None and 0.0 <= t_s - last <= 0.5 else t_s - 1.0 - period
        f = None
        for t in np.arange(t_s, start + 1e-6, -period)[::-1]:
            f = fl.frame(self.scene.with_time(max(float(t), 0.0)), carm=self.carm[view])
        self._last_t = {**getattr(self, "_last_t", {}), view: t_s}
        if f is None:
            f = fl.hold(t_s) or fl.frame(self.scene.with_time(t_s), carm=self.carm[view])
        self.last_frame[view] = f
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


def _u8(pixels):
    import numpy as np

    return (255 * np.clip(pixels, 0, 1)).astype(np.uint8)


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
