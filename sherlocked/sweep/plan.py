"""A sweep's plan, decided before anything is written or trained: which jobs, which of them an earlier run
finished, which train together in which populations, on which backend.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1

1. Jobs that may share a population (the same overrides once member keys are removed, see
   sherlocked.config: same data, widths, optimiser, batch size, epochs) form a group; each group
   is composed once and its jobs derived (sherlocked.hydra_adapter), so every job is checked.
2. The sweep's results table is read once (sherlocked.table): a job it holds finished, with the
   same identity, is not trained again; a job it lacks is looked up in its own result.json.
3. Each group is split into populations of balanced sizes, at max_members and the device's
   memory, at least one per local worker (one per GPU); a population trains its members that
   are not finished. The split counts every job, finished or not, so the same command forms
   the same populations whatever finished: an interrupted one finds its checkpoint.
sherlocked.sweep.run carries a plan out; Plan.describe() says what it will do.
"""

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from hydra.types import HydraContext
from omegaconf import DictConfig

from sherlocked import hydra_adapter, table
from sherlocked.config import is_member_key, shared
from sherlocked.job import Job
from sherlocked.results import FINISHED, finished_as, finished_result
from sherlocked.sweep import backends, devices


def group_key(overrides: Sequence[str]) -> tuple[str, ...]:
    """Jobs with the same non-member overrides share data, widths, optimiser, batch size and epochs."""
    return tuple(sorted(o for o in overrides if not is_member_key(o)))


def population_key(job: Job) -> tuple:
    """What a job must share with the members of its population: its non-member overrides, and, for a job
    composed on its own (not derived from its group's one composition), its resolved config but its member keys,
    which may differ beyond the overrides (a ${hydra:job.num} gives each job its own value)."""
    key = group_key(job.overrides)
    if isinstance(job.hydra, hydra_adapter.DerivedJob):  # the same shared part as its group's by construction
        return key
    return (*key, json.dumps(shared(job.config), sort_keys=True, default=str))


def jobs_of(context: HydraContext, master: DictConfig, job_overrides: Sequence[Sequence[str]], first: int) -> list[Job]:
    """Every job of a batch (numbered from `first`), composed once per group and derived, in Hydra's order."""
    by_group: dict[tuple, list[int]] = {}
    for i, overrides in enumerate(job_overrides):
        by_group.setdefault(group_key(overrides), []).append(i)
    jobs = [
        job
        for ids in by_group.values()
        for job in hydra_adapter.group_jobs(context, master, [job_overrides[i] for i in ids], [first + i for i in ids])
    ]
    return sorted(jobs, key=lambda job: job.index)


def read_finished(jobs: Sequence[Job]) -> list[Job]:
    """Each job's result, where an earlier run finished it with the same identity: from the sweep's table, read
    once for all; for a job it lacks (a sweep from before the table, or one killed between a job's result.json
    and its row) from the job's own result.json. Returns the jobs found so, whose rows the table lacks."""
    rows = {}
    for sweep_dir in {job.sweep_dir for job in jobs if job.sweep_dir is not None}:
        found = table.read(sweep_dir, ["status", "result"])
        rows.update({sweep_dir / job: row for job, row in zip(found["job"], found.itertuples())})
    lacking = []
    for job in jobs:
        row = rows.get(job.job_dir)
        if row is None:
            job.finished = finished_result(job.job_dir, job.config)
            if job.finished is not None and job.sweep_dir is not None:
                lacking.append(job)
        elif row.status in FINISHED:  # (a failed row's result is not read: it trains again)
            job.finished = finished_as(table.result_of(row.result), job.config)
    return lacking


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

    @property
    def todo(self) -> list[Job]:
        return [job for job in self.jobs if job.finished is None]

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
        return (
            f"plan: {len(self.jobs)} jobs, {len(self.jobs) - len(self.todo)} finished before; {len(self.todo)} to "
            f"train in {populations} ({shapes or 'none'}) on {self.where}, {self.device}"
        )


def make(jobs: list[Job], backend: str, max_members: int | None, workers: int) -> Plan:
    """The plan for jobs whose finished results are read: the device policy applied to them."""
    backends.check(backend)
    device = devices.device_of(jobs[0].config) if jobs else "cpu"
    cap = devices.default_max_members(device) if max_members is None else max_members
    plan = Plan(jobs, backend, device, cap, devices.worker_count(workers) if backend == "local" else 0)
    # Split with the finished jobs in: the unfinished ones then form what they formed before (and their checkpoint
    # is found), where splitting the unfinished alone would regroup them once any population finished.
    plan.populations = [todo for p in plan.split(jobs) if (todo := [job for job in p if job.finished is None])]
    return plan
