"""A sweep's results table: one row per job, appended by each population as it finishes, read by resume and the report.

    python -m sherlocked.report outputs/sweeps/demo --rebuild   # the table again, from every job's result.json

<sweep dir>/results/ (sherlocked.layout) holds one Parquet file per finished population, written whole under
a temporary name and renamed into place: a reader sees a population's rows all or none, a killed writer leaves
at most a temporary file no reader reads, and any number of writers append at once without a lock (two sweeps
into one dir; Ray and SLURM workers on other machines sharing the sweep dir). Chosen by measuring against
SQLite and DuckDB (docs/scaling.md). The end of a sweep compacts the files into one. A job trained again (a
failure retried) appends a newer row, and readers keep each job's latest. result.json stays each job's own
record: the table keeps it whole (column `result`) beside the columns the report reads, and can be rebuilt
from the result.json files.

Columns: job (its dir, relative to the sweep dir), written (time), status, overrides, final.<metric>,
curve.<metric> (per epoch), hp.<name> (its HParams), diag.<name> (the last epoch's diagnostics),
undeclared (JSON: the config keys sherlocked.config does not declare), population_size,
resumed_epochs, wall_time_s, result (the whole result.json).
"""

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sherlocked import layout
from sherlocked.config import undeclared
from sherlocked.results import Result, read_result, replacing

log = logging.getLogger(__name__)
METRICS = ("test_acc", "test_loss", "train_loss")
HPARAMS, DIAG = "hp.", "diag."  # the prefixes of the HParams' and the diagnostics' columns
PART = "*.parquet"
BATCH = 4096  # rows a row group (and a batch of a compaction)


def scalar(value):
    """A value one typed column can hold: lists and the like as their text."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def row(job: str, result: Result, written: float) -> dict:
    """A job's row: what the report and resume read, and the whole result.json."""
    last = {name: values[-1] for name, values in result.diagnostics.items() if values}
    return {
        "job": job,
        "written": written,
        "status": result.status,
        "overrides": list(result.overrides),
        "final.test_acc": result.final_test_acc,  # the headline; final.* the last epoch's others
        **{f"final.{m}": result.final.get(m) for m in METRICS if m != "test_acc"},
        **{f"curve.{m}": [float(v) for v in result.history.get(m, [])] for m in METRICS},
        **{f"{HPARAMS}{name}": scalar(value) for name, value in result.hparams.items()},
        **{f"{DIAG}{name}": None if value is None else float(value) for name, value in last.items()},
        "undeclared": json.dumps(undeclared(result.config)),
        "population_size": result.population_size,
        "resumed_epochs": result.resumed_epochs,
        "wall_time_s": result.wall_time_s,
        "result": json.dumps(result.to_json(), allow_nan=True),
    }


def append(sweep_dir: Path, jobs: Sequence[str], results: Sequence[Result]) -> Path | None:
    """One population's rows (jobs: their dirs relative to the sweep dir), as one new file of the table."""
    if not results:
        return None
    written = time.time()
    rows = [row(job, result, written) for job, result in zip(jobs, results)]
    names = list(dict.fromkeys(name for r in rows for name in r))  # every row's columns (act5 in deeper models)
    return write(sweep_dir, pa.Table.from_pydict({name: [r.get(name) for r in rows] for name in names}))


def write(sweep_dir: Path, table: pa.Table) -> Path:
    """A new file of the table, whole or not at all (see the module's docstring)."""
    path = new_part(sweep_dir)
    with replacing(path) as temporary:
        pq.write_table(table, temporary, compression="zstd", row_group_size=BATCH)
    return path


def new_part(sweep_dir: Path) -> Path:
    """A name for a new file of the table that no other writer uses (its time first: files sort as written)."""
    folder = layout.results_table(sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{int(time.time() * 1e3)}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"


def record(jobs: Sequence, results: Sequence[Result]) -> None:
    """Jobs' results (sherlocked.job.Job records) into their sweep's table; jobs outside a sweep have none."""
    placed = [(job, result) for job, result in zip(jobs, results) if job.sweep_dir is not None]
    if placed:
        sweep_dir = placed[0][0].sweep_dir
        append(sweep_dir, [os.path.relpath(job.job_dir, sweep_dir) for job, _ in placed], [r for _, r in placed])


def parts(sweep_dir: Path) -> list[Path]:
    return sorted(layout.results_table(sweep_dir).glob(PART))


def read(sweep_dir: Path, columns: Iterable[str] | None = None, prefixes: Iterable[str] = ()) -> pd.DataFrame:
    """The table's latest row of each job: `columns` (all if None) and every column starting with a prefix.
    A file that cannot be read is left out with a warning: its jobs count as not in the table."""
    return latest(frames(sweep_dir, columns, prefixes).values(), columns)


def frames(sweep_dir: Path, columns: Iterable[str] | None = None, prefixes: Iterable[str] = ()) -> dict:
    """Each readable file of the table, by path, as a frame of the columns asked for."""
    found = {}
    for path in parts(sweep_dir):
        try:
            names = pq.read_schema(path).names
            wanted = names if columns is None else [n for n in names if n in {*columns, "job", "written"}]
            wanted += [n for n in names if n.startswith(tuple(prefixes)) and n not in wanted]
            found[path] = pq.read_table(path, columns=wanted).to_pandas()
        except FileNotFoundError:  # compacted away while read: its rows are in the compacted file
            continue
        except (OSError, pa.ArrowException) as error:
            log.warning(f"{path} is unreadable ({type(error).__name__}); its jobs count as not in the table")
    return found


def latest(found: Iterable[pd.DataFrame], columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Each job's latest row."""
    found = list(found)
    if not found:
        return pd.DataFrame(columns=["job", "written", *(columns or ())])
    frame = pd.concat(found, ignore_index=True)
    return frame.sort_values("written", kind="stable").drop_duplicates("job", keep="last").reset_index(drop=True)


def compact(sweep_dir: Path) -> Path | None:
    """The table's files merged into one (each job's latest row), then the merged ones removed; a writer that
    appends meanwhile adds a file of its own, which the next compaction merges. A file it cannot read stays.
    Streamed a batch of rows at a time, so a table of 100,000 rows merges in the memory of a few thousand."""
    found = frames(sweep_dir, columns=["job", "written"])
    if len(found) < 2:
        return None
    keep = kept_rows(found)
    try:
        schema = pa.unify_schemas([pq.read_schema(path) for path in found], promote_options="permissive")
    except (pa.ArrowTypeError, pa.ArrowInvalid) as error:  # a column of two kinds: the files stay as they are
        log.warning(f"the results table's files were not merged ({error})")
        return None
    merged = new_part(sweep_dir)
    with replacing(merged) as temporary, pq.ParquetWriter(temporary, schema, compression="zstd") as writer:
        for path in found:
            start = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH):
                rows = pa.Table.from_batches([batch]).filter(keep[path][start : start + len(batch)])
                start += len(batch)
                writer.write_table(conformed(rows, schema), row_group_size=BATCH)
    for path in found:
        path.unlink(missing_ok=True)
    return merged


def kept_rows(found: dict[Path, pd.DataFrame]) -> dict[Path, np.ndarray]:
    """Per file, which of its rows are their job's latest (a later row of a job wins; files in name order, which
    is the order they were written in)."""
    frame = pd.concat(
        [f.assign(file=i, row=np.arange(len(f))) for i, f in enumerate(found.values())], ignore_index=True
    )
    latest_rows = frame.sort_values(["written", "file", "row"], kind="stable").drop_duplicates("job", keep="last")
    keep = {path: np.zeros(len(f), dtype=bool) for path, f in found.items()}
    paths = list(found)
    for i, row in zip(latest_rows["file"], latest_rows["row"]):
        keep[paths[i]][row] = True
    return keep


def conformed(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """Rows in the merged file's schema: a column they lack is null, a column they hold is cast to its type."""
    columns = {
        field.name: rows[field.name].cast(field.type)
        if field.name in rows.column_names
        else pa.nulls(len(rows), field.type)
        for field in schema
    }
    return pa.table(columns, schema=schema)


def rebuild(sweep_dir: Path) -> int:
    """The table made again from every readable result.json under the sweep dir (one file); returns its rows."""
    sweep_dir = Path(sweep_dir)
    found = []
    for path in sorted(sweep_dir.rglob(layout.RESULT)):
        result = read_result(path.parent)
        if result is None:
            log.warning(f"{path} is unreadable; left out of the table")
            continue
        found.append((str(path.parent.relative_to(sweep_dir)), result))
    old = parts(sweep_dir)
    append(sweep_dir, [job for job, _ in found], [result for _, result in found])
    for path in old:
        path.unlink(missing_ok=True)
    return len(found)


def result_of(row) -> Result:
    """The Result a table row keeps (its `result` column), as read_result would give it."""
    return Result.from_json(json.loads(row))
