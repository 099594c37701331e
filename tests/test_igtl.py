"""OpenIGTLink: ``serve`` (LiveStreamer + IgtlServer) and ``guide`` against real pyigtl
clients / servers on loopback, ephemeral ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pyigtl
import pytest

from needleguide.errors import UserError
from needleguide.frame import Frame
from needleguide.io import igtl_messages as M
from needleguide.io.igtl import IgtlServer, LiveStreamer, check_host
from needleguide.io.igtl_guide import frame_of, run_guide

SPACING = 0.1  # mm per pixel of the double's image


@dataclass
class _Event:
    t_s: float
    kind: str
    text: str


@dataclass
class _LiveFrame:
    t_s: float
    frame: Frame
    seq: int
    image_to_reference: np.ndarray
    transforms: dict
    detected_tip_to_reference: np.ndarray | None
    events: list = field(default_factory=list)
    us_meta: dict = field(default_factory=dict)


class FakeSession:
    """Test double of ``needleguide.live.LiveSession`` (same API): the image sits at a
    fixed ImageToProbe under the probe; a 'pass' event on the first tick, an 'alarm'
    on the third."""

    modality = "us"

    def __init__(self, pixels: int = 512) -> None:
        self.lock = threading.Lock()
        self.poses = {"ProbeToReference": np.eye(4), "NeedleToReference": np.eye(4)}
        self.poses["ProbeToReference"][:3, 3] = (10.0, 20.0, 30.0)
        self.image_to_probe = np.diag([SPACING, SPACING, 1.0, 1.0])
        self.image_to_probe[:3, 3] = (-pixels * SPACING / 2, 0.0, 0.0)
        rng = np.random.default_rng(0)
        self.images = [rng.integers(0, 255, (pixels, pixels), dtype=np.uint8) for _ in range(4)]
        self.seq = 0
        self.done = False

    def set_transform(self, name: str, matrix) -> None:
        if name not in self.poses:
            raise ValueError(f"unknown transform {name!r}")
        m = np.asarray(matrix, float)
        if not np.all(np.isfinite(m)):
            raise ValueError(f"{name}: NaN")
        with self.lock:
            self.poses[name] = m

    def tick(self, t_s: float) -> _LiveFrame:
        with self.lock:
            probe = self.poses["ProbeToReference"].copy()
            needle = self.poses["NeedleToReference"].copy()
        ijk = probe @ self.image_to_probe
        px = self.images[self.seq % len(self.images)]
        frame = Frame(px, (SPACING, SPACING), ijk @ np.diag([1 / SPACING, 1 / SPACING, 1, 1]),
                      t_s, "us")
        events = {0: [_Event(t_s, "pass", "pass 1")], 2: [_Event(t_s, "alarm", "vessel")]}
        lf = _LiveFrame(t_s, frame, self.seq, ijk,
                        {"ProbeToReference": probe, "NeedleToReference": needle,
                         "NeedleTipToReference": needle}, needle if self.seq % 2 else None,
                        events.get(self.seq, []),
                        {"ProbeType": "linear", "Depths": [0.0, 51.2], "SpacingX": SPACING,
                         "SpacingY": SPACING, "FrequencyMhz": 10.0})
        self.seq += 1
        return lf


def _serve(session, fps: float = 30.0):
    server = IgtlServer("127.0.0.1", 0)
    streamer = LiveStreamer(session, server, fps=fps)
    server.start()
    streamer.start()
    return server, streamer


def _stop(server, streamer, *clients):
    for c in clients:
        c.stop()
    streamer.stop()
    server.stop()


class _Tap(dict):
    """pyigtl's incoming-message dict that also logs (arrival time, message) of each."""

    def __init__(self, sink: list) -> None:
        super().__init__()
        self.sink = sink

    def __setitem__(self, key, msg) -> None:
        self.sink.append((time.monotonic(), msg))
        super().__setitem__(key, msg)


class Collector:
    """A pyigtl client that keeps every message (pyigtl itself keeps only the newest per
    device)."""

    def __init__(self, port: int) -> None:
        self.client = pyigtl.OpenIGTLinkClient("127.0.0.1", port, start_now=False)
        self.msgs: list = []
        self.client.incoming_messages = _Tap(self.msgs)
        self.client.start()

    def images(self):
        return [(t, m) for t, m in self.msgs if m.message_type == "IMAGE"]

    def wait_images(self, n: int, timeout: float = 10.0):
        end = time.monotonic() + timeout
        while len(self.images()) < n and time.monotonic() < end:
            time.sleep(0.01)
        return self.images()

    def stop(self) -> None:
        self.client.stop()


def _real_session():
    try:
        from needleguide.live import LiveConfig, LiveSession
    except ImportError:
        return None
    return LiveSession(LiveConfig(modality="us", pixels=512, seed=1))


def _stream_rate(session, seconds: float):
    """(IMAGE/s received, frames/s rendered, streamer, collector) over ``seconds``."""
    session.tick(0.0)  # warm (numba, phantom) before the clock starts
    server, streamer = _serve(session)
    col = Collector(server.port)
    col.wait_images(1, timeout=30)
    t0 = time.monotonic()
    n0, f0 = len(col.images()), streamer.frames
    time.sleep(seconds)
    dt = time.monotonic() - t0
    rate = (len(col.images()) - n0) / dt
    rendered = (streamer.frames - f0) / dt
    print(f"\n{type(session).__name__}: {rate:.1f} IMAGE/s received at 512², {rendered:.1f} "
          f"frames/s rendered, render median {np.median(streamer.render_s) * 1e3:.1f} ms")
    return rate, rendered, server, streamer, col


def test_streams_30_fps_512_for_10_s_with_monotonic_timestamps_and_metadata():
    """The transport: ≥ 30 IMAGE/s at 512² for 10 s (test double: rendering is free)."""
    rate, _, server, streamer, col = _stream_rate(FakeSession(), 10.0)
    try:
        assert rate >= 30.0 * 0.97, f"{rate:.1f} images/s"
        msgs = [m for _, m in col.images()]
        ts = [m.timestamp for m in msgs]
        assert all(b > a for a, b in zip(ts, ts[1:], strict=False)), "timestamps not increasing"
        m = msgs[-1]
        assert m.device_name == M.IMAGE_DEVICE and m.header_version == 2
        assert m.world_coordinate_system == "ras"
        assert m.image.shape[:3] == (1, 512, 512) and m.image.dtype == np.uint8
    finally:
        _stop(server, streamer, col)


def test_real_live_session_streams_what_it_renders():
    """The real LiveSession (US 512²): every rendered frame reaches the client, matrices
    are the frames' image_to_reference, the US metadata is there. Its rate depends on the
    machine (2 cores: 29–30 frames/s when idle, less when other jobs run)."""
    session = _real_session()
    if session is None:
        pytest.skip("needleguide.live not available")
    rate, rendered, server, streamer, col = _stream_rate(session, 5.0)
    try:
        assert rate >= 0.95 * rendered and rendered >= 15.0, (rate, rendered)
        msgs = [m for _, m in col.images()]
        ts = [m.timestamp for m in msgs]
        assert all(b > a for a, b in zip(ts, ts[1:], strict=False)), "timestamps not increasing"
        m = msgs[-1]
        for k in ("ProbeType", "Depths", "SpacingX", "SpacingY", "FrequencyMhz"):
            assert k in m.metadata, k
        lf = streamer.last_frame
        sent = {int(x.metadata["FrameNumber"]): x for x in msgs}
        if lf.seq in sent:  # float32 on the wire
            np.testing.assert_allclose(sent[lf.seq].ijk_to_world_matrix,
                                       lf.image_to_reference, atol=1e-3)
        for name in ("ProbeToReference", "NeedleToReference", "NeedleTipToReference"):
            assert any(x.device_name == name and x.message_type == "TRANSFORM"
                       for _, x in col.msgs), name
    finally:
        _stop(server, streamer, col)


def test_fake_matrix_events_and_detection():
    session = FakeSession()
    server, streamer = _serve(session)
    col = Collector(server.port)
    try:
        imgs = col.wait_images(6)
        _, m = imgs[-1]
        ijk = m.ijk_to_world_matrix
        np.testing.assert_allclose(np.linalg.norm(ijk[:3, :2], axis=0), SPACING, rtol=1e-5)
        np.testing.assert_allclose(ijk[:3, 3], (10.0 - 25.6, 20.0, 30.0), atol=1e-3)
        assert m.metadata["ProbeType"] == "2" and m.metadata["Depths"] == "0 51.2"
        kinds = {(x.message_type, x.device_name) for _, x in col.msgs}
        assert ("STRING", M.EVENT_DEVICE) in kinds and ("STATUS", M.EVENT_STATUS_DEVICE) in kinds
        assert ("TRANSFORM", M.DETECTED_DEVICE) in kinds
        st = [x for _, x in col.msgs if x.message_type == "STATUS"]
        assert any(x.code == M.STATUS_ERROR and x.error_name == "ALARM" for x in st)
        g = [json.loads(x.string) for _, x in col.msgs if x.device_name == M.GUIDANCE_DEVICE]
        assert {d["found"] for d in g} == {True, False}
    finally:
        _stop(server, streamer, col)


def test_transform_in_moves_the_probe_and_the_next_image():
    session = FakeSession()
    server, streamer = _serve(session)
    col = Collector(server.port)
    try:
        before = col.wait_images(2)[-1][1].ijk_to_world_matrix.copy()
        move = session.poses["ProbeToReference"].copy()
        move[:3, 3] += (5.0, -3.0, 7.5)
        col.client.send_message(pyigtl.TransformMessage(move, device_name="ProbeToReference"),
                                wait=True)
        end = time.monotonic() + 5
        after = None
        while time.monotonic() < end and after is None:
            for _, m in col.images():
                if abs(m.ijk_to_world_matrix[0, 3] - before[0, 3] - 5.0) < 1e-3:
                    after = m.ijk_to_world_matrix
            time.sleep(0.005)
        assert after is not None, "no image reflected the move"
        np.testing.assert_allclose(after[:3, 3] - before[:3, 3], (5.0, -3.0, 7.5), atol=1e-3)
        np.testing.assert_allclose(after[:3, :3], before[:3, :3], atol=1e-6)
        # a bad pose is refused with a STATUS, and the stream goes on
        col.client.send_message(pyigtl.TransformMessage(np.full((4, 4), np.nan),
                                                        device_name="ProbeToReference"))
        n = len(col.images())
        col.wait_images(n + 5)
        assert any(x.message_type == "STATUS" and x.device_name == "ProbeToReference"
                   for _, x in col.msgs)
    finally:
        _stop(server, streamer, col)


def test_client_killed_and_reconnected_stream_resumes():
    session = FakeSession(pixels=256)
    server, streamer = _serve(session)
    col = Collector(server.port)
    try:
        col.wait_images(5)
        col.stop()  # killed mid-stream
        frames_at_kill = streamer.frames
        time.sleep(0.5)
        assert streamer.alive() and streamer.frames > frames_at_kill  # the session goes on
        col2 = Collector(server.port)
        imgs = col2.wait_images(10)
        assert len(imgs) >= 10 and server.connections == 2
        seqs = [int(m.metadata["FrameNumber"]) for _, m in imgs]
        assert min(seqs) > frames_at_kill  # the latest frames, no backlog
        col2.stop()
    finally:
        _stop(server, streamer)


def test_slow_client_does_not_stall_the_simulator():
    """A client that stops reading: the simulator keeps its rate; the client then gets the
    newest frame, not a backlog."""
    import socket

    session = FakeSession()
    server, streamer = _serve(session, fps=30)
    s = socket.create_connection(("127.0.0.1", server.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        time.sleep(1.5)  # nothing read
        assert streamer.frames >= 40, streamer.frames
    finally:
        s.close()
        _stop(server, streamer)


def test_record_every_rendered_frame(tmp_path):
    from needleguide.io.plus_sequence import SequenceRecorder, read_sequence

    rec = SequenceRecorder(tmp_path / "live.seq.nrrd")
    server = IgtlServer("127.0.0.1", 0)
    streamer = LiveStreamer(FakeSession(pixels=128), server, fps=60, recorder=rec)
    server.start()
    streamer.start()
    col = Collector(server.port)
    try:
        col.wait_images(10)
    finally:
        _stop(server, streamer, col)
    rec.close()
    images, _, poses = read_sequence(tmp_path / "live.seq.nrrd")
    assert images.shape[0] == streamer.frames and images.shape[1:] == (128, 128)
    assert "ProbeToReference" in poses


def _line_image(n: int = 256, spacing: float = 0.2) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = rng.rayleigh(20.0, (n, n))
    rr, cc = np.mgrid[0:n, 0:n]
    # a bright line from (col 30, row 10) down at ~30° to (col 200, row 108)
    c0, r0, c1, r1 = 30.0, 10.0, 200.0, 108.0
    d = np.array([c1 - c0, r1 - r0]) / np.hypot(c1 - c0, r1 - r0)
    s = (cc - c0) * d[0] + (rr - r0) * d[1]
    dist = np.abs((cc - c0) * d[1] - (rr - r0) * d[0])
    on = (s >= 0) & (s <= np.hypot(c1 - c0, r1 - r0))
    img = img + on * 220.0 * np.exp(-0.5 * (dist / 1.0) ** 2)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_guide_sends_back_a_detection():
    img = _line_image()
    ijk = np.diag([0.2, 0.2, 0.2, 1.0])
    ijk[:3, 3] = (-20.0, 5.0, 40.0)
    server = IgtlServer("127.0.0.1", 0)
    server.start()
    got: list = []
    th = threading.Thread(target=lambda: run_guide("127.0.0.1", server.port, max_frames=1,
                                                   on_result=got.append), daemon=True)
    th.start()
    try:
        assert server.connected_once.wait(10)
        server.send_message(M.image_message(img, ijk, time.time(), {"Modality": "US"}),
                            wait=False)
        th.join(30)
        assert got and got[0]["needle"]["found"], got
        tip = np.array(got[0]["needle"]["tip_px"])
        assert np.hypot(*(tip - (200, 108))) < 6, tip
        end = time.monotonic() + 5
        msgs = {}
        while time.monotonic() < end and len(msgs) < 2:
            msgs.update({m.device_name: m for m in server.get_latest_messages()})
            time.sleep(0.01)
        tr, st = msgs[M.DETECTED_DEVICE], msgs[M.GUIDANCE_DEVICE]
        np.testing.assert_allclose(tr.matrix[:3, 3], ijk[:3, :3] @ (*tip, 0) + ijk[:3, 3],
                                   atol=1e-3)
        assert json.loads(st.string)["needle"]["found"]
    finally:
        server.stop()


def test_frame_of_lps_and_spacing_override():
    img = np.zeros((1, 64, 80), np.uint8)
    ijk = np.diag([0.5, 0.25, 1.0, 1.0])
    ijk[:3, 3] = (1.0, 2.0, 3.0)
    msg = pyigtl.ImageMessage(img, ijk_to_world_matrix=ijk, world_coordinate_system="lps")
    frame, ras = frame_of(msg)
    assert frame.spacing_mm == (0.25, 0.5) and frame.modality == "us"
    np.testing.assert_allclose(ras[:3, 3], (-1.0, -2.0, 3.0))
    frame2, _ = frame_of(msg, spacing_mm=0.1)
    assert frame2.spacing_mm == pytest.approx((0.1, 0.1))


def test_host_needs_allow_remote():
    check_host("127.0.0.1", False)
    with pytest.raises(UserError, match="--allow-remote"):
        check_host("0.0.0.0", False)
    assert check_host("0.0.0.0", True) == "0.0.0.0"


@pytest.mark.parametrize("args, needle", [
    (["serve", "--host", "0.0.0.0"], "--allow-remote"),
    (["serve", "--fps", "0"], "--fps"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--bmi", "99"], "bmi"),
    (["serve", "--record", "x.mp4"], "--record"),
    (["guide", "--connect", "nohostport"], "--connect"),
    (["guide", "--connect", "127.0.0.1:0"], "--connect"),
    (["guide", "--connect", "127.0.0.1:18944", "--spacing", "-1"], "--spacing"),
])
def test_cli_refuses_bad_input(args, needle, capsys):
    from needleguide.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_serve_cli_streams_and_stops_on_sigterm(tmp_path):
    """``needleguide serve`` in a process: a client gets images; SIGTERM ends it (143)."""
    import signal
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "needleguide", "serve", "--port", str(port),
                          "--pixels", "256"], stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    col = None
    try:
        end = time.monotonic() + 120
        col = Collector(port)
        while not col.images() and time.monotonic() < end and p.poll() is None:
            time.sleep(0.1)
        assert col.images(), p.stderr.read() if p.poll() is not None else "no image"
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 143
    finally:
        if col is not None:
            col.stop()
        if p.poll() is None:
            p.kill()
