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
    """Tip-to-target distance per step and cumulative DAP per step, one line per session,
    on linear axes from zero; the tolerance(s) drawn and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8), dpi=100)
    top = 0.0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, r in enumerate(results):
        lab = f"{r.config.procedure} · {r.config.modality}"
        col = colors[j % len(colors)]  # one colour per session in both plots
        k = np.arange(1, len(r.steps) + 1)
        d = [s.tip_to_target_mm for s in r.steps]
        top = max([top, *d])
        ax[0].plot(k, d, "-", lw=1.2, label=lab, color=col)
        det = [i for i, s in enumerate(r.steps) if s.detected]
        ax[0].plot(k[det], [d[i] for i in det], "o", ms=4, color=col, mfc="none")
        if r.config.modality == "fluoro":
            ax[1].plot(k, [s.dap_gy_cm2 * 1000.0 for s in r.steps], "-", label=lab, color=col)
            if r.metrics["dap_gy_cm2"] > 0:  # after the check pair and the contrast run
                ax[1].plot([len(k) + 1], [r.metrics["dap_gy_cm2"] * 1000.0], "o", color=col)
    for tol in sorted({float(r.metrics["tolerance_mm"]) for r in results}):
        ax[0].axhline(tol, color="#c33", ls="--", lw=1, label=f"tolerance {tol:g} mm")
    ax[0].plot([], [], "o", color="grey", mfc="none", ms=4,
               label="needle found by the analyser")
    ax[0].set(xlabel="needle step", ylabel="true tip to target (mm)",
              title="tip distance to the target")
    ax[0].set_ylim(0, max(top, 5.0) * 1.05)
    ax[1].set(xlabel="needle step (last dot: after the position check and contrast)",
              ylabel="cumulative DAP (mGy·cm²)", title="cumulative dose (fluoroscopy)")
    ax[1].set_ylim(bottom=0)
    if not ax[1].lines:
        ax[1].text(0.5, 0.5, "no fluoroscopy in these sessions", ha="center",
                   transform=ax[1].transAxes, color="grey")
    for a in ax:
        a.set_xlim(left=0)
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
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


def poster(results, size: int = 320) -> np.ndarray | None:
    """The video's last frame (the sessions side by side at their end): its poster."""
    vids = [r.video for r in results if r.video]
    if not vids:
        return None
    return np.concatenate([_fit(v[-1], size, size) for v in vids], axis=1)


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
    """An image scaled to ``size`` pixels on its longer side, keeping its aspect ratio (the
    report's key frames: no black bands)."""
    import cv2

    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    s = size / max(rgb.shape[:2])
    return cv2.resize(rgb, (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
