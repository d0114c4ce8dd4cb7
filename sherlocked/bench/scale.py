"""The report at the scale of a big study: a synthetic results table of N runs, reported by the real command.

    python -m sherlocked.bench --scale 100000

The table is the one a sweep writes (sherlocked.table), of made-up runs shaped like a study of
11 activations on 3 layers x seeds x batch-norm placements (10 epochs, diagnostics on): the
report reads it as any sweep's. The report runs as a user runs it (python -m sherlocked.report),
timed whole, with its peak memory.
"""

import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sherlocked import layout, table
from sherlocked.activations import ACTIVATIONS
from sherlocked.config import hparams
from sherlocked.results import Result

EPOCHS, CHUNK = 10, 5_000  # rows a file of the table (as compacted sweeps of that many jobs leave it)
DIAGNOSTICS = ("pre_mean", "pre_std", "flat", "flat_units", "dead", "zero", "saturated", "grad_w", "grad_b")


def runs(n: int, seed: int = 0):
    """n made-up runs: (job, Result), over every (act1, act2, act3), then seeds and batch-norm placements."""
    rng = np.random.default_rng(seed)
    grid = itertools.product(range(-(-n // (3 * len(ACTIVATIONS) ** 3))), ("none", "all", "last"))
    shapes = ((s, bn, acts) for s, bn in grid for acts in itertools.product(ACTIVATIONS, repeat=3))
    for seed_, bn, acts in itertools.islice(shapes, n):
        config = {**{f"act{i}": a for i, a in enumerate(acts, 1)}, "seed": seed_, "study": "scale"}
        config |= {"dataset": {"name": "mnist", "batch_size": 32}, "trainer": {"max_epochs": EPOCHS}}
        config["model"] = {
            "widths": [784, 500, 256, 10],
            "batch_norm": bn,
            "init": "default",
            "output_activation": True,
        }
        config["model"]["optimizer"] = {"_target_": "torch.optim.SGD", "lr": 0.01, "momentum": 0.5}
        final = float(rng.uniform(0.1, 0.98))
        curve = np.sort(rng.uniform(0.1, final, EPOCHS)).tolist()[:-1] + [final]
        diagnostics = {f"layer{k}/{m}": rng.uniform(0, 1, EPOCHS).tolist() for k in (1, 2, 3) for m in DIAGNOSTICS}
        status = "failed" if rng.uniform() < 0.001 else "ok"
        job = ",".join(f"act{i}={a}" for i, a in enumerate(acts, 1)) + f",model.batch_norm={bn},seed={seed_}"
        yield (
            job,
            Result(
                status=status,
                config=config,
                hparams=hparams(config),
                final_test_acc=final if status == "ok" else None,
                final={"test_acc": final, "test_loss": 1 - final, "train_loss": 1 - final} if status == "ok" else {},
                history={
                    "epoch": list(range(1, EPOCHS + 1)),
                    "test_acc": curve,
                    "test_loss": curve,
                    "train_loss": curve,
                },
                diagnostics=diagnostics,
            ),
        )


def synthetic_sweep(sweep_dir: Path, n: int) -> None:
    """A sweep dir whose results table holds n made-up runs, each with a job dir holding a result.json (the report
    counts a run whose file is on disk: one file, hard-linked into every job dir, since only its presence is read)."""
    made = runs(n)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    stand_in = sweep_dir / "result-stand-in.json"
    while chunk := list(itertools.islice(made, CHUNK)):
        if not stand_in.exists():
            stand_in.write_text(json.dumps(chunk[0][1].to_json()))
        for job, _ in chunk:
            (sweep_dir / job).mkdir()
            os.link(stand_in, layout.result(sweep_dir / job))
        table.append(sweep_dir, [job for job, _ in chunk], [result for _, result in chunk])


def report_at_scale(n: int) -> dict:
    """The report of n runs, timed whole: wall seconds and the command's peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthetic_sweep(Path(tmp) / "sweep", n)
        made = time.perf_counter() - start
        size = sum(p.stat().st_size for p in table.parts(Path(tmp) / "sweep"))
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
        f"the report of {figures['runs']:,} runs (a synthetic results table of {figures['table_mb']:.0f} MB): "
        f"{figures['report_wall_s']:.1f} s, peak memory {peak} (python -m sherlocked.report, timed whole)"
    )


if __name__ == "__main__":
    print(json.dumps(report_at_scale(int(sys.argv[1]))))
