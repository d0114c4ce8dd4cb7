"""Hydra behind one module: the launcher's side of Hydra's protocol (compose or derive each job, write its
dir as run_job does, hand its result back) and everything that reaches past Hydra's public API.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1

Composing a job's config costs Hydra about 0.1-0.3 s (the defaults tree, every YAML file read
and parsed again). The jobs of one population differ only in member keys (sherlocked.spec.config),
plain values, so their configs follow from the first job's composition by setting those
values: the task config, its resolved form, and the hydra node with the few fields Hydra sets
per job (overrides, override_dirname, id, num, output_dir). The three .hydra/ files are
emitted by libyaml with OmegaConf's own representers, which gives OmegaConf's text.
A group whose configs cannot be derived exactly (a member value that is a mapping, an
interpolation, a deletion; an interpolation that reads a member key; a sweep subdir other
than the override_dirname; hydra.job.chdir) is composed job by job and written by Hydra's run_job.

Only this module imports hydra._internal (tests/test_imports.py holds it to that; omegaconf._utils,
for OmegaConf's YAML text, only sherlocked.records.yaml_text): a Hydra release that moves them breaks this
file and its tests, which compare what it writes with Hydra's own run_job byte for byte, and
nothing else. The job records (sherlocked.records.job) hold no Hydra object: each job's Hydra side
(HydraJob) is kept by the driver's plan, by the job's index, and nothing else names its types.
"""

import copy
import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.config_loader_impl import get_overrides_dirname  # what Hydra names job dirs with
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from sherlocked.records.job import Job
from sherlocked.records.results import Result
from sherlocked.records.yaml_text import to_yaml
from sherlocked.spec.config import is_member_key

SUBDIR = "${hydra.job.override_dirname}"  # conf/train.yaml's hydra.sweep.subdir
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def report(error: Exception) -> None:
    """Hydra's own report of an error its entry point raised (the traceback without Hydra's frames); exit code 1."""
    from hydra._internal.utils import run_and_report

    def again():
        raise error

    run_and_report(again)


def command_line_options() -> list[str]:
    """The options Hydra's command line takes (--multirun, -m, --config-name, ...)."""
    from hydra._internal.utils import get_args_parser

    return [option for action in get_args_parser()._actions for option in action.option_strings]


def basic_launcher():
    """Hydra's BasicLauncher (as its plugin scan leaves it, see basic_sweeper): the population launcher runs any
    task but sherlocked's with it."""
    from hydra._internal.core_plugins import basic_launcher as module

    return module.BasicLauncher()


def basic_sweeper() -> tuple[type, type]:
    """Hydra's BasicSweeper and its config dataclass (the sherlocked sweeper's bases), as Hydra's plugin scan leaves
    them: the scan executes its core plugins' modules again, so a class taken from there earlier is another class
    than the one BasicSweeper.__init__ names."""
    from hydra._internal.core_plugins import basic_sweeper as module

    return module.BasicSweeper, module.BasicSweeperConf


@functools.lru_cache(maxsize=4096)
def parse_line(line: str) -> Override:
    """One override, parsed; each distinct line once (a sweep's jobs repeat them, its sweeper and checks too)."""
    (override,) = OverridesParser.create().parse_overrides([line])
    return override


def parse(lines: Sequence[str], config_loader=None) -> list[Override]:
    """Overrides parsed; with the config loader, glob() sweeps can list a config group's options."""
    overrides = [parse_line(line) for line in lines]
    if config_loader is not None:
        for override in overrides:
            override.config_loader = config_loader  # what Hydra's parser sets on each
    return overrides


def start(config: DictConfig, create: bool = True) -> Path:
    """What Hydra's launchers do first: its globals, its logging, the sweep dir (returned, absolute; made if asked)."""
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    sweep_dir = Path(os.path.abspath(str(config.hydra.sweep.dir)))
    if create:
        sweep_dir.mkdir(parents=True, exist_ok=True)
    return sweep_dir


class HydraJob:
    """A job's Hydra side, kept by the driver: its .hydra/ files, the config Hydra's callbacks receive, its JobReturn.

    Made when needed, not kept for the whole sweep: a derived job's files are derived again from its group's
    template (8 KB of hydra node and 2 KB of task config a job: most of what a sweep held per job).
    """

    name: str  # Hydra's job name (hydra.job.name)

    def files(self, job: Job) -> tuple[dict, dict]:
        """The task config and {"hydra": node}, plain and unresolved: .hydra/config.yaml and hydra.yaml."""
        raise NotImplementedError

    def write(self, job: Job) -> None:
        """The job dir and its .hydra/ files, as run_job leaves them."""
        task, hydra = self.files(job)
        subdir = hydra["hydra"]["output_subdir"]
        job.job_dir.mkdir(parents=True, exist_ok=True)
        if subdir is None:
            return
        folder = job.job_dir / subdir
        folder.mkdir(parents=True, exist_ok=True)
        for name, container in (("config", task), ("hydra", hydra), ("overrides", job.overrides)):
            (folder / f"{name}.yaml").write_text(to_yaml(container), encoding="utf-8")

    def config(self, job: Job) -> DictConfig:
        """The job's whole config, as Hydra's callbacks receive it."""
        task, hydra = self.files(job)
        return OmegaConf.create({**task, **hydra})

    def callback_config(self, job: Job) -> DictConfig:
        """The job's whole config, with HydraConfig set to it as run_job sets it around Hydra's callbacks (a user's
        callback may call HydraConfig.get())."""
        config = self.config(job)
        HydraConfig.instance().set_config(config)
        return config

    def working_dir(self, job: Job) -> str:
        """Where the job ran, as Hydra's JobReturn says: the launch directory (see ComposedJob for chdir)."""
        return os.getcwd()

    def job_return(self, job: Job, result: Result, with_configs: bool) -> JobReturn:
        """What a launcher hands back to Hydra; the configs only where a callback may read them."""
        task, hydra = self.files(job) if with_configs else (None, None)
        return JobReturn(
            overrides=job.overrides,
            cfg=OmegaConf.create(task) if with_configs else None,
            hydra_cfg=OmegaConf.create(hydra) if with_configs else None,
            working_dir=self.working_dir(job),
            task_name=self.name,
            status=JobStatus.COMPLETED,  # a failed job's result records the failure; the sweep goes on
            _return_value=result,
        )


@dataclass
class DerivedJob(HydraJob):
    """A job whose configs follow from its group's one composition (Template) and its member values."""

    template: "Template"
    parsed: list[Override]

    @property
    def name(self) -> str:
        return self.template.hydra["hydra"]["job"]["name"]

    def files(self, job: Job) -> tuple[dict, dict]:
        return self.template.files(self.parsed, job)

    def config(self, job: Job) -> DictConfig:
        """The group's composition with this job's member values and per-job fields: typed as Hydra's, so that
        HydraConfig takes it (callback_config)."""
        config = copy.deepcopy(self.template.composed)
        with read_write(config), open_dict(config):
            for override in self.parsed:
                if is_member(override):
                    OmegaConf.update(config, override.key_or_group, override.value(), merge=False)
            config.hydra.overrides.task = list(job.overrides)
            config.hydra.job.override_dirname = self.template.dirname(self.parsed)
            config.hydra.job.id, config.hydra.job.num = str(job.index), job.index
            config.hydra.runtime.output_dir = str(job.job_dir)
        return config


@dataclass
class ComposedJob(HydraJob):
    """A job Hydra composed on its own: its config kept, its dir written by Hydra's run_job."""

    composed: DictConfig
    context: HydraContext

    @property
    def name(self) -> str:
        return self.composed.hydra.job.name

    def files(self, job: Job) -> tuple[dict, dict]:
        plain = OmegaConf.to_container(self.composed, resolve=False, enum_to_str=True)
        return {k: v for k, v in plain.items() if k != "hydra"}, {"hydra": plain["hydra"]}

    def write(self, job: Job) -> None:
        quiet = HydraContext(config_loader=self.context.config_loader, callbacks=_NoCallbacks())
        run_job(_nothing, self.composed, "hydra.sweep.dir", "hydra.sweep.subdir", quiet, configure_logging=False)

    def config(self, job: Job) -> DictConfig:
        return self.composed

    def working_dir(self, job: Job) -> str:
        """hydra.job.chdir=true: the job dir, as for Hydra (a population's jobs share a process, and paths in
        sherlocked's configs are absolute or the launch directory's; run_job changes into it while writing it)."""
        return str(job.job_dir) if self.composed.hydra.job.chdir else os.getcwd()


class _NoCallbacks:
    """Stands in for Hydra's callbacks while run_job writes a job's dir: they fire later, with the real result."""

    def on_job_start(self, **kwargs) -> None:
        pass

    def on_job_end(self, **kwargs) -> None:
        pass


def _nothing(cfg: DictConfig) -> None:
    """The task run_job runs while it writes a composed job's dir: the job trains later, in its population."""


class Template:
    """One composed sweep config; the jobs of its group are derived from it."""

    def __init__(self, sweep_config: DictConfig):
        full = OmegaConf.to_container(sweep_config, resolve=False, enum_to_str=True)
        self.hydra = {"hydra": full.pop("hydra")}
        self.task = full
        self.composed = sweep_config
        self.sweep_dir = str(sweep_config.hydra.sweep.dir)
        naming = sweep_config.hydra.job.config.override_dirname
        self.naming = (list(naming.exclude_keys), naming.item_sep, naming.kv_sep)

    def derivable(self, jobs: Sequence[Sequence[Override]]) -> bool:
        """Whether setting member values gives exactly what composing each job would."""
        job = self.hydra["hydra"]["job"]
        if self.hydra["hydra"]["sweep"]["subdir"] != SUBDIR or job.get("chdir"):
            return False
        refs = [ref for text in _strings(self.task) for ref in INTERPOLATION.findall(text)]
        if any(ref.startswith("hydra:") for ref in refs):  # ${hydra:job.num} and the like: a value per job
            return False
        shape = [(o.key_or_group, o.type) for o in jobs[0] if is_member(o)]
        for overrides in jobs:
            members = [o for o in overrides if is_member(o)]
            if [(o.key_or_group, o.type) for o in members] != shape:  # the same member keys, added alike
                return False
            for override in members:
                leaf = override.key_or_group.split(".")[-1]
                value = override.value()
                if override.is_delete() or isinstance(value, dict) or "${" in str(value):
                    return False
                if any(leaf in ref or ref.startswith(".") for ref in refs):
                    return False
        return True

    @functools.cached_property
    def resolved(self) -> dict:
        """The task config, resolved (on first use: a group that cannot be derived needs it never)."""
        task = OmegaConf.masked_copy(self.composed, [k for k in self.composed if k != "hydra"])
        return OmegaConf.to_container(task, resolve=True)

    def derive(self, overrides: Sequence[Override], index: int, sweep_dir: Path | None = None) -> Job:
        """Job `index`: its dir and resolved config, the template's with this job's member values (its Hydra side:
        DerivedJob(template, overrides))."""
        resolved = copy.deepcopy(self.resolved)
        for override in overrides:
            if is_member(override):
                _set(resolved, override.key_or_group, copy.deepcopy(override.value()))
        job_dir = Path(os.path.abspath(os.path.join(self.sweep_dir, self.dirname(overrides))))
        lines = [o.input_line for o in overrides]
        return Job(resolved, job_dir, lines, index, sweep_dir)

    def dirname(self, overrides: Sequence[Override]) -> str:
        exclude_keys, item_sep, kv_sep = self.naming
        return get_overrides_dirname(list(overrides), exclude_keys, item_sep, kv_sep)

    def files(self, overrides: Sequence[Override], job: Job) -> tuple[dict, dict]:
        """A derived job's task config and hydra node, plain and unresolved: the template's, with the job's member
        values and the fields Hydra sets per job (overrides, override_dirname, id, num, output_dir)."""
        task, hydra = copy.deepcopy(self.task), copy.deepcopy(self.hydra)
        for override in overrides:
            if is_member(override):
                _set(task, override.key_or_group, override.value())
        node = hydra["hydra"]
        node["overrides"]["task"] = list(job.overrides)
        node["job"].update(override_dirname=self.dirname(overrides), id=str(job.index), num=job.index)  # id: a str
        node["runtime"]["output_dir"] = str(job.job_dir)
        return task, hydra


def group_jobs(
    context: HydraContext,
    master: DictConfig,
    job_overrides: Sequence[Sequence[str]],
    indices: Sequence[int],
    sides: dict[int, HydraJob],
) -> list[Job]:
    """The jobs of one group (jobs that differ in member keys only), each composed or derived, none written:
    one composition for the group where its jobs can be derived, else one each. Each job's Hydra side goes into
    `sides`, by the job's index: the job record itself holds no Hydra object."""
    sweep_dir = Path(os.path.abspath(str(master.hydra.sweep.dir)))
    load = context.config_loader.load_sweep_config
    first = load(master, list(job_overrides[0]))
    template = Template(first)
    parsed = [parse(overrides) for overrides in job_overrides]
    if template.derivable(parsed):
        sides.update((index, DerivedJob(template, job)) for job, index in zip(parsed, indices))
        return [template.derive(job, index, sweep_dir) for job, index in zip(parsed, indices)]
    composed = [first] + [load(master, list(overrides)) for overrides in job_overrides[1:]]
    sides.update((index, ComposedJob(config, context)) for config, index in zip(composed, indices))
    return [
        _composed_job(config, list(overrides), index, sweep_dir)
        for config, overrides, index in zip(composed, job_overrides, indices)
    ]


def _composed_job(config: DictConfig, overrides: list[str], index: int, sweep_dir: Path) -> Job:
    """A job Hydra composed: its dir and resolved config as run_job makes them (with its HydraConfig set); its
    members may differ beyond their overrides (a ${hydra:job.num}), so its plan compares their configs."""
    with open_dict(config):
        config.hydra.job.id = index
        config.hydra.job.num = index
    HydraConfig.instance().set_config(config)
    subdir = str(OmegaConf.select(config, "hydra.sweep.subdir"))
    job_dir = Path(os.path.abspath(os.path.join(str(config.hydra.sweep.dir), subdir)))
    with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
        config.hydra.runtime.output_dir = str(job_dir)
    HydraConfig.instance().set_config(config)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    resolved = OmegaConf.to_container(task, resolve=True)
    return Job(resolved, job_dir, overrides, index, sweep_dir, composed_alone=True)


def is_member(override: Override) -> bool:
    return is_member_key(override.input_line)


def _set(container: dict, path: str, value) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        container = container[part]
    container[leaf] = value


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node
