"""The population launcher's work: plan a batch of jobs (sherlocked.sweep.plan), then carry the plan out.

    python -m sherlocked.train -m hydra/launcher=population act1=relu,tanh act2=sigmoid,relu 'seed=range(9)'

Carrying it out: Hydra's callbacks hear of every job at once, and a finished job's result at
once (so the progress line counts it before any training); the dirs of the jobs to train are
written as Hydra's run_job writes them (a finished job's dir is left as the run that made it
wrote it, so a finished sweep reads back from read-only storage); each job is locked, so that
two sweeps into one dir train it once between them; the populations train where the backend
says (sherlocked.sweep.backends) and Hydra's callbacks get each job's result as its population
finishes. Ctrl-C stops with one line: every result is written whole or not at all. A stop signal
(SIGTERM...) too, once the populations in training saved where they stood (sherlocked.runtime.signals).
"""

import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence

from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from sherlocked.hydra_side import adapter
from sherlocked.records import layout, outcomes
from sherlocked.records.job import Job
from sherlocked.records.results import Result, finished_result
from sherlocked.runtime import phases, signals
from sherlocked.spec.config import has_tensorboard_runs
from sherlocked.spec.datasets import DataError, data_key, on_disk
from sherlocked.sweep import backends, estimate, plan, preflight
from sherlocked.sweep.locks import JobLocks

log = logging.getLogger(__name__)


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Hydra's Launcher.launch for hydra/launcher=population: plan the batch, then run the plan."""
    sweep_dir = adapter.start(launcher.config, create=not launcher.plan)
    phases.cpu.clear()  # this sweep's own
    with phases.timed("compose"):  # every job composed or derived, so checked, before any is written
        jobs, hydra = plan.jobs_of(launcher.hydra_context, launcher.config, job_overrides, initial_job_idx)
    with phases.timed("dirs"):
        found = plan.read_finished(jobs)
    the_plan = plan.make(jobs, launcher.backend, launcher.max_members, launcher.workers, hydra)
    if launcher.plan:  # hydra.launcher.plan=true (--plan): the plan and its cost, nothing written or trained
        print("\n".join(estimate.lines(the_plan)))
        sys.exit(0)
    log.info(the_plan.describe())
    found.mend()
    fetch_data(the_plan.todo)
    returns = Run(launcher, the_plan, sweep_dir).carry_out()
    log.info(phases.summary(len(jobs)))
    phases.save(len(jobs))
    return returns


def fetch_data(jobs: Sequence[Job]) -> None:
    """The data of the jobs to train, on disk before any of them trains: downloaded once, here (the workers, Ray
    tasks or SLURM elements of a sweep would each download it at once); a sweep with nothing to train downloads
    nothing. One line and exit code 2 where it cannot be had (sherlocked.sweep.preflight checked the rest)."""
    for key, dataset in {data_key(job.config["dataset"]): job.config["dataset"] for job in jobs}.items():
        try:
            if not on_disk(dataset):  # through torchvision: torch imported only for a download
                from sherlocked.training.data import load

                load(*key)
        except DataError as error:
            preflight.stop(str(error))


class Run:
    """One plan carried out: its jobs' results as they come, told to Hydra's callbacks."""

    def __init__(self, launcher, the_plan: plan.Plan, sweep_dir):
        self.plan, self.sweep_dir = the_plan, sweep_dir
        self.settings = OmegaConf.to_container(launcher.config.hydra.launcher, resolve=True)
        self.callbacks, self.task_function = launcher.hydra_context.callbacks, launcher.task_function
        # Building a job's config for the callbacks costs more than the rest of its preparation: only where read.
        self.with_configs = any(getattr(c, "reads_job_config", True) for c in self.callbacks.callbacks)
        self.results: dict[int, Result] = {}
        self.twins: dict[int, list[Job]] = {}  # the later jobs of an identity, by its first job's index
        for job in the_plan.jobs:
            if job.same_as is not None:
                self.twins.setdefault(job.same_as.index, []).append(job)
        self.locks = JobLocks()  # a job another sweep is training is left to it, then read back

    def carry_out(self) -> list[JobReturn]:
        jobs = self.plan.jobs
        for job in jobs:
            self.callbacks.on_job_start(config=self.config(job), task_function=self.task_function)
        self.finish([job for job in jobs if job.finished], [job.finished for job in jobs if job.finished])
        try:
            with signals.raised():  # a stop signal (SIGTERM...) raises StopSignal here, as Ctrl-C KeyboardInterrupt
                busy = self.prepare(self.plan.todo)
                if busy:
                    log.info(f"{len(busy)} jobs are in training by another sweep: read back when it finishes them")
                held = {job.index for job in busy}
                self.train([[job for job in pop if job.index not in held] for pop in self.plan.populations])
                self.train(self.plan.split(self.wait_for(busy)))
        except KeyboardInterrupt:  # results are written whole or not at all: nothing to clean up
            self.interrupted()
        except signals.StopSignal as stop:  # the populations in training saved where they stood (backends)
            self.interrupted(stop.signum)
        finally:
            self.locks.release()
        return [self.job_return(job, self.results[job.index]) for job in jobs]

    def config(self, job: Job):
        return self.plan.hydra[job.index].callback_config(job) if self.with_configs else None

    def job_return(self, job: Job, result: Result) -> JobReturn:
        return self.plan.hydra[job.index].job_return(job, result, self.with_configs)

    def prepare(self, todo: list[Job]) -> list[Job]:
        """The dirs of the jobs to train, their runs' names, their locks; returns those another sweep holds."""
        with phases.timed("dirs"):
            for job in todo:
                self.plan.hydra[job.index].write(job)
        layout.name_runs(self.plan.jobs, self.sweep_dir, todo, lambda job: has_tensorboard_runs(job.config))
        return [job for job in todo if not self.locks.try_lock(job.job_dir)]

    def train(self, populations: list[list[Job]]) -> None:
        populations = [population for population in populations if population]
        if not populations:  # no backend to start for nothing
            return
        if self.plan.backend != "local":  # the task or element that trains a job holds its lock
            self.locks.hand_over([job.job_dir for population in populations for job in population])
        finished = backends.dispatch(populations, self.plan.backend, self.plan.workers, self.plan.device, self.settings)
        for number, outcome, where in finished:
            log.info(f"population {number + 1}/{len(populations)} of {len(outcome)} finished on {where}")
            outcomes.record(populations[number], outcome)  # what no worker recorded: a lost worker's jobs' failure
            self.finish(populations[number], outcome)

    def wait_for(self, busy: list[Job]) -> list[Job]:
        """Wait for the other sweep to let each job go; its result is then ours too. Returns those left without one."""
        left = []
        for job in busy:
            self.locks.wait(job.job_dir)
            result = finished_result(job.job_dir, job.config)
            if result is None:  # it stopped without one
                left.append(job)
            else:
                self.finish([job], [result])
        return left

    def finish(self, jobs: list[Job], outcome: list[Result]) -> None:
        for job, result in zip(jobs, outcome):
            self.results[job.index] = result
            if result.finished:
                self.locks.finished(job.job_dir)
            self.callbacks.on_job_end(config=self.config(job), job_return=self.job_return(job, result))
            twins = self.twins.pop(job.index, [])
            if twins:  # trained once, counted once: the others of its identity were not trained
                self.finish(twins, [dataclasses.replace(result, skipped=True)] * len(twins))

    def interrupted(self, signum: int | None = None) -> None:
        """Ctrl-C, or a stop signal (signum): one line, then exit 128 + the signal's number (130 for Ctrl-C), after
        Python's own shutdown (a process ended by the signal itself left multiprocessing's semaphores to a warning)."""
        from sherlocked.sweep.progress import stop_watching

        stop_watching()  # the line below is the last
        said = "interrupted" if signum is None else f"{signals.name(signum)}; the populations in training were saved"
        print(
            f"sherlocked: {said}; {len(self.results)} of {len(self.plan.jobs)} jobs have their result in "
            f"{self.sweep_dir}; run the same command again to train the rest",
            file=sys.stderr,
        )
        sys.exit(128 + (signum or signal.SIGINT))
