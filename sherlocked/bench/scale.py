"""The report at the scale of a big study: a synthetic results table of N runs, reported by the real command.

    python -m sherlocked.bench --scale 100000   # 11 activations on 3 layers x 3 batch-norm placements x seeds
    python -m sherlocked.bench --scale 4608 --scale-activations 8 --scale-batch-norm none --scale-population 16

The table is the one a sweep writes (sherlocked.records.table), of made-up runs shaped like a study (Shape: the first K
activations on 3 layers x batch-norm placements x seeds, 10 epochs, diagnostics on), each configuration a mean
accuracy as studies find them and each run a learning curve rising from chance to its accuracy: the report
reads it as any sweep's. --scale-population P writes it as a sweep of populations of P leaves it (a file a
population, merged at the end: a row group a population, what reading it costs). The report runs as a user runs
it (python -m sherlocked.report), timed whole, with its peak memory.
"""

import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from sherlocked.records import layout, table
from sherlocked.records.results import Result
from sherlocked.spec.activations import ACTIVATIONS
from sherlocked.spec.config import hparams

EPOCHS, CHUNK = 10, 5_000  # rows a file of the table (as compacted sweeps of that many jobs leave it)
DIAGNOSTICS = ("pre_mean", "pre_std", "flat", "flat_units", "dead", "zero", "saturated", "grad_w", "grad_b")
CHANCE = 0.1  # MNIST's ten classes
LINKS = 10_000  # job dirs a stand-in result.json is linked into: ext4 allows a file 65,000 links


@dataclass(frozen=True)
class Shape:
    """What the made-up study varies: activations on 3 layers, batch-norm placements; and each run's epochs."""

    activations: tuple[str, ...] = tuple(ACTIVATIONS)
    batch_norms: tuple[str, ...] = ("none", "all", "last")
    epochs: int = EPOCHS

    def of(self, n: int) -> str:
        acts, bns = len(self.activations), len(self.batch_norms)
        seeds = -(-n // (bns * acts**3))
        placements = f" x {bns} batch-norm placements" if bns > 1 else ""
        return f"{acts} activations on 3 layers{placements} x {seeds} seeds, {self.epochs} epochs"


def means(shape: Shape, rng: np.random.Generator) -> dict[tuple, float]:
    """Each configuration's mean final accuracy, as studies find them: most between 75 and 97 %, a relu on the logits
    a few points lower (dead classes), and (x, sigmoid, relu) without batch norm near chance (the study's finding)."""
    found = {}
    for bn, acts in itertools.product(shape.batch_norms, itertools.product(shape.activations, repeat=3)):
        mean = rng.uniform(0.75, 0.97) - (0.05 if acts[-1] == "relu" else 0.0)
        if acts[-2:] == ("sigmoid", "relu") and bn == "none":
            mean = rng.uniform(0.12, 0.35)
        found[bn, acts] = mean
    return found


def curve(final: float, epochs: int, rng: np.random.Generator) -> list[float]:
    """Test accuracy per epoch, rising from chance towards `final` as a learning curve does, a little noise on it."""
    rise = 1 - np.exp(-3 * np.arange(1, epochs + 1) / epochs)
    noisy = CHANCE + (final - CHANCE) * rise / rise[-1] + rng.normal(0, 0.01, epochs)
    return [*np.clip(noisy[:-1], 0.0, 1.0).tolist(), final]


def runs(n: int, shape: Shape = Shape(), seed: int = 0):
    """n made-up runs: (job, Result), over every (act1, act2, act3), then batch-norm placements, then seeds."""
    rng = np.random.default_rng(seed)
    mean = means(shape, rng)
    per_seed = len(shape.batch_norms) * len(shape.activations) ** 3
    grid = itertools.product(range(-(-n // per_seed)), shape.batch_norms)
    shapes = ((s, bn, acts) for s, bn in grid for acts in itertools.product(shape.activations, repeat=3))
    for seed_, bn, acts in itertools.islice(shapes, n):
        final = float(np.clip(mean[bn, acts] + rng.normal(0, 0.015), 0.05, 0.99))
        status = "failed" if rng.uniform() < 0.001 else "ok"
        job = ",".join(f"act{i}={a}" for i, a in enumerate(acts, 1)) + f",model.batch_norm={bn},seed={seed_}"
        yield job, result(acts, bn, seed_, status, curve(final, shape.epochs, rng), rng)


def result(acts: tuple, bn: str, seed: int, status: str, accuracies: list[float], rng: np.random.Generator) -> Result:
    """A run's Result as the engine writes it: its config, HParams, history and diagnostics."""
    epochs, final = len(accuracies), accuracies[-1]
    config = {**{f"act{i}": a for i, a in enumerate(acts, 1)}, "seed": seed, "study": "scale"}
    config |= {"dataset": {"name": "mnist", "batch_size": 32}, "trainer": {"max_epochs": epochs}}
    config["model"] = {"widths": [784, 500, 256, 10], "batch_norm": bn, "init": "default", "output_activation": True}
    config["model"]["optimizer"] = {"_target_": "torch.optim.SGD", "lr": 0.01, "momentum": 0.5}
    diagnostics = {f"layer{k}/{m}": rng.uniform(0, 1, epochs).tolist() for k in (1, 2, 3) for m in DIAGNOSTICS}
    ok = status == "ok"
    return Result(
        status=status,
        config=config,
        hparams=hparams(config),
        final_test_acc=final if ok else None,
        final={"test_acc": final, "test_loss": 1 - final, "train_loss": 1 - final} if ok else {},
        history={
            "epoch": list(range(1, epochs + 1)),
            **dict.fromkeys(("test_acc", "test_loss", "train_loss"), accuracies),
        },
        diagnostics=diagnostics,
    )


def synthetic_sweep(sweep_dir: Path, n: int, shape: Shape = Shape(), population: int = 0) -> None:
    """A sweep dir whose results table holds n made-up runs, each with a job dir holding a result.json (the report
    counts a run whose file is on disk: a file hard-linked into LINKS job dirs, since only its presence is read).
    population: the table as a sweep leaves it, a file a population of that many jobs merged into one at its end
    (sherlocked.records.table.compact; its row groups stay a population each); 0: files of CHUNK rows."""
    made = runs(n, shape)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    linked = 0
    while chunk := list(itertools.islice(made, population or CHUNK)):
        for job, result in chunk:
            stand_in = sweep_dir / f"result-stand-in-{linked // LINKS}.json"
            if not stand_in.exists():
                stand_in.write_text(json.dumps(result.to_json()))
            (sweep_dir / job).mkdir()
            os.link(stand_in, layout.result(sweep_dir / job))
            linked += 1
        table.append(sweep_dir, [job for job, _ in chunk], [result for _, result in chunk])
    if population:
        table.compact(sweep_dir)


def report_at_scale(n: int, shape: Shape = Shape(), population: int = 0) -> dict:
    """The report of n runs of `shape`, timed whole: wall seconds and the command's peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthetic_sweep(Path(tmp) / "sweep", n, shape, population)
        made = time.perf_counter() - start
        size = sum(p.stat().st_size for p in table.parts(Path(tmp) / "sweep"))
        groups = sum(pq.ParquetFile(p).metadata.num_row_groups for p in table.parts(Path(tmp) / "sweep"))
        command = [sys.executable, "-m", "sherlocked.report", f"{tmp}/sweep"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "runs": n,
        "shape": shape.of(n),
        "table_row_groups": groups,  # what reading it costs: a sweep's table keeps a row group a population
        "table_mb": size / 1e6,
        "table_written_s": made,
        "report_wall_s": wall,
        # the command's peak RSS, where no earlier child of this process peaked higher (Linux: KB)
        "report_peak_rss_mb": peak / 1e3 if peak > before else None,
    }


def show(figures: dict) -> str:
    peak = figures["report_peak_rss_mb"]
    peak = "unknown (an earlier command peaked higher)" if peak is None else f"{peak:.0f} MB"
    return (
        f"the report of {figures['runs']:,} runs ({figures['shape']}; a synthetic results table of "
        f"{figures['table_mb']:.0f} MB in {figures['table_row_groups']} row groups): "
        f"{figures['report_wall_s']:.1f} s, peak memory {peak} (python -m sherlocked.report, timed whole)"
    )


if __name__ == "__main__":
    print(json.dumps(report_at_scale(int(sys.argv[1]))))
