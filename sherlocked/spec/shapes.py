"""What each layer of a member's network is and the shape of what it computes, without torch.

    python -c "from sherlocked.spec.shapes import Conv, conv_shapes; print(conv_shapes((1, 28, 28), [Conv(8, 5)]))"

A network is its conv layers (none for an MLP), each conv -> [BN] -> activation -> pool, then
its Linear layers (the MLP, or the CNN's head), each Linear -> [BN] -> activation. One place
derives every layer's shapes: the checks (a kernel that leaves nothing of the image, a skip
around a layer whose shapes differ), the sweep's estimate (FLOPs and memory) and the engine
(sherlocked.training.population) read them here. A new kind of layer is a dataclass here with
its shape rule, and a class beside the engine's ConvLayer.
"""

import math
from dataclasses import dataclass

from sherlocked.spec.config import ConfigError

POOLS = ("max", "avg", "none")  # after a conv layer's activation: 2x2, stride 2 (nn.MaxPool2d(2), nn.AvgPool2d(2))
POOL_SIZE = 2


@dataclass(frozen=True)
class Conv:
    """One conv layer: `channels` out, a square `kernel`, zero `padding` on each side, stride 1, then `pool`."""

    channels: int
    kernel: int
    padding: int = 0
    pool: str = "none"


@dataclass(frozen=True)
class LayerShape:
    """One layer: its input, what its conv or Linear computes (pre: the activation's input, the skip's sum), and its
    output (after pooling). Shapes per sample: (C, H, W) or (features,). fan_in: the inputs of one output value;
    flops: multiply-adds x 2 of one sample's forward."""

    number: int
    kind: str  # conv | linear
    inputs: tuple[int, ...]
    pre: tuple[int, ...]
    out: tuple[int, ...]
    fan_in: int

    @property
    def params(self) -> int:
        return self.pre[0] * self.fan_in + self.pre[0]  # weights and biases

    @property
    def flops(self) -> int:
        return 2 * self.fan_in * math.prod(self.pre)


def conv_shapes(image: tuple[int, int, int], convs) -> list[LayerShape]:
    """The conv layers' shapes from the image's (C, H, W); ConfigError, naming the layer, where one leaves nothing."""
    shapes, shape = [], tuple(image)
    for number, conv in enumerate(convs, start=1):
        channels, height, width = shape
        side = (height + 2 * conv.padding - conv.kernel + 1, width + 2 * conv.padding - conv.kernel + 1)
        if min(side) < 1:
            raise ConfigError(
                f"conv layer {number}'s kernel {conv.kernel} (padding {conv.padding}) leaves nothing of its "
                f"{height}x{width} input; choose a smaller model.kernel, more model.padding or fewer conv layers "
                "(model.channels)"
            )
        pre = (conv.channels, *side)
        if conv.pool != "none":
            if min(side) < POOL_SIZE:
                raise ConfigError(
                    f"conv layer {number}'s {side[0]}x{side[1]} output is too small to pool "
                    f"({conv.pool}, {POOL_SIZE}x{POOL_SIZE}); choose model.pool=none there, or a smaller model.kernel"
                )
            side = (side[0] // POOL_SIZE, side[1] // POOL_SIZE)
        out = (conv.channels, *side)
        shapes.append(LayerShape(number, "conv", shape, pre, out, channels * conv.kernel**2))
        shape = out
    return shapes


def linear_shapes(widths, first: int = 1) -> list[LayerShape]:
    """The Linear layers' shapes from their widths [inputs, ...], numbered from `first`."""
    return [
        LayerShape(number, "linear", (i,), (o,), (o,), i)
        for number, (i, o) in enumerate(zip(widths[:-1], widths[1:]), start=first)
    ]


def per_layer(value, layers: int, key: str, ok, meaning: str) -> tuple:
    """A setting given once for every conv layer or once per layer (model.kernel: 5 or [5, 3]), as one per layer."""
    values = list(value) if isinstance(value, list | tuple) else [value] * layers
    if len(values) != layers or not all(ok(v) for v in values):
        raise ConfigError(
            f"{key}={value!r} must be {meaning}, once for every conv layer or a list of {layers} (one per layer "
            f"of model.channels)"
        )
    return tuple(values)
