"""Where a virtual trial keeps its rows: Parquet part files in ``OUT/rows/``, each written
atomically (temporary file, then rename), one per batch of finished procedures.

Part names sort in the order they were written (``part-<ns since epoch>-<run>-<n>``); a
task key that appears more than once (a failed task retried by a later run) is read as
its latest row. :data:`SCHEMA` is the row schema the trial report codes against.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from needleguide.atomic import atomic_path

ROWS_DIR = "rows"
PART_GLOB = "part-*.parquet"

SCHEMA = pa.schema([
    ("task_key", pa.string()),          # "<procedure>/<modality>/<index>"
    ("trial_seed", pa.int64()),
    ("procedure", pa.string()),
    ("modality", pa.string()),          # "us" | "fluoro" | "fluoro-dsa"
    ("index", pa.int32()),
    ("patient_seed", pa.int64()),
    ("bmi", pa.float64()),
    ("degeneration", pa.int8()),
    ("age", pa.float64()),
    ("pregnant", pa.bool_()),
    ("status", pa.string()),            # "ok" | "failed"
    ("error", pa.string()),
    ("success", pa.bool_()),
    ("final_tip_error_mm", pa.float64()),
    ("tolerance_mm", pa.float64()),
    ("passes", pa.int32()),
    ("procedure_time_s", pa.float64()),
    ("fluoro_time_s", pa.float64()),
    ("dap_gy_cm2", pa.float64()),
    ("reference_air_kerma_mgy", pa.float64()),
    ("contrast_ml", pa.float64()),
    ("intravascular_events", pa.int32()),
    ("intravascular_missed", pa.int32()),
    ("failure_cause", pa.string()),
    ("target_depth_mm", pa.float64()),
    ("detection_rate", pa.float64()),
    ("elapsed_s", pa.float64()),
    ("worker", pa.string()),
    # beyond the fixed schema
    ("level", pa.string()),             # the intended level (None: not a spinal level)
    ("advised_modality", pa.string()),  # the advisor's first choice for this patient
    ("events", pa.string()),            # "kind:detected" joined by ";" (session events)
    ("run_id", pa.string()),            # which invocation computed the row
])
COLUMNS = tuple(SCHEMA.names)


def rows_dir(out: Path) -> Path:
    return Path(out) / ROWS_DIR


def part_files(out: Path) -> list[Path]:
    """The part files of a trial folder, in the order they were written."""
    d = rows_dir(out)
    return sorted(d.glob(PART_GLOB)) if d.is_dir() else []


def to_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Rows (dicts; missing columns are null) as a table with :data:`SCHEMA`."""
    return pa.Table.from_pylist([{c: r.get(c) for c in COLUMNS} for r in rows],
                                schema=SCHEMA)


def write_part(out: Path, rows: Sequence[dict[str, Any]], run_id: str, seq: int) -> Path:
    """Write ``rows`` as one new part file (atomically); its path."""
    path = rows_dir(out) / f"part-{time.time_ns():020d}-{run_id}-{seq:05d}.parquet"
    with atomic_path(path) as tmp:
        pq.write_table(to_table(rows), tmp)
    return path


def read_table(out: Path, latest_only: bool = True) -> pa.Table:
    """All rows of a trial folder (``latest_only``: one row per task key, the latest).
    A part that cannot be read (e.g. truncated by a crash of the disk) is skipped: its
    tasks run again."""
    tables = []
    for p in part_files(out):
        with contextlib.suppress(OSError, pa.ArrowInvalid):
            t = pq.read_table(p)
            tables.append(t.select([c for c in COLUMNS if c in t.column_names]))
    if not tables:
        return SCHEMA.empty_table()
    t = pa.concat_tables([_conform(t) for t in tables])
    if not latest_only or t.num_rows == 0:
        return t
    keys = t.column("task_key").to_pylist()
    last = {k: i for i, k in enumerate(keys)}
    return t.take(sorted(last.values()))


def _conform(t: pa.Table) -> pa.Table:
    """``t`` with every :data:`SCHEMA` column (nulls for ones an older writer lacked)."""
    cols = [t.column(f.name).cast(f.type) if f.name in t.column_names
            else pa.nulls(t.num_rows, f.type) for f in SCHEMA]
    return pa.Table.from_arrays(cols, schema=SCHEMA)


def done_keys(out: Path) -> set[str]:
    """Task keys that have a row with status "ok" (these are not run again)."""
    t = read_table(out)
    return {k for k, s in zip(t.column("task_key").to_pylist(),
                              t.column("status").to_pylist(), strict=True) if s == "ok"}


def rewrite(out: Path, keep: Iterable[str], run_id: str) -> int:
    """Keep only the rows of the task keys in ``keep`` (one consolidated part); the old
    parts are removed. Returns the rows kept."""
    keep = set(keep)
    old = part_files(out)
    t = read_table(out)
    rows = [r for r in t.to_pylist() if r["task_key"] in keep]
    if rows:
        write_part(out, rows, run_id, 0)
    for p in old:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    return len(rows)
