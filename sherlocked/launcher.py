"""The population launcher's work: write every job dir the Hydra way, then train jobs in groups.

1. Jobs that may share a population (the same overrides once member-level keys are removed,
   see sherlocked.config: same data, widths, optimiser, batch size, epochs) form a group.
2. Hydra composes each group's first job; the others' configs and job dirs are derived from
   it (sherlocked.jobdirs), with the same .hydra/ files as Hydra's run_job writes. A group
   that cannot be derived exactly has each job composed and written by run_job.
3. Each job's result.json is read once: a finished job is reported to Hydra's callbacks at
   once (so the progress line counts it before any training), not trained again, and its dir
   is left as the run that made the result wrote it (so a finished sweep reads back from
   read-only storage).
4. Groups are split into populations (balanced, at max_members and the memory cap, at least
   one per GPU) and trained where the backend says (sherlocked.backends: here or one worker
   per GPU, Ray, SLURM); Hydra's callbacks get each job's real result as its population finishes.
"""

import functools
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict

from sherlocked import backends, jobdirs, phases
from sherlocked.config import is_member_key
from sherlocked.locks import JobLocks
from sherlocked.results import Result, finished_result, read_result

if TYPE_CHECKING:
    from sherlocked import engine

log = logging.getLogger(__name__)


def group_key(overrides: Sequence[str]) -> tuple[str, ...]:
    """Jobs with the same non-member overrides share data, widths, optimiser, batch size and epochs."""
    return tuple(sorted(o for o in overrides if not is_member_key(o)))


class NoCallbacks:
    """Stands in for Hydra's callbacks while run_job writes a job's dir: they fire later, with the real result."""

    def on_job_start(self, **kwargs) -> None:
        pass

    def on_job_end(self, **kwargs) -> None:
        pass


@dataclass
class Prepared:
    """A job whose directory is written: what the engine trains, and what Hydra's callbacks are given."""

    index: int
    job: "engine.Job"
    task: dict  # the task config, plain and unresolved (.hydra/config.yaml)
    hydra: dict  # {"hydra": node}, plain and unresolved (.hydra/hydra.yaml)
    composed: DictConfig | None = None  # the whole config, where Hydra composed it for this job
    finished: Result | None = None  # its result, where an earlier run finished it

    @property
    def sweep_config(self) -> DictConfig:
        """The job's whole config, as Hydra's callbacks receive it (built on first use)."""
        if self.composed is None:
            self.composed = OmegaConf.create({**self.task, **self.hydra})
        return self.composed

    def job_return(self, result: Result, with_configs: bool) -> JobReturn:
        """What a launcher hands back to Hydra; the configs only where a callback may read them."""
        return JobReturn(
            overrides=self.job.overrides,
            cfg=OmegaConf.create(self.task) if with_configs else None,
            hydra_cfg=OmegaConf.create(self.hydra) if with_configs else None,
            working_dir=os.getcwd(),
            task_name=self.hydra["hydra"]["job"]["name"],
            status=JobStatus.COMPLETED,  # a failed job's result records the failure; the sweep goes on
            _return_value=result,
        )


def plan_group(launcher, indices: list[int], job_overrides: list[list[str]]) -> list[Callable[[], Prepared]]:
    """Each job of one group (jobs that differ in member keys only) composed or derived, so checked; the
    returned calls write their dirs. One composition for the group where its jobs can be derived."""
    load = launcher.hydra_context.config_loader.load_sweep_config
    first = load(launcher.config, job_overrides[0])
    template = jobdirs.Template(first)
    parsed = jobdirs.parse(job_overrides)
    if template.derivable(parsed):
        return [functools.partial(write_derived, template.derive(o, i)) for i, o in zip(indices, parsed)]
    composed = [first] + [load(launcher.config, overrides) for overrides in job_overrides[1:]]
    return [functools.partial(run_job_dir, launcher, *job) for job in zip(composed, job_overrides, indices)]


def write_derived(job: jobdirs.Derived) -> Prepared:
    from sherlocked import engine  # torch with it: not at module level, see backends.train_population

    finished = finished_result(job.job_dir, job.resolved)
    if finished is None:
        job.write()
    trained = engine.Job(job.resolved, job.job_dir, job.overrides)
    return Prepared(job.index, trained, job.task, job.hydra, finished=finished)


def run_job_dir(launcher, sweep_config: DictConfig, overrides: list[str], index: int) -> Prepared:
    """One composed job's dir, written by Hydra's run_job (with no callbacks: they fire with the result)."""
    from sherlocked import engine

    with open_dict(sweep_config):
        sweep_config.hydra.job.id = index
        sweep_config.hydra.job.num = index
    captured = {}

    def stub(cfg: DictConfig) -> None:  # HydraConfig is only set while run_job runs
        captured["job"] = engine.Job.of(cfg, Path(HydraConfig.get().runtime.output_dir), overrides)
        captured["task"] = OmegaConf.to_container(cfg, enum_to_str=True)
        captured["hydra"] = OmegaConf.to_container(HydraConfig.instance().cfg, enum_to_str=True)

    quiet_context = HydraContext(config_loader=launcher.hydra_context.config_loader, callbacks=NoCallbacks())
    run_job(stub, sweep_config, "hydra.sweep.dir", "hydra.sweep.subdir", quiet_context, configure_logging=False)
    job = captured["job"]
    finished = finished_result(job.job_dir, job.config)
    return Prepared(index, job, captured["task"], captured["hydra"], sweep_config, finished=finished)


EVENTS = "tensorboard"  # <sweep dir>/tensorboard/<run>: a sweep's TensorBoard runs
OWNER = ".job"  # in a run's folder: the job dir (relative to the sweep dir) whose events it holds


def name_runs(jobs: list[Prepared], sweep_dir: Path, todo: list[Prepared]) -> None:
    """The TensorBoard run of each job to train (`todo`), <sweep dir>/tensorboard/<its overrides of the keys the
    sweep's `jobs` vary>, so that TensorBoard's run names are short; a name that holds another job's events
    gets the job dir's full name instead."""
    values: dict[str, set] = {}
    for p in jobs:
        for override in p.job.overrides:
            key, _, value = override.partition("=")
            values.setdefault(key, set()).add(value)
    swept = {key for key, seen in values.items() if len(seen) > 1}
    root = Path(sweep_dir) / EVENTS
    for p in todo:
        owner = os.path.relpath(p.job.job_dir, sweep_dir)
        name = ",".join(o for o in p.job.overrides if o.partition("=")[0] in swept) or owner
        claimed = root / name / OWNER
        if claimed.is_file() and claimed.read_text() != owner:
            name = owner
        p.job.events_dir = root / name
        p.job.events_dir.mkdir(parents=True, exist_ok=True)
        (p.job.events_dir / OWNER).write_text(owner)


def default_max_members(device: str) -> int:
    """Population size when the launcher is not told: measured with `python -m sherlocked.bench --group N`.

    On a 2-core CPU, 4 to 16 members per population train fastest (parameters, gradients and
    momentum of more members overflow the caches); a GPU fills up with all of them (0 = no limit).
    """
    return 16 if device == "cpu" else 0


def device_of(config: Mapping) -> str:
    import torch

    accelerator = config["trainer"]["accelerator"]
    return "cuda" if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available() else "cpu"


def member_bytes(config: Mapping) -> int:
    """Memory one member needs: parameters, gradients and momentum, activations of a train and a test batch."""
    widths, data = list(config["model"]["widths"]), config["dataset"]
    params = sum(i * o + o for i, o in zip(widths[:-1], widths[1:]))
    activations = 4 * sum(widths[1:]) * (data["batch_size"] + data["test_batch_size"])  # a few copies each
    return 4 * (4 * params + activations)


def memory_cap(config: Mapping, device: str) -> int:
    """Most members that fit in half of the device's free memory (the rest: data, allocator slack)."""
    import torch

    if device == "cuda":
        free = torch.cuda.mem_get_info()[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, free // 2 // member_bytes(config))


def groups(jobs: list[Prepared], max_members: int, device: str, workers: int = 0) -> list[list[Prepared]]:
    """Jobs grouped by what they must share, split at max_members (0 = no limit) and memory into populations
    of balanced sizes; with `workers` (one per GPU), into at least that many, so that every GPU gets work."""
    by_key: dict[tuple, list[Prepared]] = {}
    for prepared in jobs:
        by_key.setdefault(group_key(prepared.job.overrides), []).append(prepared)
    total, split = len(jobs), []
    for members in by_key.values():
        n = len(members)
        cap = min(max_members or n, memory_cap(members[0].job.config, device))
        # a share of the workers in proportion to the group's size: the shares add up to at least `workers`
        pieces = min(n, max(-(-n // cap), -(-workers * n // total)))
        split += [members[i * n // pieces : (i + 1) * n // pieces] for i in range(pieces)]
    return split


def dispatch(launcher, populations: list, device: str, workers: int):
    """The populations' results as they finish, from the backend the launcher names."""
    if launcher.backend == "local":
        return backends.on_local(populations, workers)
    gpus = launcher.gpus_per_population
    if gpus is None:  # one GPU per population where the sweep trains on GPUs (here, or said: trainer=gpu)
        on_gpus = device == "cuda" or populations[0][0].config["trainer"]["accelerator"] in ("gpu", "cuda")
        gpus = 1 if on_gpus else 0
    settings = OmegaConf.to_container(launcher.config.hydra.launcher, resolve=True)
    if launcher.backend == "ray":
        return backends.on_ray(populations, settings, gpus)
    return backends.on_submitit(populations, settings, gpus)


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    phases.cpu.clear()  # this sweep's own
    by_group: dict[tuple, list[int]] = {}
    for i, overrides in enumerate(job_overrides):
        by_group.setdefault(group_key(overrides), []).append(i)
    with phases.timed("compose"):  # every job checked before any is written
        writers = [
            write
            for ids in by_group.values()
            for write in plan_group(launcher, [initial_job_idx + i for i in ids], [list(job_overrides[i]) for i in ids])
        ]
    with phases.timed("dirs"):
        jobs = sorted((write() for write in writers), key=lambda p: p.index)
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    callbacks = launcher.hydra_context.callbacks
    # Building a job's config for the callbacks costs more than the rest of its preparation: only where read.
    with_configs = any(getattr(callback, "reads_job_config", True) for callback in callbacks.callbacks)
    results: dict[int, Result] = {}
    for p in jobs:
        callbacks.on_job_start(config=p.sweep_config if with_configs else None, task_function=launcher.task_function)

    def finish(group: list[Prepared], outcome: list[Result]) -> None:
        for p, result in zip(group, outcome):
            results[p.index] = result
            config = p.sweep_config if with_configs else None
            callbacks.on_job_end(config=config, job_return=p.job_return(result, with_configs))

    finish([p for p in jobs if p.finished], [p.finished for p in jobs if p.finished])
    device = device_of(jobs[0].job.config) if jobs else "cpu"
    max_members = default_max_members(device) if launcher.max_members is None else launcher.max_members
    workers = backends.worker_count(launcher.workers) if launcher.backend == "local" else 0

    def train(prepared: list[Prepared]) -> None:
        if not prepared:  # no backend to start for nothing
            return
        todo = groups(prepared, max_members, device, workers)
        populations = [[p.job for p in group] for group in todo]
        for number, outcome, where in dispatch(launcher, populations, device, workers):
            log.info(f"population {number + 1}/{len(populations)} of {len(outcome)} finished on {where}")
            for result, p in zip(outcome, todo[number]):
                if result.status == "failed" and read_result(p.job.job_dir) is None:  # a worker could not write it
                    result.write(p.job.job_dir)
            finish(todo[number], outcome)

    locks = JobLocks()  # a job another sweep is training is left to it, then read back
    try:
        unfinished = [p for p in jobs if p.finished is None]
        name_runs(jobs, Path(str(launcher.config.hydra.sweep.dir)), unfinished)
        mine = {p.index for p in unfinished if locks.try_lock(p.job.job_dir)}
        busy = [p for p in unfinished if p.index not in mine]
        where = (
            f"{workers or 'this'} process{'es' if workers else ''}" if launcher.backend == "local" else launcher.backend
        )
        log.info(
            f"Launching {len(mine)} of {len(jobs)} jobs on {where} ({len(results)} finished before, "
            f"{len(busy)} in training by another sweep)"
        )
        train([p for p in unfinished if p.index in mine])
        left = []
        for p in busy:  # wait for the other sweep to let the job go; its result is then ours too
            locks.wait(p.job.job_dir)
            result = finished_result(p.job.job_dir, p.job.config)
            if result is not None:
                finish([p], [result])
            else:  # it stopped without one
                left.append(p)
        train(left)
    except KeyboardInterrupt:  # results are written whole or not at all: nothing to clean up
        from sherlocked.progress import stop_watching

        stop_watching()  # the line below is the last
        sweep_dir = launcher.config.hydra.sweep.dir
        print(
            f"sherlocked: interrupted; {len(results)} of {len(jobs)} jobs have their result in {sweep_dir}; "
            "run the same command again to train the rest",
            file=sys.stderr,
        )
        sys.exit(130)
    finally:
        locks.release()
    log.info(phases.summary(len(jobs)))
    phases.save(len(jobs))
    return [p.job_return(results[p.index], with_configs) for p in jobs]
