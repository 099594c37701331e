"""The package's numba threading default (needleguide/__init__.py): OpenMP with passive
waiting where libgomp loads, else the work queue; the user's own choice wins. Run in
fresh interpreters: the layer is fixed at a process's first parallel launch."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import numba, numpy as np
import needleguide, os
@numba.njit(parallel=True)
def f(a):
    for i in numba.prange(a.size):
        a[i] += 1.0
f(np.zeros(8))
print(numba.threading_layer(), os.environ.get("OMP_WAIT_POLICY"))
"""


def _run(**env: str) -> list[str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY",
                      "OMP_WAIT_POLICY")}
    e.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=e, capture_output=True,
                         text=True, check=True, timeout=120)
    return out.stdout.split()


def _omp_loads() -> bool:
    try:
        import numba.np.ufunc.omppool  # noqa: F401
    except ImportError:
        return False
    return True


def test_openmp_with_passive_waiting_by_default():
    layer, policy = _run()
    assert layer == ("omp" if _omp_loads() else "workqueue")
    assert policy == "PASSIVE"


def test_the_users_choice_wins():
    layer, policy = _run(NUMBA_THREADING_LAYER="workqueue", OMP_WAIT_POLICY="ACTIVE")
    assert (layer, policy) == ("workqueue", "ACTIVE")
