"""needleguide: image guidance for interventional pain and MSK injections (US and FL)."""

import os
import sys

__version__ = "0.1.0"

# numba's work-queue threading layer, unless the user chose one: with the OpenMP layer a
# 2-thread B-mode frame took ~100 ms (instead of 6-10 ms) whenever the second core was
# busy with other work (measured on 2 cores, benchmarks/us_vs_pymust.py with one other
# process running); the work queue keeps 7-10 ms there and is as fast on a quiet machine
# (fluoroscopy live frames 2.5 ms vs 2.7 ms). Takes effect before the first parallel launch.
if "NUMBA_THREADING_LAYER" not in os.environ:
    os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
    if "numba" in sys.modules:  # numba imported first: its config is already read
        sys.modules["numba"].config.THREADING_LAYER = "workqueue"
