"""Guidance for an OpenIGTLink image stream (``needleguide guide``): a pyigtl client reads
IMAGE messages (a PLUS server streaming a scanner, ``needleguide serve``, ...), analyses
the newest one (:func:`needleguide.guidance.analyse.analyse_frame`) and sends back the
needle tip as TRANSFORM ``NeedleTipDetectedToReference`` (in the image's world frame) and
the whole result as STRING ``NeedleGuidance`` (JSON).

Frames that arrive while one is analysed are skipped (pyigtl keeps the newest message per
device). An image that cannot be analysed (3-D, NaN matrix, no spacing) is skipped with a
note saying why, once per reason.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyigtl

from needleguide.frame import Frame
from needleguide.io import igtl_messages as M

FLUORO_WORDS = ("XA", "RF", "FLUORO", "FL", "DX", "CR")
US_KEYS = ("ProbeType", "Depths", "SpacingX", "SpacingY")
SPACING_RANGE_MM = (1e-3, 20.0)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class SkipImage(ValueError):
    """This IMAGE cannot be analysed; the message says why."""


def image_geometry(msg: Any, spacing_mm: float | None = None) -> tuple[np.ndarray, tuple]:
    """(IJK → world 4x4 in RAS, (row, col) spacing mm) of an IMAGE message; ``spacing_mm``
    replaces the matrix's spacing (directions kept)."""
    m = np.array(msg.ijk_to_world_matrix, dtype=float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise SkipImage("the IMAGE matrix holds NaN or infinite values")
    if getattr(msg, "world_coordinate_system", "ras") == "lps":
        m = LPS_TO_RAS @ m
    norms = np.linalg.norm(m[:3, :3], axis=0)
    if spacing_mm is not None:
        if norms[0] < 1e-12 or norms[1] < 1e-12:
            raise SkipImage("the IMAGE matrix has a zero axis; cannot orient the image")
        m[:3, 0] *= spacing_mm / norms[0]
        m[:3, 1] *= spacing_mm / norms[1]
        norms = np.linalg.norm(m[:3, :3], axis=0)
    lo, hi = SPACING_RANGE_MM
    if not (lo <= norms[0] <= hi and lo <= norms[1] <= hi):
        raise SkipImage(f"pixel spacing {norms[1]:.4g} × {norms[0]:.4g} mm from the IMAGE "
                        f"matrix is outside [{lo}, {hi}] mm; pass --spacing")
    return m, (float(norms[1]), float(norms[0]))


def image_modality(metadata: dict[str, str], default: str) -> str:
    """"us" or "fluoro" from the IMAGE's metadata (``Modality``, else PLUS US keys), else
    ``default`` ("auto" counts as ultrasound: what PLUS streams)."""
    mod = str(metadata.get("Modality", "")).strip().upper()
    if mod == "US":
        return "us"
    if mod in FLUORO_WORDS:
        return "fluoro"
    if any(k in metadata for k in US_KEYS):
        return "us"
    return "us" if default == "auto" else default


def image_pixels(img: np.ndarray) -> np.ndarray:
    """2-D grey (uint8 kept, others as float32 0..1) or RGB uint8 of an IMAGE array."""
    a = np.asarray(img)
    if a.ndim == 4:
        if a.shape[0] != 1:
            raise SkipImage(f"a volume of {a.shape[0]} slices; only 2-D images are analysed")
        a = a[0]
        if a.shape[-1] == 1:
            a = a[..., 0]
        elif a.shape[-1] in (3, 4) and a.dtype == np.uint8:
            a = a[..., :3]
        else:
            raise SkipImage(f"{a.shape[-1]} components of type {a.dtype}; expected grey or "
                            "RGB(A) uint8")
    elif a.ndim == 3:
        if a.shape[0] != 1:
            raise SkipImage(f"a volume of {a.shape[0]} slices; only 2-D images are analysed")
        a = a[0]
    if a.ndim not in (2, 3) or min(a.shape[:2]) < 16:
        raise SkipImage(f"image of shape {a.shape} is too small to analyse")
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))
    if a.dtype == np.uint8:
        return a
    f = a.astype(np.float32)
    if not np.all(np.isfinite(f)):
        raise SkipImage("the image holds NaN or infinite values")
    if a.dtype == np.uint16:
        return f / 65535.0
    lo, hi = float(f.min()), float(f.max())
    return (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)


def frame_of(msg: Any, spacing_mm: float | None = None, modality: str = "auto"
             ) -> tuple[Frame, np.ndarray]:
    """(Frame, IJK → RAS) of an IMAGE message."""
    pixels = image_pixels(msg.image)
    ijk, spacing = image_geometry(msg, spacing_mm)
    image_to_patient = ijk @ np.diag([1.0 / spacing[1], 1.0 / spacing[0], 1.0, 1.0])
    return Frame(pixels=pixels, spacing_mm=spacing, ImageToPatient=image_to_patient,
                 time_s=float(msg.timestamp), modality=image_modality(msg.metadata, modality),  # type: ignore[arg-type]
                 settings={}), ijk


def tip_pose(ijk: np.ndarray, tip_px, hub_px=None) -> np.ndarray:
    """Needle-tip pose in the image's world frame: origin at the tip, +z along the shaft
    toward the hub (``hub_px``, else the image normal), right-handed."""
    tip = ijk @ np.array([tip_px[0], tip_px[1], 0.0, 1.0])
    z = ijk[:3, 2].copy() if hub_px is None else \
        (ijk @ np.array([hub_px[0], hub_px[1], 0.0, 1.0]))[:3] - tip[:3]
    if np.linalg.norm(z) < 1e-9:
        z = np.array([0.0, 0.0, 1.0])
    z /= np.linalg.norm(z)
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([x, np.cross(z, x), z])
    pose[:3, 3] = tip[:3]
    return pose


def analyse_message(msg: Any, spacing_mm: float | None = None, modality: str = "auto"
                    ) -> tuple[dict, np.ndarray | None]:
    """(JSON-able result, tip pose or None) of one IMAGE message."""
    from needleguide.guidance.analyse import analyse_frame
    from needleguide.guidance.needle import detect_needle

    frame, ijk = frame_of(msg, spacing_mm, modality)
    t = time.perf_counter()
    res, _ = analyse_frame(frame, draw=False)
    pose = None
    nd = res["needle"]
    if nd["found"]:
        det = detect_needle(frame)  # (analyse_frame keeps the tip only; the shaft's end)
        hub = det.shaft_px[0] if det.found and det.shaft_px is not None else None
        pose = tip_pose(ijk, nd["tip_px"], hub)
    out = {"image": msg.device_name, "timestamp": float(msg.timestamp),
           "modality": frame.modality, "shape": list(frame.shape),
           "spacing_mm": [round(s, 5) for s in frame.spacing_mm], **res,
           "tip_world_mm": None if pose is None else [round(float(v), 3) for v in pose[:3, 3]],
           "analysis_ms": round((time.perf_counter() - t) * 1e3, 2)}
    return out, pose


def run_guide(host: str, port: int, spacing_mm: float | None = None, modality: str = "auto",
              device: str | None = None, max_frames: int | None = None,
              on_result: Callable[[dict], None] | None = None,
              on_note: Callable[[str], None] | None = None,
              stop: threading.Event | None = None, idle_reconnect_s: float = 5.0) -> int:
    """Analyse IMAGE messages from ``host:port`` until ``stop`` is set or ``max_frames``
    were analysed; returns the number analysed. With no IMAGE for ``idle_reconnect_s`` the
    connection is made anew (pyigtl's client does not notice a server that went away)."""
    stop = stop or threading.Event()
    notes: set[str] = set()
    client = pyigtl.OpenIGTLinkClient(host=host, port=port)
    n, last_rx = 0, time.monotonic()
    try:
        while not stop.is_set() and (max_frames is None or n < max_frames):
            msgs = [m for m in client.get_latest_messages() if m.message_type == "IMAGE"
                    and (device is None or m.device_name == device)]
            if not msgs:
                if time.monotonic() - last_rx > idle_reconnect_s:
                    client.stop()
                    client = pyigtl.OpenIGTLinkClient(host=host, port=port)
                    last_rx = time.monotonic()
                stop.wait(0.002)
                continue
            last_rx = time.monotonic()
            for msg in msgs:
                try:
                    res, pose = analyse_message(msg, spacing_mm, modality)
                except SkipImage as e:
                    text = f"{msg.device_name}: skipped ({e})"
                    if text not in notes and on_note is not None:
                        on_note(text)
                    notes.add(text)
                    continue
                if pose is not None:
                    client.send_message(M.transform_message(M.DETECTED_DEVICE, pose,
                                                            msg.timestamp), wait=False)
                client.send_message(M.string_message(M.GUIDANCE_DEVICE, json.dumps(res),
                                                     msg.timestamp), wait=False)
                n += 1
                if on_result is not None:
                    on_result(res)
        _flush(client)
    finally:
        client.stop()
    return n


def _flush(client: Any, timeout_s: float = 2.0) -> None:
    """Wait (bounded) until the client's outgoing queue has been sent."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        with client.lock_outgoing_messages:
            if not client.outgoing_messages:
                break
        time.sleep(0.005)
    time.sleep(0.05)  # the last sendall leaves the queue before it completes
