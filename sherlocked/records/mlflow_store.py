"""An MLflow store, as sherlocked writes it: one experiment a study, one run a job, found again by its job dir.

    python -c "from sherlocked.records import mlflow_store; help(mlflow_store)"

Shared by the live tracker (sherlocked.training.trackers.mlflow_runs) and the report's push of a finished
sweep (sherlocked.report.push), so both make the same runs: params (the job's keys, HParams' names), tags
(study, sweep, job_dir, diverged), metrics (each epoch curve with the epoch as its step, final/<name>
once) and status (FINISHED; FAILED). Writes to a SQLite store hold a file lock beside the database: SQLite
takes one writer at a time and MLflow gives up on a busy one ("database is locked"), and creating a new
store's tables from several processes at once races (docs/trackers.md has the measurement).
"""

import contextlib
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import urlparse

from filelock import FileLock
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from sherlocked.records import layout
from sherlocked.spec.config import CONFIG_DIR

MAX_METRICS = 1000  # MLflow's limit of metrics in one log_batch
MAX_PARAMS = 100  # and of params
MAX_PARAM_CHARS = 6000  # a param's value at most
JOB_TAG = "sherlocked.job_dir"  # which job a run is: how a resumed population and a second push find it


def sqlite_path(uri: str) -> str | None:
    """The database file of a sqlite:/// store; None for any other."""
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme == "sqlite" else None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Held while writing a SQLite store (one writer at a time, whatever process); nothing for a server's store."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with FileLock(f"{path}.lock"):
        yield


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """A new store's schema migrations say nothing: MLflow and alembic tell each at INFO, thirty lines a store
    (alembic's configuration sets its loggers' levels as it runs, so only logging.disable keeps them quiet)."""
    before = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(before)


def client(uri: str) -> MlflowClient:
    """A client of the store at `uri`: the first of a new SQLite store creates its tables (one process at a time)."""
    with store_lock(uri), quiet():
        store = MlflowClient(tracking_uri=uri)
        store.search_experiments(max_results=1)  # the store made (and its tables) here, not at the first write
        return store


def experiment_id(store: MlflowClient, uri: str, name: str) -> str:
    """The experiment named `name`, created where it is not (by whichever writer comes first)."""
    with store_lock(uri):
        found = store.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return store.create_experiment(name)
        except MlflowException:  # another server client created it since
            return store.get_experiment_by_name(name).experiment_id


def runs_by_job(store: MlflowClient, experiment: str) -> dict[str, list]:
    """The experiment's runs by job dir (the tag JOB_TAG), every page of them."""
    found: dict[str, list] = {}
    token = None
    while True:
        page = store.search_runs([experiment], max_results=50000, page_token=token)
        for run in page:
            found.setdefault(run.data.tags.get(JOB_TAG, ""), []).append(run)
        token = page.token
        if not token:
            return found


def new_run(store: MlflowClient, experiment: str, name: str, params: Mapping, tags: Mapping) -> str:
    """A RUNNING run with its params and tags; its id."""
    run = store.create_run(experiment, run_name=name, tags={key: str(value) for key, value in tags.items()})
    values = [Param(key, str(value)[:MAX_PARAM_CHARS]) for key, value in params.items()]
    for start in range(0, len(values), MAX_PARAMS):
        store.log_batch(run.info.run_id, params=values[start : start + MAX_PARAMS])
    return run.info.run_id


def metrics(points: Iterable[tuple[str, float, int]]) -> list[Metric]:
    """(name, value, step) as MLflow's metrics, stamped now; an infinite or NaN value (a diverged member's) kept."""
    now = int(time.time() * 1000)
    return [
        Metric(name, float(value) if value is not None else math.nan, now, int(step)) for name, value, step in points
    ]


def log_metrics(store: MlflowClient, run_id: str, points: list[Metric]) -> None:
    for start in range(0, len(points), MAX_METRICS):
        store.log_batch(run_id, metrics=points[start : start + MAX_METRICS])


def end_run(store: MlflowClient, run_id: str, failed: bool, diverged: bool = False) -> None:
    if diverged:
        store.log_batch(run_id, tags=[RunTag("diverged", "true")])
    store.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED))


def tags(study: str, sweep_dir, job_dir) -> dict[str, str]:
    """A run's tags: its study, sweep and job dir (the job dir names the run for a resumed population and a push)."""
    sweep = os.path.abspath(sweep_dir) if sweep_dir else ""
    return {"study": study, "sweep": sweep, JOB_TAG: os.path.abspath(job_dir)}


def default_uri() -> str:
    """The store conf/logger/mlflow.yaml names (MLFLOW_TRACKING_URI, else <paths.outputs>/mlflow.db), read from it."""
    declared = OmegaConf.merge(
        {"paths": OmegaConf.load(layout.PATHS), "study": ""}, OmegaConf.load(CONFIG_DIR / "logger" / "mlflow.yaml")
    )
    return declared.mlflow.tracking_uri
