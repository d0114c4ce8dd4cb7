"""result.json: the one format a job leaves, written (atomically, sherlocked.runtime.atomic) by the one recorder of a
job's outcome (sherlocked.records.outcomes) and read by the sweep's plan, its callback and the report.

    python -c "from sherlocked.records.results import read_result as r; print(r('outputs/sweeps/demo/act1=relu,...'))"
"""

import contextlib
import dataclasses
import functools
import json
import platform
import subprocess
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from sherlocked.records import layout
from sherlocked.runtime.atomic import write_json
from sherlocked.spec.config import hparams, identity

SCHEMA = 1  # result.json files without "schema" are version 0: the same fields, read alike
FINISHED = ("ok", "diverged")  # a failed job is rerun; these are not
TRANSIENT = {"skipped", "exception", "recorded"}  # Result fields never written to result.json
# A result's curves (history) as every tracker names them (TensorBoard's tags, MLflow's and W&B's metrics); their
# steps count epochs. Its final metrics: final/test_acc, ...
EPOCH_CURVES = {"test_acc": "accuracy/test", "test_loss": "loss/test", "train_loss": "loss/train_epoch"}
FINAL = "final/"
PACKAGES = ("sherlocked", "torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf")


@dataclass
class Result:
    """What one job left: its outcome, curves and diagnostics, and the config that produced them."""

    status: str  # ok | diverged | failed
    config: dict  # the job's resolved config
    overrides: list[str] = field(default_factory=list)
    hparams: dict[str, Any] = field(default_factory=dict)  # sherlocked.spec.config.hparams(config)
    final_test_acc: float | None = None
    final: dict[str, float] = field(default_factory=dict)  # last epoch's test_acc, test_loss, train_loss
    history: dict[str, list] = field(default_factory=dict)  # per epoch: epoch, test_acc, test_loss, train_loss
    diagnostics: dict[str, list] = field(default_factory=dict)  # per epoch end, see sherlocked/training/diagnostics.py
    error: str | None = None  # a failed job's exception, one line
    traceback: str | None = None
    wall_time_s: float | None = None  # the population's training time (since its resumption, where resumed)
    resumed_epochs: int = 0  # epochs restored from the population's checkpoint after an interruption
    resumed_step: int = 0  # the step it was restored at (mid-epoch where a stop signal saved it)
    population_size: int = 1
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    schema: int = SCHEMA
    # Not stored: a result found finished on disk, which the job did not train again; a failed job's exception,
    # for a single run that raises it; whether its record (result.json, its table row) is whole
    # (sherlocked.records.outcomes), so that it is recorded once, by the process that trained it.
    skipped: bool = field(default=False, compare=False)
    exception: BaseException | None = field(default=None, compare=False, repr=False)
    recorded: bool = field(default=False, compare=False)

    def __float__(self) -> float:
        """The job's objective for a search sweeper (Optuna asks float(return value)): final test accuracy."""
        return float("nan") if self.final_test_acc is None else float(self.final_test_acc)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in TRANSIENT}

    @classmethod
    def from_json(cls, data: dict) -> "Result":
        schema = data.get("schema", 0)
        if schema > SCHEMA:
            raise RuntimeError(f"result.json of schema {schema} is newer than this sherlocked reads ({SCHEMA})")
        known = {f.name for f in dataclasses.fields(cls)} - TRANSIENT
        result = cls(**{name: value for name, value in data.items() if name in known})
        if not result.hparams:  # schema 0 stored none for failures
            result.hparams = hparams(result.config)
        return result

    def write(self, job_dir: Path) -> None:
        write_json(layout.result(job_dir), self.to_json())


def failure(error: BaseException, config: dict, overrides: list[str]) -> Result:
    return Result(
        status="failed",
        config=config,
        overrides=overrides,
        hparams=hparams(config),
        error=f"{type(error).__name__}: {error}",
        traceback="".join(traceback.format_exception(error)),
        versions=versions(),
        git_commit=git_commit(),
    )


def read_result(job_dir: Path) -> Result | None:
    """The job's result, or None when there is none (not run, interrupted before the end, or unreadable)."""
    try:
        return Result.from_json(json.loads(layout.result(job_dir).read_text()))
    except (FileNotFoundError, ValueError, TypeError, AttributeError):  # ValueError: not UTF-8, not JSON
        return None


@functools.cache
def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


@functools.cache
def git_commit() -> str | None:
    """The commit of the sherlocked checkout this package runs from, with '+dirty' for uncommitted changes; None
    where it is no such checkout (a wheel installed anywhere, a user's own repository around its venv included:
    versions() names the release)."""
    here = Path(__file__).parents[1]  # the package, sherlocked/
    project = here.parent / "pyproject.toml"
    if not (here.parent / ".git").exists() or not project.is_file() or 'name = "sherlocked"' not in project.read_text():
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty.strip() else "")


def finished_result(job_dir: Path, config: dict) -> Result | None:
    """The job's stored result if it finished with this same config (so it can be skipped), else None."""
    return finished_as(read_result(job_dir), config)


def finished_as(result: Result | None, config: dict) -> Result | None:
    """`result`, marked skipped (and recorded: read from its record), if it finished with this same config (the same
    identity); else None."""
    if result is None or not result.finished or identity(result.config) != identity(config):
        return None
    result.skipped = result.recorded = True
    return result
