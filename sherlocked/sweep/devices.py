"""Where a sweep's populations train and how big they may be: the device, the workers, the memory cap; what a
member costs (memory, FLOPs).

    python -c "from sherlocked.sweep.devices import default_max_members; print(default_max_members('cpu'))"

Asks torch about the machine (torch.cuda), imported in the functions that ask: a plan that
trains elsewhere (Ray, SLURM) still asks what this machine has, as the old launcher did. A
machine with no GPU driver at all answers 0 GPUs without torch (its import costs seconds that
--plan would wait for).
"""

import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from sherlocked.spec.checks import member_spec, plain
from sherlocked.spec.config import ConfigError
from sherlocked.spec.shapes import LayerShape

# What a machine whose GPUs torch.cuda could use has: NVIDIA's driver (also in containers given GPUs), AMD's (ROCm
# builds of torch answer through torch.cuda), WSL's GPU device.
GPU_DRIVERS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_count() -> int:
    """The CUDA GPUs this process sees: torch's answer, or 0 without importing torch where no GPU driver is found."""
    if "torch" not in sys.modules and not any(Path(path).exists() for path in GPU_DRIVERS):
        return 0
    import torch

    return torch.cuda.device_count()


def device_of(config: Mapping) -> str:
    """cuda where the job's trainer asks for a GPU (or takes one when it may) and one is visible, else cpu."""
    accelerator = config["trainer"]["accelerator"]
    return "cuda" if accelerator in ("auto", "gpu", "cuda") and gpu_count() > 0 else "cpu"


def default_max_members(device: str) -> int:
    """Population size when the launcher is not told: measured with `python -m sherlocked.bench --group N`.

    On a 2-core CPU, 4 to 16 members per population train fastest (parameters, gradients and
    momentum of more members overflow the caches); a GPU fills up with all of them (0 = no limit).
    """
    return 16 if device == "cpu" else 0


def worker_count(requested: int) -> int:
    """Local worker processes: as requested, else one per visible GPU where there are several."""
    if requested > 0:
        return requested
    return gpu_count() if gpu_count() > 1 else 0


def model_shapes(config: Mapping) -> list[LayerShape]:
    """Every layer's shapes of a job's model (sherlocked.spec.shapes), conv layers first."""
    return member_spec(config).shapes


def member_bytes(config: Mapping) -> int:
    """Memory one member needs: parameters, gradients and momentum, activations of a train and a test batch."""
    layers, data = model_shapes(config), config["dataset"]
    params = sum(layer.params for layer in layers)
    values = sum(math.prod(layer.pre) for layer in layers)  # what each sample leaves in every layer
    activations = 4 * values * (data["batch_size"] + data["test_batch_size"])  # a few copies each
    return 4 * (4 * params + activations)


def flops_per_member_epoch(layers: Sequence[LayerShape], batch: int, train_steps: int, test_size: int) -> float:
    """Matmul and convolution FLOPs actually computed: each layer's forward (2 * fan_in per value it computes), the
    weight gradient as much again, and the input gradient as much again for every layer but the first."""
    forward = [layer.flops for layer in layers]
    train = 2 * sum(forward) + sum(forward[1:])
    return train * batch * train_steps + sum(forward) * test_size


def memory_cap(config: Mapping, device: str) -> int:
    """Most members that fit in half of the device's free memory (the rest: data, allocator slack)."""
    if device == "cuda":
        import torch

        free = torch.cuda.mem_get_info()[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, free // 2 // member_bytes(config))


def check_gpu(config: Mapping) -> None:
    """The GPU a job asks for (trainer=gpu) is visible here: ConfigError (one line) if not, instead of Lightning's
    traceback. Only for jobs that train on this machine: a cluster's nodes have GPUs its login node may lack."""
    trainer = config["trainer"]
    accelerator = trainer.get("accelerator")
    if accelerator not in ("gpu", "cuda"):
        return  # auto takes a GPU where there is one, else the CPU
    count = gpu_count()
    if count == 0:
        raise ConfigError(
            f"trainer.accelerator={accelerator}: no CUDA GPU is visible here (torch.cuda.device_count() is 0); "
            "use trainer=cpu"
        )
    devices = plain(trainer.get("devices"))
    if isinstance(devices, list) and devices and devices[0] >= count:  # a list of one index: sherlocked.spec.checks
        raise ConfigError(f"trainer.devices={devices}: the GPUs visible here are 0..{count - 1}")
