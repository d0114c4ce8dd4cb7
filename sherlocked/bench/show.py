"""The benchmark's tables: the training paths side by side, then the real multiruns."""

from pathlib import Path

from rich.console import Console
from rich.table import Table

from sherlocked.runtime.phases import PHASES

console = Console()
PEAKS = {"matmul": "a 2048^3 fp32 matmul", "conv2d": "a large fp32 conv2d (3x3, 128 to 128 channels, 32x32)"}


def show(f: dict, path: Path) -> None:
    for shape in f["shapes"].values():  # each model shape's paths, side by side
        console.print(paths_table(shape))
        console.print("\n".join([*summary(shape), *compile_lines(shape), *gpu_lines(shape)]))
    show_sweeps(f)
    console.print(f"figures: {path}")


def paths_table(f: dict) -> Table:
    table = Table(
        title=f"sherlocked bench: model={f['model']} ({f['layers']}), {f['device']}, {f['dataset']}, "
        f"{f['steps_per_epoch']} steps per epoch"
    )
    for column in ("path", "jobs", "ms per member-epoch", "vs (a)"):
        table.add_column(column, justify="right" if column != "path" else "left")
    t = f["seconds_per_member_epoch"]
    rows = [
        ("(a) plain PyTorch loop", f["baseline_members"], t["plain"]),
        ("(b) sherlocked solo runs", f["baseline_members"], t["solo"]),
        (f"(c) populations of {f['group']}", f["members"], t["population"]),
        ("(c) with diagnostics on", f["members"], t["population_diagnostics"]),
    ]
    rows += [
        (f"(c) compile={mode}", f["members"], t[f"compile={mode}"])
        for mode, c in f["compile"].items()
        if not c["failed"]
    ]
    for name, jobs, seconds in rows:
        table.add_row(name, str(jobs), f"{1e3 * seconds:.1f}", f"{t['plain'] / seconds:.2f}x")
    return table


def summary(f: dict) -> list[str]:
    return [
        f"(c) vs (a): {f['speedup_population_vs_plain']:.2f}x faster; (c) vs (b): "
        f"{f['speedup_population_vs_solo']:.2f}x faster; (b) vs (a): {f['solo_slowdown_vs_plain']:.2f}x the time",
        f"(c) achieves {f['population_gflops']:.1f} GFLOP/s = {100 * f['population_fraction_of_peak']:.0f}% of "
        f"{PEAKS[f['peak']]} ({f['peak_gflops']:.1f} GFLOP/s), (a) {f['plain_gflops']:.1f} GFLOP/s = "
        f"{100 * f['plain_fraction_of_peak']:.0f}%"
        + (
            ""
            if f["step_matmul_gflops"] is None
            else f"; (c) {100 * f['population_fraction_of_step_matmuls']:.0f}% of one step's own batched matmuls "
            f"run alone ({f['step_matmul_gflops']:.1f} GFLOP/s)"
        ),
        f"diagnostics (every 100 steps and each epoch end, with histograms) cost "
        f"{100 * f['diagnostics_overhead']:.1f}% of (c)'s time",
    ]


def compile_lines(f: dict) -> list[str]:
    lines, t = [], f["seconds_per_member_epoch"]
    for mode, c in f["compile"].items():
        if c["failed"]:
            lines.append(f"compile={mode} failed: {c['failed']}")
            continue
        after = c["seconds_per_member_epoch_after_first_step"]
        eager = (
            f", {c['populations_trained_eager']} populations trained eager" if c["populations_trained_eager"] else ""
        )
        lines.append(
            f"compile={mode}, {c['epochs']}-epoch runs: compiling (the populations' first steps) took "
            f"{c['first_steps_s']:.1f} s; after it {1e3 * after:.1f} ms per member-epoch, "
            f"{t['population'] / after:.2f}x eager's speed{eager}"
        )
    if f["compile"]:
        lines.append(f"fastest step: {f['fastest_step']} (compile=false is eager)")
    return lines


def gpu_lines(f: dict) -> list[str]:
    if f["gpu_memory_peak_gib"] is None:
        return []
    busy = f["gpu_utilisation_percent"]
    busy = "unknown (no nvidia-smi)" if busy is None else f"{busy:.0f}%"
    return [
        f"on the GPU: (c) {f['population_gflops'] / 1e3:.1f} TFLOP/s of the {f['peak']}'s "
        f"{f['peak_gflops'] / 1e3:.1f}; memory peak {f['gpu_memory_peak_gib']:.2f} GiB; "
        f"utilisation while (c) trained: {busy}"
    ]


def show_sweeps(f: dict) -> None:
    overhead, e2e = f["sweep_overhead"], f["end_to_end"]
    table = Table(title="real multiruns (sherlocked.train -m hydra/launcher=population), CPU s by phase")
    for column in ("sweep", "jobs", "wall s", "CPU s", *PHASES):
        table.add_column(column, justify="left" if column == "sweep" else "right")
    shown = [("1 step/job", sweep) for sweep in overhead["runs"]] + [("bench shape", e2e)]
    for name, sweep in shown:
        split = [f"{sweep['phases_cpu_s'][p]:.2f}" for p in PHASES]
        table.add_row(name, str(sweep["jobs"]), f"{sweep['wall_s']:.1f}", f"{sweep['cpu_s']:.1f}", *split)
    console.print(table)
    per_job = ", ".join(f"{p} {1e3 * s:.1f}" for p, s in overhead["marginal_phase_cpu_s_per_job"].items())
    console.print(
        f"one more job costs {1e3 * overhead['marginal_cpu_s_per_job']:.1f} ms of CPU ({per_job}); "
        f"framework overhead, all but its steps: {1e3 * overhead['framework_overhead_s_per_job']:.1f} ms per job\n"
        f"the benchmark's shape end to end: {e2e['jobs']} jobs in {e2e['wall_s']:.1f} s, command start to last result"
    )
