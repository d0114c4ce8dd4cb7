"""The benchmark's training paths, timed on the same jobs, and the FLOPs they compute (sherlocked.bench).

(a) plain_loop: the original study's loop, one nn.Sequential at a time, SGD, data as tensors on the device;
(b) framework(group=1): sequential solo runs through sherlocked (what the basic launcher does per job);
(c) framework(group>1): populations (what hydra/launcher=population does).
Any model shape (model=mlp, model=cnn, ...). Also the achieved GFLOP/s against a large fp32 matmul (an MLP) or
conv2d (a CNN), and an MLP's against one step's own batched matmuls.
"""

import itertools
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from torch import Tensor

from sherlocked.bench.sweeps import ACTS
from sherlocked.spec.checks import member_spec
from sherlocked.spec.config import CONFIG_DIR
from sherlocked.training.engine import run
from sherlocked.training.population import Population


def configs(args, epochs: int, members: int, *extra: str, model: str = "mlp") -> list:
    triples = list(itertools.product(ACTS, repeat=3))
    jobs = [(triple, seed) for seed in range(args.seeds) for triple in triples][:members]
    common = [
        f"model={model}",
        f"dataset={args.dataset}",
        f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        "checkpoint_every_s=null",  # (a) saves none either; the end-to-end sweep keeps the default
        *([f"+trainer.limit_train_batches={args.steps}"] if args.steps else []),
        *extra,
    ]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return [
            compose("train", [*common, f"act1={a}", f"act2={b}", f"act3={c}", f"seed={s}"]) for (a, b, c), s in jobs
        ]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def plain_loop(cfgs, data, device: str) -> float:
    """(a): the original study's training, one model at a time, no framework: each job's model as a plain
    nn.Sequential of torch's own modules (Population.export: nn.Linear, nn.Conv2d, nn.MaxPool2d, ...)."""
    train_x, train_y, test_x, test_y = (t.to(device) for t in data)
    cfg0 = cfgs[0]
    batch = cfg0.dataset.batch_size
    steps = cfg0.trainer.get("limit_train_batches") or -(-len(train_y) // batch)
    sync(device)
    start = time.perf_counter()
    for cfg in cfgs:
        torch.manual_seed(cfg.seed)
        model = Population([member_spec(cfg)]).export(0).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.model.optimizer.lr, momentum=cfg.model.optimizer.momentum)
        for _ in range(cfg.trainer.max_epochs):
            order = torch.randperm(len(train_y), device=device)
            for step in range(steps):
                index = order[step * batch : (step + 1) * batch]
                loss = F.cross_entropy(model(train_x[index]), train_y[index])
                opt.zero_grad()
                loss.backward()
                opt.step()
            with torch.no_grad():
                (model(test_x).argmax(1) == test_y).float().mean().item()
    sync(device)
    return time.perf_counter() - start


class PathFailed(RuntimeError):
    """A path's training failed: its time would measure nothing."""


def framework(cfgs, group: int, device: str) -> float:
    """(b) with group=1, (c) with group>1: sherlocked.training.engine.run, as the launchers call it (seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        sync(device)
        start = time.perf_counter()
        for i in range(0, len(cfgs), group):
            chunk = cfgs[i : i + group]
            results = run(chunk, [Path(tmp) / str(i + k) for k in range(len(chunk))], quiet=True)
            if failed := [r for r in results if r.status == "failed"]:
                raise PathFailed(failed[0].error)
        sync(device)
        return time.perf_counter() - start


class GpuUtilisation:
    """Samples the GPU's utilisation (nvidia-smi, every 200 ms) while the block runs: `samples`, in percent."""

    def __init__(self, enabled: bool):
        self.enabled, self.samples = enabled, []

    def __enter__(self):
        self.sampler = None
        if not self.enabled:
            return self
        try:
            query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"]
            self.sampler = subprocess.Popen(query, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:  # no nvidia-smi: no samples
            pass
        return self

    def __exit__(self, *exc) -> None:
        self.samples = []
        if self.sampler is not None:
            self.sampler.terminate()
            out, _ = self.sampler.communicate()
            self.samples = [float(line.split(",")[0]) for line in out.split() if line.replace(".", "").isdigit()]


def timed(work, device: str, repeats: int) -> float:
    """Seconds per call of work(), after two warm-up calls."""
    for _ in range(2):
        work()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    sync(device)
    return (time.perf_counter() - start) / repeats


def matmul_peak(device: str, n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n^3 fp32 matmul on this device: the ceiling to compare against."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n**3 / timed(lambda: a @ b, device, repeats) / 1e9


def conv_peak(device: str, repeats: int = 5) -> float:
    """GFLOP/s of a large fp32 conv2d on this device (128 to 128 channels, 3x3, 32x32 images, padding 1; 8 images
    on a CPU, 256 on a GPU), the faster of NCHW and channels-last: the ceiling a CNN's convolutions compare
    against."""
    batch, channels, side = (256 if device == "cuda" else 8), 128, 32
    best = 0.0
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(batch, channels, side, side, device=device).contiguous(memory_format=layout)
        w = torch.randn(channels, channels, 3, 3, device=device).contiguous(memory_format=layout)
        seconds = timed(lambda x=x, w=w: F.conv2d(x, w, padding=1), device, repeats)
        best = max(best, 2 * batch * channels * side * side * channels * 9 / seconds / 1e9)
    return best


def step_matmuls(widths, batch: int, members: int, device: str) -> list[tuple[Tensor, Tensor]]:
    """The batched matmuls of one training step of `members` members, as (left, right) operand pairs.

    Per layer: the forward x @ W and the weight gradient x^T @ grad; the input gradient
    grad @ W^T for every layer but the first (the data needs no gradient).
    """
    pairs = []
    for layer, (i, o) in enumerate(zip(widths[:-1], widths[1:])):
        x, w, grad = (torch.randn(members, *shape, device=device) for shape in ((batch, i), (i, o), (batch, o)))
        pairs += [(x, w), (x.transpose(1, 2), grad)] + ([(grad, w.transpose(1, 2))] if layer else [])
    return pairs


def step_matmul_gflops(widths, batch: int, members: int, device: str, repeats: int = 20) -> float:
    """GFLOP/s of one step's batched matmuls run alone: what the model's own shapes allow on this device."""
    pairs = step_matmuls(widths, batch, members, device)
    seconds = timed(lambda: [torch.bmm(a, b) for a, b in pairs], device, repeats)
    return matmul_flops(pairs) / seconds / 1e9


def matmul_flops(pairs) -> int:
    """FLOPs of torch.bmm over each (left [K, m, k], right [K, k, n]) pair: 2*K*m*k*n."""
    return sum(2 * a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2] for a, b in pairs)
