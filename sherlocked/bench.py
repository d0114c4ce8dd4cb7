"""Speed, side by side in one run, on the same jobs: plain PyTorch, sherlocked solo runs, populations;
then what a user waits for: real multiruns of the command line.

    python -m sherlocked.bench                      # CPU: 64 triples, one seed, mnist_5k, 1 epoch of 125 steps
    python -m sherlocked.bench --device cuda --dataset fashion_mnist --members 576 --epochs 10 --baseline-members 8

(a) the original study's loop: one nn.Sequential at a time, SGD, data as tensors on the device;
(b) sequential solo runs through sherlocked (what the basic launcher does per job);
(c) populations of up to --group members (what hydra/launcher=population does).
(a) measures nothing but accuracy, so (b) and (c) run with diagnostics off; (c) runs once more
with the study's diagnostics on, to measure what they cost, and once per --compile mode
(compile=<mode>, sherlocked.compiled), whose first steps, where torch.compile compiles, are timed
apart: the time a run waits, and the speed after.
Each does the same work per member-epoch (train steps + a test pass), so times per member-epoch
compare directly; the paths take turns, one population's worth of jobs at a time, so a machine
whose speed drifts during the run slows them alike. Also the achieved GFLOP/s of (c) against a
large fp32 matmul and against one step's own batched matmuls, run alone on the same device.
Then (sherlocked.sweepbench) the framework's overhead per job from one-step sweeps of two sizes
(--sweep-small and --sweep-jobs jobs, default 64 and 576: the `make sweep` shape), split into
phases, and the end-to-end time of one real multirun of the benchmark's shape.
"""

import argparse
import itertools
import json
import subprocess
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from rich.console import Console
from rich.table import Table
from torch import Tensor

from sherlocked import compiled, sweepbench
from sherlocked.activations import build
from sherlocked.config import CONFIG_DIR
from sherlocked.data import load
from sherlocked.engine import run
from sherlocked.launcher import default_max_members
from sherlocked.phases import PHASES

ACTS = ("relu", "tanh", "sigmoid", "selu")
console = Console()


def doing(what: str) -> None:
    """Say what the benchmark runs now: it takes minutes, and its tables come at the end."""
    console.print(f"[dim]bench: {what}[/dim]")


def configs(args, epochs: int, members: int, *extra: str) -> list:
    triples = list(itertools.product(ACTS, repeat=3))
    jobs = [(triple, seed) for seed in range(args.seeds) for triple in triples][:members]
    common = [
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
    """(a): the original study's training, one model at a time, no framework."""
    train_x, train_y, test_x, test_y = (t.to(device) for t in data)
    cfg0 = cfgs[0]
    widths, batch = list(cfg0.model.widths), cfg0.dataset.batch_size
    steps = cfg0.trainer.get("limit_train_batches") or -(-len(train_y) // batch)
    sync(device)
    start = time.perf_counter()
    for cfg in cfgs:
        torch.manual_seed(cfg.seed)
        acts = [cfg.act1, cfg.act2, cfg.act3]
        layers = []
        for (fan_in, fan_out), act in zip(zip(widths[:-1], widths[1:]), acts):
            layers += [torch.nn.Linear(fan_in, fan_out), build(act)]
        model = torch.nn.Sequential(*layers).to(device)
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
    """(b) with group=1, (c) with group>1: sherlocked.engine.run, as the launchers call it (seconds)."""
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


def flops_per_member_epoch(widths, batch: int, train_steps: int, test_size: int) -> float:
    """Matmul FLOPs actually computed: forward 2*B*in*out per layer, the weight gradient as much again,
    and the input gradient as much again for every layer but the first."""
    forward = [2 * i * o for i, o in zip(widths[:-1], widths[1:])]
    train = 2 * sum(forward) + sum(forward[1:])
    return train * batch * train_steps + sum(forward) * test_size


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m sherlocked.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument("--members", type=int, default=64, help="jobs for (c): triples x seeds, in study order")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=0, help="train steps per epoch (0 = the whole train set)")
    parser.add_argument("--group", type=int, default=0, help="population size for (c) (0 = the launcher's default)")
    parser.add_argument("--baseline-members", type=int, default=0, help="jobs for (a) and (b) (0 = all)")
    parser.add_argument("--baseline-epochs", type=int, default=0, help="epochs for (a) and (b) (0 = --epochs)")
    parser.add_argument(
        "--compile",
        type=lambda text: [mode for mode in text.split(",") if mode],
        default=None,
        help="torch.compile modes to run (c) with besides eager, comma-separated ('' for none; default: "
        "default on a CPU, default,reduce-overhead on a GPU)",
    )
    parser.add_argument("--compile-epochs", type=int, default=0, help="epochs of the compiled runs (0 = --epochs)")
    parser.add_argument("--sweep-jobs", type=int, default=576, help="one-step jobs of the larger overhead sweep")
    parser.add_argument("--sweep-small", type=int, default=64, help="one-step jobs of the smaller overhead sweep")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench"))
    args = parser.parse_args(argv)
    args.seeds = max(args.seeds, -(-args.members // 64))
    if args.compile is None:
        args.compile = ["default", "reduce-overhead"] if args.device == "cuda" else ["default"]
    for mode in args.compile:
        compiled.mode_of(mode)  # a mode torch.compile does not know stops here, not after the other paths
    compile_epochs = args.compile_epochs or args.epochs

    cfgs = configs(args, args.epochs, args.members, "diagnostics=off")
    baseline_epochs = args.baseline_epochs or args.epochs
    baseline = configs(args, baseline_epochs, args.baseline_members or args.members, "diagnostics=off")
    group = args.group or default_max_members(args.device) or len(cfgs)
    d = cfgs[0].dataset
    data = load(d.name, d.root, tuple(d.mean), tuple(d.std), d.download, tuple(d.fallback_dirs))
    steps = args.steps or -(-len(data[1]) // d.batch_size)

    # The same populations with the diagnostics the study's experiments turn on: what measuring costs.
    measured = configs(args, args.epochs, args.members, "diagnostics=on")
    compiling = {
        mode: configs(args, compile_epochs, args.members, "diagnostics=off", f"compile={mode}") for mode in args.compile
    }
    also = "".join(f", (c) compile={mode}" for mode in args.compile)
    doing(f"warm-up, then {-(-len(cfgs) // group)} rounds of (a), (b), (c), (c) with diagnostics{also}")
    framework(baseline[:1], 1, args.device)  # warm-up: imports, data cache, kernels (the baselines' epochs)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    seconds = dict.fromkeys(("plain", "solo", "population", "population_diagnostics"), 0.0)
    first_steps = dict.fromkeys(args.compile, 0.0)  # of each compiled path: compiling
    fell_back, failed = dict.fromkeys(args.compile, 0), {}  # populations trained eager; modes that failed
    # Round by round, each path on its share of the jobs: a machine whose speed drifts slows every path alike.
    rounds = -(-len(cfgs) // group)
    utilisation, samples = GpuUtilisation(enabled=args.device == "cuda"), []
    for r in range(rounds):
        doing(f"round {r + 1}/{rounds}: (a) plain loop, (b) solo runs, (c) population of {group}, (c) diagnosed{also}")
        share = baseline[len(baseline) * r // rounds : len(baseline) * (r + 1) // rounds]
        if share:
            seconds["plain"] += plain_loop(share, data, args.device)
            seconds["solo"] += framework(share, 1, args.device)
        with utilisation:
            seconds["population"] += framework(cfgs[r * group : (r + 1) * group], group, args.device)
        samples += utilisation.samples
        seconds["population_diagnostics"] += framework(measured[r * group : (r + 1) * group], group, args.device)
        for mode, jobs in compiling.items():
            if mode in failed:  # a mode that cannot train here is reported, and the others go on
                continue
            before = compiled.spent.copy()
            try:
                took = framework(jobs[r * group : (r + 1) * group], group, args.device)
            except PathFailed as error:
                failed[mode] = str(error).strip().splitlines()[-1]
                continue
            seconds[f"compile={mode}"] = seconds.get(f"compile={mode}", 0.0) + took
            first_steps[mode] += compiled.spent["first_step_s"] - before["first_step_s"]
            fell_back[mode] += compiled.spent["fallbacks"] - before["fallbacks"]
    for mode in failed:  # the rounds before it failed would stand for all of its member-epochs
        seconds.pop(f"compile={mode}", None)
    member_epochs = {"plain": len(baseline) * baseline_epochs, "solo": len(baseline) * baseline_epochs}
    member_epochs.update({f"compile={mode}": len(cfgs) * compile_epochs for mode in args.compile})
    times = {path: s / member_epochs.get(path, len(cfgs) * args.epochs) for path, s in seconds.items()}
    widths = list(cfgs[0].model.widths)
    flops = flops_per_member_epoch(widths, d.batch_size, steps, len(data[3])) * len(cfgs) * args.epochs
    figures = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dataset": d.name,
        "members": len(cfgs),
        "baseline_members": len(baseline),
        "baseline_epochs": baseline_epochs,
        "group": group,
        "epochs": args.epochs,
        "steps_per_epoch": steps,
        "seconds_per_member_epoch": times,
        "population_total_s": seconds["population"],
        # on a GPU: the most memory (c) held, and the GPU's mean utilisation while (c) trained
        "gpu_memory_peak_gib": torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None,
        "gpu_utilisation_percent": sum(samples) / len(samples) if samples else None,
        "speedup_population_vs_plain": times["plain"] / times["population"],
        "speedup_population_vs_solo": times["solo"] / times["population"],
        "solo_slowdown_vs_plain": times["solo"] / times["plain"],
        "diagnostics_overhead": times["population_diagnostics"] / times["population"] - 1,
        "population_gflops": flops / seconds["population"] / 1e9,
        "matmul_peak_gflops": matmul_peak(args.device),
        "step_matmul_gflops": step_matmul_gflops(widths, d.batch_size, min(group, len(cfgs)), args.device),
        # per compile mode: its first steps (torch.compile compiling), and the time per member-epoch after them
        "compile": {
            mode: {
                "epochs": compile_epochs,
                "failed": failed.get(mode),
                "populations_trained_eager": fell_back[mode],  # torch.compile could not compile them
                "first_steps_s": first_steps[mode],
                "seconds_per_member_epoch_after_first_step": None
                if mode in failed
                else (seconds[f"compile={mode}"] - first_steps[mode]) / member_epochs[f"compile={mode}"],
            }
            for mode in args.compile
        },
        "torch": torch.__version__,
    }
    # What (c) takes in steady state, eager against each mode (eager's first step compiles nothing).
    steady = {"eager": times["population"]}
    steady.update(
        {
            mode: c["seconds_per_member_epoch_after_first_step"]
            for mode, c in figures["compile"].items()
            if not c["failed"]
        }
    )
    figures["fastest_step"] = min(steady, key=steady.get)
    figures["population_fraction_of_peak"] = figures["population_gflops"] / figures["matmul_peak_gflops"]
    figures["population_fraction_of_step_matmuls"] = figures["population_gflops"] / figures["step_matmul_gflops"]
    doing(f"one-step sweeps of {args.sweep_small} and {args.sweep_jobs} jobs (python -m sherlocked.train -m ...)")
    figures["sweep_overhead"] = sweepbench.overhead(args.dataset, args.device, args.sweep_small, args.sweep_jobs)
    doing(f"one sweep of the benchmark's shape, end to end: {len(cfgs)} jobs x {args.epochs} epochs")
    figures["end_to_end"] = sweepbench.end_to_end(args.dataset, args.device, len(cfgs), args.epochs, args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_{args.device}.json"
    path.write_text(json.dumps(figures, indent=2))
    show(figures, path)
    return figures


def show(f: dict, path: Path) -> None:
    table = Table(title=f"sherlocked bench: {f['device']}, {f['dataset']}, {f['steps_per_epoch']} steps per epoch")
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
    console.print(table)
    lines = [
        f"(c) vs (a): {f['speedup_population_vs_plain']:.2f}x faster; (c) vs (b): "
        f"{f['speedup_population_vs_solo']:.2f}x faster; (b) vs (a): {f['solo_slowdown_vs_plain']:.2f}x the time",
        f"(c) achieves {f['population_gflops']:.1f} GFLOP/s = {100 * f['population_fraction_of_peak']:.0f}% of a "
        f"2048^3 fp32 matmul ({f['matmul_peak_gflops']:.1f} GFLOP/s) and "
        f"{100 * f['population_fraction_of_step_matmuls']:.0f}% of one step's own batched matmuls run alone "
        f"({f['step_matmul_gflops']:.1f} GFLOP/s)",
        f"diagnostics (every 100 steps and each epoch end, with histograms) cost "
        f"{100 * f['diagnostics_overhead']:.1f}% of (c)'s time",
    ]
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
    if f["gpu_memory_peak_gib"] is not None:
        busy = f["gpu_utilisation_percent"]
        busy = "unknown (no nvidia-smi)" if busy is None else f"{busy:.0f}%"
        lines.append(
            f"on the GPU: (c) {f['population_gflops'] / 1e3:.1f} TFLOP/s of the matmul's "
            f"{f['matmul_peak_gflops'] / 1e3:.1f}; memory peak {f['gpu_memory_peak_gib']:.2f} GiB; "
            f"utilisation while (c) trained: {busy}"
        )
    console.print("\n".join(lines))
    show_sweeps(console, f)
    console.print(f"figures: {path}")


def show_sweeps(console: Console, f: dict) -> None:
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


if __name__ == "__main__":
    main()
