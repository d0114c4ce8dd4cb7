"""What a run or a sweep checks before anything is written: the command line (every swept value, and that each
sweep has values a grid can list), the launcher's settings and backend, the folder it will write, the GPU it asks
for and its data. One line and exit code 2 for the first thing wrong.

    python -m sherlocked.train -m act2=sigmod   # sherlocked: act2='sigmod': ...

Torch-free but for a GPU asked for here: a sweep's values are checked in milliseconds, on a login node too. The
data is only looked for here (on disk, or allowed to download); a download happens where the plan says the data
is needed (sherlocked.sweep.run), or in the run that trains.
"""

import math
import sys
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from sherlocked.hydra_side import adapter, errors
from sherlocked.spec.checks import output_dir, plain, validate
from sherlocked.spec.config import ConfigError, is_member_key
from sherlocked.spec.datasets import DataError, data_key, unavailable
from sherlocked.sweep.backends import check
from sherlocked.sweep.devices import check_gpu
from sherlocked.sweep.progress import console

# Sweepers that run the grid of every listed value (conf/train.yaml's and Hydra's); an interval has no list.
GRID_SWEEPERS = (
    "hydra_plugins.sherlocked_launcher.sherlocked_sweeper.SherlockedSweeper",
    "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
)
# Hydra's launcher that runs a sweep's jobs one by one in this process (the population launcher says its backend).
LOCAL_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def sweep_lines(config: DictConfig) -> list[str]:
    """The sweep's overrides as the sweeper reads them: hydra.sweeper.params first, then the command line; as typed
    (an override's ${hydra:...} resolves per job, not here)."""
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    params = OmegaConf.to_container(params, resolve=False) if OmegaConf.is_config(params) else params
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    return [f"{key}={value}" for key, value in params.items()] + task


def parsed_overrides(config: DictConfig) -> list[list[str] | None]:
    """Each override of a sweep as the list of "key=value" it expands to; None for one no list holds (an
    interval, or a tagged one: a search sweeper such as Optuna picks its values as it goes)."""
    choices = []
    for override in adapter.parse(sweep_lines(config)):
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices.append([f"{key}={override.get_value_element_as_str()}"])
            continue
        try:
            choices.append([f"{key}={v}" for v in override.sweep_string_iterator()])
        except Exception:  # Hydra: "Can only enumerate CHOICE and RANGE sweeps"
            choices.append(None)
    return choices


def sweep_size(config: DictConfig, choices: list[list[str] | None]) -> int | None:
    """How many jobs the sweep runs: a search sweeper says (n_trials), a grid is the product of its lists."""
    trials = OmegaConf.select(config, "hydra.sweeper.n_trials")
    if trials is not None:
        return int(trials)
    return None if None in choices else math.prod(len(values) for values in choices)


def each_swept_value(config: DictConfig, choices: list[list[str] | None]):
    """One job config per value of each swept key (the others at their first value).

    That is sum(len(values)) configs instead of prod(len(values)): every value a user typed
    is checked before the sweep starts, at a cost that stays small. The first is composed; a
    value of a member key (an activation, a seed, ...) is set in it as the population launcher
    derives its jobs (sherlocked.hydra_side.adapter), which gives what composing would, in a millisecond
    instead of a tenth of a second; any other value is composed. A key whose values are not a
    list (an interval) is left at its default: the values picked later are checked by the job
    that trains them.
    """
    from hydra.core.global_hydra import GlobalHydra

    choices = [values for values in choices if values is not None]  # parsed_overrides(config)
    first = [values[0] for values in choices]
    loader = GlobalHydra.instance().config_loader()
    composed = loader.load_sweep_config(config, first)
    yield composed
    template = adapter.Template(composed)
    varied = [(value, first[:i] + [value] + first[i + 1 :]) for i, values in enumerate(choices) for value in values[1:]]
    parsed_first = adapter.parse(first)
    for value, overrides in varied:
        job = adapter.parse(overrides)
        if is_member_key(value) and template.derivable([parsed_first, job]):  # differing in one member key
            yield template.derive(job, 0).config
        else:
            yield loader.load_sweep_config(config, overrides)


def sweeps_or_exit(config: DictConfig, choices: list[list[str] | None]) -> None:
    """Each swept key has values a sweep can run (choices: parsed_overrides(config)): range(0) lists none, and a
    grid sweeper cannot list an interval's."""
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
    for override, values in zip(adapter.parse(sweep_lines(config)), choices):
        if values == []:
            stop(f"{override.input_line}: the sweep of {override.get_key_element()} has no values")
        if values is None and sweeper in GRID_SWEEPERS:
            name = OmegaConf.select(config, "hydra.runtime.choices", default={}).get("hydra/sweeper", sweeper)
            stop(
                f"{override.input_line}: hydra/sweeper={name} runs a grid of listed values (a,b,c or range(...)); "
                "an interval needs a search sweeper such as hydra/sweeper=optuna"
            )


def trains_here(config: DictConfig) -> bool:
    """Whether a sweep's jobs train on this machine: the population launcher's local backend, or Hydra's own."""
    backend = OmegaConf.select(config, "hydra.launcher.backend")
    return backend == "local" or OmegaConf.select(config, "hydra.launcher._target_") == LOCAL_LAUNCHER


def devices_or_exit(config: DictConfig, configs: list) -> None:
    """The GPU each job asks for is there, where the jobs train here; a population launcher's population sees one
    GPU of its own, as GPU 0 (a local worker's CUDA_VISIBLE_DEVICES, a Ray task's or a SLURM element's GPU)."""
    if OmegaConf.select(config, "hydra.launcher.backend") is not None:
        for job in configs:
            devices = plain(job["trainer"].get("devices"))
            if isinstance(devices, list) and devices != [0]:
                stop(
                    f"trainer.devices={devices}: each population of a sweep sees one GPU of its own, as [0]; "
                    "drop trainer.devices (hydra.launcher.workers: one worker per GPU)"
                )
    if trains_here(config):
        for job in configs:
            or_exit(check_gpu, job)


def or_exit(check: Callable, *arguments) -> None:
    """check(*arguments), its ConfigError said in one line with exit code 2."""
    try:
        check(*arguments)
    except ConfigError as error:
        stop(str(error))


def validate_or_exit(config: DictConfig) -> None:
    """One line and exit code 2 for a bad value. Any error counts: Hydra would turn it into a warning."""
    try:
        validate(config)
    except ConfigError as error:
        stop(str(error))
    except Exception as error:  # a value of the wrong type that no check names (yet)
        stop(errors.one_line(error) or f"invalid configuration: {type(error).__name__}: {error}")


def stop(message: str) -> None:
    """One line (an error's first, where it has several: OmegaConf adds the key and its type) and exit code 2."""
    print(f"sherlocked: {message.strip().splitlines()[0]}", file=sys.stderr)
    sys.exit(2)


def launcher_or_exit(config: DictConfig) -> None:
    """The population launcher's settings must make sense and its backend be installed: one line, exit 2."""
    for key in ("max_members", "workers"):
        value = OmegaConf.select(config, f"hydra.launcher.{key}")
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            stop(f"hydra.launcher.{key}={value!r} must be a whole number >= 0")
    backend = OmegaConf.select(config, "hydra.launcher.backend")
    if backend is None:  # not the population launcher
        return
    try:
        check(backend, OmegaConf.select(config, "hydra.launcher.ray.address"))
    except ConfigError as error:
        stop(str(error))


def data_or_exit(configs: list) -> None:
    """Every dataset the jobs use is on disk and whole, or may download: one line and exit code 2 if not."""
    for dataset in {data_key(config["dataset"]): config["dataset"] for config in configs}.values():
        try:
            missing = unavailable(dataset)
        except DataError as error:  # a damaged file
            missing = str(error)
        if missing:
            stop(missing)


def check_run(config: DictConfig) -> None:
    """A single run's config, before Hydra writes its dir."""
    validate_or_exit(config)
    or_exit(check_gpu, config)  # a single run trains here
    or_exit(output_dir, "hydra.run.dir", config.hydra.run.dir)
    data_or_exit([config])


def check_sweep(config: DictConfig) -> int | None:
    """Every swept value and dataset of a sweep checked, before any job is written; returns how many jobs it runs
    (None where nobody can say)."""
    try:
        launcher_or_exit(config)
        planning = OmegaConf.select(config, "hydra.launcher.plan")  # --plan: nothing trains, nothing is written
        if not planning:
            or_exit(output_dir, "hydra.sweep.dir", config.hydra.sweep.dir, True)
        choices = parsed_overrides(config)
        sweeps_or_exit(config, choices)
        size = sweep_size(config, choices)
        jobs = "? jobs" if size is None else f"{size} job{'' if size == 1 else 's'}"
        console.print(f"sweep of {jobs} into {config.hydra.sweep.dir}: checking its values")  # then training
        configs = list(each_swept_value(config, choices))
        for job_config in configs:
            validate_or_exit(job_config)
        if not planning:
            devices_or_exit(config, configs)
        data_or_exit(configs)
        return size
    except Exception as error:  # Hydra would turn it into a warning, and the sweep run unchecked and uncounted
        stop(errors.one_line(error) or f"invalid configuration: {type(error).__name__}: {error}")
