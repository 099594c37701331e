"""Latency of ``needleguide serve``: a TRANSFORM sent by an OpenIGTLink client to the first
IMAGE that reflects it (target: median ≤ 50 ms, DESIGN.md "Performance targets").

One process, loopback: the live session (ultrasound, 512², BMI 28, seed 1) streams at
``--fps`` through :class:`needleguide.io.igtl.IgtlServer`; a pyigtl client sends
``ProbeToReference`` moves (±1 mm along R, alternating) and waits for the first IMAGE whose
matrix moved by the shift; the time is taken from the ``send_message`` call to the arrival
of that IMAGE in the client (both clocks the same). Between moves a random pause of
0–1 frame period, so that moves land anywhere in the frame clock. Prints the median, p95
and max over ``--moves`` (≥ 50), the frame rate meanwhile and the render time.

    python benchmarks/igtl_latency.py [--moves 60] [--fps 30] [--modality us]
"""

from __future__ import annotations

import argparse
import statistics
import time


class _Tap(dict):
    def __init__(self, sink: list) -> None:
        super().__init__()
        self.sink = sink

    def __setitem__(self, key, msg) -> None:
        self.sink.append((time.perf_counter(), msg))
        super().__setitem__(key, msg)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--moves", type=int, default=60)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--modality", default="us")
    ap.add_argument("--pixels", type=int, default=512)
    a = ap.parse_args()

    import numpy as np
    import pyigtl

    from needleguide.io.igtl import IgtlServer, LiveStreamer
    from needleguide.live import LiveConfig, LiveSession

    t = time.perf_counter()
    session = LiveSession(LiveConfig(modality=a.modality, pixels=a.pixels, seed=1))
    lf = session.tick(0.0)
    print(f"session built and first frame in {time.perf_counter() - t:.1f} s")
    name = "ProbeToReference" if a.modality == "us" else "NeedleToReference"
    pose0 = np.asarray(lf.transforms[name], float)
    server = IgtlServer("127.0.0.1", 0)
    streamer = LiveStreamer(session, server, fps=a.fps)
    server.start()
    streamer.start()
    got: list = []
    client = pyigtl.OpenIGTLinkClient("127.0.0.1", server.port, start_now=False)
    client.incoming_messages = _Tap(got)
    client.start()
    rng = np.random.default_rng(0)
    try:
        while not any(m.message_type == "IMAGE" for _, m in got):
            time.sleep(0.01)
        time.sleep(1.0)  # settle
        lat: list[float] = []
        missed = 0
        f0, t0 = streamer.frames, time.perf_counter()
        for k in range(a.moves):
            shift = 1.0 if k % 2 == 0 else 0.0  # alternate +1 mm / back along R
            pose = pose0.copy()
            pose[0, 3] += shift
            n_before = len(got)
            ref = [m for _, m in got if m.message_type == "IMAGE"][-1].ijk_to_world_matrix
            want_x = ref[0, 3] + (1.0 if k % 2 == 0 else -1.0)
            ts = time.perf_counter()
            client.send_message(pyigtl.TransformMessage(pose, device_name=name), wait=False)
            hit = None
            while hit is None and time.perf_counter() - ts < 2.0:
                for tr, m in got[n_before:]:
                    if m.message_type == "IMAGE" and abs(m.ijk_to_world_matrix[0, 3]
                                                         - want_x) < 1e-2:
                        hit = tr
                        break
                time.sleep(0.0005)
            if hit is None:
                missed += 1
            else:
                lat.append((hit - ts) * 1e3)
            time.sleep(float(rng.uniform(0, 1.0 / a.fps)) + 0.05)
        rate = (streamer.frames - f0) / (time.perf_counter() - t0)
    finally:
        client.stop()
        streamer.stop()
        server.stop()
    lat.sort()
    p95 = lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else float("nan")
    rend = sorted(streamer.render_s)
    print(f"{a.modality} {a.pixels}² at {a.fps:g} fps: {len(lat)} moves seen, {missed} missed")
    print(f"latency TRANSFORM → IMAGE: median {statistics.median(lat):.1f} ms, p95 {p95:.1f} "
          f"ms, max {lat[-1]:.1f} ms (target median ≤ 50 ms)")
    print(f"frames rendered {rate:.1f}/s meanwhile (moves pull frames forward); render + "
          f"pack median {statistics.median(rend) * 1e3:.1f} ms, p95 "
          f"{rend[int(0.95 * (len(rend) - 1))] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
