"""Virtual trials on Dask: many simulated procedures on drawn patients, one Dask task per
session, rows appended to Parquet as they finish, resumable.

A trial folder ``OUT/`` holds ``trial.json`` (the manifest: the arguments that define the
trial, and a log of runs) and ``rows/`` (Parquet part files, see
:mod:`needleguide.lab.trial_store`). It persists between runs, unlike the output sets of
other commands (:mod:`needleguide.outputs`), so that an interrupted trial resumes:

* the same arguments again → only tasks without an "ok" row run (failed ones are retried);
* different arguments → refused, unless ``force``: then rows that the new trial would
  compute identically (same seed and population; the task still in the new task set) are
  kept, the others removed;
* a folder holding files the trial did not write (no ``trial.json``) → refused unless
  ``force`` (then they are left alone);
* a second process on the same folder is refused (the lock of :mod:`needleguide.outputs`).

The identity of a trial: procedures, modalities, n, the population (canonical text) and
the seed; the cluster (``workers``, ``scheduler``) does not change the rows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from needleguide import atomic, interrupts
from needleguide.errors import UserError, check_seed
from needleguide.lab import trial_store as store
from needleguide.lab.population import parse_population
from needleguide.lab.trial_task import MODALITIES, run_task, session_config

MANIFEST = "trial.json"
FORMAT = 1
N_MAX = 100_000
FLUSH_S = 60.0  # a part file at least this often while rows are pending
#: worker processes: one numerical thread each (sessions are the parallel unit)
WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1"}


class TrialSpec(BaseModel):
    """What defines a trial (and its rows): build with :meth:`build` for UserErrors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    procedures: tuple[str, ...]
    modalities: tuple[str, ...]
    n: int
    population: str
    seed: int

    @classmethod
    def build(cls, procedures: list[str] | tuple[str, ...], modalities: str | list[str],
              n: int, population: str | Path, seed: int) -> TrialSpec:
        """Validate every argument (one UserError naming the flag)."""
        check_seed(seed)
        if isinstance(modalities, str):
            modalities = [m.strip() for m in modalities.split(",") if m.strip()]
        if not modalities:
            raise UserError(f"--modalities: none given; choose from {', '.join(MODALITIES)}")
        for m in modalities:
            if m not in MODALITIES:
                raise UserError(f"--modalities: unknown value {m!r}; choose from "
                                f"{', '.join(MODALITIES)}")
        if not procedures:
            raise UserError("--procedure: give at least one (see `needleguide procedures`)")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= N_MAX:
            raise UserError(f"--n: {n} is outside the allowed range [1, {N_MAX}]")
        dup = {x for x in [*procedures, *modalities]
               if [*procedures, *modalities].count(x) > 1}
        if dup:
            raise UserError(f"--procedure/--modalities: {sorted(dup)[0]!r} given twice")
        pop = parse_population(population)
        spec = cls(procedures=tuple(procedures), modalities=tuple(modalities), n=n,
                   population=pop.text(), seed=seed)
        for t in spec.tasks()[: len(spec.procedures) * len(spec.modalities)]:
            session_config(t)  # unknown procedure, no phantom region: refused now
        return spec

    @property
    def total(self) -> int:
        return len(self.procedures) * len(self.modalities) * self.n

    def tasks(self) -> list[dict[str, Any]]:
        """Every task: the patient of (seed, procedure, index) under each modality (the
        same patient for every modality: a paired design). Index-major, so that the first
        rows of an interrupted trial cover every arm."""
        from needleguide.procedures import get_procedure

        pop = parse_population(self.population)
        levels = {p: get_procedure(p).resolve_level(None) for p in self.procedures}
        out = []
        for i in range(self.n):
            for p in self.procedures:
                pat = pop.patient(self.seed, p, i).to_dict()
                for m in self.modalities:
                    out.append({"task_key": task_key(p, m, i), "trial_seed": self.seed,
                                "procedure": p, "modality": m, "index": i,
                                "level": levels[p], **pat})
        return out


def task_key(procedure: str, modality: str, index: int) -> str:
    return f"{procedure}/{modality}/{index:05d}"


@dataclass
class Progress:
    """What a progress display needs: rows done of the whole trial (resumed ones
    included), failures, rows run in this run and its wall time."""

    total: int
    done: int
    failed: int = 0
    ran: int = 0
    elapsed_s: float = 0.0

    @property
    def per_hour(self) -> float:
        return 3600.0 * self.ran / self.elapsed_s if self.elapsed_s > 0 and self.ran else 0.0


@dataclass
class RunResult:
    out: Path
    spec: TrialSpec
    run_id: str
    total: int
    resumed: int  # rows already there (not run again)
    ran: int = 0  # tasks run now
    failed: int = 0  # of those, failed
    elapsed_s: float = 0.0  # wall time from the first submission to the last row
    startup_s: float = 0.0  # cluster start (embedded) or connection
    workers: int = 0
    kept_on_force: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def per_hour(self) -> float:
        return 3600.0 * self.ran / self.elapsed_s if self.elapsed_s > 0 and self.ran else 0.0


def _read_manifest(out: Path) -> dict[str, Any] | None:
    import json

    try:
        m = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise UserError(f"--out: {out / MANIFEST} is not a trial manifest; choose another "
                        "folder") from None
    if not isinstance(m, dict) or not isinstance(m.get("trial"), dict):
        raise UserError(f"--out: {out / MANIFEST} is not a trial manifest")
    return m


def _differences(old: dict[str, Any], new: TrialSpec) -> list[str]:
    flags = {"procedures": "--procedure", "modalities": "--modalities", "n": "--n",
             "population": "--population", "seed": "--seed"}
    cur = new.model_dump(mode="json")
    return [f"{flags[k]} was {_show(old.get(k))}, now {_show(cur[k])}" for k in flags
            if _show(old.get(k)) != _show(cur[k])]


def _show(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, list | tuple) else str(v)


def prepare_folder(out: Path, spec: TrialSpec, force: bool, run_id: str) -> tuple[dict, int | None]:
    """Check ``out`` against ``spec`` (see the module docstring); the manifest to extend and
    the rows kept when ``force`` changed the trial (else None)."""
    m = _read_manifest(out)
    if m is None:
        present = [p.name for p in out.iterdir()] if out.is_dir() else []
        if present and not force:
            shown = ", ".join(sorted(present)[:4]) + (" …" if len(present) > 4 else "")
            raise UserError(f"--out: {out} already holds files that `needleguide trial` did "
                            f"not write ({shown}); choose another folder or pass --force")
        return {"command": "trial", "format": FORMAT, "trial": spec.model_dump(mode="json"),
                "runs": []}, None
    diff = _differences(m["trial"], spec)
    if not diff:
        return m, None
    if not force:
        raise UserError(f"--out: {out} holds a different trial ({'; '.join(diff)}); rerun "
                        "with the same arguments to resume, choose another folder, or pass "
                        "--force to replace it")
    same_patients = m["trial"].get("seed") == spec.seed and \
        m["trial"].get("population") == spec.population
    keep = {t["task_key"] for t in spec.tasks()} if same_patients else set()
    kept = store.rewrite(out, keep, run_id)
    m.update(trial=spec.model_dump(mode="json"))
    return m, kept


def _write_manifest(out: Path, m: dict[str, Any]) -> None:
    from needleguide import __version__

    m["needleguide"] = __version__
    with interrupts.deferred():
        atomic.write_json(out / MANIFEST, m)


@contextlib.contextmanager
def _folder_lock(out: Path):
    from needleguide.outputs import LOCK_TAG, _Lock

    out.mkdir(parents=True, exist_ok=True)
    lock = _Lock(out.parent / f".{out.name}{LOCK_TAG}")
    if not lock.acquire():
        raise UserError(f"--out: {out} is being written by another needleguide process"
                        f"{lock.holder()}; wait for it to finish or choose another folder")
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def _sigint_ignored():
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    prev = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, prev)


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int, processes: bool = True):
    """A distributed Client: to ``scheduler`` (``tcp://HOST:PORT``), or to an embedded
    LocalCluster of ``workers`` single-threaded worker processes (threads if not
    ``processes``). Yields (client, number of workers)."""
    from distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout=15)
            except (OSError, TimeoutError, ValueError) as e:
                raise UserError(f"--scheduler: cannot connect to {scheduler}: "
                                f"{' '.join(str(e).split())[:200]}") from None
        else:
            kw: dict[str, Any] = {"env": WORKER_ENV} if processes else {}
            # worker processes inherit SIGINT ignored: Ctrl-C reaches the whole process
            # group, and only this process handles it (workers would print tracebacks)
            with _sigint_ignored():
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                       processes=processes, dashboard_address=None,
                                       silence_logs=logging.ERROR, **kw)
            client = Client(cluster)
        try:
            n = len(client.scheduler_info(n_workers=-1).get("workers", {})) or workers
            yield client, n
        finally:
            with contextlib.suppress(Exception):
                client.close(timeout=10)
    finally:
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=10)


def run_trial(spec: TrialSpec, out: Path, *, scheduler: str | None = None,
              workers: int | None = None, processes: bool = True, force: bool = False,
              progress: Callable[[Progress], None] | None = None,
              client: Any = None) -> RunResult:
    """Run (or resume) a trial into ``out``; see the module docstring. ``client``: an
    existing distributed Client to use instead of starting one (benchmarks)."""
    out = Path(out).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a folder")
    workers = workers or len(os.sched_getaffinity(0))
    run_id = uuid.uuid4().hex[:8]
    with _folder_lock(out):
        manifest, kept = prepare_folder(out, spec, force, run_id)
        tasks = spec.tasks()
        done = store.done_keys(out)
        todo = [t for t in tasks if t["task_key"] not in done]
        res = RunResult(out, spec, run_id, len(tasks), len(tasks) - len(todo),
                        kept_on_force=kept, workers=0)
        log = {"run_id": run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "to_run": len(todo), "ran": 0, "failed": 0, "interrupted": True,
               "scheduler": scheduler, "workers": None}
        manifest.setdefault("runs", []).append(log)
        _write_manifest(out, manifest)
        if progress is not None:
            progress(Progress(total=res.total, done=res.resumed))
        try:
            if todo:
                _execute(todo, out, res, scheduler, workers, processes, progress, client)
            log["interrupted"] = False
        finally:
            log.update(ran=res.ran, failed=res.failed, workers=res.workers,
                       elapsed_s=round(res.elapsed_s, 2),
                       finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            _write_manifest(out, manifest)
    return res


def _execute(todo: list[dict[str, Any]], out: Path, res: RunResult, scheduler: str | None,
             workers: int, processes: bool, progress: Callable[[Progress], None] | None,
             client: Any) -> None:
    from distributed import as_completed

    batch = max(1, min(32, res.total // 25))
    pending: list[dict[str, Any]] = []
    seq = 0
    state = Progress(total=res.total, done=res.resumed)
    tick = progress or (lambda p: None)

    def flush() -> None:
        nonlocal seq
        if pending:
            with interrupts.deferred():  # a part file is written whole or not at all
                store.write_part(out, pending, res.run_id, seq)
            seq += 1
            pending.clear()

    t_start = time.perf_counter()
    ctx = contextlib.nullcontext((client, _n_workers(client))) if client is not None \
        else dask_client(scheduler, workers, processes)
    try:
        with ctx as (cl, n_workers):
            res.workers = n_workers
            res.startup_s = time.perf_counter() - t_start
            t0 = time.perf_counter()
            tick(state)
            futures = {cl.submit(run_task, t, pure=False,
                                 key=f"needleguide-trial-{res.run_id}-{t['task_key']}"): t
                       for t in todo}
            last_flush = time.perf_counter()
            for fut in as_completed(futures):
                task = futures.pop(fut)
                row = _row_of(fut, task)
                row["run_id"] = res.run_id
                pending.append(row)
                res.ran += 1
                res.failed += row["status"] != "ok"
                res.elapsed_s = time.perf_counter() - t0
                state.done, state.failed = state.done + 1, state.failed + (
                    row["status"] != "ok")
                state.ran, state.elapsed_s = res.ran, res.elapsed_s
                if len(pending) >= batch or time.perf_counter() - last_flush > FLUSH_S:
                    flush()
                    last_flush = time.perf_counter()
                tick(state)
            if futures:  # pragma: no cover - as_completed yields every future
                raise RuntimeError(f"{len(futures)} tasks never completed")
    finally:
        flush()  # also on Ctrl-C: what finished is kept


def _n_workers(client: Any) -> int:
    return len(client.scheduler_info(n_workers=-1).get("workers", {}))


def _row_of(fut: Any, task: dict[str, Any]) -> dict[str, Any]:
    """The row a finished future gives; a task that raised on the worker (or whose worker
    died) is a failed row."""
    if fut.status == "finished":
        return fut.result()
    try:
        exc = fut.exception()
        err = f"{type(exc).__name__}: {exc}"
    except Exception as e:  # noqa: BLE001 - cancelled, lost: still one failed row
        err = f"{type(e).__name__}: {e}"
    return {**task, "status": "failed", "error": err[:2000], "worker": None}
