"""`python -m sherlocked.bench`: the arguments, the rounds in which every path trains its share, the figures."""

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sherlocked.bench import paths, scale, sweeps
from sherlocked.bench.show import console, show
from sherlocked.spec.checks import compile_mode
from sherlocked.sweep.devices import default_max_members, flops_per_member_epoch, model_shapes
from sherlocked.sweep.estimate import BENCH
from sherlocked.training import compiled
from sherlocked.training.data import load


def doing(what: str) -> None:
    """Say what the benchmark runs now: it takes minutes, and its tables come at the end."""
    console.print(f"[dim]bench: {what}[/dim]")


def arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sherlocked.bench", description="speed, side by side in one run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument(
        "--model",
        type=lambda text: [model for model in text.split(",") if model],
        default=["mlp", "cnn"],
        help="the model shapes to measure (conf/model), one after another, comma-separated (default mlp,cnn); the "
        "first one's figures are also the file's top level, which the sweep's --plan reads",
    )
    parser.add_argument("--members", type=int, default=64, help="jobs for (c): triples x seeds, in study order")
    parser.add_argument("--cnn-members", type=int, default=16, help="jobs for (c) of a shape with conv layers")
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
    parser.add_argument("--out", type=Path, default=BENCH)
    scale_arguments(parser)
    args = parser.parse_args(argv)
    args.seeds = max(args.seeds, -(-max(args.members, args.cnn_members) // 64))
    if args.compile is None:
        args.compile = ["default", "reduce-overhead"] if args.device == "cuda" else ["default"]
    for mode in args.compile:
        compile_mode(mode)  # a mode torch.compile does not know stops here, not after the other paths
    args.baseline_epochs = args.baseline_epochs or args.epochs
    args.compile_epochs = args.compile_epochs or args.epochs
    return args


def scale_arguments(parser: argparse.ArgumentParser) -> None:
    """--scale and its options: the report of a synthetic study, timed."""
    parser.add_argument(
        "--scale", type=int, default=0, help="only the report of this many runs (a synthetic results table), timed"
    )
    parser.add_argument(
        "--scale-activations",
        type=int,
        default=len(scale.Shape().activations),
        help="--scale: the first this many "
        "activations on each of 3 layers (default all 11; 8 for an 8-activation study)",
    )
    parser.add_argument(
        "--scale-batch-norm", default="none,all,last", help="--scale: the batch-norm placements, comma-separated"
    )
    parser.add_argument("--scale-epochs", type=int, default=scale.EPOCHS, help="--scale: epochs a run")
    parser.add_argument(
        "--scale-population",
        type=int,
        default=0,
        help="--scale: the table as a sweep of populations this big leaves it (a row group each); 0: 5,000-row files",
    )


@dataclass
class Work:
    """What each path trains (composed configs) for one model shape, and the data they share."""

    model: str  # conf/model
    population: list  # (c), diagnostics off
    baseline: list  # (a) and (b)
    diagnosed: list  # (c) with the study's diagnostics on: what measuring costs
    compiling: dict  # mode -> (c) compiled with it
    group: int  # members of a population of (c)
    data: tuple
    steps: int  # training steps an epoch

    @property
    def rounds(self) -> int:
        return -(-len(self.population) // self.group)


def work_of(args, model: str) -> Work:
    convs = bool(paths.configs(args, args.epochs, 1, model=model)[0].model.get("channels"))
    members = args.cnn_members if convs else args.members
    population = paths.configs(args, args.epochs, members, "diagnostics=off", model=model)
    baseline_members = min(args.baseline_members or members, members)
    baseline = paths.configs(args, args.baseline_epochs, baseline_members, "diagnostics=off", model=model)
    compiling = {
        mode: paths.configs(args, args.compile_epochs, members, "diagnostics=off", f"compile={mode}", model=model)
        for mode in args.compile
    }
    diagnosed = paths.configs(args, args.epochs, members, "diagnostics=on", model=model)
    group = min(args.group or default_max_members(args.device) or len(population), len(population))
    d = population[0].dataset
    data = load(d.name, d.root, tuple(d.mean), tuple(d.std), d.download, tuple(d.fallback_dirs))
    steps = args.steps or -(-len(data[1]) // d.batch_size)
    return Work(model, population, baseline, diagnosed, compiling, group, data, steps)


@dataclass
class Timing:
    """Seconds each path took in all; of each compiled path, its first steps (compiling), its populations that
    trained eager, and why it failed where it did; the GPU's utilisation samples while (c) trained."""

    seconds: dict = field(default_factory=lambda: dict.fromkeys(PLAIN_PATHS, 0.0))
    first_steps: dict = field(default_factory=dict)
    fell_back: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)
    samples: list = field(default_factory=list)


PLAIN_PATHS = ("plain", "solo", "population", "population_diagnostics")


def rounds(args, work: Work) -> Timing:
    """Round by round, each path on its share of the jobs: a machine whose speed drifts slows every path alike."""
    timing = Timing(first_steps=dict.fromkeys(args.compile, 0.0), fell_back=dict.fromkeys(args.compile, 0))
    utilisation = paths.GpuUtilisation(enabled=args.device == "cuda")
    also = "".join(f", (c) compile={mode}" for mode in args.compile)
    for r in range(work.rounds):
        paths_run = f"(a) plain loop, (b) solo runs, (c) population of {work.group}, (c) diagnosed{also}"
        doing(f"model={work.model}, round {r + 1}/{work.rounds}: {paths_run}")
        share = work.baseline[len(work.baseline) * r // work.rounds : len(work.baseline) * (r + 1) // work.rounds]
        if share:
            timing.seconds["plain"] += paths.plain_loop(share, work.data, args.device)
            timing.seconds["solo"] += paths.framework(share, 1, args.device)
        ours = slice(r * work.group, (r + 1) * work.group)
        with utilisation:
            timing.seconds["population"] += paths.framework(work.population[ours], work.group, args.device)
        timing.samples += utilisation.samples
        timing.seconds["population_diagnostics"] += paths.framework(work.diagnosed[ours], work.group, args.device)
        for mode, jobs in work.compiling.items():
            compiled_round(timing, mode, jobs[ours], work.group, args.device)
    for mode in timing.failed:  # the rounds before it failed would stand for all of its member-epochs
        timing.seconds.pop(f"compile={mode}", None)
    return timing


def compiled_round(timing: Timing, mode: str, jobs: list, group: int, device: str) -> None:
    """(c) compiled with `mode` on this round's jobs; a mode that cannot train here is reported, the others go on."""
    if mode in timing.failed:
        return
    before = compiled.spent.copy()
    try:
        took = paths.framework(jobs, group, device)
    except paths.PathFailed as error:
        timing.failed[mode] = str(error).strip().splitlines()[-1]
        return
    timing.seconds[f"compile={mode}"] = timing.seconds.get(f"compile={mode}", 0.0) + took
    timing.first_steps[mode] += compiled.spent["first_step_s"] - before["first_step_s"]
    timing.fell_back[mode] += compiled.spent["fallbacks"] - before["fallbacks"]


def figures_of(args, work: Work, timing: Timing) -> dict:
    """Every figure of one model shape's run, as the JSON file keeps them."""
    member_epochs = {path: len(work.population) * args.epochs for path in timing.seconds}
    member_epochs.update(
        plain=len(work.baseline) * args.baseline_epochs, solo=len(work.baseline) * args.baseline_epochs
    )
    member_epochs.update({f"compile={mode}": len(work.population) * args.compile_epochs for mode in args.compile})
    times = {path: s / member_epochs[path] for path, s in timing.seconds.items()}
    config, members = work.population[0], len(work.population)
    d, shapes = config.dataset, model_shapes(config)
    flops = flops_per_member_epoch(shapes, d.batch_size, work.steps, len(work.data[3]))  # FLOPs of a member-epoch
    figures = {
        "model": work.model,
        "layers": " ".join(f"{layer.kind}{list(layer.pre)}" for layer in shapes),  # what each layer computes
        "device": torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dataset": d.name,
        "members": members,
        "baseline_members": len(work.baseline),
        "baseline_epochs": args.baseline_epochs,
        "group": work.group,
        "epochs": args.epochs,
        "steps_per_epoch": work.steps,
        "flops_per_member_epoch": flops,
        "seconds_per_member_epoch": times,
        "population_total_s": timing.seconds["population"],
        # on a GPU: the most memory (c) held, and the GPU's mean utilisation while (c) trained
        "gpu_memory_peak_gib": torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None,
        "gpu_utilisation_percent": sum(timing.samples) / len(timing.samples) if timing.samples else None,
        "speedup_population_vs_plain": times["plain"] / times["population"],
        "speedup_population_vs_solo": times["solo"] / times["population"],
        "solo_slowdown_vs_plain": times["solo"] / times["plain"],
        "diagnostics_overhead": times["population_diagnostics"] / times["population"] - 1,
        "population_gflops": flops / times["population"] / 1e9,
        "plain_gflops": flops / times["plain"] / 1e9,
        "compile": compile_figures(args, timing, member_epochs),
        "torch": torch.__version__,
    }
    figures.update(ceiling(args, work, shapes, figures))
    # What (c) takes in steady state, eager against each mode (eager's first step compiles nothing).
    steady = {"eager": times["population"]}
    after = "seconds_per_member_epoch_after_first_step"
    steady.update({mode: c[after] for mode, c in figures["compile"].items() if not c["failed"]})
    figures["fastest_step"] = min(steady, key=steady.get)
    return figures


def ceiling(args, work: Work, shapes, figures: dict) -> dict:
    """How near the ceiling (a) and (c) came: a large fp32 conv2d for a CNN, a large fp32 matmul for an MLP (and,
    for an MLP, the matmuls of its own step)."""
    convs = any(layer.kind == "conv" for layer in shapes)
    peak = paths.conv_peak(args.device) if convs else paths.matmul_peak(args.device)
    ceiling = {
        "peak": "conv2d" if convs else "matmul",
        "peak_gflops": peak,
        "population_fraction_of_peak": figures["population_gflops"] / peak,
        "plain_fraction_of_peak": figures["plain_gflops"] / peak,
        "step_matmul_gflops": None,
    }
    if convs:
        return ceiling
    config = work.population[0]
    group = min(len(work.population), work.group)
    step = paths.step_matmul_gflops(list(config.model.widths), config.dataset.batch_size, group, args.device)
    ceiling.update(step_matmul_gflops=step, matmul_peak_gflops=peak)  # matmul_peak_gflops: as files before CNNs
    ceiling["population_fraction_of_step_matmuls"] = figures["population_gflops"] / step
    return ceiling


def compile_figures(args, timing: Timing, member_epochs: dict) -> dict:
    """Per compile mode: its first steps (torch.compile compiling), and the time per member-epoch after them."""
    return {
        mode: {
            "epochs": args.compile_epochs,
            "failed": timing.failed.get(mode),
            "populations_trained_eager": timing.fell_back[mode],  # torch.compile could not compile them
            "first_steps_s": timing.first_steps[mode],
            "seconds_per_member_epoch_after_first_step": None
            if mode in timing.failed
            else (timing.seconds[f"compile={mode}"] - timing.first_steps[mode]) / member_epochs[f"compile={mode}"],
        }
        for mode in args.compile
    }


def main(argv=None) -> dict:
    args = arguments(argv)
    if args.scale:
        return at_scale(args)
    works = {model: work_of(args, model) for model in args.model}
    shapes = {model: measured(args, work) for model, work in works.items()}
    first, work = args.model[0], works[args.model[0]]
    figures = {**shapes[first], "shapes": shapes}  # the first shape's figures at the top: what --plan reads
    doing(f"one-step sweeps of {args.sweep_small} and {args.sweep_jobs} jobs (python -m sherlocked.train -m ...)")
    figures["sweep_overhead"] = sweeps.overhead(args.dataset, args.device, args.sweep_small, args.sweep_jobs, first)
    doing(f"one sweep of the benchmark's shape, end to end: {len(work.population)} jobs x {args.epochs} epochs")
    figures["end_to_end"] = sweeps.end_to_end(
        args.dataset, args.device, len(work.population), args.epochs, args.steps, first
    )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_{args.device}.json"
    path.write_text(json.dumps(figures, indent=2))
    show(figures, path)
    return figures


def measured(args, work: Work) -> dict:
    """One model shape: a warm-up, then the rounds of every path, and its figures."""
    also = "".join(f", (c) compile={mode}" for mode in args.compile)
    doing(f"model={work.model}: warm-up, then {work.rounds} rounds of (a), (b), (c), (c) with diagnostics{also}")
    paths.framework(work.baseline[:1], 1, args.device)  # warm-up: imports, data cache, kernels (the baselines' epochs)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return figures_of(args, work, rounds(args, work))


def at_scale(args) -> dict:
    """--scale N: the report of a study of N runs, timed whole (sherlocked.bench.scale)."""
    shape = scale.Shape(
        tuple(scale.ACTIVATIONS)[: args.scale_activations], tuple(args.scale_batch_norm.split(",")), args.scale_epochs
    )
    doing(
        f"a synthetic results table of {args.scale:,} runs ({shape.of(args.scale)}), then python -m sherlocked.report"
    )
    figures = scale.report_at_scale(args.scale, shape, args.scale_population)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"report_{args.scale}_{len(shape.activations)}acts.json"
    path.write_text(json.dumps(figures, indent=2))
    console.print(f"{scale.show(figures)}\nfigures: {path}")
    return figures
