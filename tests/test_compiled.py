"""compile=true (or a torch.compile mode) trains to the numbers eager training gives, and trains eager
where torch.compile cannot compile."""

import logging

import pytest
import torch
from test_module import MIXED, fit

from sherlocked.spec.checks import MemberSpec, compile_mode
from sherlocked.training import compiled


def assert_same_training(mine, eager, atol: float) -> None:
    """The equivalence tests' tolerance; running variances (here up to ~60) also get their float32 rounding."""
    rtol = 1e-6 if atol else 0
    mine.net.eval()
    eager.net.eval()
    for k in range(len(mine.net)):
        ours, theirs = mine.net.export(k).state_dict(), eager.net.export(k).state_dict()
        for name in theirs:  # weights, biases, BN parameters and running statistics
            torch.testing.assert_close(ours[name], theirs[name], rtol=rtol, atol=atol)
        for name, curve in eager.member_history(k).items():
            assert mine.member_history(k)[name] == pytest.approx(curve, rel=rtol, abs=atol), name


# reduce-overhead's CUDA graphs need a GPU: on a CPU inductor compiles without them, to the same numbers. Both on one
# of xdist's workers, one after the other: the second finds the kernels the first compiled in inductor's cache
# (62 CPU-s for the two, against 88 on two workers at once, with a cold cache as CI has).
@pytest.mark.slow
@pytest.mark.xdist_group("inductor")
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_a_compiled_population_trains_to_the_numbers_of_an_eager_one(data_root, mode):
    """Activation groups, mixed activations, batch norm on some members' layers: 2 epochs of 16 steps."""
    eager = fit(MIXED, data_root)
    before = compiled.spent["first_step_s"]
    mine = fit(MIXED, data_root, compile_mode=mode)
    assert mine.member_losses.fallback is None and mine.member_losses.compiled is not None  # it did compile
    assert compiled.spent["first_step_s"] - before == mine.member_losses.first_step_s > 0
    assert_same_training(mine, eager, atol=1e-5)


@pytest.mark.slow
def test_where_torch_compile_cannot_compile_the_population_trains_eager_to_the_same_numbers(
    data_root, monkeypatch, caplog
):
    """A machine without a C++ compiler: inductor's CPU code cannot be built."""
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("/nonexistent/g++",))
    monkeypatch.setattr(torch._inductor.config, "fx_graph_cache", False)  # a cached graph needs no compiler
    members = [MemberSpec((784, 24, 10), ("tanh", "selu"), seed=s) for s in (0, 1)]
    eager = fit(members, data_root)
    fallbacks = compiled.spent["fallbacks"]
    with caplog.at_level(logging.WARNING, logger="sherlocked.training.compiled"):
        mine = fit(members, data_root, compile_mode="default")
    assert mine.member_losses.fallback is not None and compiled.spent["fallbacks"] == fallbacks + 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "sherlocked.training.compiled"]
    assert len(warnings) == 1 and "compile=default: torch.compile failed (" in warnings[0]
    assert "training eager, the same numbers" in warnings[0] and "\n" not in warnings[0]
    assert_same_training(mine, eager, atol=0)


@pytest.mark.parametrize(
    ("value", "mode"),
    [(False, None), (None, None), (True, "default"), ("reduce-overhead", "reduce-overhead")],
)
def test_compile_values_name_torch_compile_modes(value, mode):
    assert compile_mode(value) == mode
