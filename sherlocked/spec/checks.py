"""What a job's config must be, checked before anything is written: one line naming the bad value.

    python -c "from sherlocked.spec.checks import validate; print(validate({'act1': 'swish'}))"  # ConfigError

Torch-free, so a sweep checks every value it will run on a laptop or a login node in
milliseconds. MemberSpec is one member's model as the training side builds it
(sherlocked.training.population); validate() derives it from a config and checks the rest
a run needs (dataset, widths, every number, flag and list a run reads against its type, sign
and NaN (RULES), batch norm against the batch size, one device, compile mode, a user's Lightning
callbacks against those that cannot work on a population (REFUSED_CALLBACKS)). output_dir()
checks the folder a run or a sweep will write before Hydra makes it.
"""

import ast
import dataclasses
import functools
import importlib.util
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from sherlocked.spec.activations import MIX, parse
from sherlocked.spec.config import OUTPUT_PATHS, ConfigError, activations, select, suggestion
from sherlocked.spec.datasets import CHANNELS, CLASSES, IMAGES, INPUTS, SOURCES, TRAIN_SIZES
from sherlocked.spec.shapes import POOLS, Conv, LayerShape, conv_shapes, linear_shapes, per_layer

INITS = ("default", "kaiming", "xavier", "lecun")
BATCH_NORM_CHOICES = "none, all, last, or a list of layer numbers"
NO_MOMENTUM = ("torch.optim.Adam", "torch.optim.AdamW")  # optimisers without a momentum setting
TRAINERS = ("lightning.pytorch.Trainer", "lightning.Trainer", "pytorch_lightning.Trainer")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")  # the names Lightning's Trainer takes
ONE_DEVICE = (
    "a population trains on one device; for several GPUs run a sweep (-m hydra/launcher=population), "
    "one worker per GPU (hydra.launcher.workers) or hydra.launcher.backend=ray|submitit"
)
ABSENT = object()  # a key the config lacks (momentum with Adam): nothing to check
# Lightning's callbacks that cannot work on a population (several networks trained as one, each with its own metrics):
# what stops, checkpoints or tunes them all by one metric. Known by the _target_'s class name, without torch.
REFUSED_CALLBACKS = {
    "EarlyStopping": "it would stop every member on one metric; each trains for trainer.max_epochs",
    "ModelCheckpoint": "it would keep every member by one metric; sherlocked checkpoints each population itself "
    "(checkpoint_every_s)",
    "BatchSizeFinder": "it would tune the members' shared dataset.batch_size by their summed loss",
    "LearningRateFinder": "it would tune one learning rate for every member by their summed loss; sweep "
    "model.optimizer.lr instead",
}
LIGHTNING_MODULES = ("lightning.", "pytorch_lightning.")  # where Lightning's callbacks come from
LOGGING_CALLBACKS = ("LearningRateMonitor", "DeviceStatsMonitor")  # they log through the Trainer's own logger
# A tracker's own package, by its Lightning logger's class name: (the module it imports, what installs it).
TRACKER_PACKAGES = {
    "MLFlowLogger": ("mlflow", "pip install -e '.[mlflow]'"),
    "WandbLogger": ("wandb", "pip install -e '.[wandb]'"),
    "CometLogger": ("comet_ml", "pip install comet-ml"),
    "NeptuneLogger": ("neptune", "pip install neptune"),
}


def plain(value: Any) -> Any:
    """A composed config's list or mapping as Python's (a resolved config holds those already), else the value."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # true is 1 to Python


def is_finite(value: Any) -> bool:
    """A number, not a bool, NaN (every comparison with it is false, so it passes any bound) or infinity."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def positive(value: Any) -> bool:
    return is_finite(value) and value > 0


def at_least_zero(value: Any) -> bool:
    return is_finite(value) and value >= 0


def positive_whole(value: Any) -> bool:
    return is_whole(value) and value > 0


def boolean(value: Any) -> bool:
    return isinstance(value, bool)  # bool("maybe") is true: a string would silently switch a setting on


def boolean_or_null(value: Any) -> bool:
    return value is None or isinstance(value, bool)  # null: Lightning's or torch's default


def seconds_or_null(value: Any) -> bool:
    """null (never), or seconds >= 0; infinity is allowed: a checkpoint only on a stop signal."""
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0)


def batches(value: Any) -> bool:
    """Lightning's limit_*_batches: null (all), a number of batches, or a fraction of them; 0 trains or tests
    nothing (and the run then fails on its empty history)."""
    return value is None or (positive(value) and (value <= 1 or float(value).is_integer()))


def sanity_steps(value: Any) -> bool:
    return is_whole(value) and value >= -1  # -1: every validation batch


def two_betas(value: Any) -> bool:
    value = plain(value)
    return isinstance(value, list | tuple) and len(value) == 2 and all(at_least_zero(b) and b < 1 for b in value)


def folders(value: Any) -> bool:
    value = plain(value)
    return isinstance(value, list | tuple) and all(isinstance(folder, str) and folder for folder in value)


def folder(value: Any) -> bool:
    return isinstance(value, str | os.PathLike) and str(value) != ""  # null would be a folder named None


def trainer_logger(value: Any) -> bool:
    """Lightning's own logger: on, off, or a logger's config (instantiated with the Trainer)."""
    return value is None or isinstance(value, bool) or isinstance(plain(value), dict | list)


@dataclass(frozen=True)
class Rule:
    """What the value at a dotted config path must be: a test and its words. A path the config lacks is not
    checked (Adam has no momentum; Lightning's limits are added with +trainer.limit_train_batches=...)."""

    path: str
    ok: Callable[[Any], bool]
    meaning: str


TRUE_OR_FALSE = "true or false"
POSITIVE_WHOLE = "a positive whole number"
BATCHES = "a whole number of batches >= 1 or a fraction of them in (0, 1]"
# Every number, flag and list a run reads from conf/ (but what checks below by hand: model, dataset, devices).
RULES = (
    Rule("model.optimizer.lr", positive, "a finite positive number"),
    Rule("dataset.batch_size", positive_whole, POSITIVE_WHOLE),
    Rule("trainer.max_epochs", positive_whole, POSITIVE_WHOLE),
    Rule("model.optimizer.momentum", at_least_zero, "a finite number >= 0"),  # torch refuses < 0
    Rule("model.optimizer.weight_decay", at_least_zero, "a finite number >= 0"),
    Rule("model.optimizer.betas", two_betas, "two numbers in [0, 1), e.g. [0.9, 0.999]"),
    Rule("model.optimizer.eps", positive, "a finite positive number"),
    Rule("model.optimizer.fused", boolean_or_null, "true, false or null"),
    Rule("dataset.test_batch_size", positive_whole, POSITIVE_WHOLE),
    Rule("dataset.root", folder, "a folder's path"),
    Rule("dataset.download", boolean, TRUE_OR_FALSE),
    Rule("dataset.fallback_dirs", folders, "a list of folders' paths, e.g. [/usr/share/datasets/fashion-mnist]"),
    Rule("diagnostics.enabled", boolean, TRUE_OR_FALSE),
    Rule("diagnostics.interval", positive_whole, f"{POSITIVE_WHOLE} of training steps"),
    Rule("diagnostics.probe_size", positive_whole, f"{POSITIVE_WHOLE} of test images"),
    Rule("diagnostics.histograms", boolean, TRUE_OR_FALSE),
    Rule("checkpoint_every_s", seconds_or_null, "null (never) or a number of seconds >= 0 (0: every epoch)"),
    Rule("trainer.enable_progress_bar", boolean_or_null, TRUE_OR_FALSE),
    Rule("trainer.enable_checkpointing", boolean_or_null, TRUE_OR_FALSE),
    Rule("trainer.enable_model_summary", boolean_or_null, TRUE_OR_FALSE),
    Rule("trainer.logger", trainer_logger, "true, false or a logger's config"),
    Rule("trainer.log_every_n_steps", positive_whole, POSITIVE_WHOLE),  # steps % it, in the module
    Rule("trainer.num_sanity_val_steps", sanity_steps, "a whole number >= -1 (-1: every validation batch)"),
    Rule("trainer.limit_train_batches", batches, BATCHES),
    Rule("trainer.limit_val_batches", batches, BATCHES),
    *(Rule(f"paths.{name}", folder, "a folder's path") for name in OUTPUT_PATHS),  # where outputs go (conf/paths)
)


@dataclass(frozen=True)
class MemberSpec:
    """One member's model: its conv layers (none for an MLP) on images of shape `image` (C, H, W), then its Linear
    layers of widths [in, hidden..., out] (a CNN's head: `in` is its last conv layer's output, flattened), one
    activation spec per layer (conv layers first), and the layers with batch norm and with an identity skip."""

    widths: tuple[int, ...]
    activations: tuple[str, ...]
    batch_norm: tuple[int, ...] = ()  # 1-based layers with conv/Linear -> BN -> activation
    output_activation: bool = True  # the study applies act_L to the logits too
    init: str = "default"
    seed: int = 0
    convs: tuple[Conv, ...] = ()
    image: tuple[int, ...] = ()  # (C, H, W) of the inputs, which come flattened; needed with convs
    residual: tuple[int, ...] = ()  # 1-based hidden layers whose activation gets their input added: act(BN(Wx) + x)

    def __post_init__(self):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigError(f"seed={self.seed!r} must be a whole number")
        if len(self.widths) < 2 or any(w < 1 for w in self.widths):
            raise ConfigError(f"model.widths={list(self.widths)} must be at least two positive sizes")
        layers = self.layers
        if len(self.activations) != layers:
            kinds = f"{len(self.convs)} conv and {len(self.widths) - 1} Linear" if self.convs else str(layers)
            raise ConfigError(
                f"{len(self.activations)} activations {list(self.activations)} for {kinds} layers "
                f"({self.described}); give act1..act{layers}"
            )
        for spec in self.activations:
            parse(spec)
        if self.init not in INITS:
            raise ConfigError(f"unknown model.init {self.init!r}; choose from {', '.join(INITS)}")
        for layer in self.batch_norm:
            if not 1 <= layer <= layers:
                raise ConfigError(f"model.batch_norm names layer {layer}, but the model has layers 1..{layers}")
        shapes = self.shapes  # raises where a conv layer leaves nothing of its input
        if self.convs and self.widths[0] != math.prod(shapes[len(self.convs) - 1].out):
            raise ValueError(f"widths[0]={self.widths[0]} is not the flattened {shapes[len(self.convs) - 1].out}")
        for layer in self.residual:
            _check_skip(shapes, layer, self.described)

    @property
    def layers(self) -> int:
        return len(self.convs) + len(self.widths) - 1

    @property
    def shapes(self) -> list[LayerShape]:
        """Every layer's shapes, conv layers first (sherlocked.spec.shapes)."""
        convs = conv_shapes(self.image, self.convs) if self.convs else []
        return [*convs, *linear_shapes(self.widths, first=len(convs) + 1)]

    @property
    def described(self) -> str:
        """The model's shape as its config gives it, for messages."""
        if not self.convs:
            return f"model.widths={list(self.widths)}"
        return f"model.channels={[c.channels for c in self.convs]}, model.widths={list(self.widths[1:])}"

    def activation(self, layer: int) -> str:
        """The activation spec after conv or Linear `layer` (1-based)."""
        if layer == self.layers and not self.output_activation:
            return "identity"
        return self.activations[layer - 1]


def _check_skip(shapes: list[LayerShape], layer: int, described: str) -> None:
    """An identity skip fits around hidden `layer` only where its output keeps its input's shape."""
    if not 1 <= layer < len(shapes):
        raise ConfigError(
            f"model.residual names layer {layer}, but the skips go around hidden layers 1..{len(shapes) - 1}"
        )
    shape = shapes[layer - 1]
    if not shape.inputs == shape.pre == shape.out:
        raise ConfigError(
            f"model.residual names layer {layer}, whose input {shape.inputs} and output {shape.out} differ "
            f"({described}): a skip adds a layer's input to its output"
        )


def residual_layers(value, shapes: list[LayerShape], described: str) -> tuple[int, ...]:
    """Resolve model.residual (false, true: every hidden layer that keeps its input's shape, or layer numbers)."""
    if value is None or value is False:
        return ()
    if value is True:
        fits = tuple(s.number for s in shapes[:-1] if s.inputs == s.pre == s.out)
        if not fits:
            example = (
                "model.channels=[8,8] model.padding=2 model.pool=[max,none]"
                if shapes[0].kind == "conv"
                else "model.widths=[784,256,256,256,10]"
            )
            raise ConfigError(
                f"model.residual=true, but no hidden layer keeps its input's shape ({described}): a skip adds a "
                f"layer's input to its output, e.g. {example}"
            )
        return fits
    if is_whole(value):
        value = [value]
    if not isinstance(value, list | tuple) or not all(is_whole(v) for v in value):
        raise ConfigError(f"model.residual={value!r} must be true, false or a list of layer numbers, e.g. [2,3]")
    return tuple(sorted(set(value)))


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
    widths = plain(model["widths"])
    if not isinstance(widths, list | tuple) or not all(is_whole(w) for w in widths):
        raise ConfigError(f"model.widths={widths!r} must be whole numbers, e.g. [784, 500, 256, 10]")
    if not boolean(model["output_activation"]):
        raise ConfigError(f"model.output_activation={model['output_activation']!r} must be {TRUE_OR_FALSE}")
    convs, image = conv_layers(model), ()
    if convs:  # a CNN: model.widths is its head, after the last conv layer's output, flattened
        image = IMAGES.get(cfg["dataset"]["name"])
        if image is None:
            raise ConfigError(f"unknown dataset {cfg['dataset']['name']!r}; choose from {', '.join(SOURCES)}")
        widths = [math.prod(conv_shapes(image, convs)[-1].out), *widths]
    layers = len(convs) + len(widths) - 1
    spec = MemberSpec(
        widths=tuple(widths),
        activations=tuple(acts),
        batch_norm=batch_norm_layers(plain(model["batch_norm"]), layers),
        output_activation=model["output_activation"],
        init=str(model["init"]),
        seed=cfg["seed"],  # checked by MemberSpec: 1.5 is no seed
        convs=convs,
        image=image,
    )
    residual = residual_layers(plain(model.get("residual")), spec.shapes, spec.described)
    return dataclasses.replace(spec, residual=residual) if residual else spec


def conv_layers(model: Mapping) -> tuple[Conv, ...]:
    """A CNN's conv layers from model.channels, model.kernel, model.padding and model.pool; none for an MLP."""
    channels = plain(model.get("channels"))
    if channels is None or channels == []:
        return ()
    if not isinstance(channels, list | tuple) or not all(positive_whole(c) for c in channels):
        raise ConfigError(f"model.channels={channels!r} must be a list of positive whole numbers, e.g. [8, 16]")
    n = len(channels)
    kernels = per_layer(plain(model.get("kernel", 3)), n, "model.kernel", positive_whole, "a positive whole number")
    paddings = per_layer(plain(model.get("padding", 0)), n, "model.padding", natural, "a whole number >= 0")
    pools = per_layer(plain(model.get("pool", "none")), n, "model.pool", POOLS.__contains__, " | ".join(POOLS))
    return tuple(Conv(*layer) for layer in zip(channels, kernels, paddings, pools))


def natural(value: Any) -> bool:
    """A whole number >= 0."""
    return is_whole(value) and value >= 0


def validate(cfg: Mapping) -> MemberSpec:
    """Check everything a run needs before anything is written (cfg as for member_spec)."""
    spec = member_spec(cfg)
    _check_dataset(spec, cfg["dataset"])
    for rule in RULES:
        value = select(cfg, rule.path, ABSENT)
        if value is not ABSENT and not rule.ok(value):
            raise ConfigError(f"{rule.path}={plain(value)!r} must be {rule.meaning}")
    compile_mode(cfg.get("compile"))
    _check_trainer(cfg["trainer"])
    _check_callbacks(cfg["trainer"])
    _check_loggers(cfg.get("logger"))
    _check_one_device(cfg["trainer"])
    _check_batches(spec, cfg)
    _check_optimizer(cfg["model"]["optimizer"])
    return spec


def _check_dataset(spec: MemberSpec, data: Mapping) -> None:
    """The dataset is one sherlocked has, described as it is (its image size, its classes, a number per channel to
    normalise with), and the model's widths fit it."""
    name = data["name"]
    if name not in SOURCES:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(SOURCES)}")
    # Any other value trains a model of the wrong shape: a shape error in the first step, or labels out of range.
    for key, value, means in (("input_dim", INPUTS[name], "values of an image"), ("num_classes", CLASSES, "classes")):
        if data.get(key) != value or not is_whole(data.get(key)):
            raise ConfigError(f"dataset.{key}={data.get(key)!r} must be {value}, the {means} of {name}")
    if spec.convs and spec.widths[-1] != data["num_classes"]:  # a CNN's input is the image itself
        raise ConfigError(f"model.widths={list(spec.widths[1:])} must end with {name}'s {data['num_classes']} classes")
    if not spec.convs and (spec.widths[0] != data["input_dim"] or spec.widths[-1] != data["num_classes"]):
        raise ConfigError(
            f"model.widths={list(spec.widths)} must start with {name}'s {data['input_dim']} inputs "
            f"and end with its {data['num_classes']} classes"
        )
    channels = CHANNELS[name]
    for key, ok, number in (("mean", is_finite, "finite number"), ("std", positive, "positive number")):
        value = plain(data.get(key, ABSENT))
        if value is not ABSENT and not (
            isinstance(value, list | tuple) and len(value) == channels and all(ok(v) for v in value)
        ):
            raise ConfigError(
                f"dataset.{key}={value!r} must be a list of {channels} {number}{'s' * (channels > 1)}, "
                f"one per channel of {name}'s images"
            )


def _check_one_device(trainer: Mapping) -> None:
    """A population trains on one device: Lightning's DDP on several would start the command again in each of
    its processes (a sweep then waits forever on itself, a single run ends in a traceback)."""
    accelerator = trainer.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        raise ConfigError(
            f"trainer.accelerator={accelerator!r}; choose from {', '.join(ACCELERATORS)}"
            f"{suggestion(str(accelerator), ACCELERATORS)}"
        )
    devices = plain(trainer.get("devices", 1))
    one_gpu = isinstance(devices, list) and len(devices) == 1 and is_whole(devices[0]) and devices[0] >= 0
    if not (is_whole(devices) and devices == 1) and not (one_gpu and accelerator in ("gpu", "cuda")):
        raise ConfigError(f"trainer.devices={devices!r} must be 1 (with trainer=gpu: one GPU, e.g. [0]): {ONE_DEVICE}")
    nodes = trainer.get("num_nodes", 1)
    if not is_whole(nodes) or nodes != 1:
        raise ConfigError(f"trainer.num_nodes={nodes!r} must be 1: {ONE_DEVICE}")
    strategy = trainer.get("strategy", "auto")
    if strategy != "auto":
        raise ConfigError(f"trainer.strategy={plain(strategy)!r} must be auto: {ONE_DEVICE}")


def output_dir(key: str, path: Any, read_back: bool = False) -> None:
    """The folder a run or a sweep writes (hydra.run.dir, hydra.sweep.dir) is one, or can be made: its nearest
    existing folder is not a file and can be written. read_back: a sweep dir holding a sweep's multirun.yaml may
    be read-only (a finished sweep read back from read-only storage, its jobs skipped)."""
    target = Path(os.path.abspath(str(path)))
    existing = next(p for p in (target, *target.parents) if os.path.lexists(p))
    if not existing.is_dir():
        raise ConfigError(f"{key}={path}: {existing} is not a folder; choose another {key}")
    if os.access(existing, os.W_OK | os.X_OK):
        return
    if read_back and existing == target and (target / "multirun.yaml").is_file():
        return
    read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
    why = "its file system is read-only" if read_only else "permission denied"
    raise ConfigError(f"{key}={path}: {existing} cannot be written ({why}); choose a folder that can be written")


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


def _check_callbacks(trainer: Mapping) -> None:
    """A user's Lightning callbacks (+trainer.callbacks=[...]) are configs to instantiate, none is one that cannot
    work on a population (REFUSED_CALLBACKS), and one that logs has a logger to log to."""
    callbacks = plain(trainer.get("callbacks"))
    listed = list(callbacks.values()) if isinstance(callbacks, dict) else callbacks
    example = "[{_target_:lightning.pytorch.callbacks.LearningRateMonitor}]"
    if callbacks is not None and not (
        isinstance(listed, list) and all(isinstance(c, dict) and isinstance(c.get("_target_"), str) for c in listed)
    ):
        raise ConfigError(f"trainer.callbacks={callbacks!r} must be a list of callbacks with a _target_: {example}")
    for target in [callback["_target_"] for callback in listed or []]:
        name = target.rsplit(".", 1)[-1]
        if name in REFUSED_CALLBACKS and target.startswith(LIGHTNING_MODULES):
            raise ConfigError(
                f"trainer.callbacks: {target} cannot work on a population (several networks trained as one, each "
                f"with its own metrics): {REFUSED_CALLBACKS[name]}"
            )
        if name in LOGGING_CALLBACKS and trainer.get("logger") is False:
            raise ConfigError(
                f"trainer.callbacks: {target} logs through the Trainer's own logger, which conf/trainer turns off "
                "(each member has its TensorBoard run, conf/logger): give it one, trainer.logger=true (its events in "
                "the run's or the sweep's dir, lightning_logs/) or a logger's config"
            )


@functools.cache
def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _check_loggers(group: Any) -> None:
    """Each tracker (conf/logger) is a Lightning logger's config, and its package is installed: a missing one would
    fail every population after its data was loaded."""
    group = plain(group)
    if group is None:
        return
    if not isinstance(group, dict):
        example = "logger=tensorboard, logger=[tensorboard,mlflow]"
        raise ConfigError(f"logger={group!r} must be a group of trackers: {example}")
    for name, settings in group.items():
        if not (isinstance(settings, dict) and isinstance(settings.get("_target_"), str)):
            raise ConfigError(f"logger.{name}={settings!r} must be a Lightning logger's config with a _target_")
        module, install = TRACKER_PACKAGES.get(settings["_target_"].rsplit(".", 1)[-1], (None, None))
        if module and not installed(module):
            raise ConfigError(f"logger={name} needs {module}, which is not installed: {install}")


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
