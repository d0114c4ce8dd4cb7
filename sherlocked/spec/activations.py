"""Activation functions by name: which exist, how a layer mixes two, and which can die or saturate.

    python -c "from sherlocked.spec.activations import parse; print(parse('relu|tanh'))"

Names only, no torch: the checks, the report and `--help` read them; the training side builds
the modules (sherlocked.training.activations) from the torch.nn classes named here.
"""

from sherlocked.spec.config import ConfigError

# name -> the torch.nn class that computes it
ACTIVATIONS = {
    "relu": "ReLU",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
    "selu": "SELU",
    "gelu": "GELU",
    "silu": "SiLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "softplus": "Softplus",
    "mish": "Mish",
    "identity": "Identity",
}
# The separator for a layer whose units are split between two activations.
MIX = "|"
# Activations whose units can die: no (relu) or only a fixed small (leaky_relu) gradient below 0.
DYING = ("relu", "leaky_relu")
SATURATING = ("sigmoid", "tanh")  # flat far from 0 on both sides
# Never decreasing, so that max pooling commutes with them (gelu, silu and mish dip below 0 first).
NON_DECREASING = ("relu", "tanh", "sigmoid", "selu", "elu", "leaky_relu", "softplus", "identity")


def parse(spec: str) -> list[str]:
    """Split an activation spec ("relu" or "relu|tanh") into known names, or raise ConfigError."""
    names = str(spec).split(MIX)
    if len(names) > 2:
        raise ConfigError(f"activation {spec!r} mixes {len(names)} functions; a layer mixes at most two")
    for name in names:
        if name not in ACTIVATIONS:
            where = f" in {spec!r}" if name != spec else ""
            raise ConfigError(f"unknown activation {name!r}{where}; choose from {', '.join(ACTIVATIONS)}")
    return names


def family(spec: str) -> str | None:
    """ "relu" for relu and leaky_relu (units can die), "sigmoid" or "tanh" (they saturate), else None."""
    names = parse(spec)
    if len(names) != 1:
        return None
    if names[0] in DYING:
        return "relu"
    return names[0] if names[0] in SATURATING else None
