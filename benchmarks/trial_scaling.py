"""Virtual-trial scaling: the same trial with 1 and with 2 Dask workers (DESIGN.md target:
2 workers ≥ 1.7× one worker, sessions being independent tasks).

For each worker count: an embedded LocalCluster (worker processes, 1 thread each, numba
limited to 1 thread), every worker warmed by one untimed session per modality (imports,
numba's cache), then the trial (``needleguide.lab.trial.run_trial``, fresh folder, same
patients each time) timed from the first submission to the last row. Prints procedures
per hour, the mean session time inside the workers, the load average before and after (a
shared machine inflates the times), and the speed-up.

    python benchmarks/trial_scaling.py                 # sacroiliac us,fluoro, n=200
    python benchmarks/trial_scaling.py --n 12 --workers 1 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _warm(procedure: str, modalities: tuple[str, ...]) -> float:
    """One untimed session per modality on this worker (imports, numba caches)."""
    from needleguide.lab.trial_task import session_config
    from needleguide.session import run_session

    t0 = time.perf_counter()
    for m in modalities:
        run_session(session_config({"procedure": procedure, "modality": m, "bmi": 28.0,
                                    "degeneration": 0, "patient_seed": 0}))
    return time.perf_counter() - t0


def measure(spec, workers: int, root: Path) -> dict:
    from distributed import Client

    from needleguide.lab.trial import dask_client, run_trial
    from needleguide.lab.trial_store import read_table

    out = root / f"w{workers}"
    with dask_client(None, workers) as (client, n):
        assert isinstance(client, Client) and n == workers
        warm = client.run(_warm, spec.procedures[0], spec.modalities)
        load0 = os.getloadavg()[0]
        res = run_trial(spec, out, client=client)
        load1 = os.getloadavg()[0]
    rows = read_table(out).to_pylist()
    per_worker: dict[str, int] = {}
    for r in rows:
        per_worker[r["worker"]] = per_worker.get(r["worker"], 0) + 1
    return {"workers": workers, "ran": res.ran, "failed": res.failed,
            "wall_s": res.elapsed_s, "per_hour": res.per_hour,
            "session_s": sum(r["elapsed_s"] for r in rows) / max(1, len(rows)),
            "warm_s": max(warm.values()), "load": (load0, load1),
            "split": sorted(per_worker.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procedure", default="sacroiliac")
    ap.add_argument("--modalities", default="us,fluoro")
    ap.add_argument("--n", type=int, default=200, help="procedures per modality")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()

    from needleguide.lab.population import DEFAULT_SPEC
    from needleguide.lab.trial import TrialSpec

    spec = TrialSpec.build([a.procedure], a.modalities, a.n, DEFAULT_SPEC, a.seed)
    print(f"trial: {a.procedure} × {a.modalities}, n={a.n} per modality ({spec.total} "
          f"sessions); {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    results = []
    with tempfile.TemporaryDirectory(prefix="trial-scaling-") as tmp:
        for k in a.workers:
            r = measure(spec, k, Path(tmp))
            results.append(r)
            print(f"{k} worker{'s' if k > 1 else ' '}: {r['ran']} sessions ({r['failed']} "
                  f"failed) in {r['wall_s']:.1f} s = {r['per_hour']:.0f} procedures/hour; "
                  f"mean session {r['session_s']:.2f} s in the worker; rows per worker "
                  f"{r['split']}; warm-up {r['warm_s']:.1f} s; load average "
                  f"{r['load'][0]:.2f} → {r['load'][1]:.2f}", flush=True)
    base = results[0]
    for r in results[1:]:
        x = r["per_hour"] / base["per_hour"] if base["per_hour"] else float("nan")
        print(f"speed-up {r['workers']} vs {base['workers']} worker(s): {x:.2f}× "
              f"(target ≥ 1.7× for 2 vs 1)")


if __name__ == "__main__":
    main()
