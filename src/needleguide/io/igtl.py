"""OpenIGTLink server of a live session (``needleguide serve``): pyigtl's server with a
latest-frame slot, so that a slow or absent client never stalls the simulator.

Threads:

* the simulator (:class:`LiveStreamer`): renders at ``fps`` from the first client's
  connection, packs the frame's messages and puts them in the server's latest-frame slot
  (replacing what was there); an incoming ``ProbeToReference`` / ``NeedleToReference``
  pulls the next frame forward (at most one extra frame per half period), so a move is
  shown within a render and a send.
* the connection (:class:`_Handler`, one client at a time, as pyigtl's server): waits on
  the client's socket and on a wake-up pipe; sends the newest frame it has not sent yet
  (never a backlog: frames rendered while it was busy are skipped), the session events
  (kept until sent, up to 256), and hands incoming messages to ``on_message``. A client
  that closes, errors or does not read for :data:`SEND_TIMEOUT_S` is dropped; the next one
  is served; the session goes on.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import select
import socket
import socketserver
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pyigtl
from pyigtl.comm import OpenIGTLinkBase

from needleguide.errors import UserError
from needleguide.io import igtl_messages as M

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 5.0  # a client that takes longer to accept one frame set is dropped
RECV_TIMEOUT_S = 2.0  # the rest of a message, once its first bytes arrived
INPUT_POSES = ("ProbeToReference", "NeedleToReference")


class Session(Protocol):
    """What the streamer needs of a :class:`needleguide.live.LiveSession`."""

    modality: str

    def set_transform(self, name: str, matrix: np.ndarray) -> None: ...

    def tick(self, t_s: float) -> Any: ...


def check_host(host: str, allow_remote: bool) -> str:
    """``host`` if it is a loopback address (or ``allow_remote``), else a UserError."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise UserError(f"--host: cannot resolve {host!r} ({e})") from None
    addrs = {i[4][0] for i in infos}
    if not allow_remote and not all(ipaddress.ip_address(a).is_loopback for a in addrs):
        raise UserError(f"--host: {host} ({', '.join(sorted(addrs))}) is not a loopback "
                        "address: other machines could connect and drive the session; add "
                        "--allow-remote to serve the network")
    return host


def check_port(port: int, field: str = "--port") -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UserError(f"{field}: {port} is outside the allowed range [0, 65535]")
    return port


class IgtlServer(pyigtl.OpenIGTLinkServer):
    """pyigtl's server bound to ``host:port`` (port 0: any free port; see ``.port``),
    without pyigtl's signal handlers (the CLI owns SIGINT/SIGTERM) and with a
    latest-frame slot: :meth:`publish` replaces the frame, :meth:`post_event` queues."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 18944,
                 on_message: Callable[[Any], None] | None = None) -> None:
        OpenIGTLinkBase.__init__(self)
        self.host = host
        try:
            socketserver.TCPServer.__init__(self, (host, port), _Handler)
        except OSError as e:
            raise UserError(f"--port: cannot listen on {host}:{port} ({e.strerror or e})"
                            ) from None
        self.port = int(self.server_address[1])
        self.on_message = on_message
        self._lock = threading.Lock()
        self._frame: tuple[int, bytes] | None = None  # (seq, packed messages)
        self._events: collections.deque[bytes] = collections.deque(maxlen=256)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self.connected_once = threading.Event()
        self.connections = 0
        self.frames_sent = 0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="igtl-server",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.communication_thread_stop_requested = True
        self._connected = False
        self._wake()
        if self._thread is not None:
            self.shutdown()
        self.server_close()
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"!")
        except (BlockingIOError, OSError):
            pass  # already signalled (buffer full) or closed

    def publish(self, seq: int, data: bytes) -> None:
        """Make ``data`` (a frame's packed messages) the frame to send next."""
        with self._lock:
            self._frame = (seq, data)
        self._wake()

    def post_event(self, data: bytes) -> None:
        with self._lock:
            self._events.append(data)
        self._wake()

    def _take(self, last_seq: int) -> tuple[int, bytes]:
        """(seq, bytes to send now): queued events and the frame if newer than last_seq."""
        with self._lock:
            parts = list(self._events)
            self._events.clear()
            seq = last_seq
            if self._frame is not None and self._frame[0] > last_seq:
                seq = self._frame[0]
                parts.insert(0, self._frame[1])
        with self.lock_outgoing_messages:  # anything sent with pyigtl's send_message
            while self.outgoing_messages:
                parts.append(self.outgoing_messages.popleft().pack())
        return seq, b"".join(parts)

    def _dispatch(self) -> None:
        if self.on_message is None:  # kept for get_latest_messages / wait_for_message
            return
        for msg in self.get_latest_messages():
            try:
                self.on_message(msg)
            except Exception as e:  # noqa: BLE001 - a client's message must not kill us
                log.warning("incoming %s %s: %s", msg.message_type, msg.device_name, e)


class _Handler(socketserver.BaseRequestHandler):
    server: IgtlServer

    def handle(self) -> None:  # one client, until it leaves or the server stops
        srv, sock = self.server, self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        srv._connected = True
        srv.connections += 1
        srv.connected_once.set()
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        _note(f"client connected: {peer}")
        last_seq = -1
        try:
            while not srv.communication_thread_stop_requested:
                r, _, _ = select.select([sock, srv._wake_r], [], [], 0.25)
                if srv._wake_r in r:
                    srv._wake_r.recv(4096)
                if sock in r:
                    if not sock.recv(1, socket.MSG_PEEK):
                        break  # closed by the client
                    sock.settimeout(RECV_TIMEOUT_S)
                    srv._receive_message_from_socket(sock)
                    srv._dispatch()
                seq, data = srv._take(last_seq)
                if data:
                    sock.settimeout(SEND_TIMEOUT_S)
                    sock.sendall(data)
                    srv.frames_sent += seq > last_seq
                    last_seq = seq
        except (OSError, ValueError, struct.error) as e:
            _note(f"client {peer} dropped ({e.__class__.__name__}: {e})")
        else:
            _note(f"client disconnected: {peer}")
        finally:
            srv._connected = False



def _note(text: str) -> None:
    print(f"serve: {text}", file=sys.stderr, flush=True)


class LiveStreamer:
    """Runs ``session`` into ``server`` at ``fps``; incoming poses go to the session.

    ``recorder``: optional object with ``add(pixels, image_to_reference, transforms,
    t_s)`` called with every rendered frame. ``clock``: monotonic seconds."""

    def __init__(self, session: Session, server: IgtlServer, fps: float = 30.0,
                 recorder: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.session, self.server, self.recorder = session, server, recorder
        self.period = 1.0 / float(fps)
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.frames = 0
        self.last_frame: Any = None
        self.render_s: collections.deque[float] = collections.deque(maxlen=300)
        server.on_message = self.on_message

    # incoming -------------------------------------------------------------------
    def on_message(self, msg: Any) -> None:
        """A client's message: a pose we accept goes to the session (and the next frame
        is pulled forward); anything else is ignored; a bad pose is answered with a
        STATUS naming the problem."""
        if msg.message_type != "TRANSFORM" or msg.device_name not in INPUT_POSES:
            return
        try:
            self.session.set_transform(msg.device_name, np.asarray(msg.matrix, float))
        except ValueError as e:
            _note(f"refused {msg.device_name}: {e}")
            self.server.send_message(M.status_message(
                msg.device_name, M.STATUS_CONFIG_ERROR, "REFUSED", str(e), time.time()),
                wait=False)
            return
        self._wake.set()

    # simulator thread -----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="igtl-sim", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self.server.connected_once.wait(0.1):
                if self._stop.is_set():
                    return
            # session clock: on from the session's last tick (a warm-up one, say)
            t_prev = getattr(self.session, "t_s", None)
            t0 = self.clock() - (0.0 if t_prev is None else float(t_prev) + 1e-3)
            epoch0 = time.time() - (self.clock() - t0)
            last = -np.inf
            due = t0
            while not self._stop.is_set():
                now = self.clock()
                if self._wake.is_set():  # a pose came in: render now (≥ half a period apart)
                    due = min(due, last + 0.5 * self.period)
                if now < due:  # pulled forward: sleep till due; else wait for a pose
                    (self._stop if self._wake.is_set() else self._wake).wait(due - now)
                    continue
                self._wake.clear()
                last = self.clock()
                self._render(last - t0, epoch0)
                due = max(due + self.period, self.clock() - 2 * self.period)  # catch up ≤ 2
                due = max(due, last + 0.5 * self.period)
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            self.error = e

    def _render(self, t_s: float, epoch0: float) -> None:
        t = time.perf_counter()
        lf = self.session.tick(t_s)
        ts = epoch0 + float(lf.t_s)
        self.server.publish(int(lf.seq), M.pack_all(M.live_frame_messages(lf, ts)))
        for ev in lf.events:
            self.server.post_event(M.pack_all(M.event_messages(ev, ts)))
        self.render_s.append(time.perf_counter() - t)
        self.frames += 1
        self.last_frame = lf
        if self.recorder is not None:
            self.recorder.add(M.igtl_pixels(lf.frame.pixels)[0], lf.image_to_reference,
                              dict(lf.transforms), float(lf.t_s))
