"""A sweep's runs as one table: one row per job, read once from the sweep's results table, for every part of the report.

    python -c "from sherlocked.report.runs import read_runs; print(read_runs('outputs/sweeps/demo'))"

A row's columns are any config key sherlocked/spec/config.py does not declare, under its dotted path,
the job's HParams (act1..., dataset, lr, seed: the short names declared there), then job,
status, acc (final test accuracy, %), curve (% per epoch) and diag.* (last epoch; those asked for). A sweep
written before it had a table is read from its result.json files, as its table would hold them.
"""

import json
import sys
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from sherlocked.records import table
from sherlocked.records.layout import RESULT
from sherlocked.records.results import read_result
from sherlocked.records.table import DIAG, HPARAMS
from sherlocked.spec.activations import ACTIVATIONS
from sherlocked.spec.config import ACT

OUTCOME = ("job", "status", "acc", "curve")
COLUMNS = ("status", "final.test_acc", "curve.test_acc", "undeclared")  # what the report reads of the table


def cell(value):
    """A value a table can group by: lists become text."""
    if isinstance(value, list):
        return "-".join(map(str, value)) if all(isinstance(v, int | float) for v in value) else json.dumps(value)
    return value


def shown(value) -> str:
    """A swept value as typed: a number with its significant digits (lr 0.003 or 1e-05, never 0.00; a whole number
    a float column holds, 32.0, as 32), anything else as its text."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def named(keys, values) -> str:
    """ "key=value, ..." of a group's values as typed, leaving out a key its runs lack (an MLP's channels: NaN)."""
    return ", ".join(f"{k}={shown(v)}" for k, v in zip(keys, values) if not pd.isna(v))


def read_runs(sweep_dir: Path, diagnostics: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per job of the sweep (see the module's docstring). diagnostics: the diag.* columns to read where a
    table holds them (None: all): each column read costs, and a 3-layer run records 30, of which the report shows 7."""
    wanted = (COLUMNS, (HPARAMS, DIAG)) if diagnostics is None else ((*COLUMNS, *diagnostics), (HPARAMS,))
    rows = table.read(sweep_dir, wanted[0], prefixes=wanted[1])
    if rows.empty:
        rows = rows_of_results(sweep_dir)
    if rows.empty:
        raise SystemExit(f"sherlocked: no {RESULT} under {sweep_dir}; run a sweep first")
    return runs_of(rows.sort_values("job").reset_index(drop=True))


def rows_of_results(sweep_dir: Path) -> pd.DataFrame:
    """The table's rows made from the sweep's result.json files; an unreadable one is left out with a warning."""
    rows = []
    for path in sorted(Path(sweep_dir).rglob(RESULT)):
        result = read_result(path.parent)
        if result is None:
            print(f"sherlocked: {path} is unreadable; left out of the report", file=sys.stderr)
            continue
        rows.append(table.row(str(path.parent.relative_to(sweep_dir)), result, written=0.0))
    return table.once_each(pd.DataFrame(rows))  # the same job in two dirs (a default spelled out) counts once


def runs_of(rows: pd.DataFrame) -> pd.DataFrame:
    """The report's columns from the table's: undeclared keys, HParams, the outcome, the diagnostics."""
    # Most rows share their undeclared keys' values: each distinct text is parsed once.
    codes, texts = pd.factorize(rows["undeclared"])
    distinct = pd.DataFrame([{k: cell(v) for k, v in json.loads(text).items()} for text in texts])
    other = distinct.iloc[codes].reset_index(drop=True) if len(distinct.columns) else pd.DataFrame(index=rows.index)
    hparams = rows[[c for c in rows if c.startswith(HPARAMS)]].rename(columns=lambda c: c[len(HPARAMS) :])
    outcome = pd.DataFrame(
        {
            "job": rows["job"],
            "status": rows["status"],
            "acc": 100 * rows["final.test_acc"].astype(float),
            "curve": [[100 * float(a) for a in curve] for curve in rows["curve.test_acc"]],
        }
    )
    diagnostics = rows[[c for c in rows if c.startswith(DIAG)]].astype(float)
    return pd.concat([other.drop(columns=[c for c in hparams if c in other]), hparams, outcome, diagnostics], axis=1)


def act_keys(runs: pd.DataFrame) -> list[str]:
    """act1, act2, ... in order, leaving out those that are "none" (past the depth) in every run."""
    keys = sorted((c for c in runs.columns if ACT.fullmatch(c)), key=lambda c: int(c[3:]))
    return [k for k in keys if runs[k].notna().any() and (runs[k] != "none").any()]


def group_keys(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(activation columns, other columns the sweep varied): what the table's rows are made of.

    The seed is not among them: runs of one group differ in seed, and the table gives each a column.
    """
    acts = act_keys(runs)
    skip = {*OUTCOME, "seed", "study", *(c for c in runs.columns if ACT.fullmatch(c))}
    varied = [c for c in runs.columns if c not in skip and not c.startswith(DIAG) and takes_values(runs[c])]
    return acts, varied


def takes_values(column: pd.Series) -> bool:
    """Whether a column holds more than one value. Counted as they are (fast: the report asks this of every column
    a dozen times), or as text where a value cannot be hashed."""
    try:
        return column.nunique(dropna=False) > 1
    except TypeError:
        return column.astype(str).nunique() > 1


def table_keys(runs: pd.DataFrame) -> list[str]:
    """What names a row of the study's table: the activations, then the other keys the sweep varied."""
    acts, varied = group_keys(runs)
    return [*acts, *varied]


def sort_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Activations in the study's order (relu, tanh, sigmoid, selu, ...), other keys naturally."""
    order = {name: i for i, name in enumerate(ACTIVATIONS)}

    def key(column: pd.Series) -> pd.Series:
        if ACT.fullmatch(str(column.name)):
            return column.map(lambda v: order.get(v, len(order)))
        return column

    return frame.sort_values(keys, key=key, kind="stable").reset_index(drop=True)


def strata(runs: pd.DataFrame):
    """(title, runs) for the whole sweep and, when it varied other keys (batch_norm, dataset...), each value."""
    _, varied = group_keys(runs)
    yield "all runs", runs
    if varied:
        # Runs that lack a key (an MLP has no channels beside a CNN) are a stratum too, named without it.
        for values, part in runs.groupby(varied, sort=True, dropna=False):
            values = values if isinstance(values, tuple) else (values,)
            yield named(varied, values), part


def last_pair(runs: pd.DataFrame) -> pd.Series:
    """Each run's last two activations as "a,b" (the study's question is about this pair)."""
    acts = act_keys(runs)
    return runs[acts[-2]].astype(str) + "," + runs[acts[-1]].astype(str)


def finished(runs: pd.DataFrame) -> pd.Series:
    """Which runs finished (ok or diverged): a failed run has no accuracy."""
    return runs["status"] != "failed"


def finished_with_last_pair(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The finished runs and their last pairs, named from every run's activations: the finished runs alone may be
    none (every run of a stratum failed), and none has an activation to name."""
    done = finished(runs)
    return runs[done], last_pair(runs)[done]


def error_lines(sweep_dir: Path) -> pd.Series:
    """How many failed runs ended with each error (its first line), most first: the table's error column where it
    has one, else the error of the result.json the table keeps whole (or of the result.json files)."""
    rows = table.read(sweep_dir, ["status", "error", "result"])
    if rows.empty:
        rows = rows_of_results(sweep_dir)
    failed = rows[rows["status"] == "failed"]
    if "error" in failed and failed["error"].notna().any():
        errors = failed["error"]
    else:
        errors = failed["result"].map(lambda text: json.loads(text).get("error"))
    first = errors.dropna().astype(str).str.strip().str.split("\n").str[0]
    return first[first != ""].value_counts()
