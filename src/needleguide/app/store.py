"""The trainer's sessions: one :class:`Hosted` per trainee session, kept by id in a
:class:`SessionStore` independently of any browser connection (a reload reconnects to the
same session). Sessions are isolated: each holds its own phantom, imagers, needle and
clock; nothing is shared but the process.

Thread model: ``TrainerSession.command`` only validates and queues (any thread);
``tick`` and ``finish`` run on a worker thread, one at a time per session (``busy``)."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from needleguide.errors import UserError

JPEG_QUALITY = 85
MAX_SESSIONS = 16
#: one session's tick (or build, or finish) at a time in this process: the imagers' and
#: the phantom's numba kernels run in parallel over all the cores, so two ticks at once
#: only share them; and numba's work-queue layer (the fallback where OpenMP cannot load,
#: needleguide/__init__.py) terminates the process if two threads enter it at once. JPEG
#: encoding and the page's I/O run outside the lock. A session being built (2–5 s) holds
#: the others' frames meanwhile.
PARALLEL_LOCK = threading.Lock()


@dataclass
class Encoded:
    """One frame as sent: header fields and the JPEG bytes."""

    seq: int
    t_s: float
    ack: int
    w: int
    h: int
    jpeg: bytes
    events: list[dict[str, Any]] = field(default_factory=list)

    def header(self) -> dict[str, Any]:
        return {"seq": self.seq, "t_s": round(self.t_s, 3), "ack": self.ack, "w": self.w,
                "h": self.h}


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """JPEG of an RGB uint8 image (quality ``JPEG_QUALITY``)."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV fails only on an empty image
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


class Hosted:
    """One trainee session on the server: the ``TrainerSession``, its clock (s since it
    started), the last frame sent (a reconnecting page gets it at once), the result and
    report after finish, and the patient factors given at set-up."""

    def __init__(self, sid: str, session, request: dict[str, Any]):
        self.sid, self.session, self.request = sid, session, request
        self.t0 = time.monotonic()
        self.busy = threading.Lock()  # tick / finish: one at a time
        self.last: Encoded | None = None
        self.result = None
        self.result_json: dict[str, Any] | None = None
        self.report_dir: Path | None = None
        self.connections = 0
        self.touched = time.monotonic()

    def clock_s(self) -> float:
        return time.monotonic() - self.t0

    def tick(self) -> Encoded | None:
        """Advance the session to now and encode a new frame, if one is due (worker
        thread)."""
        with self.busy:
            with PARALLEL_LOCK:
                fr = self.session.tick(self.clock_s())
            if fr is None:
                return None
            rgb = np.asarray(fr.rgb)
            enc = Encoded(int(fr.seq), float(fr.t_s), int(fr.ack), int(rgb.shape[1]),
                          int(rgb.shape[0]), encode_jpeg(rgb), list(fr.events))
            self.last = enc
            return enc

    def finish(self) -> dict[str, Any]:
        """Score the session (once) and write its report; the result JSON (worker
        thread)."""
        with self.busy:
            if self.result_json is not None:
                return self.result_json
            from needleguide.report import write_report

            with PARALLEL_LOCK:
                res = self.session.finish()
            d = Path(tempfile.mkdtemp(prefix=f"needleguide-app-{self.sid[:8]}-"))
            title = f"Trainer: {res.extra.get('procedure_name', res.config.procedure)} " \
                    f"under {'ultrasound' if res.config.modality == 'us' else 'fluoroscopy'}"
            write_report([res], d, title)
            self.result, self.report_dir = res, d
            missed = sum(1 for e in res.events
                         if e.kind == "intravascular_injection" and not e.detected)
            self.result_json = res.interface_json() | {
                "missed_vascular_uptake": missed,
                "events_detail": [e.to_json() for e in res.events],
                "patient": self.request}
            return self.result_json

    def report_path(self) -> Path | None:
        if self.report_dir is None:
            return None
        html = sorted(self.report_dir.glob("*.html"))
        return html[0] if html else None

    def close(self) -> None:
        self.session.close()
        if self.report_dir is not None:
            shutil.rmtree(self.report_dir, ignore_errors=True)


class SessionStore:
    """Sessions by id (unguessable ids). ``factory(request) -> TrainerSession`` builds a
    session from the validated set-up request."""

    def __init__(self, factory=None, max_sessions: int = MAX_SESSIONS):
        self.factory = factory or _trainer_factory
        self.max_sessions = int(max_sessions)
        self._by_id: dict[str, Hosted] = {}
        self._lock = threading.Lock()

    def create(self, request: dict[str, Any]) -> Hosted:
        with self._lock:
            if len(self._by_id) >= self.max_sessions:
                raise UserError(f"sessions: {self.max_sessions} sessions are open already; "
                                "finish or close one first")
        with PARALLEL_LOCK:
            session = self.factory(request)
        sid = secrets.token_urlsafe(12)
        h = Hosted(sid, session, request)
        with self._lock:
            self._by_id[sid] = h
        return h

    def get(self, sid: str) -> Hosted | None:
        with self._lock:
            return self._by_id.get(sid)

    def remove(self, sid: str) -> bool:
        with self._lock:
            h = self._by_id.pop(sid, None)
        if h is not None:
            h.close()
        return h is not None

    def close_all(self) -> None:
        with self._lock:
            hs, self._by_id = list(self._by_id.values()), {}
        for h in hs:
            h.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)


def _trainer_factory(request: dict[str, Any]):
    from needleguide.live.trainer import TrainerConfig, TrainerSession

    keys = ("procedure", "modality", "bmi", "seed", "level", "side", "pixels")
    return TrainerSession(TrainerConfig(**{k: request[k] for k in keys if k in request}))
