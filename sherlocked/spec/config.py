"""Where the configs live, and what each config key means: declared once, here.

    python -c "from sherlocked.spec.config import CONFIG_DIR; print(CONFIG_DIR)"

Every part that treats keys differently derives it from KEYS: the sweep's plan and the engine
(which keys may differ between the members of one population), results (which keys are
part of a job's identity, so a rerun skips it), job dir names (which overrides name a
job's directory; conf/train.yaml reads them through the `sherlocked.not_in_dir_name`
resolver), and the short names under which HParams, result.json and the report show a
key. Adding a key that may differ inside a population is one line here.
"""

import dataclasses
import difflib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf


class ConfigError(ValueError):
    """A bad configuration value; its message is the one line a user sees."""


def suggestion(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean X?)" where one of the choices is close to what was typed, else ""."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


_HERE = Path(__file__).parents[1]  # the package (sherlocked/), beside conf/ in a checkout
# An installed wheel carries the configs inside the package; a checkout keeps them at the top level.
CONFIG_DIR = _HERE / "conf" if (_HERE / "conf").is_dir() else _HERE.parent / "conf"
# The folders conf/paths/default.yaml declares (sherlocked.records.layout.output_paths reads it).
OUTPUT_PATHS = ("outputs", "runs", "sweeps", "bench")

# act1, act2, ...: one activation per Linear layer, as many as the model has (declared as ACTIVATION).
ACT = re.compile(r"act(\d+)")
# HParams always carry act1..act4, "none" past the model's depth, so the study's 2-, 3- and
# 4-layer models compare in one HParams table; deeper models add act5, ...
MIN_ACT_HPARAMS = 4


def _joined(value) -> str:
    return "-".join(map(str, value))


def _joined_or_one(value) -> str:
    """One value for every conv layer, or one per layer (model.kernel: 5 or [5, 3])."""
    return str(value) if isinstance(value, int | str) else _joined(value)


def _class_name(target: str) -> str:
    return target.rsplit(".", 1)[-1].lower()


_UNSET = object()  # a Key without a neutral value; a key a config lacks


@dataclass(frozen=True)
class Key:
    path: str  # dotted path in the composed config
    name: str | None = None  # short name in HParams, result.json's hparams and the report; None: not shown
    member: bool = False  # may differ between the members of one population
    identity: bool = True  # changes what a job computes: a rerun with another value trains it again
    dir_name: bool = True  # an override of it names the job's directory
    default: Any = None  # its value where a config lacks it (momentum of Adam)
    show: Callable[[Any], Any] | None = None  # how HParams and the report show the value
    optional: bool = False  # shown only where a config has it (a CNN's keys; an MLP has none of them)
    # A key added after jobs were trained without it: at this value a job computes what it did before, so its
    # identity leaves it out (finished jobs stay finished, their checkpoints found). _UNSET: no such value.
    neutral: Any = _UNSET


ACTIVATION = Key("act{n}", "act{n}", member=True)  # stands for act1, act2, ...: see key_of
KEYS = (
    # What a population's members may differ in.
    ACTIVATION,
    Key("seed", "seed", member=True),
    Key("model.batch_norm", "batch_norm", member=True, show=str),
    Key("model.init", "init", member=True),
    Key("model.output_activation", "output_activation", member=True),
    Key("model.residual", "residual", member=True, show=str, neutral=False),  # skips: false, true or layer numbers
    Key("model.optimizer.lr", "lr", member=True, show=float),  # each member's own: sherlocked/training/optimizers.py
    Key("model.optimizer.momentum", "momentum", member=True, default=0.0, show=float),
    Key("model.optimizer.weight_decay", "weight_decay", member=True, default=0.0, show=float),
    # What they share.
    Key("dataset.name", "dataset"),
    Key("model.widths", "widths", show=_joined),
    # A CNN's conv layers (conf/model/cnn.yaml), shown only where a config has them.
    Key("model.channels", "channels", show=_joined, optional=True),
    Key("model.kernel", "kernel", show=_joined_or_one, optional=True),
    Key("model.padding", "padding", show=_joined_or_one, optional=True),
    Key("model.pool", "pool", show=_joined_or_one, optional=True),
    Key("model.optimizer._target_", "optimizer", show=_class_name),
    Key("dataset.batch_size", "batch_size"),
    Key("trainer.max_epochs", "epochs"),
    # Where a job runs: not part of its directory's name (the same job on CPU or GPU).
    Key("trainer", dir_name=False),
    Key("trainer.accelerator", dir_name=False),
    Key("trainer.devices", dir_name=False),
    Key("trainer.callbacks", dir_name=False),  # a user's (+trainer.callbacks=[...]): configs, often with paths
    # Neither where nor what: a rerun with another value finds the job finished.
    Key("study", "study", identity=False, dir_name=False),  # which study a run belongs to, in HParams
    Key("dataset.root", identity=False, dir_name=False),
    # Where outputs go (conf/paths): the group and each of its folders.
    *(Key(path, identity=False, dir_name=False) for path in ("paths", *(f"paths.{name}" for name in OUTPUT_PATHS))),
    Key("trainer.enable_progress_bar", identity=False, dir_name=False),
    Key("checkpoint_every_s", identity=False, dir_name=False),
    # The same numbers, compiled or eager (sherlocked/training/compiled.py).
    Key("compile", identity=False, dir_name=False),
    # Each job's runs in its trackers (conf/logger: TensorBoard, CSV, MLflow, W&B): logger=off for big studies, whose
    # mean runs per configuration the sweep writes anyway (sherlocked/records/dashboard.py). Every logger.* key too.
    Key("logger", identity=False, dir_name=False),
)
_BY_PATH = {key.path: key for key in KEYS}


def key_of(path: str) -> Key | None:
    """The declaration of a dotted config path (an override's key: leading +/~ and a group's / allowed)."""
    path = path.lstrip("+~").replace("/", ".")
    if ACT.fullmatch(path):
        return dataclasses.replace(ACTIVATION, path=path, name=path)
    return _BY_PATH.get(path)


def is_member_key(override: str) -> bool:
    """Whether an override ("key=value") may differ between the members of one population."""
    return is_member_path(override.split("=", 1)[0])


def is_member_path(path: str) -> bool:
    """Whether a dotted config path (or an override's key) may differ between the members of one population."""
    key = key_of(path)
    return key is not None and key.member


def shared(config: Mapping) -> dict[str, Any]:
    """What members of one population must share: a resolved config's leaves but its member keys."""
    return {path: value for path, value in leaves(config) if not is_member_path(path)}


def disagreement(configs: Sequence[Mapping]) -> str | None:
    """None if resolved configs agree on everything but member keys (so they can train as one population),
    else the first key on which one differs from the first config, in one line."""
    first = shared(configs[0])
    for number, config in enumerate(configs[1:], start=2):
        other = shared(config)
        for path in sorted(first.keys() | other.keys()):
            if first.get(path, "(unset)") != other.get(path, "(unset)"):
                return (
                    f"members of one population must agree on everything but member keys: {path} is "
                    f"{first.get(path, '(unset)')!r} in member 1 and {other.get(path, '(unset)')!r} in member {number}"
                )
    return None


NOT_IDENTITY = tuple(key.path for key in KEYS if not key.identity)
NEUTRAL = tuple((key.path, key.neutral) for key in KEYS if key.neutral is not _UNSET)
NOT_IN_DIR_NAME = [key.path for key in KEYS if not key.dir_name]
TRACKERS = "logger"  # the config group of each job's trackers (conf/logger), one entry a tracker


def not_in_dir_name(overrides: Sequence[str] = ()) -> list[str]:
    """The override keys a job's dir name leaves out: NOT_IN_DIR_NAME, and every tracker setting the `overrides` name
    (logger.mlflow.tracking_uri=...: Hydra excludes keys by their whole name), so that where runs are tracked never
    moves a job."""
    keys = [override.split("=", 1)[0] for override in overrides]
    return [*NOT_IN_DIR_NAME, *(key for key in keys if key.lstrip("+~").startswith(f"{TRACKERS}."))]


def task_overrides(root: Any) -> list[str]:
    """A composed config's hydra.overrides.task as typed: unresolved, since an override may hold an interpolation
    that only a running job resolves (+tag=n${hydra:job.num})."""
    overrides = OmegaConf.select(root, "hydra.overrides", default=None)
    return list(OmegaConf.to_container(overrides, resolve=False).get("task") or []) if overrides is not None else []


# conf/train.yaml: hydra.job.config.override_dirname.exclude_keys: ${sherlocked.not_in_dir_name:}
OmegaConf.register_new_resolver(
    "sherlocked.not_in_dir_name", lambda *, _root_: not_in_dir_name(task_overrides(_root_)), replace=True
)
# conf/logger: a store's path made absolute where the config is resolved (a sweep's driver), so every worker, Ray task
# or SLURM element, whatever its working directory, writes the same store.
OmegaConf.register_new_resolver("sherlocked.absolute", lambda path: os.path.abspath(str(path)), replace=True)


def loggers(config: Mapping) -> dict[str, dict]:
    """A resolved config's trackers (conf/logger): name -> its Lightning logger's config ({} for logger=off)."""
    group = config.get(TRACKERS) or {}
    return {name: settings for name, settings in group.items() if isinstance(settings, Mapping)}


def has_tensorboard_runs(config: Mapping) -> bool:
    """Whether a job writes a TensorBoard run of its own (its events, HParams session and hparams.yaml)."""
    return any(str(s.get("_target_", "")).endswith("TensorBoardLogger") for s in loggers(config).values())


def select(config: Mapping, path: str, default: Any = None) -> Any:
    node = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def activations(config: Mapping) -> list[str]:
    """The top-level act1, act2, ... values in order; a missing or null one ends the list."""
    acts = []
    while select(config, f"act{len(acts) + 1}") is not None:
        acts.append(str(select(config, f"act{len(acts) + 1}")))
    return acts


def hparams(config: Mapping) -> dict[str, Any]:
    """A resolved config's declared keys by short name: TensorBoard's HParams, result.json, the report."""
    acts = activations(config)
    depth = max(len(acts), MIN_ACT_HPARAMS)
    shown = {f"act{i}": acts[i - 1] if i <= len(acts) else "none" for i in range(1, depth + 1)}
    for key in KEYS:
        if key.name and key is not ACTIVATION:  # the activations are above, padded
            value = select(config, key.path, key.default)
            if key.optional and value is None:
                continue
            shown[key.name] = key.show(value) if key.show and value is not None else value
    return shown


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf of a nested config; lists are leaves."""
    if isinstance(node, Mapping):
        for name, value in node.items():
            yield from leaves(value, f"{prefix}{name}.")
    else:
        yield prefix[:-1], node


def identity(config: Mapping) -> dict:
    """The resolved config without the keys that do not change a job's outcome (NOT_IDENTITY), nor those at their
    neutral value (NEUTRAL: a key added later, at which a job computes what it computed before the key existed)."""
    return json.loads(json.dumps(_identity_view(config)))  # a copy in the form result.json stores


def identity_key(config: Mapping) -> str:
    """A job's identity (see identity) as a short name: two configs get the same one exactly when they compute the
    same job, however their overrides were typed (a default spelled out, a seed listed twice)."""
    return hashlib.sha256(json.dumps(_identity_view(config), sort_keys=True).encode()).hexdigest()[:20]


def _identity_view(config: Mapping) -> Mapping:
    """identity's keys, the config's own values shared (not copied)."""
    for key in NOT_IDENTITY:
        config = _without(config, key)
    for key, value in NEUTRAL:
        if select(config, key, _UNSET) == value:
            config = _without(config, key)
    return config


def _without(node: Any, path: str) -> Any:
    """`node` without the key at dotted `path`: the mappings on the path copied, nothing else (a sweep of 100,000
    jobs names each job's identity; a deep copy of every config cost seconds)."""
    head, _, rest = path.partition(".")
    if not isinstance(node, Mapping) or head not in node:
        return node
    node = dict(node)
    if rest:
        node[head] = _without(node[head], rest)
    else:
        del node[head]
    return node


def undeclared(config: Mapping) -> dict[str, Any]:
    """The config's leaves that KEYS does not declare, under their dotted paths."""
    return {path: value for path, value in leaves(config) if key_of(path) is None}
