"""Train the study's MLPs: one run, or a Hydra sweep of them.

    python -m sherlocked.train dataset=mnist_5k
    python -m sherlocked.train act1=relu act2=sigmoid act3=relu dataset=fashion_mnist trainer.max_epochs=2
    python -m sherlocked.train experiment=cifar10_4layer act4=tanh

Every launcher ends in run(cfgs, job_dirs): a list of jobs trained as one population
(a single run is a population of one), each leaving result.json and TensorBoard
events in its own directory.
"""

import logging
import sys
import time
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sherlocked.activations import MIX, ConfigError, parse
from sherlocked.data import SOURCES, DataError
from sherlocked.population import MemberSpec, batch_norm_layers
from sherlocked.results import RESULT, finished_result, git_commit, read_result, versions, write_json

# Lightning 2.6 calls a torch API that torch 2.14 deprecates, once per fit: not ours to fix, not useful to show.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def activations_of(cfg: DictConfig) -> tuple[str, ...]:
    """The top-level act1, act2, ... values, in order; a null one ends the list (a shorter model)."""
    acts, i = [], 1
    while cfg.get(f"act{i}") is not None:
        try:
            acts.append(MIX.join(parse(cfg[f"act{i}"])))
        except ConfigError as error:
            raise ConfigError(f"act{i}: {error}") from None
        i += 1
    return tuple(acts)


def member_spec(cfg: DictConfig) -> MemberSpec:
    """The model of one job, validated (raises ConfigError with the one line a user sees)."""
    model = cfg.model
    widths = tuple(int(w) for w in model.widths)
    bn = model.batch_norm
    bn = OmegaConf.to_container(bn) if OmegaConf.is_config(bn) else bn
    return MemberSpec(
        widths=widths,
        activations=activations_of(cfg),
        batch_norm=batch_norm_layers(bn, len(widths) - 1),
        output_activation=bool(model.output_activation),
        init=str(model.init),
        seed=int(cfg.seed),
    )


def validate(cfg: DictConfig) -> MemberSpec:
    """Check everything a run needs before anything is written."""
    spec = member_spec(cfg)
    data = cfg.dataset
    if data.name not in SOURCES:
        raise ConfigError(f"unknown dataset {data.name!r}; choose from {', '.join(SOURCES)}")
    if spec.widths[0] != data.input_dim or spec.widths[-1] != data.num_classes:
        raise ConfigError(
            f"model.widths={list(spec.widths)} must start with {data.name}'s {data.input_dim} inputs "
            f"and end with its {data.num_classes} classes"
        )
    positive = {
        "model.optimizer.lr": cfg.model.optimizer.lr,
        "dataset.batch_size": data.batch_size,
        "trainer.max_epochs": cfg.trainer.max_epochs,
    }
    for key, value in positive.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{key}={value!r} must be a positive number")
    return spec


def hparams(cfg: DictConfig, spec: MemberSpec) -> dict:
    """What varies in the study, under the same keys in every run so TensorBoard can compare sweeps."""
    acts = {f"act{i}": spec.activations[i - 1] if i <= spec.layers else "none" for i in range(1, 5)}
    return {
        "dataset": cfg.dataset.name,
        "widths": "-".join(map(str, spec.widths)),
        **acts,
        "batch_norm": ",".join(map(str, spec.batch_norm)) or "none",
        "output_activation": spec.output_activation,
        "init": spec.init,
        "lr": float(cfg.model.optimizer.lr),
        "momentum": float(cfg.model.optimizer.get("momentum", 0.0)),
        "batch_size": int(cfg.dataset.batch_size),
        "epochs": int(cfg.trainer.max_epochs),
        "seed": spec.seed,
    }


def run(
    cfgs: Sequence[DictConfig],
    job_dirs: Sequence[Path],
    overrides: Sequence[list[str]] | None = None,
    quiet: bool = False,
) -> list[dict]:
    """Train the jobs that have no finished result yet, as one population; return every job's result.

    The jobs must share data, widths, optimiser, batch size and epochs. A job whose
    result.json is finished with the same config is skipped (a sweep resumes); a failure
    is recorded in result.json of every job it stopped, then raised.
    """
    job_dirs = [Path(d) for d in job_dirs]
    overrides = [list(o) for o in overrides] if overrides else [[] for _ in cfgs]
    configs = [OmegaConf.to_container(cfg, resolve=True) for cfg in cfgs]
    results = [finished_result(d, c) for d, c in zip(job_dirs, configs)]
    todo = [i for i, result in enumerate(results) if result is None]
    if todo:
        jobs = [(cfgs[i], job_dirs[i], overrides[i], configs[i]) for i in todo]
        try:
            trained = train_population(jobs, quiet)
        except Exception as error:
            for _, job_dir, job_overrides, config in jobs:
                job_dir.mkdir(parents=True, exist_ok=True)
                write_json(job_dir / RESULT, failure(error, job_overrides, config))
            raise
        for i, result in zip(todo, trained):
            results[i] = result
    return results


def failure(error: BaseException, overrides: list[str], config: dict) -> dict:
    message = f"{type(error).__name__}: {error}"
    trace = "".join(traceback.format_exception(error))
    return {"status": "failed", "error": message, "traceback": trace, "overrides": overrides, "config": config}


def train_population(jobs: list[tuple], quiet: bool) -> list[dict]:
    """jobs: (cfg, job_dir, overrides, resolved config) each; returns their results, written to result.json."""
    from hydra.utils import instantiate

    from sherlocked.data import StudyDataModule
    from sherlocked.module import PopulationModule

    cfgs = [cfg for cfg, *_ in jobs]
    specs = [validate(cfg) for cfg in cfgs]
    first = cfgs[0]
    for _, job_dir, *_ in jobs:
        job_dir.mkdir(parents=True, exist_ok=True)
    loggers = [instantiate(cfg.logger, save_dir=str(d)) for cfg, d, *_ in jobs] if first.logger else []
    data = StudyDataModule(**first.dataset, seeds=[s.seed for s in specs])
    diagnostics = first.get("diagnostics")
    diagnostics = OmegaConf.to_container(diagnostics) if diagnostics and diagnostics.enabled else None
    module = PopulationModule(specs, instantiate(first.model.optimizer), loggers, diagnostics)
    if quiet:  # a sweep prints its own progress line per job; Lightning's banners would drown it
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    trainer = instantiate(first.trainer, **({"enable_progress_bar": False} if quiet else {}))

    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    wall_time = time.perf_counter() - start

    results = []
    for k, ((cfg, job_dir, job_overrides, config), spec) in enumerate(zip(jobs, specs)):
        history = module.member_history(k)
        final = {name: curve[-1] for name, curve in history.items()}
        diverged = not bool(module.alive[k])
        if loggers:
            metrics = {f"hp/{name}": value for name, value in final.items()}
            loggers[k].log_hyperparams(hparams(cfg, spec), metrics)
            loggers[k].finalize("success")
        result = {
            "status": "diverged" if diverged else "ok",
            "diverged": diverged,
            "final_test_acc": final["test_acc"],
            "final": final,
            "history": {"epoch": list(range(1, len(history["test_acc"]) + 1)), **history},
            "diagnostics": module.member_diagnostics(k),
            "hparams": hparams(cfg, spec),
            "overrides": job_overrides,
            "config": config,
            "wall_time_s": wall_time,
            "population_size": len(specs),
            "versions": versions(),
            "git_commit": git_commit(),
        }
        write_json(job_dir / RESULT, result)
        results.append(result)
    return results


def train_job(cfg: DictConfig) -> dict:
    """One Hydra job: train it (or find it finished), say where its result is, return the result."""
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    # Every launcher numbers a sweep's jobs; a single run has no number (hydra.mode is unset in some harnesses).
    multirun = OmegaConf.select(hydra_cfg, "job.num", default=None) is not None
    try:
        (result,) = run([cfg], [job_dir], [list(hydra_cfg.overrides.task)], quiet=multirun)
    except Exception as error:
        if multirun:  # recorded in result.json; the sweep goes on and counts it
            print(f"job failed: {type(error).__name__}: {error}", file=sys.stderr)
            return read_result(job_dir)
        if isinstance(error, ConfigError | DataError):
            print(f"sherlocked: {error}", file=sys.stderr)
            sys.exit(1)
        raise
    acts = ", ".join(activations_of(cfg))
    skipped = " (finished before, skipped)" if result.get("skipped") else ""
    print(f"final test accuracy: {result['final_test_acc']:.2%} ({acts}; seed {cfg.seed}; {cfg.dataset.name}){skipped}")
    if not multirun:
        print(f"result: {job_dir / RESULT}")
        print(f"TensorBoard: tensorboard --logdir {job_dir}")
    return result


main = hydra.main(version_base="1.3", config_path="../conf", config_name="train")(train_job)

if __name__ == "__main__":
    main()
