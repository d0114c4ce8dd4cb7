"""Where populations train: here or one worker process per GPU (local), a Ray cluster (ray), SLURM (submitit).

    python -m sherlocked.train -m hydra/launcher=population hydra.launcher.backend=ray act2=relu,sigmoid seed=0,1

Each backend takes the sweep's populations (lists of sherlocked.records.job.Job, whose dirs the
sweep has written) and yields (population number, results, where it ran) as populations
finish, in any order, so Hydra's callbacks and the progress line follow the work. A population
is one task: one Ray task (num_gpus per population, fractions allowed), one element of one
SLURM array. A task that dies is retried by the engine (Ray's max_retries, submitit's requeue),
and a task that starts again trains only its members without a finished result.json.

Ray and submitit are optional extras, imported only when asked for.
"""

import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import NamedTuple

from sherlocked.records import layout
from sherlocked.records.job import Job
from sherlocked.records.results import Result, failure
from sherlocked.runtime import signals
from sherlocked.runtime.atomic import temporaries
from sherlocked.spec.config import ConfigError
from sherlocked.sweep.locks import JobLocks

log = logging.getLogger(__name__)
Finished = Iterator[tuple[int, list[Result], str]]
# The backends beyond this machine, each with the package it needs (of the same name) and the extra that installs it.
EXTRAS = {"ray": "ray", "submitit": "slurm"}
BACKENDS = ("local", *EXTRAS)


class MissingExtra(ConfigError):
    """A backend whose package is not installed; the message names the extra that installs it."""


def check(backend: str, ray_address: str | None = None) -> None:
    """A backend this sherlocked knows, with its package installed, and the Ray cluster it names answering;
    ConfigError (one line) if not."""
    if backend not in BACKENDS:
        raise ConfigError(f"hydra.launcher.backend={backend!r}; choose from {', '.join(BACKENDS)}")
    if backend != "local":
        require(backend)
    if backend == "ray" and ray_address:
        reachable(ray_address)


def reachable(address: str, timeout_s: float = 5.0) -> None:
    """A Ray cluster's address (host:port, or ray://host:port for Ray Client) where something answers; ray.init
    would otherwise retry for minutes, printing a warning every few seconds. "auto" and "local" are Ray's."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except ValueError:
        raise ConfigError(f"hydra.launcher.ray.address={address}: not host:port (or ray://host:port)") from None
    except OSError as error:
        why = error.strerror or type(error).__name__
        raise ConfigError(
            f"hydra.launcher.ray.address={address}: no Ray cluster answers there ({why}); start one "
            "(ray start --head) or give its head's address"
        ) from None


def require(backend: str):
    try:
        return __import__(backend)
    except ImportError:
        raise MissingExtra(
            f"hydra.launcher.backend={backend} needs {backend}: pip install -e '.[{EXTRAS[backend]}]'"
        ) from None


def dispatch(populations: Sequence[list[Job]], backend: str, workers: int, device: str, settings: Mapping) -> Finished:
    """The populations' results as they finish, from the backend; settings: the launcher's (hydra.launcher)."""
    if backend == "local":
        return on_local(populations, workers)
    gpus = settings["gpus_per_population"]
    if gpus is None:  # one GPU per population where the sweep trains on GPUs (here, or said: trainer=gpu)
        on_gpus = device == "cuda" or populations[0][0].config["trainer"]["accelerator"] in ("gpu", "cuda")
        gpus = 1 if on_gpus else 0
    if backend == "ray":
        return on_ray(populations, settings, gpus)
    return on_submitit(populations, settings, gpus)


def train_population(
    jobs: list[Job], gpu: str | None = None, resume: bool = False, threads: int | None = None
) -> tuple[list[Result], str]:
    """One population, wherever it runs: its results and where it ran (host, visible GPUs, torch's threads).

    resume: a task its engine may start again (a Ray retry, a SLURM requeue) first reads back the
    members an earlier attempt finished, and trains the others. A worker that cannot see the
    sweep's directories says so in every result. threads: the cores this process may use (its
    share of the machine, or what the scheduler gave it: SLURM_CPUS_PER_TASK); torch would start
    as many threads as the machine has cores in every process, and processes sharing a machine
    would then fight over them.
    """
    if gpu is not None:  # before torch is imported in this process
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    # Imported here: a worker must set CUDA_VISIBLE_DEVICES before torch (imported with the engine) is.
    import torch

    from sherlocked.training import engine

    threads = threads or int(os.environ.get("SLURM_CPUS_PER_TASK", 0)) or None
    if threads:
        torch.set_num_threads(threads)
    where = (
        f"{socket.gethostname()}, CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')}, "
        f"{torch.get_num_threads()} threads"
    )
    unseen = sorted({str(job.job_dir.parent) for job in jobs if not job.job_dir.is_dir()})
    if unseen:
        error = FileNotFoundError(
            f"{socket.gethostname()} cannot see {', '.join(unseen)}: the sweep dir (and the data root) "
            "must be on a filesystem every worker shares"
        )
        return failures(error, jobs), where
    if resume:
        results = resumed_holding_locks(jobs, engine)
    else:  # the driver holds the locks of the jobs it trains in its own processes
        tidy(jobs)
        results = engine.train(jobs, quiet=True)
    failed = next((r for r in results if r.status == "failed"), None)
    if failed is not None:
        log.error(f"population of {len(jobs)} failed: {failed.error}")
    return results, where


def resumed_holding_locks(jobs: list[Job], engine) -> list[Result]:
    """Elsewhere (a Ray task, a SLURM element, maybe started again): this process holds the jobs' locks while it
    trains them, and reads back the members an earlier attempt finished."""
    locks = JobLocks()
    try:
        for job in jobs:
            locks.wait(job.job_dir)  # held: another attempt trains it; its result is read back
        tidy(jobs)
        results = engine.resume(jobs, quiet=True)
        for job, result in zip(jobs, results):
            if result.finished:
                locks.finished(job.job_dir)
        return results
    finally:
        locks.release()


def tidy(jobs: list[Job]) -> None:
    """Remove the temporary files that writers of a population's files left when they were killed mid-write (kill -9,
    a worker stopped by Ctrl-C, a node lost). Called by the process that holds the jobs' locks, so no writer of
    these files is alive."""
    for path in layout.population_files(jobs):
        for temporary in temporaries(path):
            temporary.unlink(missing_ok=True)


def failures(error: BaseException, jobs: list[Job]) -> list[Result]:
    """Every job of a population failed by one error (recorded by whoever can write their result.json)."""
    return [failure(error, job.config, job.overrides) for job in jobs]


def on_local(populations: Sequence[list], workers: int) -> Finished:
    """In this process, or on `workers` worker processes, each seeing one GPU of its own."""
    if not workers:
        for number, jobs in enumerate(populations):
            yield number, *train_population(jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOADED)
    gpus = context.Queue()
    for gpu in range(workers):
        gpus.put(gpu)
    start = (gpus, dict(os.environ))
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=start)
    futures, processes = {}, []
    try:
        share = share_of_cores(workers)
        futures |= {
            pool.submit(train_population, jobs, None, False, share): number for number, jobs in enumerate(populations)
        }
        processes = handles(multiprocessing.active_children())  # the pool starts its workers as work is submitted
        for future in as_completed(futures):
            yield futures[future], *future.result()
    except BaseException as stop:  # Ctrl-C, a stop signal, or the driver stopping: the workers stop with it
        in_flight = [populations[number] for future, number in futures.items() if future.running()]
        processes = processes or handles(multiprocessing.active_children())
        if isinstance(stop, signals.StopSignal):  # each saves its population at its step's end, then ends by it
            signal_each(processes, stop.signum)
            wait_for_ends(processes, SAVE_GRACE_S)
        signal_each(processes, signal.SIGKILL)  # now
        wait_for_ends(processes)
        pool.shutdown(wait=False, cancel_futures=True)
        for jobs in in_flight:  # the driver holds their locks: what its killed workers left is its to tidy
            tidy(jobs)
        raise
    finally:
        for worker in processes:
            os.close(worker.ended)
    pool.shutdown()


class Worker(NamedTuple):
    pid: int
    ended: int  # a file descriptor that reads ready once the process has ended
    is_pidfd: bool


def handles(children: Sequence) -> list[Worker]:
    """Handles on the worker processes themselves (pidfds). Their parent, the fork server, reports their ends to
    multiprocessing; a stop signal sent to the whole process group (a cloud's shutdown, SLURM preempting the sweep's
    own job) ends the server too, and multiprocessing then reports every worker ended while each is still saving.
    Where there are no pidfds (macOS, Linux before 5.3), multiprocessing's word it is."""
    opened = []
    for child in children:
        try:
            opened.append(Worker(child.pid, os.pidfd_open(child.pid), True))
        except ProcessLookupError:  # already ended and reaped
            pass
        except (AttributeError, OSError):
            opened.append(Worker(child.pid, os.dup(child.sentinel), False))
    return opened


def signal_each(workers: Sequence[Worker], signum: int) -> None:
    for worker in workers:
        with suppress(ProcessLookupError):
            if worker.is_pidfd:  # never a later process that was given the same pid
                signal.pidfd_send_signal(worker.ended, signum)
            else:
                os.kill(worker.pid, signum)


def wait_for_ends(workers: Sequence[Worker], seconds: float | None = None) -> None:
    """Until every worker has ended, or `seconds` have passed."""
    from multiprocessing.connection import wait

    deadline = None if seconds is None else time.monotonic() + seconds
    running = [worker.ended for worker in workers]
    while running and (deadline is None or time.monotonic() < deadline):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        running = [ended for ended in running if ended not in wait(running, left)]


# How long a stopped driver waits for its local workers to save their populations (a step and a save: seconds; a
# signal in an epoch's last step waits for the test pass). SLURM's KillWait, the grace before SIGKILL, is 30 s.
SAVE_GRACE_S = 30


def share_of_cores(processes: int) -> int:
    """The cores each of `processes` training processes on this machine may use (at least one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // processes)


# What the local workers' fork server imports once, for all of a driver's workers: each worker spawned afresh spent
# seconds of CPU importing torch and Lightning. The server never touches CUDA, so its forks may use it (torch's
# docs: spawn or forkserver); CUDA reads CUDA_VISIBLE_DEVICES when it starts, in the worker, not at import.
PRELOADED = ["sherlocked.train", "sherlocked.training.engine"]


def _start_worker(gpus, environ: dict[str, str]) -> None:
    """Worker initializer: die with the driver (even killed with -9), see one GPU only, and the driver's environment
    as it is now (the fork server keeps the one it started with: a test's, in a test run's long-lived process)."""
    import multiprocessing

    driver = multiprocessing.parent_process().sentinel
    threading.Thread(target=_end_with, args=(driver,), name="sherlocked-driver-watch", daemon=True).start()
    os.environ.clear()
    os.environ.update(environ, CUDA_VISIBLE_DEVICES=str(gpus.get()))


def _end_with(driver_sentinel: int) -> None:
    """Ends this worker as soon as its driver has gone (its end of a pipe closed: a -9 too). The kernel's notice of a
    parent's death (PR_SET_PDEATHSIG) would come from the fork server, which outlives a killed driver while any
    worker it forked lives (each holds the server's pipe): a killed driver's workers trained on, orphans."""
    from multiprocessing.connection import wait

    wait([driver_sentinel])
    os._exit(1)  # as a kill: the driver that held this worker's locks and took its results is gone


def on_ray(populations: Sequence[list], settings: Mapping, gpus: float) -> Finished:
    """One Ray task per population, on the cluster at ray.address (a local Ray started for the sweep if null)."""
    ray = require("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(address=settings["ray"]["address"], **(settings["ray"]["init"] or {}))
    options = {"num_gpus": gpus, "num_cpus": settings["cpus_per_population"], "max_retries": settings["max_retries"]}
    # max_calls=1: a fresh worker per GPU task, so CUDA memory is freed between populations (hydra#1974)
    task = ray.remote(max_calls=1 if gpus else 0)(train_population).options(**options)
    try:
        threads = settings["cpus_per_population"]  # Ray's num_cpus for the task
        pending = {task.remote(jobs, None, True, threads): number for number, jobs in enumerate(populations)}
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            number = pending.pop(ref)
            try:
                yield number, *ray.get(ref)
            except ray.exceptions.RayError as error:  # retries spent: the population failed
                yield number, failures(error, populations[number]), "ray"
    finally:
        if started:
            ray.shutdown()


class TrainPopulation:
    """A SLURM array element's work; preempted or timed out, submitit requeues it through checkpoint(),
    and the new attempt trains only the members without a finished result.json."""

    def __call__(self, jobs: list[Job], gpu: str | None = None, threads: int | None = None) -> tuple[list[Result], str]:
        requeue_outlives_its_kill()
        return train_population(jobs, gpu, resume=True, threads=threads)

    def checkpoint(self, jobs: list[Job], gpu: str | None = None, threads: int | None = None):
        import submitit

        return submitit.helpers.DelayedSubmission(self, jobs, gpu, threads)


def requeue_outlives_its_kill() -> None:
    """submitit's time-limit handler (SIGUSR2) runs with SIGTERM ignored. Its `scontrol requeue` makes SLURM send
    SIGTERM to every process of the element, scontrol among them; on a busy node scontrol died of it before it
    exited, submitit took that for a failed requeue, and the element failed for good. A child keeps an ignored
    signal ignored, so scontrol finishes; the handler then ends this process (submitit's exit)."""
    handler = signal.getsignal(signal.SIGUSR2)
    if not callable(handler) or threading.current_thread() is not threading.main_thread():
        return  # not under submitit's handler, or where no handler can be set

    def requeue(signum, frame):
        before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            handler(signum, frame)
        finally:
            signal.signal(signal.SIGTERM, before)

    signal.signal(signal.SIGUSR2, requeue)


def executor(settings: Mapping, gpus: float, folder: str):
    """submitit's executor with the launcher's SLURM settings (submitit writes the sbatch script)."""
    submitit = require("submitit")
    conf = settings["submitit"]
    # slurm_max_num_timeout: requeues after a timeout (preemptions are requeued anyway)
    executor = submitit.AutoExecutor(
        folder=folder, cluster=conf["cluster"], slurm_max_num_timeout=settings["max_retries"]
    )
    slurm = {
        "slurm_partition": conf["partition"],
        "slurm_mem_gb": conf["mem_gb"],
        "slurm_array_parallelism": conf["array_parallelism"],
        "slurm_additional_parameters": conf["additional_parameters"],
        "slurm_setup": conf["setup"],
        "slurm_signal_delay_s": conf.get("signal_delay_s"),
    }
    executor.update_parameters(
        timeout_min=conf["timeout_min"],
        gpus_per_node=conf["gpus_per_node"] if conf["gpus_per_node"] is not None else math.ceil(gpus),
        cpus_per_task=conf["cpus_per_task"] or settings["cpus_per_population"],
        tasks_per_node=1,
        nodes=1,
        **({k: v for k, v in slurm.items() if v is not None} if executor.cluster == "slurm" else {}),
    )
    return executor


def on_submitit(populations: Sequence[list], settings: Mapping, gpus: float) -> Finished:
    """One SLURM array, one element per population (cluster=local: the same on this machine)."""
    require("submitit")
    from submitit.helpers import as_completed

    run = executor(settings, gpus, str(settings["submitit"]["folder"]))
    if run.cluster == "slurm":
        yield from on_slurm(run.map_array(TrainPopulation(), list(populations)), populations)
        return
    # Locally, submitit would start every element at once on every GPU (hydra#2757, #2323): run at most
    # array_parallelism at a time, each on one GPU of its own.
    free = _visible_gpus() if gpus else []  # GPUs no element is using
    limit = max(1, min(settings["submitit"]["array_parallelism"], len(free) or len(populations)))
    waiting, running = list(enumerate(populations)), {}
    while waiting or running:
        while waiting and len(running) < limit:
            number, jobs = waiting.pop(0)
            gpu = free.pop(0) if free else None
            with output_to(Path(run.folder) / "controllers.log"):
                job = run.submit(TrainPopulation(), jobs, gpu, share_of_cores(limit))
            running[job.job_id] = (number, job, gpu)
        job = next(as_completed([job for _, job, _ in running.values()], poll_frequency=0.5))
        number, _, gpu = running.pop(job.job_id)
        if gpu is not None:
            free.append(gpu)
        yield number, *_outcome(job, populations[number])


@contextmanager
def output_to(path: Path):
    """The output of processes started here goes to `path`, not the terminal. submitit's local controller (one
    per element, meant to outlive the sweep) shares the sweep's terminal: Ctrl-C stops it, as it should, but it
    printed its KeyboardInterrupt traceback below the sweep's last line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(path, "ab") as log_file:
            os.dup2(log_file.fileno(), 1)
            os.dup2(log_file.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved):
            os.dup2(copy, fd)
            os.close(copy)


# What SLURM says of an element that ended without a result (COMPLETED ones have theirs, read by submitit).
ENDED = {"CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}


class SlurmEnded(RuntimeError):
    """An element SLURM ended without a result; the message is the one line its jobs' results keep."""

    def __init__(self, job_id: str, state: str):
        if state == "CANCELLED":
            said = f"SLURM cancelled job {job_id} (scancel, or the scheduler)"
        else:
            said = f"SLURM job {job_id} ended {state} without a result"
        super().__init__(f"{said}; run the same command again to train it")


def on_slurm(submitted: list, populations: Sequence[list], every_s: float = 2.0) -> Finished:
    """The array's elements as they finish. submitit learns an element's state from sacct, which a cluster
    without accounting storage does not answer: an element cancelled there never counted as done. squeue
    says what SLURM did with it (while it remembers the job: MinJobAge, 300 s by default)."""
    pending = {job.job_id: (number, job) for number, job in enumerate(submitted)}
    while pending:
        states = slurm_states({job_id.split("_")[0] for job_id in pending})
        for job_id, (number, job) in list(pending.items()):
            if job.done():
                del pending[job_id]
                yield number, *_outcome(job, populations[number])
            elif states.get(job_id) in ENDED:
                del pending[job_id]
                yield number, failures(SlurmEnded(job_id, states[job_id]), populations[number]), f"SLURM job {job_id}"
        if pending:
            time.sleep(every_s)


def slurm_states(arrays: set[str]) -> dict[str, str]:
    """Each element's state (JobID_index: RUNNING, CANCELLED, ...) of the arrays, as squeue has it now."""
    command = ["squeue", "-h", "-t", "all", "-o", "%i %T", "-j", ",".join(sorted(arrays))]
    listed = subprocess.run(command, capture_output=True, text=True).stdout
    return dict(line.split() for line in listed.splitlines() if len(line.split()) == 2)


def _outcome(job, jobs: list) -> tuple[list[Result], str]:
    try:
        return job.result()
    except Exception as error:  # the element failed for good (after its requeues)
        if "state: " in str(error):  # submitit's "has not produced any output (state: CANCELLED by 0)", via sacct
            error = SlurmEnded(job.job_id, str(error).rsplit("state: ", 1)[1].split()[0].rstrip(")"))
        return failures(error, jobs), f"submitit job {job.job_id}"


def _visible_gpus() -> list[str]:
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu for gpu in listed.split(",") if gpu]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]
