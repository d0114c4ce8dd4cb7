"""Turn a sweep into the study's answer: the table, the plots, the statistics, the published comparison.

    python -m sherlocked.report outputs/sweeps/demo
    python -m sherlocked.report outputs/sweeps/mnist --pair sigmoid,relu --pair tanh,relu
    python -m sherlocked.report /archive/sweeps/mnist --out reports/mnist  # a sweep on read-only storage
    python -m sherlocked.report outputs/sweeps/demo --rebuild  # its results table made again from its result.json files

Reads the sweep's results table (sherlocked.table); writes into the sweep dir (or --out): index.md
(the one page: question, setup, answer, figures, table, mechanism, published figures), table.md/.csv,
heatmap.png, curves.png, stats.md, with diagnostics diagnostics.md/.png and, when the sweep has the
published study's architecture, comparison.md/.csv.
Columns adapt to what the sweep varied; failed and diverged runs are counted, never silently dropped.
"""

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from sherlocked.activations import ACTIVATIONS
from sherlocked.layout import results_table
from sherlocked.report import plots
from sherlocked.report.mechanism import diagnostics_markdown, mechanism_text
from sherlocked.report.page import index_markdown
from sherlocked.report.runs import DIAG, group_keys, read_runs, shown, table_keys
from sherlocked.report.significance import stats_markdown
from sherlocked.report.tables import MIN_CI_RUNS, STD, comparison, markdown, table
from sherlocked.table import rebuild


class Report(NamedTuple):
    runs: pd.DataFrame  # one row per job (sherlocked.report.runs)
    table: pd.DataFrame  # one row per group (sherlocked.report.tables)
    files: dict[str, Path]  # what was written, by name


def report(sweep_dir: Path, pairs: list[tuple[str, str]], out: Path | None = None) -> Report:
    """Read the sweep's runs once and write every file of its report into `out` (default: the sweep dir)."""
    sweep_dir = Path(sweep_dir)
    out = sweep_dir if out is None else Path(out)
    runs = read_runs(sweep_dir)
    ours = table(runs)
    out.mkdir(parents=True, exist_ok=True)
    written = {name: out / name for name in ("table.md", "table.csv", "heatmap.png", "curves.png", "stats.md")}
    ours.to_csv(written["table.csv"], index=False)
    note = (
        f"Final-epoch test accuracy (%) of {len(runs)} runs in {sweep_dir}. {STD}; ci95 is a t-interval of "
        f"the mean, given from {MIN_CI_RUNS} runs on (empty below); an empty seed cell is a failed run; diverged "
        "runs keep the accuracy they reached.\n\n"
    )
    written["table.md"].write_text("# Results\n\n" + note + markdown(ours, keys=table_keys(runs)))
    written["stats.md"].write_text(stats_markdown(runs, pairs))
    plots.heatmap(runs, ours, pairs[0], written["heatmap.png"])
    plots.curves(runs, pairs[0], written["curves.png"])
    mechanism = None
    if any(c.startswith(DIAG) for c in runs.columns):
        written["diagnostics.md"] = out / "diagnostics.md"
        written["diagnostics.md"].write_text(diagnostics_markdown(runs, pairs[0]))
        if plots.diagnostics(runs, pairs[0], out / "diagnostics.png"):
            written["diagnostics.png"] = out / "diagnostics.png"
        mechanism = mechanism_text(runs, pairs[0])
    compared = comparison(runs, ours)
    if compared is not None:
        frame, setup = compared
        written["comparison.csv"] = out / "comparison.csv"
        written["comparison.md"] = out / "comparison.md"
        frame.to_csv(written["comparison.csv"], index=False)
        source = "Published figures: sherlocked/reference/ (Nishant Nikhil's `sherlocked`, inspect_activations/)."
        written["comparison.md"].write_text(
            f"# Ours against the published study\n\n{setup} {source}\n\n" + markdown(frame)
        )
    page = index_markdown(sweep_dir.resolve().name, runs, ours, pairs, written, mechanism, compared)
    written = {"index.md": out / "index.md", **written}
    written["index.md"].write_text(page)
    return Report(runs, ours, written)


def sweeps_to_report(asked: Path | None, under: Path = Path("outputs/sweeps")) -> str:
    """What to say where no sweep dir (or one that does not exist) was given: the sweeps there are to report."""
    found = sorted(p.parent for p in under.glob(f"**/{results_table('.').name}") if p.is_dir())
    head = f"sherlocked report: no sweep at {asked}. " if asked is not None else ""
    if not found:
        return f"{head}No sweep under {under} yet: run one first (make demo)."
    names = ", ".join(str(p) for p in found)
    return f"{head}Sweeps to report: {names}. Report one: python -m sherlocked.report {found[0]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sherlocked.report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "sweep_dir", type=Path, nargs="?", help="a sweep's directory, e.g. outputs/sweeps/demo (none: list them)"
    )
    parser.add_argument(
        "--pair",
        action="append",
        default=None,
        metavar="ACT,ACT",
        help="a last pair of activations to test against the rest (repeatable; default sigmoid,relu)",
    )
    parser.add_argument("--out", type=Path, help="where the report's files go (default: the sweep dir)")
    parser.add_argument(
        "--rebuild", action="store_true", help="make the sweep's results table again from its result.json files first"
    )
    args = parser.parse_args(argv)
    if args.sweep_dir is None or not args.sweep_dir.is_dir():
        sys.exit(sweeps_to_report(args.sweep_dir))
    pairs = [tuple(p.split(",")) for p in args.pair or ["sigmoid,relu"]]
    for pair in pairs:
        if len(pair) != 2 or any(a not in ACTIVATIONS for a in pair):
            parser.error(f"--pair {','.join(pair)}: give two activations from {', '.join(ACTIVATIONS)}")
    try:
        if args.rebuild:
            rows = rebuild(args.sweep_dir)
            print(f"results table rebuilt from {rows} result.json files: {results_table(args.sweep_dir)}")
        runs, ours, written = report(args.sweep_dir, pairs, args.out)
    except OSError as error:  # e.g. a finished sweep kept on read-only storage
        where = args.out or args.sweep_dir
        sys.exit(f"sherlocked report: cannot write into {where} ({error.strerror}); write it elsewhere with --out DIR")
    acts, varied = group_keys(runs)
    ranked = ours.sort_values("mean", ascending=False)[[*acts, *varied, "mean", "std", "n"]]
    for key in varied:  # a swept number as typed (lr 0.003, not 0.00); accuracies with two decimals
        ranked[key] = ranked[key].map(shown)
    print(f"report: {args.out or args.sweep_dir}  ({', '.join(p.name for p in written.values())})")
    print(f"TensorBoard: python -m tensorboard.main --logdir {args.sweep_dir}")
    print("best:\n" + ranked.head(5).to_string(index=False, float_format="%.2f"))
    print("worst:\n" + ranked.tail(5).to_string(index=False, float_format="%.2f"))
