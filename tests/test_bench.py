"""The benchmark's arithmetic, and one tiny run of it end to end."""

import json

from sherlocked import bench


def test_flops_count_only_the_matmuls_a_step_computes():
    # Widths 4-3-2: forward 2*4*3 + 2*3*2 = 36 FLOPs a sample; training adds the weight gradients (36)
    # and the second layer's input gradient (12), not the first's: the data needs no gradient.
    flops = bench.flops_per_member_epoch([4, 3, 2], batch=5, train_steps=2, test_size=7)
    assert flops == (36 + 36 + 12) * 5 * 2 + 36 * 7


def test_the_timed_step_matmuls_are_the_ones_counted():
    pairs = bench.step_matmuls([4, 3, 2], batch=5, members=2, device="cpu")
    assert all(a.shape[0] == b.shape[0] == 2 and a.shape[2] == b.shape[1] for a, b in pairs)
    assert bench.matmul_flops(pairs) == 2 * bench.flops_per_member_epoch([4, 3, 2], 5, train_steps=1, test_size=0)


def test_a_tiny_benchmark_runs_all_paths_in_rounds_and_writes_its_figures(tmp_path, capsys):
    # 3 jobs in populations of 2 (two rounds), the baselines on 1 job (in the second round only).
    argv = ["--device", "cpu", "--members", "3", "--group", "2", "--baseline-members", "1", "--steps", "2"]
    figures = bench.main([*argv, "--out", str(tmp_path)])
    assert json.loads((tmp_path / "bench_cpu.json").read_text()) == figures
    times = figures["seconds_per_member_epoch"]
    assert set(times) == {"plain", "solo", "population", "population_diagnostics"}
    assert all(t > 0 for t in times.values())
    assert figures["speedup_population_vs_plain"] == times["plain"] / times["population"]
    sizes = ("members", "baseline_members", "group", "steps_per_epoch")
    assert [figures[size] for size in sizes] == [3, 1, 2, 2]
    assert figures["population_gflops"] > 0 and figures["step_matmul_gflops"] > 0
    assert "(c) vs (a)" in capsys.readouterr().out
