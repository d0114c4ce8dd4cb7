"""MLflow: each member a run of its study's experiment (sherlocked.records.mlflow_store), written in one batch a
member and one lock a population per epoch.

A population that starts afresh deletes what an earlier attempt at its jobs left (a run killed before its
first checkpoint would be a second run of the same job); a resumed one goes on in the runs its checkpoint
names and skips every (metric, step) they hold: a killed run may have written past its checkpoint, and
MLflow keeps every point it is given.
"""

from collections.abc import Sequence

import mlflow
from mlflow.exceptions import MlflowException

from sherlocked.records import mlflow_store
from sherlocked.records.results import FINAL, Result
from sherlocked.training.trackers import Rows, Tracker, run_name, shown


class MLflowRuns(Tracker):
    def __init__(self, settings, jobs, saved):
        super().__init__(settings, jobs, saved)
        self.uri = self.settings.get("tracking_uri") or mlflow.get_tracking_uri()  # MLflow's own default otherwise
        self.store = mlflow_store.client(self.uri)
        experiment = mlflow_store.experiment_id(self.store, self.uri, self.settings.get("experiment_name") or "Default")
        with mlflow_store.store_lock(self.uri):
            if saved and saved.get("runs"):
                self.run_ids = list(saved["runs"])
                self.stored = [self.stored_steps(run_id) for run_id in self.run_ids]
                for run_id in self.run_ids:
                    self.store.update_run(run_id, "RUNNING")
            else:
                for job in self.jobs:
                    for run in self.runs_of(experiment, job):
                        self.store.delete_run(run.info.run_id)
                self.run_ids = [self.open_run(experiment, job) for job in self.jobs]
                self.stored = [set() for _ in self.jobs]

    def runs_of(self, experiment: str, job) -> list:
        """The runs an earlier attempt at `job` left in the experiment."""
        try:
            where = f"tags.`{mlflow_store.JOB_TAG}` = '{job.job_dir}'"
            return list(self.store.search_runs([experiment], filter_string=where))
        except MlflowException:  # a job dir the filter's syntax cannot quote: every run, by its tag
            return mlflow_store.runs_by_job(self.store, experiment).get(str(job.job_dir), [])

    def open_run(self, experiment: str, job) -> str:
        tags = {
            **(self.settings.get("tags") or {}),
            **mlflow_store.tags(job.config.get("study", ""), job.sweep_dir, job.job_dir),
        }
        return mlflow_store.new_run(self.store, experiment, run_name(job), shown(job), tags)

    def stored_steps(self, run_id: str) -> set[tuple[str, int]]:
        names = self.store.get_run(run_id).data.metrics
        return {(name, m.step) for name in names for m in self.store.get_metric_history(run_id, name)}

    def log(self, rows: Rows) -> None:
        batches = [{} for _ in self.run_ids]  # (name, step) -> value: a step logged twice (diagnostics) once
        for step, values in rows:
            for name, per_member in values.items():
                for k, batch in enumerate(batches):
                    if (name, step) not in self.stored[k]:
                        batch[name, step] = per_member[k]
        with mlflow_store.store_lock(self.uri):
            for k, batch in enumerate(batches):
                if batch:
                    points = [(name, value, step) for (name, step), value in batch.items()]
                    mlflow_store.log_metrics(self.store, self.run_ids[k], mlflow_store.metrics(points))
                    self.stored[k].update(batch)

    def state(self) -> dict:
        return {"runs": list(self.run_ids)}

    def finish(self, results: Sequence[Result]) -> None:
        with mlflow_store.store_lock(self.uri):
            for run_id, result in zip(self.run_ids, results):
                epochs = len(result.history.get("epoch", []))
                points = [(FINAL + name, value, epochs) for name, value in result.final.items()]
                mlflow_store.log_metrics(self.store, run_id, mlflow_store.metrics(points))
                mlflow_store.end_run(self.store, run_id, failed=False, diverged=result.status == "diverged")

    def fail(self) -> None:
        with mlflow_store.store_lock(self.uri):
            for run_id in self.run_ids:
                mlflow_store.end_run(self.store, run_id, failed=True)
