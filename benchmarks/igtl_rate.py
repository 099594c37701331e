"""IMAGE rate of ``needleguide serve`` with the real live session, received by a client in
another process (as 3D Slicer would be), over ``--seconds`` (target: ≥ 30 IMAGE/s at 512²,
DESIGN.md "Performance targets").

This process: the live session (``--modality``, 512², BMI 28, seed 1) streamed at ``--fps``
through :class:`needleguide.io.igtl.IgtlServer`. A second Python process: a pyigtl client
that counts IMAGE messages and checks their timestamps increase. Prints the rate received,
the frames rendered meanwhile and the render time (median, p95).

    python benchmarks/igtl_rate.py [--seconds 10] [--fps 30] [--modality us]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CLIENT = r"""
import json, sys, time
import pyigtl
port, seconds = int(sys.argv[1]), float(sys.argv[2])
c = pyigtl.OpenIGTLinkClient("127.0.0.1", port)
seen, last_ts, first = 0, None, None
mono = True
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    m = c.wait_for_message("Image_Reference", timeout=5)
    if m is None:
        continue
    if first is None:
        first = time.monotonic()  # the clock starts at the first image
        last_ts = m.timestamp
        continue
    if m.timestamp <= last_ts:
        mono = False
    last_ts = m.timestamp
    seen += 1
    if time.monotonic() - first >= seconds:
        break
dt = time.monotonic() - first
c.stop()
print(json.dumps({"images": seen, "seconds": dt, "monotonic": mono}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--modality", default="us")
    ap.add_argument("--pixels", type=int, default=512)
    a = ap.parse_args()

    import numpy as np

    from needleguide.io.igtl import IgtlServer, LiveStreamer
    from needleguide.live import LiveConfig, LiveSession

    session = LiveSession(LiveConfig(modality=a.modality, pixels=a.pixels, seed=1))
    session.tick(0.0)  # warm: numba kernels, phantom
    server = IgtlServer("127.0.0.1", 0)
    streamer = LiveStreamer(session, server, fps=a.fps)
    server.start()
    streamer.start()
    try:
        f0 = streamer.frames
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-c", CLIENT, str(server.port), str(a.seconds)],
                             capture_output=True, text=True, timeout=a.seconds + 90)
        dt = time.monotonic() - t0
        res = json.loads(out.stdout.strip().splitlines()[-1])
        rendered = (streamer.frames - f0) / dt
        r = np.asarray(list(streamer.render_s)[-int(a.fps * a.seconds):]) * 1e3
        print(f"{a.modality} {a.pixels}²: {res['images'] / res['seconds']:.1f} IMAGE/s received "
              f"by a client process over {res['seconds']:.1f} s (timestamps increasing: "
              f"{res['monotonic']}); {rendered:.1f} frames/s rendered over the whole run; "
              f"render + send median {np.median(r):.1f} ms, p95 {np.percentile(r, 95):.1f} ms")
    finally:
        streamer.stop()
        server.stop()
        session.close()


if __name__ == "__main__":
    main()
