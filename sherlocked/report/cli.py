"""Turn a sweep into the study's answer: the table, the plots, the statistics, the published comparison.

    python -m sherlocked.report outputs/sweeps/demo
    python -m sherlocked.report outputs/sweeps/mnist --pair sigmoid,relu --pair tanh,relu
    python -m sherlocked.report /archive/sweeps/mnist --out reports/mnist  # a sweep on read-only storage
    python -m sherlocked.report outputs/sweeps/demo --rebuild  # its results table made again from its result.json files
    python -m sherlocked.report outputs/sweeps/demo --to mlflow  # its jobs as MLflow runs (docs/trackers.md)
    python -m sherlocked.report  # no sweep dir: the sweeps there are to report (exit 0)

Reads the sweep's results table (sherlocked.records.table); writes into the sweep dir (or --out): index.md
(the one page: question, setup, answer, figures, table, mechanism, published figures), table.md/.csv,
heatmap.png, curves.png, stats.md, with diagnostics diagnostics.md/.png and, when the sweep has the
published study's architecture, comparison.md/.csv.
Columns adapt to what the sweep varied; failed and diverged runs are counted, never silently dropped.
It prints every configuration ranked where there are up to MAX_LISTED, else the SHOWN best and worst.
"""

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from sherlocked.records.layout import output_paths, results_table
from sherlocked.records.table import rebuild
from sherlocked.report import plots
from sherlocked.report.mechanism import diagnostics_markdown, measured_columns, mechanism_text
from sherlocked.report.page import index_markdown
from sherlocked.report.runs import DIAG, error_lines, finished, group_keys, read_runs, shown, table_keys
from sherlocked.report.significance import stats_markdown
from sherlocked.report.tables import MIN_CI_RUNS, STD, comparison, markdown, table
from sherlocked.spec.activations import ACTIVATIONS

MAX_LISTED, SHOWN = 10, 5  # the console lists every configuration up to MAX_LISTED; beyond, the SHOWN best and worst


class Report(NamedTuple):
    runs: pd.DataFrame  # one row per job (sherlocked.report.runs)
    table: pd.DataFrame  # one row per group (sherlocked.report.tables)
    files: dict[str, Path]  # what was written, by name
    errors: pd.Series | None = None  # where every run failed: how many ended with each error line


def report(sweep_dir: Path, pairs: list[tuple[str, str]], out: Path | None = None) -> Report:
    """Read the sweep's runs once and write every file of its report into `out` (default: the sweep dir)."""
    sweep_dir = Path(sweep_dir)
    out = sweep_dir if out is None else Path(out)
    runs = read_runs(sweep_dir, diagnostics=measured_columns())
    ours = table(runs)
    out.mkdir(parents=True, exist_ok=True)
    written = write_table(sweep_dir, runs, ours, out)
    mechanism = compared = errors = None
    if finished(runs).any():
        mechanism, compared = write_findings(runs, ours, pairs, out, written)
    else:  # every run failed: no accuracy to draw or test; the page says what the runs ended with
        errors = error_lines(sweep_dir)
        written["stats.md"] = out / "stats.md"
        written["stats.md"].write_text(stats_markdown(runs, pairs))
    page = index_markdown(sweep_dir.resolve().name, runs, ours, pairs, written, mechanism, compared, errors)
    written = {"index.md": out / "index.md", **written}
    written["index.md"].write_text(page)
    return Report(runs, ours, written, errors)


def write_table(sweep_dir: Path, runs: pd.DataFrame, ours: pd.DataFrame, out: Path) -> dict[str, Path]:
    """table.md and table.csv; returns them by name."""
    written = {name: out / name for name in ("table.md", "table.csv")}
    ours.to_csv(written["table.csv"], index=False)
    note = (
        f"Final-epoch test accuracy (%) of {len(runs)} runs in {sweep_dir}. {STD}; ci95 is a t-interval of "
        f"the mean, given from {MIN_CI_RUNS} runs on (empty below); an empty seed cell is a failed run; diverged "
        "runs keep the accuracy they reached.\n\n"
    )
    written["table.md"].write_text("# Results\n\n" + note + markdown(ours, keys=table_keys(runs)))
    return written


def write_findings(
    runs: pd.DataFrame, ours: pd.DataFrame, pairs: list[tuple[str, str]], out: Path, written: dict[str, Path]
) -> tuple[str | None, tuple[pd.DataFrame, str] | None]:
    """The figures, stats.md, the diagnostics and the published comparison, each added to `written` by name;
    returns the mechanism's paragraph and the comparison, for the page."""
    for name in ("heatmap.png", "curves.png", "stats.md"):
        written[name] = out / name
    plots.heatmap(runs, ours, pairs[0], written["heatmap.png"])
    plots.curves(runs, pairs[0], written["curves.png"])
    written["stats.md"].write_text(stats_markdown(runs, pairs))
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
    return mechanism, compared


def sweeps_to_report(asked: Path | None, under: Path | None = None) -> str:
    """What to say where no sweep dir (or one that does not exist) was given: the sweeps there are to report
    (under: default, where sweeps go, conf/paths' sweeps)."""
    under = output_paths().sweeps if under is None else Path(under)
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
    parser.add_argument("--to", choices=["mlflow"], help="push the sweep's results into a tracker instead (MLflow)")
    parser.add_argument("--tracking-uri", help="with --to mlflow: the store (default: conf/logger/mlflow.yaml's)")
    args = parser.parse_args(argv)
    if args.sweep_dir is None:  # a question, answered (make report without STUDY): exit 0
        print(sweeps_to_report(None))
        return
    if not args.sweep_dir.is_dir():
        sys.exit(sweeps_to_report(args.sweep_dir))
    pairs = [tuple(p.split(",")) for p in args.pair or ["sigmoid,relu"]]
    for pair in pairs:
        if len(pair) != 2 or any(a not in ACTIVATIONS for a in pair):
            parser.error(f"--pair {','.join(pair)}: give two activations from {', '.join(ACTIVATIONS)}")
    if args.rebuild:
        rebuild_table(args.sweep_dir)
    if args.to:
        push(args.sweep_dir, args.tracking_uri)
        return
    try:
        done = report(args.sweep_dir, pairs, args.out)
    except OSError as error:  # e.g. a finished sweep kept on read-only storage
        where = args.out or args.sweep_dir
        sys.exit(f"sherlocked report: cannot write into {where} ({error.strerror}); write it elsewhere with --out DIR")
    print(f"report: {args.out or args.sweep_dir}  ({', '.join(p.name for p in done.files.values())})")
    if done.errors is not None:
        print(failures(done))
    else:
        print(f"TensorBoard: python -m tensorboard.main --logdir {args.sweep_dir}")
        print(ranked(done))


def push(sweep_dir: Path, uri: str | None) -> None:
    """--to mlflow: the sweep's jobs as MLflow runs (sherlocked.report.push), or one line naming what is missing."""
    if importlib.util.find_spec("mlflow") is None:
        print(
            "sherlocked report: --to mlflow needs mlflow, which is not installed: pip install -e '.[mlflow]'",
            file=sys.stderr,
        )
        sys.exit(2)
    from sherlocked.records.mlflow_store import default_uri
    from sherlocked.report.push import push_to_mlflow

    uri = uri or default_uri()
    start = time.perf_counter()
    written, held = push_to_mlflow(sweep_dir, uri)
    print(
        f"mlflow: {written} runs written, {held} the store held already, in {time.perf_counter() - start:.1f} s "
        f"({uri}); look at them: mlflow ui --backend-store-uri {uri}"
    )


def rebuild_table(sweep_dir: Path) -> None:
    """--rebuild: the sweep's results table made again from its result.json files, or one line naming the folder
    that could not be written (the table is the sweep's own: --out moves only the report's files)."""
    try:
        rows = rebuild(sweep_dir)
    except OSError as error:
        sys.exit(
            f"sherlocked report: --rebuild cannot write the results table into {results_table(sweep_dir)} "
            f"({error.strerror}): rebuilding needs write access to the sweep dir; without --rebuild the report "
            "reads the sweep's table (or its result.json files) as they are"
        )
    print(f"results table rebuilt from {rows} result.json files: {results_table(sweep_dir)}")


def failures(done: Report) -> str:
    """Where every run failed: how many, and how many ended with each error line."""
    head = f"every one of the {len(done.runs)} runs failed"
    if done.errors.empty:
        return f"{head}; the table records no error: see each job's result.json"
    return "\n".join([f"{head}; they ended with:", *(f"  {n} x {line}" for line, n in done.errors.items())])


def ranked(done: Report) -> str:
    """The table's rows by mean, best first: every one of up to MAX_LISTED (the best and the worst would be the same
    rows), else the SHOWN best and the SHOWN worst."""
    acts, varied = group_keys(done.runs)
    rows = done.table.sort_values("mean", ascending=False)[[*acts, *varied, "mean", "std", "n"]]
    for key in varied:  # a swept number as typed (lr 0.003, not 0.00); accuracies with two decimals; a key a run
        rows[key] = rows[key].map(lambda v: "" if pd.isna(v) else shown(v))  # lacks (an MLP's channels) empty

    def text(frame: pd.DataFrame) -> str:
        return frame.to_string(index=False, float_format="%.2f")

    if len(rows) <= MAX_LISTED:
        return f"the {len(rows)} configurations by mean, best first:\n{text(rows)}"
    return f"best {SHOWN}:\n{text(rows.head(SHOWN))}\nworst {SHOWN}:\n{text(rows.tail(SHOWN))}"
