"""result.json: what a run leaves for the report, written atomically and last."""

import contextlib
import functools
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

RESULT = "result.json"
FINISHED = ("ok", "diverged")  # a failed job is rerun; these are not
# Keys that do not change what a job computes: a rerun with another value still skips the job.
NOT_IDENTITY = ("study", "trainer.enable_progress_bar")
PACKAGES = ("sherlocked", "torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf")


def write_json(path: Path, data: dict) -> None:
    """Write to a temporary file beside `path`, then rename: readers see the old file or the whole new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_result(job_dir: Path) -> dict | None:
    """The job's result, or None when there is none (not run, or interrupted before the end)."""
    try:
        return json.loads((Path(job_dir) / RESULT).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
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
    """The commit of the sherlocked checkout, with '+dirty' for uncommitted changes; None outside git."""
    here = Path(__file__).parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty.strip() else "")


def identity(config: dict) -> dict:
    """The resolved config without the keys that do not change a job's outcome."""
    config = json.loads(json.dumps(config))  # a deep copy in the form result.json stores
    for key in NOT_IDENTITY:
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return config


def finished_result(job_dir: Path, config: dict) -> dict | None:
    """The job's stored result if it finished with this same config (so it can be skipped), else None."""
    result = read_result(job_dir)
    if result is None or result.get("status") not in FINISHED or "config" not in result:
        return None
    if identity(result["config"]) != identity(config):
        return None
    return {**result, "skipped": True}
