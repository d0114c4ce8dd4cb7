"""A sweep's runs as one table: one row per result.json, read once, for every part of the report.

    python -c "from sherlocked.report.runs import read_runs; print(read_runs('outputs/sweeps/demo'))"

A row's columns are the job's HParams as result.json stores them (act1..., dataset, lr, seed,
the short names declared in sherlocked/config.py), any other config key under its dotted path,
then job, status, acc (final test accuracy, %), curve (% per epoch) and diag.* (last epoch).
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sherlocked.activations import ACTIVATIONS
from sherlocked.config import ACT, undeclared
from sherlocked.layout import RESULT
from sherlocked.results import read_result

DIAG = "diag."  # prefix of the diagnostics columns
OUTCOME = ("job", "status", "acc", "curve")


def cell(value):
    """A value a table can group by: lists become text."""
    if isinstance(value, list):
        return "-".join(map(str, value)) if all(isinstance(v, int | float) for v in value) else json.dumps(value)
    return value


def read_runs(sweep_dir: Path) -> pd.DataFrame:
    """One row per job under sweep_dir; an unreadable result.json is left out with a warning."""
    rows = []
    for path in sorted(Path(sweep_dir).rglob(RESULT)):
        result = read_result(path.parent)
        if result is None:
            print(f"sherlocked: {path} is unreadable; left out of the report", file=sys.stderr)
            continue
        row = {name: cell(value) for name, value in {**undeclared(result.config), **result.hparams}.items()}
        acc = result.final_test_acc
        row.update(
            job=str(path.parent.relative_to(sweep_dir)),
            status=result.status,
            acc=np.nan if acc is None else 100 * acc,
            curve=[100 * a for a in result.history.get("test_acc", [])],
        )
        # the last epoch's diagnostics, when the run measured them
        row.update({f"{DIAG}{name}": values[-1] for name, values in result.diagnostics.items() if values})
        rows.append(row)
    if not rows:
        raise SystemExit(f"sherlocked: no {RESULT} under {sweep_dir}; run a sweep first")
    return pd.DataFrame(rows)


def act_keys(runs: pd.DataFrame) -> list[str]:
    """act1, act2, ... in order, leaving out those that are "none" (past the depth) in every run."""
    keys = sorted((c for c in runs.columns if ACT.fullmatch(c)), key=lambda c: int(c[3:]))
    return [k for k in keys if runs[k].notna().any() and (runs[k] != "none").any()]


def group_keys(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(activation columns, other columns the sweep varied): what the table's rows are made of.

    The seed is not among them: runs of one group differ in seed, and the table gives each a column.
    """
    acts = act_keys(runs)
    skip = {*OUTCOME, "seed", *(c for c in runs.columns if ACT.fullmatch(c))}
    varied = [c for c in runs.columns if c not in skip and not c.startswith(DIAG) and runs[c].astype(str).nunique() > 1]
    return acts, varied


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
        for values, part in runs.groupby(varied, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            yield ", ".join(f"{k}={v}" for k, v in zip(varied, values)), part


def last_pair(runs: pd.DataFrame) -> pd.Series:
    """Each run's last two activations as "a,b" (the study's question is about this pair)."""
    acts = act_keys(runs)
    return runs[acts[-2]].astype(str) + "," + runs[acts[-1]].astype(str)
