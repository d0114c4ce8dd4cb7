"""CSV: each member's <job dir>/csv/metrics.csv and hparams.yaml, Lightning's CSVLogger's files and format.

A resumed population keeps the rows its checkpoint counted and drops what a killed run wrote after
(CSVLogger removes an existing metrics.csv as it opens: the kept rows are written again first).
"""

import csv
from pathlib import Path

from sherlocked.training.trackers import LightningRuns


class CSVRuns(LightningRuns):
    def __init__(self, settings, jobs, saved):
        kept = [_rows(job.job_dir, settings, saved["rows"][k]) for k, job in enumerate(jobs)] if saved else None
        super().__init__(settings, jobs, saved)
        self.rows = [0] * len(self.loggers)
        for k, rows in enumerate(kept or []):
            for row in rows:
                step = int(row.pop("step"))
                self.loggers[k].log_metrics(row, step=step)
            self.rows[k] = len(rows)

    def member_arguments(self, job) -> dict:
        return {"save_dir": str(job.job_dir)}

    def log(self, rows) -> None:
        super().log(rows)
        self.rows = [count + len(rows) for count in self.rows]

    def state(self) -> dict:
        super().state()
        return {"rows": list(self.rows)}


def _rows(job_dir: Path, settings, count: int) -> list[dict]:
    """The first `count` rows of a member's metrics.csv (each with its step), as CSVLogger's log_metrics takes them."""
    path = job_dir / settings.get("name", "lightning_logs") / str(settings.get("version", "")) / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))[:count]
    return [{name: float(value) for name, value in row.items() if value != ""} for row in rows]
