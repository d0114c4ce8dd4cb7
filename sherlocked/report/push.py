"""A finished sweep's results into a tracker after the fact: the runs logging live would have made.

    python -m sherlocked.report outputs/sweeps/demo --to mlflow [--tracking-uri URI]

Reads the sweep's results table (every job's whole result.json) and writes one MLflow run a job into its
study's experiment (sherlocked.records.mlflow_store): its keys as params, its epoch curves and final
metrics, its status, tagged with study, sweep and job dir. A job whose run the store holds, ended, is left
as it is, so a second push (or a push after a sweep that logged live) adds only what is new; a run left
unfinished (a killed attempt) is replaced. The step-level curves (the training loss every
log_every_n_steps, the diagnostics every interval) exist only where a sweep logged live.
"""

import os
from pathlib import Path

from mlflow.entities import RunStatus

from sherlocked.records import layout, mlflow_store, table
from sherlocked.records.results import EPOCH_CURVES, FINAL, Result

ENDED = {RunStatus.to_string(RunStatus.FINISHED), RunStatus.to_string(RunStatus.FAILED)}


class Job:
    """A finished job as the table holds it, with what naming its run needs (layout.swept_keys reads overrides)."""

    def __init__(self, sweep_dir: Path, name: str, result: Result):
        self.job_dir, self.result, self.overrides = sweep_dir / name, result, result.overrides


def points(result: Result) -> list[tuple[str, float, int]]:
    """A result's metrics as the live tracker logs them: each epoch curve at its epochs, final/<name> at the last."""
    epochs = result.history.get("epoch", [])
    curves = [
        (name, value, epoch)
        for key, name in EPOCH_CURVES.items()
        for epoch, value in zip(epochs, result.history.get(key, []))
    ]
    return curves + [(FINAL + name, value, len(epochs)) for name, value in result.final.items()]


def push_to_mlflow(sweep_dir: Path, uri: str | None = None) -> tuple[int, int]:
    """The sweep's jobs as MLflow runs in the store at `uri` (default: conf/logger/mlflow.yaml's); returns (runs
    written, runs the store held already)."""
    sweep_dir = Path(os.path.abspath(sweep_dir))
    uri = uri or mlflow_store.default_uri()
    rows = table.read(sweep_dir, columns=["result"])
    jobs = [Job(sweep_dir, name, table.result_of(result)) for name, result in zip(rows["job"], rows["result"])]
    swept = layout.swept_keys(jobs)
    store = mlflow_store.client(uri)
    written = held = 0
    for study in sorted({job.result.config.get("study", "") for job in jobs}):
        experiment = mlflow_store.experiment_id(store, uri, study or "Default")
        existing = mlflow_store.runs_by_job(store, experiment)
        with mlflow_store.store_lock(uri):
            for job in (job for job in jobs if job.result.config.get("study", "") == study):
                runs = existing.get(str(job.job_dir), [])
                if any(run.info.status in ENDED for run in runs):
                    held += 1
                    continue
                for run in runs:
                    store.delete_run(run.info.run_id)
                name = layout.run_name(job.overrides, swept) or os.path.relpath(job.job_dir, sweep_dir)
                push_run(store, experiment, sweep_dir, job, name)
                written += 1
    return written, held


def push_run(store, experiment: str, sweep_dir: Path, job: Job, name: str) -> None:
    result = job.result
    tags = mlflow_store.tags(result.config.get("study", ""), sweep_dir, job.job_dir)
    run_id = mlflow_store.new_run(store, experiment, name, result.hparams, tags)
    mlflow_store.log_metrics(store, run_id, mlflow_store.metrics(points(result)))
    mlflow_store.end_run(store, run_id, failed=result.status == "failed", diverged=result.status == "diverged")
