"""Train the study's MLPs: one run, or a Hydra sweep of them.

    python -m sherlocked.train dataset=mnist_5k
    python -m sherlocked.train act1=relu act2=sigmoid act3=relu dataset=fashion_mnist trainer.max_epochs=2
    python -m sherlocked.train experiment=cifar10_4layer act4=tanh

Every launcher ends in run(cfgs, job_dirs): a list of jobs trained as one population
(a single run is a population of one), each leaving result.json and TensorBoard
events in its own directory.
"""

import sys
import time
from collections.abc import Sequence
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sherlocked.activations import MIX, ConfigError, parse
from sherlocked.data import SOURCES, DataError
from sherlocked.population import MemberSpec, batch_norm_layers
from sherlocked.results import RESULT, git_commit, versions, write_json


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


def run(cfgs: Sequence[DictConfig], job_dirs: Sequence[Path], overrides: Sequence[list[str]] | None = None) -> list:
    """Train the jobs as one population (they must share data, widths, optimiser, batch size, epochs)."""
    from hydra.utils import instantiate

    from sherlocked.data import StudyDataModule
    from sherlocked.module import PopulationModule

    specs = [validate(cfg) for cfg in cfgs]
    job_dirs = [Path(d) for d in job_dirs]
    overrides = overrides or [[] for _ in cfgs]
    first = cfgs[0]
    for d in job_dirs:
        d.mkdir(parents=True, exist_ok=True)
    loggers = [instantiate(cfg.logger, save_dir=str(d)) for cfg, d in zip(cfgs, job_dirs)] if first.logger else []
    data = StudyDataModule(**first.dataset, seeds=[s.seed for s in specs])
    module = PopulationModule(specs, instantiate(first.model.optimizer), loggers)
    trainer = instantiate(first.trainer)

    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    wall_time = time.perf_counter() - start

    results = []
    for k, (cfg, spec, job_dir) in enumerate(zip(cfgs, specs, job_dirs)):
        history = module.member_history(k)
        final = {name: curve[-1] for name, curve in history.items()}
        if loggers:
            metrics = {f"hp/{name}": value for name, value in final.items()}
            loggers[k].log_hyperparams(hparams(cfg, spec), metrics)
            loggers[k].finalize("success")
        result = {
            "status": "ok",
            "diverged": not bool(module.alive[k]),
            "final_test_acc": final["test_acc"],
            "final": final,
            "history": {"epoch": list(range(1, len(history["test_acc"]) + 1)), **history},
            "hparams": hparams(cfg, spec),
            "overrides": list(overrides[k]),
            "config": OmegaConf.to_container(cfg, resolve=True),
            "wall_time_s": wall_time,
            "population_size": len(specs),
            "versions": versions(),
            "git_commit": git_commit(),
        }
        write_json(job_dir / RESULT, result)
        results.append(result)
    return results


class ValidateConfig(Callback):
    """Stops a bad command line before Hydra writes anything: one line on stderr, exit code 2."""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _validate_or_exit(config)

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        for job_cfg in each_swept_value(config):
            _validate_or_exit(job_cfg)


def each_swept_value(config: DictConfig):
    """One composed job config per value of each swept key (the others at their first value).

    That is sum(len(values)) compositions instead of prod(len(values)): every value a
    user typed is checked before the sweep starts, at a cost that stays small.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    choices = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            choices.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    first = [values[0] for values in choices]
    loader = GlobalHydra.instance().config_loader()
    yield loader.load_sweep_config(config, first)
    for i, values in enumerate(choices):
        for value in values[1:]:
            yield loader.load_sweep_config(config, first[:i] + [value] + first[i + 1 :])


def _validate_or_exit(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except ConfigError as error:
        print(f"sherlocked: {error}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        (result,) = run([cfg], [job_dir], [list(hydra_cfg.overrides.task)])
    except (ConfigError, DataError) as error:
        sys.exit(f"sherlocked: {error}")
    acts = ", ".join(result["hparams"][f"act{i}"] for i in range(1, len(cfg.model.widths)))
    print(f"final test accuracy: {result['final_test_acc']:.2%} ({acts}; seed {cfg.seed}; {cfg.dataset.name})")
    print(f"result: {job_dir / RESULT}")
    print(f"TensorBoard: tensorboard --logdir {job_dir}")
    return result["final_test_acc"]


if __name__ == "__main__":
    main()
