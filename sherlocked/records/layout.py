"""Every path a sweep writes, declared once: each module that reads or writes one asks here.

    python -m sherlocked.records.layout sweeps      # outputs/sweeps: where sweeps go (conf/paths/default.yaml)

    <outputs>/                            paths.outputs (conf/paths/default.yaml; output_paths() reads it)
      runs/<date>/<time>/                 paths.runs: single runs (hydra.run.dir)
      sweeps/<study>/                     paths.sweeps: sweeps (hydra.sweep.dir), each a sweep dir below
      bench/                              paths.bench: python -m sherlocked.bench's figures (--plan reads them)

    <sweep dir>/                          hydra.sweep.dir (a single run: its run dir plays both parts)
      multirun.yaml                       Hydra's record of the sweep
      <job dir>/                          hydra.sweep.subdir: the job's overrides (Hydra's override_dirname)
        .hydra/                           Hydra's config.yaml, hydra.yaml, overrides.yaml
        result.json                       the job's result (sherlocked.records.results), written last and atomically
        .lock                             held while a process trains the job (sherlocked.sweep.locks)
      .checkpoints/<population>.ckpt      a population's last saved epochs, until its results are written
      .progress/<population>.json         where a population in training stands (the sweep's live line)
      tensorboard/<run>/                  each job's TensorBoard run, named by what the sweep varies
        .job                              the job dir whose events the run holds
      tensorboard/mean/<configuration>/   mean and spread over seeds of each configuration's runs
      hparams/                            TensorBoard's HParams experiment: every key, the values they took
      results/                            the sweep's results table (one table for all its jobs)
      .submitit/                          submitit's logs and pickles (hydra.launcher.backend=submitit)
      .<file>.<random>.tmp                beside any file above: its writer's temporary (sherlocked.runtime.atomic)

A population is named by its members' identities in order (population_key): formed again
by a rerun, it finds its checkpoint. What a population's jobs share lives in their common
dir: the sweep's dir, or for jobs outside a sweep their deepest common folder. The functions
here take jobs as sherlocked.records.job.Job records (which import this module's results, so not it).
"""

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sherlocked.spec.config import CONFIG_DIR, OUTPUT_PATHS, identity

RESULT = "result.json"
HYDRA_FILES = ".hydra"  # Hydra's output_subdir: the job's config.yaml, hydra.yaml, overrides.yaml
LOCK = ".lock"
CHECKPOINTS = ".checkpoints"
PROGRESS = ".progress"
TENSORBOARD = "tensorboard"
EVENT_FILES = "events.out.tfevents.*"  # a TensorBoard run's event files, in its folder
OWNER = ".job"
MEAN = "mean"
HPARAMS = "hparams"
RESULTS_TABLE = "results"
SUBMITIT = ".submitit"
PATHS = CONFIG_DIR / "paths" / "default.yaml"  # where outputs go: the config group train.yaml composes


@dataclass(frozen=True)
class OutputPaths:
    """Where sherlocked writes: the outputs root and its folders (conf/paths/default.yaml)."""

    outputs: Path
    runs: Path
    sweeps: Path
    bench: Path


def output_paths(outputs: str | os.PathLike | None = None) -> OutputPaths:
    """conf/paths/default.yaml resolved as a run composes it (SHERLOCKED_OUTPUTS, else outputs/), torch-free and
    without Hydra: the defaults of the board, the report, --plan and the Makefile. `outputs`: another root, whose
    folders are then its own (the board pointed at a folder)."""
    config = OmegaConf.create({"paths": OmegaConf.load(PATHS)})  # as composed: its folders read ${paths.outputs}
    if outputs is not None:
        config.paths.outputs = str(outputs)
    resolved = OmegaConf.to_container(config, resolve=True)["paths"]
    return OutputPaths(**{name: Path(str(resolved[name])) for name in OUTPUT_PATHS})


def only_hydras(run_dir: Path) -> bool:
    """Whether a run's dir holds nothing but what Hydra writes as a job starts (.hydra/, the job's log): nothing
    of the run itself."""
    run_dir = Path(run_dir)
    return run_dir.is_dir() and all(
        path.is_dir() or path.suffix == ".log" or HYDRA_FILES in path.relative_to(run_dir).parts
        for path in run_dir.rglob("*")
    )


def result(job_dir: Path) -> Path:
    return Path(job_dir) / RESULT


def lock(job_dir: Path) -> Path:
    return Path(job_dir) / LOCK


def common_dir(jobs: Sequence) -> Path:
    """Where a population's jobs keep what they share: their sweep's dir, else their job dirs' common folder."""
    sweeps = {job.sweep_dir for job in jobs}
    if len(sweeps) == 1 and None not in sweeps:
        return Path(sweeps.pop())
    return Path(os.path.commonpath([os.path.abspath(job.job_dir) for job in jobs]))


def population_key(configs: Sequence[dict]) -> str:
    """A population's name: its members' identities, in order (its checkpoint's and its progress file's)."""
    return hashlib.sha256(json.dumps([identity(c) for c in configs], sort_keys=True).encode()).hexdigest()[:20]


def checkpoint(jobs: Sequence) -> Path:
    return common_dir(jobs) / CHECKPOINTS / f"{population_key([job.config for job in jobs])}.ckpt"


def progress(jobs: Sequence) -> Path:
    return common_dir(jobs) / PROGRESS / f"{population_key([job.config for job in jobs])}.json"


def population_files(jobs: Sequence) -> list[Path]:
    """Every file a population's training replaces as it goes: its checkpoint, its progress, its jobs' results."""
    return [checkpoint(jobs), progress(jobs), *(result(job.job_dir) for job in jobs)]


def progress_files(sweep_dir: Path) -> list[Path]:
    """The progress files of the populations in training in a sweep."""
    return list((Path(sweep_dir) / PROGRESS).glob("*.json"))


def mean_run(sweep_dir: Path, configuration: str) -> Path:
    """The TensorBoard run of a configuration's mean over seeds (named by the overrides that make it one)."""
    return Path(sweep_dir) / TENSORBOARD / MEAN / configuration


def experiment(sweep_dir: Path) -> Path:
    """The sweep's HParams experiment: a TensorBoard run of its own."""
    return Path(sweep_dir) / HPARAMS


def results_table(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / RESULTS_TABLE


def submitit_folder(sweep_dir: str) -> str:
    """submitit's folder, per SLURM job (%j)."""
    return f"{sweep_dir}/{SUBMITIT}/%j"


def swept_keys(jobs: Sequence) -> set[str]:
    """The override keys whose values differ between the sweep's jobs."""
    values: dict[str, set] = {}
    for job in jobs:
        for override in job.overrides:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    return {key for key, seen in values.items() if len(seen) > 1}


def run_name(overrides: Sequence[str], swept: set[str]) -> str:
    """A job's runs' name in the trackers: its overrides of the swept keys ("" where it has none)."""
    return ",".join(o for o in overrides if o.partition("=")[0] in swept)


def name_runs(jobs: Sequence, sweep_dir: Path, todo: Sequence, tensorboard: Callable[[Any], bool]) -> None:
    """Each job to train (`todo`) named by its overrides of the keys the sweep's `jobs` vary, so that the trackers'
    run names are short; and, where `tensorboard(job)` (it writes a TensorBoard run), its events dir
    <sweep dir>/tensorboard/<that name>: a name that holds another job's events gets the job dir's full name."""
    swept = swept_keys(jobs)
    root = Path(sweep_dir) / TENSORBOARD
    for job in todo:
        owner = os.path.relpath(job.job_dir, sweep_dir)
        job.run_name = run_name(job.overrides, swept) or owner
        if not tensorboard(job):
            continue
        name = job.run_name
        claimed = root / name / OWNER
        if claimed.is_file() and claimed.read_text() != owner:
            name = owner
        job.events_dir = root / name
        job.events_dir.mkdir(parents=True, exist_ok=True)
        (job.events_dir / OWNER).write_text(owner)


if __name__ == "__main__":  # the Makefile's: python -m sherlocked.records.layout sweeps -> outputs/sweeps
    if unknown := set(sys.argv[1:]) - set(OUTPUT_PATHS):
        print(
            f"sherlocked: no output path {', '.join(sorted(unknown))}; choose from {', '.join(OUTPUT_PATHS)}",
            file=sys.stderr,
        )
        sys.exit(2)
    print(*(getattr(output_paths(), name) for name in sys.argv[1:] or ["outputs"]), sep="\n")
