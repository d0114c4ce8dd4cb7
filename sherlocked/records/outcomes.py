"""A job's outcome, kept: its result.json, then its row in the sweep's results table. One function, record, for
every path a job ends on:

    trained (ok, diverged)  the engine, as its population finishes (sherlocked.training.engine)
    failed                  the engine (an error in training), or the sweep's driver for a job whose worker was lost
                            (sherlocked.sweep.backends): never over a finished result (another sweep's)
    skipped                 found finished (sherlocked.sweep.plan): kept already, but what was lost of its record,
                            mended (a damaged result.json restored, a row the table lacks added)
    interrupted             nothing: every file is whole or absent, and the next run trains the job (from its
                            population's checkpoint); its result is None

    python -c "from sherlocked import outcomes; help(outcomes.record)"

result.json first, its row after: the table never holds what a job's own record lacks. A result says it is kept
(Result.recorded), so the process that trained it records it once, wherever it ran (a worker, a Ray task, a SLURM
element), and the driver that hears of it records only what no worker could.
"""

import logging
from collections.abc import Sequence

from sherlocked.records import layout, table
from sherlocked.records.job import Job
from sherlocked.records.results import Result, read_result

log = logging.getLogger(__name__)


def record(jobs: Sequence[Job], results: Sequence[Result | None]) -> None:
    """Each job's outcome kept, by what it is (see the module's docstring): result.json, then the sweep table's
    rows of the jobs whose record changed, in one file of the table."""
    written = [
        (job, result)
        for job, result in zip(jobs, results)
        if result is not None and not result.recorded and kept_on_disk(job, result)
    ]
    table.record([job for job, _ in written], [result for _, result in written])
    for _, result in written:
        result.recorded = True


def kept_on_disk(job: Job, result: Result) -> bool:
    """The job's result.json as its outcome says; whether its row is due."""
    if result.skipped:  # found finished: its file restored where it no longer reads back
        return restored(job, result)
    if result.status == "failed":
        stored = read_result(job.job_dir)
        if stored is not None and stored.finished:  # another sweep finished it: never replaced by a failure
            return False
    job.job_dir.mkdir(parents=True, exist_ok=True)
    result.write(job.job_dir)
    return True


def restored(job: Job, result: Result) -> bool:
    """A finished job's result.json, rewritten from its record where it is damaged (the table's copy); a row is due
    either way (the table lacked it, or its size changed)."""
    if read_result(job.job_dir) is not None:
        return True
    try:
        result.write(job.job_dir)
        log.warning(f"{layout.result(job.job_dir)} was damaged: restored from the sweep's results table")
    except OSError as error:  # read-only storage: the table's copy serves this run
        log.warning(f"{layout.result(job.job_dir)} is damaged and could not be restored ({error.strerror})")
        return False
    return True
