"""What a plan will cost, before it runs: memory per device, time, disk (hydra.launcher.plan=true, or --plan).

    python -m sherlocked.train -m --plan hydra/launcher=population act1=relu,tanh,sigmoid,selu 'seed=range(9)'

- memory: the largest population's members (sherlocked.sweep.devices.member_bytes) and the data;
- time: the sweep's training FLOPs at the speed `python -m sherlocked.bench` measured for populations
  on this device kind (its figures in outputs/bench/bench_<device>.json), plus the framework's
  measured overhead per job; no estimate where the benchmark has not run here;
- disk: per job, its .hydra/ files (their real size), result.json and, where per-job TensorBoard
  runs are on, its events (their scalars and histograms counted), plus its row in the results table.
"""

import json
import math
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from sherlocked.records.layout import output_paths
from sherlocked.records.results import Result, versions
from sherlocked.records.yaml_text import to_yaml
from sherlocked.spec.config import has_tensorboard_runs, hparams, select
from sherlocked.spec.datasets import TEST_SIZES, TRAIN_SIZES
from sherlocked.sweep.devices import flops_per_member_epoch, member_bytes, model_shapes
from sherlocked.sweep.plan import Plan

# Where python -m sherlocked.bench writes its figures (its --out): conf/paths' bench; a plan reads its jobs' own.
BENCH = output_paths().bench
# Measured bytes: a scalar event in a TensorBoard file; a 64-bin histogram event; a row of the results table
# (zstd-compressed Parquet, with the whole result.json).
SCALAR_EVENT, HISTOGRAM_EVENT, TABLE_ROW = 60, 1_600, 1_500
HPARAMS_YAML, OWNER, BLOCK = 400, 100, 4096  # a run's hparams.yaml, its .job file; a file system block
DIAGNOSTICS_PER_LAYER, DIAGNOSTICS_OUTPUT = 9, 3  # values sherlocked.training.diagnostics measures


def lines(plan: Plan) -> list[str]:
    """The plan, and what it will cost."""
    return [plan.describe(), memory_line(plan), time_line(plan), disk_line(plan)]


def memory_line(plan: Plan) -> str:
    if not plan.populations:
        return "  memory: nothing to train"
    largest = max(plan.populations, key=len)
    config = largest[0].config
    each = member_bytes(config)
    data = config["dataset"]
    images = TRAIN_SIZES.get(data["name"], 0) + TEST_SIZES.get(data["name"], 0)
    data_bytes = 4 * images * data["input_dim"]
    total = len(largest) * each + data_bytes
    return (
        f"  memory: about {total / 2**30:.2f} GiB a device (the largest population: {len(largest)} members x "
        f"{each / 2**20:.1f} MiB, and the data {data_bytes / 2**20:.0f} MiB)"
    )


def flops(config: Mapping) -> float:
    """Matmul FLOPs one job computes: every epoch's training steps and test pass."""
    data = config["dataset"]
    train_size = TRAIN_SIZES.get(data["name"], 0)
    limit = config["trainer"].get("limit_train_batches")
    steps = math.ceil(train_size / data["batch_size"])
    steps = min(steps, limit) if isinstance(limit, int) and limit > 0 else steps
    per_epoch = flops_per_member_epoch(model_shapes(config), data["batch_size"], steps, TEST_SIZES.get(data["name"], 0))
    return per_epoch * config["trainer"]["max_epochs"]


def time_line(plan: Plan) -> str:
    bench = select(plan.jobs[0].config, "paths.bench", BENCH) if plan.jobs else BENCH  # paths.outputs=... moves it
    figures = Path(bench) / f"bench_{plan.device}.json"
    if not figures.is_file():
        return f"  time: no estimate: the benchmark has not run on this {plan.device} (make bench writes {figures})"
    measured = json.loads(figures.read_text())
    kind = "cnn" if plan.jobs and model_shapes(plan.jobs[0].config)[0].kind == "conv" else "mlp"
    shape = measured.get("shapes", {}).get(kind) or (measured if measured.get("model", "mlp") == kind else None)
    if shape is None:  # a conv net's speed is not an MLP's: the benchmark measures each (--model mlp,cnn)
        return f"  time: no estimate: the benchmark has not measured a {kind} on this {plan.device} ({figures})"
    speed = shape["population_gflops"] * 1e9  # FLOP/s of populations of this kind of model on this device kind
    overhead = measured.get("sweep_overhead", {}).get("framework_overhead_s_per_job", 0.0)
    diagnostics = 1 + shape.get("diagnostics_overhead", 0.0)  # what measuring them costs, measured too
    # A population's members share everything FLOPs depend on (model shape, data, epochs, diagnostics): one each.
    training = sum(
        len(jobs) * flops(jobs[0].config) * (diagnostics if diagnosed(jobs[0].config) else 1)
        for jobs in plan.populations
    )
    training /= speed
    parallel = max(1, plan.workers) if plan.backend == "local" else 1
    seconds = (training + overhead * len(plan.todo)) / parallel
    where = f"{parallel} devices" if parallel > 1 else "one device" if plan.backend != "local" else "this machine"
    return (
        f"  time: about {timedelta(seconds=round(seconds))} on {where}, the command's start aside "
        f"({measured['device']}: {shape['population_gflops']:.1f} GFLOP/s for {kind.upper()} populations, "
        f"{1e3 * overhead:.0f} ms a job besides, diagnostics +{100 * (diagnostics - 1):.0f} %: {figures})"
    )


def disk_line(plan: Plan) -> str:
    if not plan.todo:
        return "  disk: nothing to write"
    job = plan.todo[0]
    task, hydra = plan.hydra[job.index].files(job)
    written = hydra["hydra"]["output_subdir"] is not None  # Hydra's .hydra/ files (hydra.output_subdir=null: none)
    files = {".hydra/": [len(to_yaml(part).encode()) for part in (task, hydra, job.overrides)] if written else []}
    files["result.json"] = [result_bytes(job.config)]
    tensorboard = has_tensorboard_runs(job.config)
    files["TensorBoard run"] = [events_bytes(job.config), HPARAMS_YAML, OWNER] if tensorboard else []
    folders = 1 + written + bool(files["TensorBoard run"])
    per_job = sum(on_disk(f) for sizes in files.values() for f in sizes) + BLOCK * folders + TABLE_ROW
    parts = ", ".join(f"{name} {size(sum(on_disk(f) for f in sizes))}" for name, sizes in files.items() if sizes)
    count = sum(len(sizes) for sizes in files.values())
    return (
        f"  disk: about {size(per_job * len(plan.todo))} ({size(per_job)} a job in {count} files and {folders} "
        f"folders: {parts}; file systems give each its own blocks)"
    )


def on_disk(nbytes: int) -> int:
    """What a file of this size takes: whole blocks."""
    return max(1, math.ceil(nbytes / BLOCK)) * BLOCK


def result_bytes(config: Mapping) -> int:
    """result.json's size: one written for this config, with full-length numbers for its curves (one an epoch)
    and, with diagnostics, for every measure."""
    epochs, layers = config["trainer"]["max_epochs"], len(model_shapes(config))
    curve = [0.12345678901234567] * epochs
    measures = DIAGNOSTICS_PER_LAYER * layers + DIAGNOSTICS_OUTPUT if diagnosed(config) else 0
    result = Result(
        status="ok",
        config=dict(config),
        hparams=hparams(config),
        final_test_acc=curve[0],
        final=dict.fromkeys(("test_acc", "test_loss", "train_loss"), curve[0]),
        history={"epoch": list(range(1, epochs + 1)), "test_acc": curve, "test_loss": curve, "train_loss": curve},
        diagnostics={f"measure{k}": curve for k in range(measures)},
        wall_time_s=curve[0],
        versions=versions(),
        git_commit="0" * 40,
    )
    return len(json.dumps(result.to_json(), indent=2))


def diagnosed(config: Mapping) -> bool:
    return bool((config.get("diagnostics") or {}).get("enabled"))


def events_bytes(config: Mapping) -> int:
    """A job's TensorBoard run: its scalars (per epoch, every log_every_n_steps, the diagnostics every interval)
    and, with diagnostics' histograms, two a layer an epoch."""
    if not has_tensorboard_runs(config):
        return 0
    data, trainer = config["dataset"], config["trainer"]
    steps = math.ceil(TRAIN_SIZES.get(data["name"], 0) / data["batch_size"]) * trainer["max_epochs"]
    scalars = steps // trainer.get("log_every_n_steps", 50) + 4 * trainer["max_epochs"] + 4
    histograms, layers = 0, len(model_shapes(config))
    diagnostics = config.get("diagnostics") or {}
    if diagnostics.get("enabled"):
        scalars += (DIAGNOSTICS_PER_LAYER * layers + DIAGNOSTICS_OUTPUT) * (steps // diagnostics["interval"])
        histograms = 2 * layers * trainer["max_epochs"] if diagnostics.get("histograms") else 0
    return SCALAR_EVENT * scalars + HISTOGRAM_EVENT * histograms


def size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes:.0f} B"
