"""The trainer in a real browser: key press → new frame painted, and concurrent sessions
(issue 20 targets: median ≤ 80 ms, p95 ≤ 150 ms at 512² ultrasound; 4 sessions at ≥ 10
frames/s each; on 2 cores).

One process serves the app (uvicorn on a thread, ``needleguide.app.run.AppServer``);
headless Chromium (Debian's, through chromedriver: ``needleguide.app.headless``) opens
the page, starts an ultrasound session (sacroiliac, BMI 28, 512²) and presses keys that
slide the probe (ArrowLeft / ArrowRight, alternating, a random pause of 0.15–0.35 s between
presses, so presses land anywhere in the frame clock). The page's own instrumentation
measures each press from ``keydown`` (performance.now()) to the completion of
``drawImage`` of the first frame whose header acknowledges the command
(``window.__ng.latencies``): the whole path — WebSocket out, the session's tick (render +
needle analyser + overlays), JPEG, WebSocket back, decode, paint. Then ``--sessions``
pages (one browser each) run at once for ``--seconds`` and each page's painted frame rate
is read from ``window.__ng.paintTimes``.

    python benchmarks/app_latency.py [--presses 100] [--sessions 4] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time


def _start_session(drv, url: str, procedure: str, modality: str, pixels: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    drv.get(url)
    w = WebDriverWait(drv, 60)
    w.until(lambda d: len(Select(d.find_element(By.ID, "sel-procedure")).options) > 3)
    Select(drv.find_element(By.ID, "sel-procedure")).select_by_value(procedure)
    Select(drv.find_element(By.ID, "sel-modality")).select_by_value(modality)
    if pixels != 512:
        drv.execute_script("window.__ng.pixels = arguments[0]", pixels)
    drv.find_element(By.ID, "btn-start").click()
    WebDriverWait(drv, 180).until(lambda d: d.execute_script(
        "return window.__ng && window.__ng.frames > 5"))


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presses", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--procedure", default="sacroiliac")
    ap.add_argument("--fps", type=float, default=25.0)
    a = ap.parse_args()

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    from needleguide.app.headless import chromium
    from needleguide.app.run import AppServer

    rng = random.Random(0)
    server = AppServer(port=0, fps=a.fps).start()
    print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}; app at port {server.port}")
    drivers = []
    try:
        drv = chromium()
        drivers.append(drv)
        _start_session(drv, server.url, a.procedure, "us", 512)
        time.sleep(2.0)  # warm-up: first frames, numba dispatch
        drv.execute_script("window.__ng.latencies = []")
        canvas = drv.find_element("id", "canvas")
        ActionChains(drv).move_to_element(canvas).perform()
        for i in range(a.presses):
            key = Keys.ARROW_LEFT if i % 2 else Keys.ARROW_RIGHT
            ActionChains(drv).send_keys(key).perform()
            time.sleep(rng.uniform(0.15, 0.35))
        time.sleep(1.0)
        lat = drv.execute_script("return window.__ng.latencies")
        if len(lat) < 0.9 * a.presses:
            print(f"warning: {len(lat)} of {a.presses} presses measured")
        print(f"key press -> frame painted, 512² US, {len(lat)} presses: median "
              f"{statistics.median(lat):.1f} ms, p95 {_pct(lat, 0.95):.1f} ms, max "
              f"{max(lat):.1f} ms (targets 80 / 150 ms)")

        for _ in range(a.sessions - 1):
            d = chromium()
            drivers.append(d)
            _start_session(d, server.url, a.procedure, "us", 512)
        for d in drivers:
            d.execute_script("window.__ng.paintTimes = []")
        time.sleep(a.seconds)
        rates = []
        for d in drivers:
            ts = d.execute_script("return window.__ng.paintTimes")
            rates.append((len(ts) - 1) / ((ts[-1] - ts[0]) / 1000.0) if len(ts) > 1 else 0.0)
        print(f"{len(drivers)} concurrent US sessions at 512²: painted frames/s per session "
              + ", ".join(f"{r:.1f}" for r in rates)
              + f" (min {min(rates):.1f}; target ≥ 10), load {os.getloadavg()[0]:.1f}")
    finally:
        for d in drivers:
            d.quit()
        server.stop()


if __name__ == "__main__":
    main()
