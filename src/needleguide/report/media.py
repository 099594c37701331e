"""Images, plots and the procedure video of a session report."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from needleguide.atomic import atomic_path


def png_b64(rgb: np.ndarray) -> str:
    """A uint8 image as a base64 PNG data URI."""
    import imageio.v2 as imageio

    buf = io.BytesIO()
    imageio.imwrite(buf, np.ascontiguousarray(rgb), format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plots_png(results) -> bytes:
    """Tip-to-target distance per step and cumulative DAP per step, one line per session."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for r in results:
        lab = f"{r.config.procedure} · {r.config.modality}"
        k = np.arange(1, len(r.steps) + 1)
        ax[0].plot(k, [s.tip_to_target_mm for s in r.steps], "-o", ms=3, label=lab)
        det = [i for i, s in enumerate(r.steps) if s.detected]
        ax[0].plot(k[det], [r.steps[i].tip_to_target_mm for i in det], "k.", ms=3)
        ln, = ax[1].plot(k, [s.dap_gy_cm2 * 1000.0 for s in r.steps], "-", label=lab)
        if r.metrics["dap_gy_cm2"] > 0:  # after the check pair and the contrast run
            ax[1].plot([len(k) + 1], [r.metrics["dap_gy_cm2"] * 1000.0], "o",
                       color=ln.get_color())
    tol = max(r.metrics["tolerance_mm"] for r in results) if results else 3.0
    ax[0].axhline(tol, color="grey", ls="--", lw=1)
    ax[0].set(xlabel="step", ylabel="true tip to target (mm)",
              title="tip distance (black dots: needle found by the analyser)")
    ax[0].set_yscale("symlog", linthresh=5)
    ax[1].set(xlabel="step (last dot: after the position check and contrast)",
              ylabel="cumulative DAP (mGy·cm²)", title="cumulative dose")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    s = min(h / img.shape[0], w / img.shape[1])
    im = cv2.resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)),
                    interpolation=cv2.INTER_AREA)
    out = np.zeros((h, w, 3), np.uint8)
    y0, x0 = (h - im.shape[0]) // 2, (w - im.shape[1]) // 2
    out[y0:y0 + im.shape[0], x0:x0 + im.shape[1]] = im
    return out


def write_video(results, path: Path, fps: float = 6.0, size: int = 320) -> Path | None:
    """One MP4 with the sessions side by side (each panel ``size``²); shorter sessions
    hold their last frame."""
    import imageio.v2 as imageio

    vids = [r.video for r in results if r.video]
    if not vids:
        return None
    n = max(len(v) for v in vids)
    with atomic_path(path) as tmp:
        w = imageio.get_writer(tmp, format="FFMPEG", fps=fps, codec="libx264", quality=6,
                               macro_block_size=16)
        try:
            for i in range(n):
                panels = [_fit(v[min(i, len(v) - 1)], size, size) for v in vids]
                w.append_data(np.concatenate(panels, axis=1))
        finally:
            w.close()
    return path


def thumb(rgb: np.ndarray, size: int = 384) -> np.ndarray:
    """An image fitted into ``size``² (for the report's key frames)."""
    return _fit(rgb, size, size)
