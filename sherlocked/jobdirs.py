"""A sweep's job directories, byte for byte as Hydra's run_job writes them, from one composition per group.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act2=relu,sigmoid seed=0,1

Composing a job's config costs Hydra about 0.1-0.3 s (the defaults tree, every YAML file read
and parsed again). The jobs of one population differ only in member keys (sherlocked.config),
plain values, so their configs follow from the first job's composition by setting those
values: the task config, its resolved form, and the hydra node with the few fields Hydra sets
per job (overrides, override_dirname, id, num, output_dir). The three .hydra/ files are
emitted by libyaml with OmegaConf's own representers, which gives OmegaConf's text.

A group whose configs cannot be derived exactly (a member value that is a mapping, an
interpolation, a deletion; an interpolation that reads a member key; a sweep subdir other
than the override_dirname) returns no Template: the launcher composes those jobs one by one.
"""

import copy
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from hydra._internal.config_loader_impl import get_overrides_dirname  # what Hydra names job dirs with
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_omega_conf_dumper

from sherlocked.config import is_member_key

SUBDIR = "${hydra.job.override_dirname}"  # conf/train.yaml's hydra.sweep.subdir
INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


class _Dumper(yaml.CSafeDumper if hasattr(yaml, "CSafeDumper") else yaml.SafeDumper):
    """OmegaConf's YAML (its string quoting), emitted by libyaml where PyYAML has it."""


for _type, _representer in get_omega_conf_dumper().yaml_representers.items():
    _Dumper.add_representer(_type, _representer)


def to_yaml(container) -> str:
    """What OmegaConf.to_yaml writes for a config whose plain, unresolved form is `container`."""
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=_Dumper)


@dataclass
class Derived:
    """One job: its directory and the contents Hydra writes there, its resolved config."""

    index: int
    job_dir: Path
    task: dict  # unresolved: .hydra/config.yaml
    hydra: dict  # {"hydra": ...} unresolved: .hydra/hydra.yaml
    resolved: dict  # what the engine trains and result.json stores
    overrides: list[str]

    def write(self) -> None:
        """The job dir and its .hydra/ files, as run_job leaves them."""
        subdir = self.hydra["hydra"]["output_subdir"]
        self.job_dir.mkdir(parents=True, exist_ok=True)
        if subdir is None:
            return
        folder = self.job_dir / subdir
        folder.mkdir(parents=True, exist_ok=True)
        for name, container in (("config", self.task), ("hydra", self.hydra), ("overrides", self.overrides)):
            (folder / f"{name}.yaml").write_text(to_yaml(container), encoding="utf-8")


class Template:
    """One composed sweep config; the jobs of its group are derived from it."""

    def __init__(self, sweep_config: DictConfig):
        full = OmegaConf.to_container(sweep_config, resolve=False, enum_to_str=True)
        self.hydra = {"hydra": full.pop("hydra")}
        self.task = full
        task = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
        self.resolved = OmegaConf.to_container(task, resolve=True)
        self.sweep_dir = str(sweep_config.hydra.sweep.dir)
        naming = sweep_config.hydra.job.config.override_dirname
        self.naming = (list(naming.exclude_keys), naming.item_sep, naming.kv_sep)

    def derivable(self, jobs: Sequence[Sequence[Override]]) -> bool:
        """Whether setting member values gives exactly what composing each job would."""
        job = self.hydra["hydra"]["job"]
        if self.hydra["hydra"]["sweep"]["subdir"] != SUBDIR or job.get("chdir"):
            return False
        refs = [ref for text in _strings(self.task) for ref in INTERPOLATION.findall(text)]
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

    def derive(self, overrides: Sequence[Override], index: int) -> Derived:
        """Job `index`'s configs: the template's with this job's member values and Hydra's per-job fields."""
        task, resolved, hydra = copy.deepcopy(self.task), copy.deepcopy(self.resolved), copy.deepcopy(self.hydra)
        for override in overrides:
            if is_member(override):
                value = override.value()
                _set(task, override.key_or_group, value)
                _set(resolved, override.key_or_group, copy.deepcopy(value))
        exclude_keys, item_sep, kv_sep = self.naming
        dirname = get_overrides_dirname(list(overrides), exclude_keys, item_sep, kv_sep)
        job_dir = Path(os.path.abspath(os.path.join(self.sweep_dir, dirname)))
        node = hydra["hydra"]
        node["overrides"]["task"] = [o.input_line for o in overrides]
        node["job"].update(override_dirname=dirname, id=str(index), num=index)  # id is a str in Hydra's schema
        node["runtime"]["output_dir"] = str(job_dir)
        return Derived(index, job_dir, task, hydra, resolved, list(node["overrides"]["task"]))


def parse(job_overrides: Sequence[Sequence[str]]) -> list[list[Override]]:
    """Every job's overrides parsed, each distinct string once (a sweep repeats them across jobs)."""
    parser, cache = OverridesParser.create(), {}
    for line in {line for overrides in job_overrides for line in overrides}:
        (cache[line],) = parser.parse_overrides([line])
    return [[cache[line] for line in overrides] for overrides in job_overrides]


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
