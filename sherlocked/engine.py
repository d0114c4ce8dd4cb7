"""The engine: job configs in, a trained population and one result.json per job out.

    python -c "from sherlocked.engine import run; help(run)"

Every launcher ends in run(cfgs, job_dirs) or train(jobs): a list of jobs trained as one
population (a single run is a population of one), each leaving result.json and TensorBoard
events in its own directory. Hydra's entry point is sherlocked/train.py; this module is what
it calls (train_job), and what the population launcher and the benchmark call.
"""

import logging
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sherlocked import checkpoints, compiled, dashboard, phases, progress
from sherlocked.activations import MIX, ConfigError, parse
from sherlocked.config import activations, hparams
from sherlocked.data import SOURCES, TRAIN_SIZES, DataError, StudyDataModule
from sherlocked.module import PopulationModule
from sherlocked.optimizers import population_optimizer
from sherlocked.population import MemberSpec, batch_norm_layers
from sherlocked.results import (
    RESULT,
    Result,
    discard,
    failure,
    finished_result,
    git_commit,
    read_result,
    versions,
)

log = logging.getLogger(__name__)
# Lightning 2.6 calls a torch API that torch 2.14 deprecates, once per fit: not ours to fix, not useful to show.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def member_spec(cfg: Mapping) -> MemberSpec:
    """The model of one job, validated (raises ConfigError with the one line a user sees).

    cfg: a composed config (DictConfig) or its resolved plain form (what result.json stores).
    """
    acts = []
    for i, spec in enumerate(activations(cfg), start=1):
        try:
            acts.append(MIX.join(parse(spec)))
        except ConfigError as error:
            raise ConfigError(f"act{i}: {error}") from None
    model = cfg["model"]
    bn = model["batch_norm"]
    bn = OmegaConf.to_container(bn) if OmegaConf.is_config(bn) else bn
    widths = tuple(model["widths"])
    if not all(isinstance(w, int) and not isinstance(w, bool) for w in widths):
        raise ConfigError(f"model.widths={list(widths)} must be whole numbers")
    return MemberSpec(
        widths=widths,
        activations=tuple(acts),
        batch_norm=batch_norm_layers(bn, len(widths) - 1),
        output_activation=bool(model["output_activation"]),
        init=str(model["init"]),
        seed=cfg["seed"],  # checked by MemberSpec: 1.5 is no seed
    )


def validate(cfg: Mapping) -> MemberSpec:
    """Check everything a run needs before anything is written (cfg as for member_spec)."""
    spec = member_spec(cfg)
    data = cfg["dataset"]
    name = data["name"]
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(SOURCES)}")
    if spec.widths[0] != data["input_dim"] or spec.widths[-1] != data["num_classes"]:
        raise ConfigError(
            f"model.widths={list(spec.widths)} must start with {name}'s {data['input_dim']} inputs "
            f"and end with its {data['num_classes']} classes"
        )
    numbers = {  # key: (value, type, what it must be)
        "model.optimizer.lr": (cfg["model"]["optimizer"]["lr"], int | float, "a positive number"),
        "dataset.batch_size": (data["batch_size"], int, "a positive whole number"),
        "trainer.max_epochs": (cfg["trainer"]["max_epochs"], int, "a positive whole number"),
    }
    for key, (value, kind, meaning) in numbers.items():
        if not isinstance(value, kind) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key}={value!r} must be {meaning}")
    compiled.mode_of(cfg.get("compile"))
    size = TRAIN_SIZES.get(name)
    if size is not None and data["batch_size"] > size:
        raise ConfigError(f"dataset.batch_size={data['batch_size']} is more than {name}'s {size} training images")
    # Batch norm needs two samples a batch to have a variance (nn.BatchNorm1d refuses one), the last batch too.
    if spec.batch_norm and (data["batch_size"] == 1 or (size is not None and size % data["batch_size"] == 1)):
        raise ConfigError(
            f"dataset.batch_size={data['batch_size']} leaves a batch of one image, which batch norm "
            f"(model.batch_norm={cfg['model']['batch_norm']}) cannot normalise; choose another batch size"
        )
    return spec


@dataclass
class Job:
    """One job: its resolved config (plain, as result.json stores it), its directory, its overrides."""

    config: dict
    job_dir: Path
    overrides: list[str] = field(default_factory=list)
    # where its TensorBoard events go; None: <job dir>/<the logger's name>. A sweep's population launcher
    # names them by what the sweep varies (sherlocked.launcher.name_runs).
    events_dir: Path | None = None

    @classmethod
    def of(cls, cfg: DictConfig, job_dir: Path, overrides: Sequence[str] = ()) -> "Job":
        return cls(OmegaConf.to_container(cfg, resolve=True), Path(job_dir), list(overrides))


def run(
    cfgs: Sequence[DictConfig],
    job_dirs: Sequence[Path],
    overrides: Sequence[list[str]] | None = None,
    quiet: bool = False,
) -> list[Result]:
    """Every job's result: a finished one (same config) is read back, the others are trained as one population."""
    overrides = overrides or [[] for _ in cfgs]
    return resume([Job.of(cfg, d, o) for cfg, d, o in zip(cfgs, job_dirs, overrides)], quiet)


def resume(jobs: Sequence[Job], quiet: bool = False) -> list[Result]:
    """Every job's result: a finished one (same config) is read back, the others are trained as one population."""
    results = [finished_result(job.job_dir, job.config) for job in jobs]
    trained = iter(train([job for job, result in zip(jobs, results) if result is None], quiet))
    return [result if result is not None else next(trained) for result in results]


def train(jobs: Sequence[Job], quiet: bool = False) -> list[Result]:
    """Train the jobs as one population; they must share data, widths, optimiser, batch size and epochs.

    Never raises for a training error: it is recorded in result.json of every job it stopped
    and returned as their results (with the exception, for a caller that wants to raise it).
    """
    if not jobs:
        return []
    try:
        return fit(jobs, quiet)
    except Exception as error:
        results = []
        for job in jobs:
            job.job_dir.mkdir(parents=True, exist_ok=True)
            result = failure(error, job.config, job.overrides)
            stored = read_result(job.job_dir)
            if stored is None or not stored.finished:  # a finished result (another sweep's) is never replaced
                result.write(job.job_dir)
            result.exception = error
            results.append(result)
        return results


def fit(jobs: Sequence[Job], quiet: bool) -> list[Result]:
    """Build the population, fit it (from its checkpoint, where a killed run left one), write each
    member's TensorBoard HParams and result.json, then drop the checkpoint."""
    job_dirs, configs = [j.job_dir for j in jobs], [j.config for j in jobs]
    every_s = jobs[0].config.get("checkpoint_every_s")
    checkpoint = None if every_s is None else checkpoints.path_of(job_dirs, configs)
    resumed = checkpoints.saved_epochs(checkpoint) if checkpoint else 0
    if resumed:
        log.info(f"population of {len(jobs)} resumes after epoch {resumed} from {checkpoint}")
    # In a sweep, the population says where it stands (sherlocked.progress); a single run has its progress bar.
    report = progress.folder_of(job_dirs) / f"{checkpoints.population_key(configs)}.json" if quiet else None
    try:
        with phases.timed("build"):
            callbacks = [checkpoints.EpochCheckpoint(checkpoint, every_s)] if checkpoint else []
            callbacks += [progress.Reporter(report)] if report else []
            module, data, trainer, loggers = build(jobs, quiet, callbacks)
        start = time.perf_counter()
        with phases.timed("fit"):  # the module counts its steps' share as "steps"
            trainer.fit(module, datamodule=data, ckpt_path=checkpoint if resumed else None)
        wall_time = time.perf_counter() - start
        with phases.timed("write"):
            results = collect(jobs, module, loggers, wall_time, resumed)
    finally:
        if report:
            discard(report)
    if checkpoint:
        discard(checkpoint)
    return results


def build(jobs: Sequence[Job], quiet: bool, callbacks: Sequence = ()) -> tuple:
    """The population's module, data, trainer (with `callbacks`) and one TensorBoard logger per member."""
    specs = [validate(job.config) for job in jobs]
    first = jobs[0].config  # what the jobs share: data, optimiser, trainer, logger
    for job in jobs:
        job.job_dir.mkdir(parents=True, exist_ok=True)
    logger = instantiate(first["logger"], _partial_=True) if first.get("logger") else None
    loggers = [events_logger(logger, job) for job in jobs] if logger else []
    data = StudyDataModule(**first["dataset"], seeds=[s.seed for s in specs])
    diagnostics = first.get("diagnostics")
    diagnostics = diagnostics if diagnostics and diagnostics["enabled"] else None
    optimizer = population_optimizer([job.config["model"]["optimizer"] for job in jobs])
    module = PopulationModule(specs, optimizer, loggers, diagnostics, compiled.mode_of(first.get("compile")))
    if quiet:  # a sweep prints its own progress line per job; Lightning's banners would drown it
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    settings = {"enable_progress_bar": False} if quiet else {}
    if callbacks:
        settings.update(callbacks=list(callbacks))
    if any(isinstance(c, checkpoints.EpochCheckpoint) for c in callbacks):  # Lightning refuses them where it is off
        settings.update(enable_checkpointing=True)
    trainer = instantiate(first["trainer"], **settings)
    return module, data, trainer, loggers


def events_logger(logger, job: Job):
    if job.events_dir is None:
        return logger(save_dir=str(job.job_dir))
    return logger(save_dir=str(job.events_dir.parent), name=job.events_dir.name, version="")


def collect(
    jobs: Sequence[Job], module: PopulationModule, loggers: list, wall_time: float, resumed: int = 0
) -> list[Result]:
    """Each member's HParams (with its final metrics) and result.json."""
    results = []
    for k, job in enumerate(jobs):
        history = module.member_history(k)
        final = {name: curve[-1] for name, curve in history.items()}
        shown = hparams(job.config)
        if loggers:
            dashboard.log_session(loggers[k], shown, final)
            loggers[k].finalize("success")
        result = Result(
            status="ok" if module.alive[k] else "diverged",
            config=job.config,
            overrides=job.overrides,
            hparams=shown,
            final_test_acc=final["test_acc"],
            final=final,
            history={"epoch": list(range(1, len(history["test_acc"]) + 1)), **history},
            diagnostics=module.member_diagnostics(k),
            wall_time_s=wall_time,
            resumed_epochs=resumed,
            population_size=len(jobs),
            versions=versions(),
            git_commit=git_commit(),
        )
        result.write(job.job_dir)
        results.append(result)
    return results


def train_job(cfg: DictConfig) -> Result:
    """One Hydra job (the task function of sherlocked/train.py): train it, or find it finished; say where it is."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    # Every launcher numbers a sweep's jobs; a single run has no number (hydra.mode is unset in some harnesses).
    multirun = OmegaConf.select(hydra_cfg, "job.num", default=None) is not None
    (result,) = run([cfg], [job_dir], [list(hydra_cfg.overrides.task)], quiet=multirun)
    if result.status == "failed":
        if multirun:  # recorded in result.json; the sweep goes on and counts it
            print(f"job failed: {result.error}", file=sys.stderr)
            return result
        if isinstance(result.exception, ConfigError | DataError):
            print(f"sherlocked: {result.exception}", file=sys.stderr)
            sys.exit(1)
        raise result.exception
    acts = ", ".join(activations(cfg))
    skipped = " (finished before, skipped)" if result.skipped else ""
    print(f"final test accuracy: {result.final_test_acc:.2%} ({acts}; seed {cfg.seed}; {cfg.dataset.name}){skipped}")
    if not multirun:
        print(f"result: {job_dir / RESULT}")
        print(f"TensorBoard: tensorboard --logdir {job_dir}")
    return result
