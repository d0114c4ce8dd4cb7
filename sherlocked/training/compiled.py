"""A population's training loss, through torch.compile where the config asks (`compile`), eager otherwise.

    python -m sherlocked.train -m hydra/launcher=population compile=reduce-overhead ...

torch.compile fuses what a step does besides its matmuls (activations, batch norm, the loss, and
their gradients) into few kernels; mode `reduce-overhead` also replays the step's kernels as CUDA
graphs, so a step of hundreds of members waits on neither Python nor kernel launches. It compiles
once per population, at its first step (for the study's model on a 2-core CPU: 6 s the first time
in a process, 2.5 s after; there the step after it is no faster: `make bench` measures both).
Where it cannot compile (no C++ compiler, no Triton, a Python torch.compile does not support), the
population says so in one line and trains eager, to the same numbers.
"""

import logging
from collections import Counter
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)
CUDA_GRAPHS = ("reduce-overhead", "max-autotune")  # the modes that replay CUDA graphs (on a GPU)
# In this process: first_step_s, the wall seconds of compiled populations' first training steps, where
# torch.compile compiles the forward and then the backward; fallbacks, the populations that trained eager
# because it could not. What the benchmark reports.
spent: Counter = Counter()


class Step:
    """fn, compiled with torch.compile(mode) at its first call; eager from then on if that fails.

    mode: one of sherlocked.spec.checks.COMPILE_MODES (checks.compile_mode reads it from a config), None for eager.
    """

    def __init__(self, fn: Callable, mode: str | None):
        self.eager, self.mode, self.compiled, self.tried = fn, mode, None, False
        self.first_step_s: float | None = None  # wall time of the first training step (the module times it)
        self.fallback: str | None = None  # why it runs eager although compiling was asked
        if mode is None:
            return
        # A new population has new graphs: the last one's are no use, and would count towards
        # torch's recompile limit, past which it runs eager without a word.
        torch._dynamo.reset()
        try:
            self.compiled = torch.compile(fn, mode=mode, dynamic=False)  # one batch size per run
        except Exception as error:  # e.g. a Python that torch.compile does not support yet
            self._fall_back(error)

    def __call__(self, *args):
        if self.compiled is None:
            return self.eager(*args)
        if self.mode in CUDA_GRAPHS:
            torch.compiler.cudagraph_mark_step_begin()  # a new step: the last one's graph outputs may be reused
        if self.tried:
            return self.compiled(*args)
        self.tried = True
        try:
            return self.compiled(*args)
        except Exception as error:  # compiling happens here: nothing ran yet, so eager computes the same step
            self._fall_back(error)
            return self.eager(*args)

    def first_step_took(self, seconds: float) -> None:
        self.first_step_s = seconds
        if self.compiled is not None:
            spent["first_step_s"] += seconds

    def _fall_back(self, error: Exception) -> None:
        self.compiled = None
        spent["fallbacks"] += 1
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        self.fallback = f"{type(error).__name__}: {reason}"
        log.warning(f"compile={self.mode}: torch.compile failed ({self.fallback}); training eager, the same numbers")
