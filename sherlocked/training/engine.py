"""The engine: jobs in, a trained population and one result.json per job out.

    python -c "from sherlocked.training.engine import run; help(run)"

Every launcher ends in train(jobs) (sherlocked.records.job.Job records): a list of jobs trained as one
population (a single run is a population of one), each leaving result.json in its own directory and a
run in each tracker the config names (conf/logger: TensorBoard by default). Reading top to bottom:
run/resume (skip what is finished), train (never raises: a failure is every member's result), fit
(checkpoint, build, Lightning's fit, collect, record, trackers' finish), build, collect. Hydra's entry
point is sherlocked/train.py; train_job is what it calls.
"""

import contextlib
import gc
import logging
import shlex
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from sherlocked.records import layout, outcomes
from sherlocked.records.job import Job, population_task
from sherlocked.records.results import Result, failure, finished_result, git_commit, versions
from sherlocked.runtime import phases
from sherlocked.runtime.atomic import discard
from sherlocked.spec.checks import compile_mode, validate
from sherlocked.spec.config import ConfigError, activations, disagreement, hparams
from sherlocked.spec.datasets import DataError
from sherlocked.training import checkpoints
from sherlocked.training.data import StudyDataModule
from sherlocked.training.module import PopulationModule
from sherlocked.training.optimizers import population_optimizer
from sherlocked.training.reporter import EpochBar, Reporter
from sherlocked.training.trackers import each, open_trackers

log = logging.getLogger(__name__)
# Lightning 2.6 calls a torch API that torch 2.14 deprecates, once per fit: not ours to fix, not useful to show.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# Where SLURM is installed, Lightning suggests srun once per fit; sherlocked submits its own SLURM arrays (submitit).
warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system but is not used")
# Lightning's banners (GPU/TPU available, a logging service's advert, "max_epochs reached"): not about the run.
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)


def run(
    cfgs: Sequence[DictConfig],
    job_dirs: Sequence[Path],
    overrides: Sequence[list[str]] | None = None,
    quiet: bool = False,
) -> list[Result]:
    """Composed configs trained in the given dirs (as resume does): the benchmark's and the tests' way in."""
    overrides = overrides or [[] for _ in cfgs]
    return resume([Job.of(cfg, d, o) for cfg, d, o in zip(cfgs, job_dirs, overrides)], quiet)


def resume(jobs: Sequence[Job], quiet: bool = False) -> list[Result]:
    """Every job's result: a finished one (same config) is read back, the others are trained as one population."""
    results = [finished_result(job.job_dir, job.config) for job in jobs]
    trained = iter(train([job for job, result in zip(jobs, results) if result is None], quiet))
    return [result if result is not None else next(trained) for result in results]


def train(jobs: Sequence[Job], quiet: bool = False) -> list[Result]:
    """Train the jobs as one population; they must agree on everything but member keys (sherlocked.spec.config).

    Never raises for a training error: it is recorded in result.json of every job it stopped
    and returned as their results (with the exception, for a caller that wants to raise it).
    """
    if not jobs:
        return []
    gc.freeze()  # what the process held before the population outlives it: the collection below skips it
    try:
        return fit(jobs, quiet)
    except Exception as error:
        results = [failure(error, job.config, job.overrides) for job in jobs]
        for result in results:
            result.exception = error
        outcomes.record(jobs, results)  # never over a finished result (another sweep's)
        return results
    finally:
        # The population's trainer, module, loops and loggers refer to one another, so only Python's cyclic
        # collector frees them, and with them its weights, gradients and optimiser state (100 MB for 16 members
        # of the study's MLP). Left to itself it ran a full collection rarely, the rarer the more objects a
        # process held: a sweep's driver grew by 1.1 MB a job (2.3 GB at 1,024 one-step jobs, 1.1 GB when
        # collected). Collected here, walking only what the population made (the rest is frozen), then thawed.
        gc.collect()
        gc.unfreeze()


def fit(jobs: Sequence[Job], quiet: bool) -> list[Result]:
    """Build the population, fit it (from its checkpoint, where a killed run left one), write each
    member's result.json, then end its runs in the trackers, then drop the checkpoint."""
    every_s = jobs[0].config.get("checkpoint_every_s")
    checkpoint = None if every_s is None else layout.checkpoint(jobs)
    resumed, resumed_step = checkpoints.saved_at(checkpoint) if checkpoint else (0, 0)
    saved = checkpoints.tracker_states(checkpoint) if resumed_step else None  # how each tracker goes on
    if resumed_step:
        log.info(f"population of {len(jobs)} resumes after step {resumed_step} (epoch {resumed}) from {checkpoint}")
    # In a sweep, the population says where it stands (sherlocked.sweep.progress); a single run has its progress bar.
    report = layout.progress(jobs) if quiet else None
    try:
        with phases.timed("build"):
            callbacks = [checkpoints.PopulationCheckpoint(checkpoint, every_s)] if checkpoint else []
            callbacks += [Reporter(report, [" ".join(job.overrides) for job in jobs])] if report else []
            module, data, trainer = build(jobs, quiet, callbacks, saved)
        with failing(module.trackers):
            start = time.perf_counter()
            with phases.timed("fit"):  # the module counts its steps' share as "steps"
                stopped = interruptible_fit(trainer, module, data, checkpoint if resumed_step else None)
            if not stopped:
                wall_time = time.perf_counter() - start
                with phases.timed("write"):
                    results = collect(jobs, module, wall_time, resumed, resumed_step)
                    outcomes.record(jobs, results)
                    each(module.trackers, "finish", results)  # after result.json: a tracker never holds one alone
    finally:
        if report:
            discard(report)
    if stopped:
        stopped.end(resume_command(jobs))  # the process ends here: its jobs have no result, their population is saved
    if checkpoint:
        discard(checkpoint)
    return results


def resume_command(jobs: Sequence[Job]) -> str | None:
    """The command that goes on from a single run's saved population: the same overrides in the same run dir (the
    same command would start in a new one, named by the time). None for a sweep's populations: the same command
    finds them, in the sweep's dir."""
    if jobs[0].sweep_dir is not None or not HydraConfig.initialized():
        return None
    overrides = HydraConfig.get().overrides
    kept = [o for o in [*overrides.hydra, *overrides.task] if not o.startswith(("hydra.run.dir=", "hydra.mode="))]
    return shlex.join(["python", "-m", "sherlocked.train", *kept, f"hydra.run.dir={jobs[0].job_dir}"])


def interruptible_fit(trainer, module, data, checkpoint: Path | None) -> checkpoints.Stopped | None:
    """Lightning's fit; returns how a stop signal stopped it, if one did. Its Ctrl-C stays a KeyboardInterrupt:
    Lightning catches the interrupt, tidies up, ignores SIGINT from then on and exits 1, and the sweep's own
    handler (one line, exit code 130) would never run."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=checkpoint)
    except checkpoints.Stopped as stopped:
        return stopped
    except SIGTERMException:  # Lightning's own handler: no checkpoint to save in (checkpoint_every_s null), or before
        # the population's handlers took over from Lightning's
        return checkpoints.Stopped(signal.SIGTERM, trainer.global_step, None)
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, handler)  # a second Ctrl-C may stop the driver's tidying up, as before
        raise KeyboardInterrupt from None
    return None


@contextlib.contextmanager
def failing(trackers: dict):
    """A training error ends the population's runs in its trackers as failed (the error goes on to train())."""
    try:
        yield
    except Exception:
        each(trackers, "fail")
        raise


def build(jobs: Sequence[Job], quiet: bool, callbacks: Sequence = (), saved: dict | None = None) -> tuple:
    """The population's module (with its trackers: `saved` their states from its checkpoint, None afresh), data and
    trainer (with `callbacks` after a user's own, +trainer.callbacks=[...], which sherlocked.spec.checks has refused
    where they cannot work on a population)."""
    specs = [validate(job.config) for job in jobs]
    if problem := disagreement([job.config for job in jobs]):
        raise ConfigError(problem)
    first = jobs[0].config  # what the jobs share: data, optimiser, trainer, logger
    for job in jobs:
        job.job_dir.mkdir(parents=True, exist_ok=True)
    data = StudyDataModule(**first["dataset"], seeds=[s.seed for s in specs])
    diagnostics = first.get("diagnostics")
    diagnostics = diagnostics if diagnostics and diagnostics["enabled"] else None
    optimizer = population_optimizer([job.config["model"]["optimizer"] for job in jobs])
    module = PopulationModule(specs, optimizer, None, diagnostics, compile_mode(first.get("compile")))
    if quiet:  # a sweep prints its own progress line per job; Lightning's banners would drown it
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    settings = {"enable_progress_bar": False} if quiet else {}
    if not quiet and first["trainer"].get("enable_progress_bar", True):
        callbacks = [*callbacks, EpochBar()]
    trainer = dict(first["trainer"])
    users = trainer.pop("callbacks", None) or []  # a list, or Hydra's habit: a mapping of names to callbacks
    callbacks = [*(instantiate(c) for c in (users.values() if isinstance(users, dict) else users)), *callbacks]
    trainer.setdefault("default_root_dir", str(layout.common_dir(jobs)))  # their files: the run's, not the cwd's
    if trainer.get("logger") is True and jobs[0].sweep_dir is not None:
        del trainer["logger"]
        settings.update(logger=lightning_logger(jobs))
    if callbacks:
        settings.update(callbacks=callbacks)
    if any(isinstance(c, checkpoints.PopulationCheckpoint) for c in callbacks):  # Lightning refuses them if it is off
        settings.update(enable_checkpointing=True)
    trainer = instantiate(trainer, **settings)
    module.trackers = open_trackers(first, jobs, saved)  # last: nothing after it fails with the runs open
    return module, data, trainer


def lightning_logger(jobs: Sequence[Job]) -> TensorBoardLogger:
    """Lightning's own logger in a sweep, where trainer.logger=true asks for it (a user's LearningRateMonitor writes
    to it): <sweep dir>/lightning_logs/<population>, so that populations training at once never pick the same
    version_N, and a resumed one goes on in its own."""
    key = layout.population_key([job.config for job in jobs])
    return TensorBoardLogger(layout.common_dir(jobs), name="lightning_logs", version=key)


def collect(
    jobs: Sequence[Job], module: PopulationModule, wall_time: float, resumed: int = 0, step: int = 0
) -> list[Result]:
    """Each member's result."""
    results = []
    for k, job in enumerate(jobs):
        history = module.member_history(k)
        final = {name: curve[-1] for name, curve in history.items()}
        result = Result(
            status="ok" if module.alive[k] else "diverged",
            config=job.config,
            overrides=job.overrides,
            hparams=hparams(job.config),
            final_test_acc=final["test_acc"],
            final=final,
            history={"epoch": list(range(1, len(history["test_acc"]) + 1)), **history},
            diagnostics=module.member_diagnostics(k),
            wall_time_s=wall_time,
            resumed_epochs=resumed,
            resumed_step=step,
            population_size=len(jobs),
            versions=versions(),
            git_commit=git_commit(),
        )
        results.append(result)
    return results


@population_task
def train_job(cfg: DictConfig) -> Result:
    """One Hydra job (the task function of sherlocked/train.py): train it, or find it finished; say where it is."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    # Every launcher numbers a sweep's jobs; a single run has no number (hydra.mode is unset in some harnesses).
    multirun = OmegaConf.select(hydra_cfg, "job.num", default=None) is not None
    # A sweep's jobs share its dir (the cwd the sweep started in: a job may run in its own dir, hydra.job.chdir).
    sweep_dir = Path(hydra_cfg.runtime.cwd) / hydra_cfg.sweep.dir if multirun else None
    job = Job.of(cfg, job_dir, list(hydra_cfg.overrides.task), sweep_dir=sweep_dir)
    (result,) = resume([job], quiet=multirun)
    if result.status == "failed":
        if multirun:  # recorded in result.json; the sweep goes on and counts it
            print(f"job failed: {result.error}", file=sys.stderr)
            return result
        if isinstance(result.exception, ConfigError | DataError | checkpoints.CheckpointUnreadable):
            print(f"sherlocked: {result.exception}", file=sys.stderr)
            sys.exit(1)
        raise result.exception
    acts = ", ".join(activations(cfg))
    skipped = " (finished before, skipped)" if result.skipped else ""
    print(f"final test accuracy: {result.final_test_acc:.2%} ({acts}; seed {cfg.seed}; {cfg.dataset.name}){skipped}")
    if not multirun:
        print(f"result: {layout.result(job_dir)}")
        print(f"TensorBoard: python -m tensorboard.main --logdir {job_dir}")  # on PATH without an active venv
    return result
