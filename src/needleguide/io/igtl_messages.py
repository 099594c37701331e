"""OpenIGTLink messages of needleguide (on top of pyigtl): the STATUS message pyigtl lacks,
a live frame as the PLUS-named messages 3D Slicer expects, and an incoming IMAGE as a
:class:`~needleguide.frame.Frame`.

Conventions (docs/igtl.md):

* Header version 2 (metadata) on everything we send.
* IMAGE matrix: pixel index (i = column, j = row, k = 0) → Reference mm, flagged RAS.
  pyigtl packs ``ijk_to_world_matrix`` as given and only writes the coordinate flag
  (its default flag is LPS); 3D Slicer (OpenIGTLinkIO) reads the matrix as IJK → RAS
  whatever the flag says, so we send RAS matrices with the RAS flag. On input an LPS flag
  is honoured (x and y negated).
* pyigtl reads an array as (k, j, i[, components]): a 2-D image goes as (1, rows, cols).
* Ultrasound geometry on the IMAGE as PLUS writes it (OpenIGTLinkIO's US sector keys):
  ``ProbeType`` an integer (0 unknown, 1 sector, 2 linear, 3 mechanical), ``Depths``
  "start end" mm, ``SpacingX`` / ``SpacingY`` mm per pixel, plus ``FrequencyMhz``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pyigtl
from pyigtl.messages import MessageBase, message_type_to_class_constructor

HEADER_VERSION = 2
IMAGE_DEVICE = "Image_Reference"
# OpenIGTLink device names are at most 20 bytes: "NeedleTipDetectedToReference" (28) would
# arrive cut to "NeedleTipDetectedToR"; the detected needle-tip pose is sent as
# "NeedleDetToReference" (same frame as NeedleToReference: origin at the tip) with the
# long name in its metadata ("DeviceNameLong").
DEVICE_NAME_MAX = 20
DETECTED_DEVICE = "NeedleDetToReference"
DETECTED_LONG_NAME = "NeedleTipDetectedToReference"
GUIDANCE_DEVICE = "NeedleGuidance"  # STRING: the analysers' result as JSON
EVENT_DEVICE = "Event"  # STRING (JSON) per session event
EVENT_STATUS_DEVICE = "EventStatus"  # STATUS per session event (pyigtl keys by name only)
POSE_NAMES = ("ProbeToReference", "NeedleToReference", "NeedleTipToReference",
              "CArmToReference")
PROBE_TYPES = {"unknown": 0, "sector": 1, "curvilinear": 1, "convex": 1, "phased": 1,
               "linear": 2, "mechanical": 3}

# STATUS codes (OpenIGTLink protocol, status.md)
STATUS_OK = 1
STATUS_ERROR = 2
STATUS_CONFIG_ERROR = 10


class StatusMessage(MessageBase):
    """OpenIGTLink STATUS: code (uint16), subcode (int64), error name (20 bytes) and a
    null-terminated message."""

    def __init__(self, code: int = STATUS_OK, subcode: int = 0, error_name: str = "",
                 status_string: str = "", timestamp: float | None = None,
                 device_name: str | None = None) -> None:
        MessageBase.__init__(self, timestamp=timestamp, device_name=device_name)
        self._message_type = "STATUS"
        self.code, self.subcode = int(code), int(subcode)
        self.error_name, self.status_string = str(error_name), str(status_string)
        self._valid_message = True

    def content_asstring(self) -> str:
        return f"Code: {self.code} ({self.error_name}) {self.status_string}"

    def _pack_content(self) -> bytes:
        name = self.error_name.encode("ascii", "replace")[:19]
        return (struct.pack("> H q 20s", self.code, self.subcode, name)
                + self.status_string.encode("utf8") + b"\0")

    def _unpack_content(self, content: bytes) -> None:
        self.code, self.subcode, name = struct.unpack("> H q 20s", content[:30])
        self.error_name = name.split(b"\0", 1)[0].decode("ascii", "replace")
        self.status_string = content[30:].split(b"\0", 1)[0].decode("utf8", "replace")


# pyigtl drops message types it does not know; teach it STATUS (idempotent).
message_type_to_class_constructor.setdefault("STATUS", StatusMessage)


def _v2(msg: MessageBase, metadata: dict[str, str] | None = None) -> MessageBase:
    if len(msg.device_name.encode("utf8")) > DEVICE_NAME_MAX:
        raise ValueError(f"device name {msg.device_name!r} is longer than "
                         f"{DEVICE_NAME_MAX} bytes (OpenIGTLink header)")
    msg.header_version = HEADER_VERSION
    if metadata:
        msg.metadata = dict(metadata)
    return msg


def igtl_pixels(pixels: np.ndarray) -> np.ndarray:
    """A frame's pixels as pyigtl wants them: (1, rows, cols[, 3]) uint8 or uint16.
    uint8 stays (grey or RGB); float 0..1 (fluoroscopy) becomes uint16 0..65535."""
    p = np.asarray(pixels)
    if p.ndim == 3:
        p = p[..., :3]
    elif p.ndim != 2:
        raise ValueError(f"image: expected 2-D or RGB pixels, got shape {p.shape}")
    if p.dtype == np.uint8 or p.dtype == np.uint16:
        out = p
    elif np.issubdtype(p.dtype, np.floating):
        out = (np.clip(np.nan_to_num(p, nan=0.0), 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    else:
        raise ValueError(f"image: unsupported pixel type {p.dtype}")
    return np.ascontiguousarray(out[np.newaxis])


def us_metadata(us_meta: dict[str, Any]) -> dict[str, str]:
    """PLUS-style strings of the ultrasound geometry fields (numbers space-separated)."""
    out: dict[str, str] = {}
    for k, v in us_meta.items():
        if k == "ProbeType" and isinstance(v, str) and not v.strip().isdigit():
            v = PROBE_TYPES.get(v.strip().lower(), 0)
        if isinstance(v, (list, tuple, np.ndarray)):
            out[k] = " ".join(f"{float(x):.6g}" for x in np.ravel(v))
        elif isinstance(v, (float, np.floating)):
            out[k] = f"{float(v):.6g}"
        else:
            out[k] = str(v)
    return out


def image_message(pixels: np.ndarray, ijk_to_ras: np.ndarray, timestamp: float,
                  metadata: dict[str, str], device: str = IMAGE_DEVICE
                  ) -> pyigtl.ImageMessage:
    """IMAGE message (RAS flag, header v2) of a frame's pixels."""
    m = pyigtl.ImageMessage(igtl_pixels(pixels), ijk_to_world_matrix=np.asarray(ijk_to_ras),
                            world_coordinate_system="ras", timestamp=timestamp,
                            device_name=device)
    return _v2(m, metadata)


def transform_message(name: str, matrix: np.ndarray, timestamp: float,
                      status: str = "OK") -> pyigtl.TransformMessage:
    m = pyigtl.TransformMessage(np.asarray(matrix, float), timestamp=timestamp, device_name=name)
    meta = {"TransformStatus": status}
    if name == DETECTED_DEVICE:
        meta["DeviceNameLong"] = DETECTED_LONG_NAME
    return _v2(m, meta)


def string_message(device: str, text: str, timestamp: float) -> pyigtl.StringMessage:
    return _v2(pyigtl.StringMessage(text, timestamp=timestamp, device_name=device))


def status_message(device: str, code: int, name: str, text: str,
                   timestamp: float, subcode: int = 0) -> StatusMessage:
    return _v2(StatusMessage(code, subcode, name, text, timestamp=timestamp,  # type: ignore
                             device_name=device))


def live_frame_messages(lf: Any, timestamp: float) -> list[MessageBase]:
    """One live frame as messages: the poses, the analysers' tip (TRANSFORM + STRING),
    then the IMAGE; every message stamped ``timestamp``."""
    msgs: list[MessageBase] = [transform_message(n, lf.transforms[n], timestamp)
                               for n in POSE_NAMES if n in lf.transforms]
    det = lf.detected_tip_to_reference
    if det is not None:
        msgs.append(transform_message(DETECTED_DEVICE, det, timestamp))
    guidance = {"seq": int(lf.seq), "t_s": round(float(lf.t_s), 4), "found": det is not None,
                "tip_ras_mm": None if det is None else
                [round(float(x), 3) for x in np.asarray(det)[:3, 3]]}
    msgs.append(string_message(GUIDANCE_DEVICE, json.dumps(guidance), timestamp))
    meta = {"Modality": "US" if lf.frame.modality == "us" else "XA",
            "FrameNumber": str(int(lf.seq)), "TimeS": f"{float(lf.t_s):.4f}"}
    meta.update(us_metadata(lf.us_meta or {}))
    msgs.append(image_message(lf.frame.pixels, lf.image_to_reference, timestamp, meta))
    return msgs


def event_messages(ev: Any, timestamp: float) -> list[MessageBase]:
    """A session event as a STRING (JSON) and a STATUS (alarm: code 2, else OK)."""
    text = json.dumps({"t_s": round(float(ev.t_s), 3), "kind": ev.kind, "text": ev.text})
    code = STATUS_ERROR if ev.kind == "alarm" else STATUS_OK
    return [string_message(EVENT_DEVICE, text, timestamp),
            status_message(EVENT_STATUS_DEVICE, code, ev.kind.upper(), ev.text, timestamp)]


def pack_all(msgs: list[MessageBase]) -> bytes:
    return b"".join(m.pack() for m in msgs)
