"""The Hydra callback around runs and sweeps (registered in conf/train.yaml, any launcher).

- before anything is written: checks the command line (every swept value, and that each sweep has values a grid
  can list), the launcher's backend, the folder it will write and the GPU it asks for; one line and exit code 2 if
  bad (torch-free but for a GPU asked for here: a sweep's values are checked in milliseconds, on a login node too);
- while a sweep trains: its populations' progress, live (sherlocked.sweep.progress);
- after each job of a sweep: one progress line (done/total, failures, elapsed, ETA);
- at the end of a sweep: a summary as the last line, exit code 1 if any job failed.
"""

import math
import sys
import time
from collections.abc import Callable

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from sherlocked import config_errors, hydra_adapter
from sherlocked.checks import output_dir, plain, validate
from sherlocked.config import ConfigError, is_member_key
from sherlocked.datasets import DataError, data_key, on_disk
from sherlocked.results import Result
from sherlocked.sweep.backends import check
from sherlocked.sweep.devices import check_gpu
from sherlocked.sweep.progress import Watch, clock, console, eta_s, steps_per_job

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
    for override in hydra_adapter.parse(sweep_lines(config)):
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
    derives its jobs (sherlocked.hydra_adapter), which gives what composing would, in a millisecond
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
    template = hydra_adapter.Template(composed)
    varied = [(value, first[:i] + [value] + first[i + 1 :]) for i, values in enumerate(choices) for value in values[1:]]
    parsed_first = hydra_adapter.parse(first)
    for value, overrides in varied:
        job = hydra_adapter.parse(overrides)
        if is_member_key(value) and template.derivable([parsed_first, job]):  # differing in one member key
            yield template.derive(job, 0).config
        else:
            yield loader.load_sweep_config(config, overrides)


def sweeps_or_exit(config: DictConfig, choices: list[list[str] | None]) -> None:
    """Each swept key has values a sweep can run (choices: parsed_overrides(config)): range(0) lists none, and a
    grid sweeper cannot list an interval's."""
    sweeper = OmegaConf.select(config, "hydra.sweeper._target_")
    for override, values in zip(hydra_adapter.parse(sweep_lines(config)), choices):
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
        stop(config_errors.one_line(error) or f"invalid configuration: {type(error).__name__}: {error}")


def data_or_exit(configs: list) -> None:
    """Every dataset the jobs use is on disk and whole, or downloads: one line and exit code 2 if not."""
    for key, dataset in {data_key(config["dataset"]): config["dataset"] for config in configs}.items():
        try:
            if not on_disk(dataset):  # a download (where dataset.download allows one), through torchvision
                from sherlocked.training.data import load

                load(*key)
        except DataError as error:
            stop(str(error))


def the_answer(sweep_dir: str) -> str | None:
    """The study's answer, as the report's page gives it; never in place of the sweep's summary."""
    from sherlocked.report.significance import answer

    try:
        return answer(sweep_dir)
    except Exception:  # a sweep of other keys, an unreadable table: the report will say
        return None


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


class SweepProgress:
    """Counts a sweep's jobs by outcome and says where it stands."""

    def __init__(self, total: int | None):
        """total: the jobs the sweep will run, None where nobody can say."""
        self.total, self.start = total, time.time()
        self.counts = {"ok": 0, "diverged": 0, "failed": 0, "skipped": 0}
        self.training_since: float | None = None  # when the first population began training
        self.steps_per_job = math.nan  # training steps of a job, as the last populations in training said
        self.ended: set[str] = set()  # the jobs counted, by their overrides
        self.training: dict[str, dict] = {}  # each population seen in training, until its jobs are all counted

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def add(self, result: Result | None, overrides: list[str] = ()) -> None:
        self.ended.add(" ".join(overrides))
        if result is None:
            self.counts["failed"] += 1
        elif result.skipped:
            self.counts["skipped"] += 1
        else:
            self.counts[result.status] += 1

    def summary(self, short: bool = False) -> str:
        """done/total jobs and each outcome's count; short: the outcomes that occurred (a live line in 80 columns)."""
        parts = ", ".join(f"{n} {status}" for status, n in self.counts.items() if n or not short)
        return f"{self.done}/{'?' if self.total is None else self.total} jobs" + (f": {parts}" if parts else "")

    def live_line(self, populations: dict[str, dict] | None = None) -> str:
        """The sweep's line as the live view shows it under its populations, in 80 columns."""
        return self.line(populations, short=True)

    def line(self, populations: dict[str, dict] | None = None, short: bool = False) -> str:
        """The sweep's line; with the populations in training (sherlocked.sweep.progress), an ETA from their steps."""
        now = time.time()
        for p in (populations or {}).values():
            self.training_since = min(self.training_since or p["started"], p["started"])
        if populations:
            self.steps_per_job = steps_per_job(populations)
        if self.total is None:
            return f"sweep {self.summary(short)} | elapsed {clock(now - self.start)}"
        trained, remaining = self.done - self.counts["skipped"], self.total - self.done
        training_s = now - (self.training_since or self.start)
        eta = eta_s(remaining, trained, self.in_flight(populations or {}), training_s, self.steps_per_job)
        if math.isnan(eta) and trained:  # no population in training now: jobs at the rate they finished so far
            eta = training_s / trained * remaining
        return f"sweep {self.summary(short)} | elapsed {clock(now - self.start)}, ETA {clock(eta)}"

    def in_flight(self, populations: dict[str, dict]) -> float:
        """The member-steps of jobs not counted yet. A population's 16 jobs end together and are counted one by
        one: each counts once, as trained or in flight (the ETA halved and doubled back as they arrived)."""
        self.training.update(populations)
        steps = 0.0
        for key, p in list(self.training.items()):
            left = [job for job in p.get("jobs", []) if job not in self.ended]
            if "jobs" in p and not left:  # all counted
                del self.training[key]
            elif key in populations:
                steps += p["step"] * (len(left) if "jobs" in p else p["members"])
            else:  # its file is gone: it finished, and its jobs are being counted
                steps += p["steps"] * len(left)
        return steps


class StudyCallback(Callback):
    reads_job_config = False  # on_job_start/on_job_end read only the result: launchers may skip building it

    def __init__(self):
        self.progress: SweepProgress | None = None
        self.watch: Watch | None = None

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        validate_or_exit(config)
        or_exit(check_gpu, config)  # a single run trains here
        or_exit(output_dir, "hydra.run.dir", config.hydra.run.dir)
        data_or_exit([config])

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            self.check_and_watch(config)
        except Exception as error:  # Hydra would turn it into a warning, and the sweep run unchecked and uncounted
            stop(config_errors.one_line(error) or f"invalid configuration: {type(error).__name__}: {error}")

    def check_and_watch(self, config: DictConfig) -> None:
        """Every swept value and dataset checked (one line and exit code 2 if bad), then the sweep's live view."""
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
        self.progress = SweepProgress(size)
        self.watch = Watch(config.hydra.sweep.dir, self.progress.line, self.progress.live_line)
        self.watch.start()

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        if self.progress is None:  # a single run
            return
        result = job_return.return_value if isinstance(job_return.return_value, Result) else None
        self.progress.add(result, job_return.overrides)
        self.watch.say(self.progress.line(self.watch.populations()), last=self.progress.done == self.progress.total)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if self.progress is None:
            return
        self.watch.stop()
        failed = self.progress.counts["failed"]
        # Imported here: the table (pandas, pyarrow) and TensorBoard's writer cost a second that a typo's or --plan's
        # answer would wait for.
        from sherlocked import table
        from sherlocked.dashboard import write_experiment, write_means

        try:  # the results table in one file; TensorBoard: a mean run per configuration, one HParams experiment
            table.compact(config.hydra.sweep.dir)
            write_means(config.hydra.sweep.dir)
            write_experiment(config.hydra.sweep.dir)
        except OSError as error:  # a finished sweep read back from read-only storage keeps its own
            console.print(f"the results table and TensorBoard's HParams experiment left as they are ({error.strerror})")
        except Exception as error:  # said, but never in place of the summary and the exit code (Hydra: a warning)
            why = str(error).strip().splitlines()[0] if str(error).strip() else ""
            console.print(f"the results table and TensorBoard's runs were not finished: {type(error).__name__}: {why}")
        if answer := the_answer(config.hydra.sweep.dir):
            console.print(answer)
        console.print(f"sweep finished in {config.hydra.sweep.dir}: {self.progress.summary()}")
        if failed:
            sys.exit(1)
