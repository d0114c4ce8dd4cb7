"""The benchmark's arithmetic, and one tiny run of it end to end."""

import json
import os
import time

import pytest
import torch

from sherlocked.bench import cli, paths, sweeps
from sherlocked.spec.datasets import TEST_SIZES
from sherlocked.spec.shapes import Conv, conv_shapes, linear_shapes
from sherlocked.sweep.devices import flops_per_member_epoch


def test_flops_count_only_the_matmuls_a_step_computes():
    # Widths 4-3-2: forward 2*4*3 + 2*3*2 = 36 FLOPs a sample; training adds the weight gradients (36)
    # and the second layer's input gradient (12), not the first's: the data needs no gradient.
    flops = flops_per_member_epoch(linear_shapes([4, 3, 2]), batch=5, train_steps=2, test_size=7)
    assert flops == (36 + 36 + 12) * 5 * 2 + 36 * 7


def test_a_cnns_flops_count_each_convolution_from_its_layer_shape():
    # A 3x3 conv of 1 to 2 channels on 4x4: 2x2x2 outputs of 9 multiply-adds, 144 FLOPs a sample; its 8 outputs
    # flattened into a Linear to 3: 48. Training: forward and weight gradients of both, the Linear's input gradient.
    layers = [*conv_shapes((1, 4, 4), [Conv(2, 3)]), *linear_shapes([8, 3], first=2)]
    assert [layer.flops for layer in layers] == [144, 48]
    assert flops_per_member_epoch(layers, batch=5, train_steps=2, test_size=7) == (2 * 192 + 48) * 5 * 2 + 192 * 7


def test_the_timed_step_matmuls_are_the_ones_counted():
    pairs = paths.step_matmuls([4, 3, 2], batch=5, members=2, device="cpu")
    assert all(a.shape[0] == b.shape[0] == 2 and a.shape[2] == b.shape[1] for a, b in pairs)
    assert paths.matmul_flops(pairs) == 2 * flops_per_member_epoch(
        linear_shapes([4, 3, 2]), 5, train_steps=1, test_size=0
    )


@pytest.mark.slow
def test_a_tiny_benchmark_runs_all_paths_in_rounds_and_writes_its_figures(tmp_path, capsys, monkeypatch):
    # Each shape (an MLP, then a CNN): 3 jobs in populations of 2 (two rounds), the baselines on 1 job (in the second
    # round only).
    argv = ["--device", "cpu", "--members", "3", "--cnn-members", "3", "--group", "2", "--baseline-members", "1"]
    argv += ["--steps", "2"]
    argv += ["--sweep-small", "2", "--sweep-jobs", "4"]  # real multiruns of 2 and 4 one-step jobs
    # compile=default compiles for real; a mode whose compiled step fails at its second step is reported
    real_compile = torch.compile

    def failing_in_its_second_step(fn, mode=None, **kwargs):
        if mode != "max-autotune-no-cudagraphs":
            return real_compile(fn, mode=mode, **kwargs)
        calls = []

        def step(*args):
            calls.append(1)
            if len(calls) > 1:
                raise RuntimeError("the compiled step failed")
            return fn(*args)

        return step

    monkeypatch.setattr(torch, "compile", failing_in_its_second_step)
    argv += ["--compile", "default,max-autotune-no-cudagraphs"]
    figures = cli.main([*argv, "--out", str(tmp_path)])
    assert json.loads((tmp_path / "bench_cpu.json").read_text()) == figures
    assert list(figures["shapes"]) == ["mlp", "cnn"]  # the default shapes, the first one's figures at the top
    assert all(figures[name] == value for name, value in figures["shapes"]["mlp"].items())
    times = figures["seconds_per_member_epoch"]
    assert set(times) == {"plain", "solo", "population", "population_diagnostics", "compile=default"}
    assert all(t > 0 for t in times.values())
    assert figures["speedup_population_vs_plain"] == times["plain"] / times["population"]
    sizes = ("members", "baseline_members", "group", "steps_per_epoch")
    assert [figures[size] for size in sizes] == [3, 1, 2, 2]
    assert figures["population_gflops"] > 0 and figures["step_matmul_gflops"] > 0
    assert figures["peak"] == "matmul" and figures["peak_gflops"] == figures["matmul_peak_gflops"] > 0
    # compile=default (a CPU's default), both populations compiled; the fastest step named
    compile_default = figures["compile"]["default"]
    assert compile_default["first_steps_s"] > 0 and compile_default["seconds_per_member_epoch_after_first_step"] > 0
    assert figures["fastest_step"] in ("eager", "default")
    failing = figures["compile"]["max-autotune-no-cudagraphs"]
    assert failing["failed"] == "RuntimeError: the compiled step failed"
    assert failing["seconds_per_member_epoch_after_first_step"] is None
    # The CNN (model=cnn: two 5x5 conv layers, max pooling, a Linear head): the same paths, its figures
    cnn = figures["shapes"]["cnn"]
    assert cnn["layers"] == "conv[6, 24, 24] conv[16, 8, 8] linear[10]"
    assert set(cnn["seconds_per_member_epoch"]) == set(times) and all(cnn["seconds_per_member_epoch"].values())
    assert [cnn[size] for size in sizes] == [3, 1, 2, 2]
    shapes = [
        *conv_shapes((1, 28, 28), [Conv(6, 5, pool="max"), Conv(16, 5, pool="max")]),
        *linear_shapes([256, 10], 3),
    ]
    assert cnn["flops_per_member_epoch"] == flops_per_member_epoch(shapes, 32, 2, TEST_SIZES["mnist_5k"])
    cnn_times = cnn["seconds_per_member_epoch"]
    assert cnn["population_gflops"] == cnn["flops_per_member_epoch"] / cnn_times["population"] / 1e9 > 0
    assert cnn["plain_gflops"] == cnn["flops_per_member_epoch"] / cnn_times["plain"] / 1e9 > 0
    assert cnn["peak"] == "conv2d" and cnn["peak_gflops"] > 0 and cnn["step_matmul_gflops"] is None
    assert 0 < cnn["population_fraction_of_peak"] == cnn["population_gflops"] / cnn["peak_gflops"]
    assert cnn["speedup_population_vs_plain"] == cnn_times["plain"] / cnn_times["population"]
    assert cnn["compile"]["max-autotune-no-cudagraphs"]["failed"] == "RuntimeError: the compiled step failed"
    overhead = figures["sweep_overhead"]
    assert [(run["jobs"], run["results"]) for run in overhead["runs"]] == [(2, 2), (4, 4)]
    assert all(run["cpu_s"] > 0 and run["phases_cpu_s"]["steps"] > 0 for run in overhead["runs"])
    phases = overhead["marginal_phase_cpu_s_per_job"]
    assert overhead["framework_overhead_s_per_job"] == overhead["marginal_cpu_s_per_job"] - phases["steps"]
    assert (figures["end_to_end"]["jobs"], figures["end_to_end"]["results"]) == (3, 3)
    out = capsys.readouterr().out
    assert "(c) vs (a)" in out and "one more job costs" in out and "end to end: 3 jobs" in out
    assert "of a 2048^3 fp32 matmul" in said_once(out) and "of a large fp32 conv2d" in said_once(out)
    assert "model=cnn (conv[6, 24, 24] conv[16, 8, 8] linear[10])" in said_once(out)
    assert "(c) compile=default" in out and "compile=default, 1-epoch runs: compiling" in out
    assert "compile=max-autotune-no-cudagraphs failed: RuntimeError: the compiled step failed" in said_once(out)
    said = [line for line in out.splitlines() if line.startswith("bench: ")]  # what it runs, as it runs it
    assert said[0].startswith("bench: model=mlp: warm-up") and said[1].startswith("bench: model=mlp, round 1/2")
    assert said[3].startswith("bench: model=cnn: warm-up") and said[4].startswith("bench: model=cnn, round 1/2")
    assert said[6].startswith("bench: one-step sweeps of 2 and 4")


def said_once(out: str) -> str:
    """What the benchmark printed, on one line: rich wraps long lines at the terminal's width."""
    return " ".join(out.split())


def test_sweep_grids_have_the_study_shape():
    assert sweeps.grid(576) == ["act3=relu,tanh,sigmoid,selu", "act2=relu,tanh,sigmoid,selu"] + [
        "act1=relu,tanh,sigmoid,selu",
        "seed=range(9)",
    ]
    assert sweeps.grid(64)[-1] == "seed=range(1)" and len(sweeps.grid(64)) == 4
    assert sweeps.grid(4) == ["act3=relu,tanh,sigmoid,selu", "seed=range(1)"]
    assert sweeps.grid(3) == ["seed=range(3)"]


@pytest.mark.slow
def test_gpu_utilisation_is_sampled_from_nvidia_smi_while_the_block_runs(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"  # prints two samples, then keeps sampling until it is stopped
    fake.write_text("#!/bin/sh\necho 37\necho 52\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    with paths.GpuUtilisation(enabled=True) as sampled:
        time.sleep(0.5)
    assert sampled.samples == [37.0, 52.0]
    with paths.GpuUtilisation(enabled=False) as off:
        pass
    assert off.samples == []


@pytest.mark.slow
def test_the_report_at_scale_reads_a_synthetic_table_of_as_many_runs(tmp_path, capsys):
    from sherlocked.bench import scale
    from sherlocked.records import table

    scale.synthetic_sweep(tmp_path / "sweep", 2 * scale.CHUNK + 7)  # three files, as populations leave them
    rows = table.read(tmp_path / "sweep")
    assert len(rows) == 2 * scale.CHUNK + 7 and rows["job"].is_unique and len(table.parts(tmp_path / "sweep")) == 3
    assert set(rows["hp.batch_norm"]) == {"none", "all", "last"} and rows["hp.act1"].nunique() == 11  # 1331 triples
    figures = cli.main(["--scale", "300", "--out", str(tmp_path)])
    assert figures["runs"] == 300 and figures["report_wall_s"] > 0
    assert json.loads((tmp_path / "report_300_11acts.json").read_text()) == figures
    assert "the report of 300 runs (11 activations on 3 layers x 3 batch-norm placements x 1 seeds" in " ".join(
        capsys.readouterr().out.split()
    )


def test_a_synthetic_sweep_links_each_stand_in_into_a_bounded_number_of_job_dirs(tmp_path, monkeypatch):
    """ext4 allows a file 65,000 hard links: 100,000 job dirs linked to one stand-in result.json stopped the
    benchmark at "Too many links"."""
    from sherlocked.bench import scale

    monkeypatch.setattr(scale, "LINKS", 5)
    scale.synthetic_sweep(tmp_path, 12, scale.Shape(("relu", "tanh"), ("none",), epochs=2), population=4)
    stand_ins = sorted(tmp_path.glob("result-stand-in-*.json"))
    assert [p.stat().st_nlink for p in stand_ins] == [6, 6, 3]  # each file and its 5 (then 2) job dirs' links
    assert len(list(tmp_path.glob("*/result.json"))) == 12


@pytest.mark.slow
def test_the_report_at_scale_takes_a_studys_shape():
    """--scale-activations 8 --scale-batch-norm none: the 8-activation study (8 cubed x seeds), its curves rising
    from chance to each configuration's accuracy, (x, sigmoid, relu) near chance."""
    from sherlocked.bench import scale

    shape = scale.Shape(tuple(scale.ACTIVATIONS)[:8], ("none",), epochs=10)
    made = list(scale.runs(4608, shape))
    assert len(made) == 4608 and len({job for job, _ in made}) == 4608
    assert shape.of(4608) == "8 activations on 3 layers x 9 seeds, 10 epochs"
    ok = [result for _, result in made if result.status == "ok"]
    curves = [result.history["test_acc"] for result in ok]
    assert all(len(c) == 10 and c[-1] == r.final_test_acc for c, r in zip(curves, ok))
    assert sum(c[0] < c[-1] for c in curves) > 0.95 * len(curves)  # they learn
    failing = [r.final_test_acc for r in ok if (r.hparams["act2"], r.hparams["act3"]) == ("sigmoid", "relu")]
    assert len(failing) > 70 and sum(failing) / len(failing) < 0.4  # 8 first activations x 9 seeds
    assert cli.arguments(["--scale", "4608", "--scale-activations", "8"]).scale_activations == 8
