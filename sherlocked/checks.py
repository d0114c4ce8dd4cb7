"""What a job's config must be, checked before anything is written: one line naming the bad value.

    python -c "from sherlocked.checks import validate; print(validate({'act1': 'swish'}))"  # ConfigError

Torch-free, so a sweep checks every value it will run on a laptop or a login node in
milliseconds. MemberSpec is one member's model as the training side builds it
(sherlocked.training.population); validate() derives it from a config and checks the rest
a run needs (dataset, widths, numbers, batch norm against the batch size, compile mode).
"""

import ast
import functools
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from sherlocked.activations import MIX, parse
from sherlocked.config import ConfigError, activations, suggestion
from sherlocked.datasets import SOURCES, TRAIN_SIZES

INITS = ("default", "kaiming", "xavier", "lecun")
BATCH_NORM_CHOICES = "none, all, last, or a list of layer numbers"
NO_MOMENTUM = ("torch.optim.Adam", "torch.optim.AdamW")  # optimisers without a momentum setting
TRAINERS = ("lightning.pytorch.Trainer", "lightning.Trainer", "pytorch_lightning.Trainer")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class MemberSpec:
    """One member's model: widths [in, hidden..., out] and one activation spec per Linear."""

    widths: tuple[int, ...]
    activations: tuple[str, ...]
    batch_norm: tuple[int, ...] = ()  # 1-based layers with Linear -> BN -> activation
    output_activation: bool = True  # the study applies act_L to the logits too
    init: str = "default"
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed={self.seed!r} must be a whole number")
        layers = len(self.widths) - 1
        if layers < 1 or any(w < 1 for w in self.widths):
            raise ConfigError(f"model.widths={list(self.widths)} must be at least two positive sizes")
        if len(self.activations) != layers:
            raise ConfigError(
                f"{len(self.activations)} activations {list(self.activations)} for {layers} layers "
                f"(model.widths={list(self.widths)}); give act1..act{layers}"
            )
        for spec in self.activations:
            parse(spec)
        if self.init not in INITS:
            raise ConfigError(f"unknown model.init {self.init!r}; choose from {', '.join(INITS)}")
        for layer in self.batch_norm:
            if not 1 <= layer <= layers:
                raise ConfigError(f"model.batch_norm names layer {layer}, but the model has layers 1..{layers}")

    @property
    def layers(self) -> int:
        return len(self.widths) - 1

    def activation(self, layer: int) -> str:
        """The activation spec after Linear `layer` (1-based)."""
        if layer == self.layers and not self.output_activation:
            return "identity"
        return self.activations[layer - 1]


def batch_norm_layers(value, layers: int) -> tuple[int, ...]:
    """Resolve model.batch_norm ("none", "all", "last", or layer numbers) to 1-based layers."""
    if value is None or value == "none":
        return ()
    if value == "all":
        return tuple(range(1, layers + 1))
    if value == "last":
        return (layers,)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ConfigError(f"unknown model.batch_norm {value!r}; choose from {BATCH_NORM_CHOICES}")
    return tuple(sorted(set(value)))


def compile_mode(value) -> str | None:
    """The config's `compile` (false, true or a torch.compile mode) as torch.compile's mode; None: eager."""
    if value is None or value is False:
        return None
    if value is True:
        return "default"
    if isinstance(value, str) and value in COMPILE_MODES:
        return value
    raise ConfigError(
        f"compile={value!r} must be false, true or one of torch.compile's modes: {', '.join(COMPILE_MODES)}"
    )


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
    bn = (
        OmegaConf.to_container(model["batch_norm"]) if OmegaConf.is_config(model["batch_norm"]) else model["batch_norm"]
    )
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
    compile_mode(cfg.get("compile"))
    _check_trainer(cfg["trainer"])
    _check_batches(spec, cfg)
    _check_optimizer(cfg["model"]["optimizer"])
    return spec


@functools.cache
def trainer_arguments() -> frozenset[str] | None:
    """The arguments Lightning's Trainer takes, read from its source (importing Lightning, and torch, would cost
    the checks seconds); None where it is not found."""
    spec = importlib.util.find_spec("lightning")
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        tree = ast.parse((Path(spec.submodule_search_locations[0]) / "pytorch" / "trainer" / "trainer.py").read_text())
    except (OSError, SyntaxError):
        return None
    methods = [
        item for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Trainer" for item in node.body
    ]
    for method in methods:
        if isinstance(method, ast.FunctionDef) and method.name == "__init__":
            return frozenset(a.arg for a in [*method.args.args, *method.args.kwonlyargs] if a.arg != "self")
    return None


def _check_trainer(trainer: Mapping) -> None:
    """A key Lightning's Trainer does not take (+trainer.max_epoch=2) would fail every job it reaches."""
    known = trainer_arguments() if trainer.get("_target_") in TRAINERS else None
    for key in [k for k in trainer if not str(k).startswith("_")] if known else []:
        if key not in known:
            raise ConfigError(
                f"trainer.{key}: Lightning's Trainer takes no {key}{suggestion(key, known)}; its arguments: "
                + ", ".join(sorted(known))
            )


def _check_optimizer(optimizer: Mapping) -> None:
    """A setting the optimiser does not take: alone it would fail, in a population it would be silently ignored."""
    target = optimizer.get("_target_")
    if target in NO_MOMENTUM and "momentum" in optimizer:
        raise ConfigError(
            f"model.optimizer.momentum={optimizer['momentum']!r}: {target} has no momentum (its betas play that part); "
            "drop it, or use model/optimizer=sgd"
        )


def _check_batches(spec: MemberSpec, cfg: Mapping) -> None:
    data = cfg["dataset"]
    size = TRAIN_SIZES.get(data["name"])
    if size is not None and data["batch_size"] > size:
        raise ConfigError(
            f"dataset.batch_size={data['batch_size']} is more than {data['name']}'s {size} training images"
        )
    # Batch norm needs two samples a batch to have a variance (nn.BatchNorm1d refuses one), the last batch too.
    if spec.batch_norm and (data["batch_size"] == 1 or (size is not None and size % data["batch_size"] == 1)):
        raise ConfigError(
            f"dataset.batch_size={data['batch_size']} leaves a batch of one image, which batch norm "
            f"(model.batch_norm={cfg['model']['batch_norm']}) cannot normalise; choose another batch size"
        )
