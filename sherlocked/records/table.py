"""A sweep's results table: one row per job, appended by each population as it finishes, read by resume and the report.

    python -m sherlocked.report outputs/sweeps/demo --rebuild   # the table again, from every job's result.json

<sweep dir>/results/ (sherlocked.records.layout) holds one Parquet file per finished population, written whole under
a temporary name and renamed into place: a reader sees a population's rows all or none, a killed writer leaves
at most a temporary file no reader reads, and any number of writers append at once without a lock (two sweeps
into one dir; Ray and SLURM workers on other machines sharing the sweep dir). Chosen by measuring against
SQLite and DuckDB (docs/scaling.md). The end of a sweep compacts the files into one. A job trained again (a
failure retried) appends a newer row, and readers keep each job's latest. result.json stays each job's own
record: the table keeps it whole (column `result`) beside the columns the report reads, and can be rebuilt
from the result.json files.

What readers get is what the files say. A job counts once its result.json is on disk: a job dir or
result.json deleted takes its row out, and a rerun trains the job again. A job's identity (its resolved
config, sherlocked.spec.config.identity_key) counts once: the same job spelled two ways (a default typed out) in two
dirs is one run, its latest finished row. A file of the table that cannot be read is rebuilt from the
result.json files of the jobs the others lack, and kept aside as <name>.unreadable.

Columns: job (its dir, relative to the sweep dir), written (time), status, identity, overrides, final.<metric>,
curve.<metric> (per epoch), hp.<name> (its HParams), diag.<name> (the last epoch's diagnostics),
undeclared (JSON: the config keys sherlocked.spec.config does not declare), population_size,
resumed_epochs, wall_time_s, result (the whole result.json), result_bytes (its size on disk as the row was
written: a result.json of another size is read again, and restored from here where it is damaged).
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

from sherlocked.records import layout
from sherlocked.records.results import FINISHED, Result, read_result
from sherlocked.runtime.atomic import replacing
from sherlocked.spec.config import identity_key, undeclared

log = logging.getLogger(__name__)
METRICS = ("test_acc", "test_loss", "train_loss")
HPARAMS, DIAG = "hp.", "diag."  # the prefixes of the HParams' and the diagnostics' columns
PART = "*.parquet"
IDENTITY = "identity"
SIZE = "result_bytes"
UNREADABLE = ".unreadable"  # the suffix a file of the table that could not be read is kept aside under
BATCH = 4096  # rows a row group (and a batch of a compaction)


def scalar(value):
    """A value one typed column can hold: lists and the like as their text."""
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


def row(job: str, result: Result, written: float, size: int | None = None) -> dict:
    """A job's row: what the report and resume read, and the whole result.json (`size` bytes on disk)."""
    last = {name: values[-1] for name, values in result.diagnostics.items() if values}
    return {
        "job": job,
        "written": written,
        "status": result.status,
        IDENTITY: identity_key(result.config),
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
        SIZE: size,
    }


def append(
    sweep_dir: Path, jobs: Sequence[str], results: Sequence[Result], sizes: Sequence[int | None] | None = None
) -> Path | None:
    """One population's rows (jobs: their dirs relative to the sweep dir; sizes: of their result.json files), as
    one new file of the table."""
    if not results:
        return None
    written = time.time()
    sizes = sizes or [None] * len(results)
    rows = [row(job, result, written, size) for job, result, size in zip(jobs, results, sizes)]
    return write(sweep_dir, table_of(rows))


def table_of(rows: Sequence[dict]) -> pa.Table:
    names = list(dict.fromkeys(name for r in rows for name in r))  # every row's columns (act5 in deeper models)
    return pa.Table.from_pydict({name: [r.get(name) for r in rows] for name in names})


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
    """Jobs' results (sherlocked.records.job.Job records, their result.json written) into their sweep's table; jobs
    outside a sweep have none. A table that cannot be written is said and left: each job's result.json holds its result,
    and the next run of the sweep adds the rows the table lacks (sherlocked.sweep.plan)."""
    placed = [(job, result) for job, result in zip(jobs, results) if job.sweep_dir is not None]
    if not placed:
        return
    sweep_dir = placed[0][0].sweep_dir
    jobs = [os.path.relpath(job.job_dir, sweep_dir) for job, _ in placed]
    sizes = [size_on_disk(sweep_dir, job) for job in jobs]
    try:
        append(sweep_dir, jobs, [result for _, result in placed], sizes)
    except OSError as error:
        log.warning(
            f"the results table in {layout.results_table(sweep_dir)} was not written ({error.strerror or error}): "
            f"the result.json files of its {len(jobs)} jobs hold their results, and the next run adds their rows"
        )


def size_on_disk(sweep_dir: Path, job: str) -> int | None:
    """The size of a job's result.json (job: its dir relative to the sweep dir); None where there is none."""
    try:
        return os.stat(layout.result(Path(sweep_dir) / job)).st_size
    except OSError:
        return None


def parts(sweep_dir: Path) -> list[Path]:
    return sorted(layout.results_table(sweep_dir).glob(PART))


def read(
    sweep_dir: Path, columns: Iterable[str] | None = None, prefixes: Iterable[str] = (), on_disk: bool = True
) -> pd.DataFrame:
    """The table's latest row of each job: `columns` (all if None) and every column starting with a prefix, with
    job, written, status and identity. on_disk: only the jobs whose result.json is on disk, each identity once
    (see the module's docstring); else every job's row, as written."""
    sweep_dir = Path(sweep_dir)
    found, unreadable = frames(sweep_dir, columns, prefixes)
    if unreadable:
        found.append(recovered(sweep_dir, unreadable, found, columns, prefixes))
    rows = latest(found, columns)
    if on_disk:
        present = np.array([size_on_disk(sweep_dir, job) is not None for job in rows["job"]], dtype=bool)
        rows = once_each(rows[present])
    return rows.reset_index(drop=True)


KEPT = ("job", "written", "status", IDENTITY)  # the columns every read returns (where the table has them)


def selected(names: Sequence[str], columns: Iterable[str] | None, prefixes: Iterable[str]) -> list[str]:
    """Of a file's columns, those asked for."""
    wanted = list(names) if columns is None else [n for n in names if n in {*columns, *KEPT}]
    return wanted + [n for n in names if n.startswith(tuple(prefixes)) and n not in wanted]


def frames(
    sweep_dir: Path, columns: Iterable[str] | None = None, prefixes: Iterable[str] = ()
) -> tuple[list[pd.DataFrame], list[Path]]:
    """Each readable file of the table as a frame of the columns asked for; and the files that could not be read."""
    found, unreadable = [], []
    for path in parts(sweep_dir):
        try:
            found.append(pq.read_table(path, columns=selected(pq.read_schema(path).names, columns, prefixes)))
        except FileNotFoundError:  # compacted away while read: its rows are in the compacted file
            continue
        except (OSError, pa.ArrowException):
            unreadable.append(path)
    return [table.to_pandas() for table in found], unreadable


def recovered(sweep_dir: Path, unreadable: list[Path], found: list[pd.DataFrame], columns, prefixes) -> pd.DataFrame:
    """The rows of the jobs that the readable files lack, made from their result.json files (what the unreadable
    files held, and any job of a sweep from before the table): written as a new file of the table, the unreadable
    ones kept aside (<name>.unreadable), where the sweep dir can be written; else read this once."""
    known = {job for frame in found for job in frame["job"]}
    rows = [
        row(job, result, written=0.0, size=size_on_disk(sweep_dir, job))
        for job, result in results_under(sweep_dir)
        if job not in known
    ]
    names = ", ".join(path.name for path in unreadable)
    try:
        if rows:
            write(sweep_dir, table_of(rows))
        for path in unreadable:
            path.rename(path.with_name(path.name + UNREADABLE))
        done = f"written as a new file of the table; the unreadable kept aside as {UNREADABLE}"
    except OSError as error:
        done = f"for this read only: the table could not be written ({error.strerror or error})"
    log.warning(
        f"the results table's {names} could not be read: the {len(rows)} jobs the other files lack were read from "
        f"their result.json files, {done}"
    )
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(KEPT))
    return frame[selected(list(frame.columns), columns, prefixes)]


def results_under(sweep_dir: Path) -> Iterable[tuple[str, Result]]:
    """(job, result) of every readable result.json under the sweep dir (job: its dir relative to the sweep dir)."""
    for path in sorted(Path(sweep_dir).rglob(layout.RESULT)):
        result = read_result(path.parent)
        if result is None:
            log.warning(f"{path} is unreadable; left out of the table")
            continue
        yield str(path.parent.relative_to(sweep_dir)), result


def latest(found: Iterable[pd.DataFrame], columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Each job's latest row."""
    found = [frame for frame in found if len(frame)]
    if not found:
        return pd.DataFrame(columns=["job", "written", *(columns or ())])
    frame = pd.concat(found, ignore_index=True)
    return frame.sort_values("written", kind="stable").drop_duplicates("job", keep="last").reset_index(drop=True)


def once_each(rows: pd.DataFrame) -> pd.DataFrame:
    """Each identity once: of the rows of one identity (the same job in two dirs), the latest finished one, else the
    latest. Rows of tables from before the identity column count as their own."""
    if IDENTITY not in rows or rows.empty:
        return rows
    finished = rows["status"].isin(FINISHED) if "status" in rows else pd.Series(True, index=rows.index)
    order = rows.assign(_finished=finished).sort_values(["_finished", "written"], kind="stable")
    named = order[order[IDENTITY].notna()].drop_duplicates(IDENTITY, keep="last")
    return pd.concat([named, order[order[IDENTITY].isna()]]).drop(columns="_finished").sort_index()


def compact(sweep_dir: Path) -> Path | None:
    """The table's files merged into one (each job's latest row), then the merged ones removed; a writer that
    appends meanwhile adds a file of its own, which the next compaction merges. A file it cannot read stays.
    Streamed a batch of rows at a time, so a table of 100,000 rows merges in the memory of a few thousand."""
    found = readable(sweep_dir)
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
        pending: list[pa.Table] = []  # rows gathered up to a row group of BATCH: one a population read 9x slower
        for path in found:
            start = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH):
                rows = pa.Table.from_batches([batch]).filter(keep[path][start : start + len(batch)])
                start += len(batch)
                pending.append(conformed(rows, schema))
                if sum(len(table) for table in pending) >= BATCH:
                    writer.write_table(pa.concat_tables(pending), row_group_size=BATCH)
                    pending = []
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=BATCH)
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


def readable(sweep_dir: Path) -> dict[Path, pd.DataFrame]:
    """Each readable file of the table, by path, as a frame of its jobs and the times their rows were written."""
    found = {}
    for path in parts(sweep_dir):
        try:
            found[path] = pq.read_table(path, columns=["job", "written"]).to_pandas()
        except (OSError, pa.ArrowException):  # gone (compacted meanwhile), or unreadable: read() deals with it
            continue
    return found


def rebuild(sweep_dir: Path) -> int:
    """The table made again from every readable result.json under the sweep dir (one file); returns its rows."""
    sweep_dir = Path(sweep_dir)
    found = list(results_under(sweep_dir))
    old = parts(sweep_dir)
    append(
        sweep_dir,
        [job for job, _ in found],
        [result for _, result in found],
        [size_on_disk(sweep_dir, job) for job, _ in found],
    )
    for path in old:
        path.unlink(missing_ok=True)
    return len(found)


def result_of(row) -> Result:
    """The Result a table row keeps (its `result` column), as read_result would give it."""
    return Result.from_json(json.loads(row))
