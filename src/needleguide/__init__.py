"""needleguide: image guidance for interventional pain and MSK injections (US and FL)."""

import os
import sys

__version__ = "0.1.0"

# numba's threading layer, unless the user chose one: OpenMP first, the work queue if
# OpenMP cannot be loaded (no libgomp), TBB last. Measured on 2 cores with
# benchmarks/us_views_fps.py (needle views, 512², 2 threads, 6 Dec 2026): OpenMP 8.2–12.5 ms
# median per view against 9.7–14.3 ms with the work queue on a quiet machine, 12.7–19.0 ms
# against 15.6–21.5 ms with another process busy on one core. The work queue restarts its
# threads at each of the ~12 kernel launches of a frame (≈ 50 µs each, 9 µs with OpenMP).
# Idle OpenMP threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE): spinning made
# 2-thread frames 5–10× slower whenever the other core was busy. Both take effect before
# the process's first parallel launch; the user's own settings win.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
if "NUMBA_THREADING_LAYER" not in os.environ:
    os.environ.setdefault("NUMBA_THREADING_LAYER_PRIORITY", "omp workqueue tbb")
    if "numba" in sys.modules:  # numba imported first: its config is already read
        cfg = sys.modules["numba"].config
        cfg.THREADING_LAYER_PRIORITY = os.environ["NUMBA_THREADING_LAYER_PRIORITY"].split()
