"""A sweep's plan, decided before anything is written or trained: which jobs, which of them an earlier run
finished, which train together in which populations, on which backend.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1

1. Jobs that may share a population (the same overrides once member keys are removed, see
   sherlocked.spec.config: same data, widths, optimiser, batch size, epochs) form a group; each group
   is composed once and its jobs derived (sherlocked.hydra_side.adapter), so every job is checked.
2. The sweep's results table is read once (sherlocked.records.table): a job it holds finished, with the
   same identity, is not trained again; a job it lacks is looked up in its own result.json.
3. Each group is split into populations of balanced sizes, at max_members and the device's
   memory, at least one per local worker (one per GPU); a population trains its members that
   are not finished. The split counts every job, finished or not, so the same command forms
   the same populations whatever finished: an interrupted one finds its checkpoint.
sherlocked.sweep.run carries a plan out; Plan.describe() says what it will do.
"""

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from hydra.types import HydraContext
from omegaconf import DictConfig

from sherlocked.hydra_side import adapter
from sherlocked.records import outcomes, table
from sherlocked.records.job import Job
from sherlocked.records.results import FINISHED, finished_as, finished_result, read_result
from sherlocked.spec.config import is_member_key, shared
from sherlocked.sweep import backends, devices


def group_key(overrides: Sequence[str]) -> tuple[str, ...]:
    """Jobs with the same non-member overrides share data, widths, optimiser, batch size and epochs."""
    return tuple(sorted(o for o in overrides if not is_member_key(o)))


def population_key(job: Job) -> tuple:
    """What a job must share with the members of its population: its non-member overrides, and, for a job
    composed on its own (not derived from its group's one composition), its resolved config but its member keys,
    which may differ beyond the overrides (a ${hydra:job.num} gives each job its own value)."""
    key = group_key(job.overrides)
    if not job.composed_alone:  # derived from its group's one composition: the same shared part by construction
        return key
    return (*key, json.dumps(shared(job.config), sort_keys=True, default=str))


def jobs_of(
    context: HydraContext, master: DictConfig, job_overrides: Sequence[Sequence[str]], first: int
) -> tuple[list[Job], dict]:
    """Every job of a batch (numbered from `first`), composed once per group and derived, in Hydra's order; and
    the driver's Hydra side of each (sherlocked.hydra_side.adapter), by job index."""
    by_group: dict[tuple, list[int]] = {}
    for i, overrides in enumerate(job_overrides):
        by_group.setdefault(group_key(overrides), []).append(i)
    sides: dict = {}
    jobs = [
        job
        for ids in by_group.values()
        for job in adapter.group_jobs(context, master, [job_overrides[i] for i in ids], [first + i for i in ids], sides)
    ]
    return sorted(jobs, key=lambda job: job.index), sides


@dataclass
class Found:
    """What reading the finished jobs found to mend, once the sweep may write (--plan writes nothing): finished
    jobs whose record is not whole (Result.recorded false), in the dir their record is in."""

    lacking: list[Job] = field(default_factory=list)  # finished (their result.json says), the table lacks their rows
    damaged: list[Job] = field(default_factory=list)  # finished (the table says), their result.json is damaged

    def mend(self) -> None:
        """The rows the table lacks added; damaged result.json files restored from the table (records.outcomes)."""
        jobs = self.damaged + self.lacking
        outcomes.record(jobs, [job.finished for job in jobs])


def read_finished(jobs: Sequence[Job]) -> Found:
    """Each job's result, where an earlier run finished it with the same identity (in its own dir, or in another's:
    the same job typed otherwise, a default spelled out): from the sweep's table, read once for all, where the
    job's result.json is on disk (a deleted one trains again; one of another size is read, and restored from the
    table if damaged); for a job the table lacks (a sweep from before the table, a table that could not be
    written, a run killed between a job's result.json and its row), from the job's own result.json."""
    by_identity, by_dir = {}, {}
    for sweep_dir in {job.sweep_dir for job in jobs if job.sweep_dir is not None}:
        found = table.read(sweep_dir, ["status", "result", table.SIZE])
        for row in found[found["status"].isin(FINISHED)].itertuples():
            if isinstance(getattr(row, table.IDENTITY, None), str):
                by_identity[(sweep_dir, row.identity)] = (sweep_dir / row.job, row)
            by_dir[sweep_dir / row.job] = (sweep_dir / row.job, row)  # a table from before the identity column
    mend = Found()
    for job in jobs:
        job_dir, row = by_identity.get((job.sweep_dir, job.identity)) or by_dir.get(job.job_dir) or (None, None)
        if row is not None:
            job.finished = finished_as(table.result_of(row.result), job.config)
            if job.finished is not None and not same_size(job_dir, row):
                stored = read_result(job_dir)
                if stored is None:
                    job.finished.recorded = False  # its file is to be restored from its row
                    mend.damaged.append(dataclasses.replace(job, job_dir=job_dir, finished=job.finished))
                else:  # rewritten since its row (by a run that could not write the table): the file says
                    job.finished = finished_as(stored, job.config)
        if job.finished is None and row is None:
            job.finished = finished_result(job.job_dir, job.config)
            if job.finished is not None and job.sweep_dir is not None:
                job.finished.recorded = False  # its row is to be added
                mend.lacking.append(job)
    return mend


def same_size(job_dir: Path, row) -> bool:
    """Whether a job's result.json has the size its table row recorded (or the row recorded none)."""
    recorded = getattr(row, table.SIZE, None)
    if recorded is None or pd.isna(recorded):
        return True
    return table.size_on_disk(job_dir.parent, job_dir.name) == int(recorded)


def once_each(jobs: Sequence[Job]) -> list[Job]:
    """The jobs whose identity no earlier job of the batch has; each later one of an identity is marked the same as
    the first (a seed listed twice, a default spelled out next to its absence): trained once, counted once."""
    first: dict[str, Job] = {}
    for job in jobs:
        seen = first.setdefault(job.identity, job)
        if seen is not job:
            job.same_as = seen
    return [job for job in jobs if job.same_as is None]


def split(jobs: Sequence[Job], max_members: int, device: str, workers: int = 0) -> list[list[Job]]:
    """Jobs grouped by what they must share, split at max_members (0 = no limit) and memory into populations
    of balanced sizes; with `workers` (one per GPU), into at least that many, so that every GPU gets work."""
    by_key: dict[tuple, list[Job]] = {}
    for job in jobs:
        by_key.setdefault(population_key(job), []).append(job)
    total, populations = len(jobs), []
    for members in by_key.values():
        n = len(members)
        cap = min(max_members or n, devices.memory_cap(members[0].config, device))
        # a share of the workers in proportion to the group's size: the shares add up to at least `workers`
        pieces = min(n, max(-(-n // cap), -(-workers * n // total)))
        populations += [members[i * n // pieces : (i + 1) * n // pieces] for i in range(pieces)]
    return populations


@dataclass
class Plan:
    jobs: list[Job]  # every job of the batch, in Hydra's order
    backend: str  # local, ray or submitit (sherlocked.sweep.backends)
    device: str  # cpu or cuda: where the jobs train, as this machine sees it
    max_members: int  # the most members of one population (0: no limit)
    workers: int  # local worker processes, one per GPU (0: in this process)
    populations: list[list[Job]] = field(default_factory=list)  # the jobs to train, as they train together
    # The driver's Hydra side of each job, by its index: how its dir is written, what Hydra's callbacks get
    # (sherlocked.hydra_side.adapter; the job records hold none, so a worker gets none).
    hydra: dict = field(default_factory=dict, repr=False)

    @property
    def todo(self) -> list[Job]:
        return [job for job in self.jobs if job.finished is None and job.same_as is None]

    def split(self, jobs: Sequence[Job]) -> list[list[Job]]:
        return split(jobs, self.max_members, self.device, self.workers)

    @property
    def where(self) -> str:
        if self.backend != "local":
            return self.backend
        return f"{self.workers} worker processes" if self.workers else "this process"

    def describe(self) -> str:
        """One line: how many jobs, how many finished before, the populations the rest train in, and where."""
        sizes = Counter(len(population) for population in self.populations)
        shapes = ", ".join(f"{n} x {size} members" for size, n in sorted(sizes.items(), reverse=True))
        populations = f"{len(self.populations)} population{'' if len(self.populations) == 1 else 's'}"
        finished = sum(job.finished is not None for job in self.jobs)
        twins = sum(job.finished is None and job.same_as is not None for job in self.jobs)
        twice = f", {twins} the same job as another of the sweep (trained once)" if twins else ""
        jobs = f"{len(self.jobs)} job{'' if len(self.jobs) == 1 else 's'}"
        return (
            f"plan: {jobs}, {finished} finished before{twice}; {len(self.todo)} to "
            f"train in {populations} ({shapes or 'none'}) on {self.where}, {self.device}"
        )


def make(jobs: list[Job], backend: str, max_members: int | None, workers: int, hydra: dict | None = None) -> Plan:
    """The plan for jobs whose finished results are read: the device policy applied to them (hydra: each job's
    Hydra side, by index, as jobs_of gives it)."""
    backends.check(backend)
    device = devices.device_of(jobs[0].config) if jobs else "cpu"
    cap = devices.default_max_members(device) if max_members is None else max_members
    plan = Plan(jobs, backend, device, cap, devices.worker_count(workers) if backend == "local" else 0)
    plan.hydra = hydra or {}
    # Split with the finished jobs in: the unfinished ones then form what they formed before (and their checkpoint
    # is found), where splitting the unfinished alone would regroup them once any population finished.
    plan.populations = [todo for p in plan.split(once_each(jobs)) if (todo := [j for j in p if j.finished is None])]
    return plan
