"""The study's table: one row per group of runs, one column per seed, mean, std, n, CI, outcomes;
and the same table next to the published one.

    python -m sherlocked.report outputs/sweeps/demo   # writes table.md/.csv and comparison.md/.csv
"""

from collections.abc import Iterable
from importlib import resources

import numpy as np
import pandas as pd
from scipy import stats

from sherlocked.report.runs import group_keys, shown, sort_rows

STUDY_SETUP = {
    "dataset": "mnist",
    "epochs": 10,
    "batch_size": 32,
    "optimizer": "sgd",
    "lr": 0.01,
    "momentum": 0.5,
    "weight_decay": 0.0,
    "init": "default",
}
REFERENCE = {"none": "sherlocked_mnist_no_bn.csv", "all": "sherlocked_mnist_bn_all.csv"}


STD = "std is the population standard deviation over seeds (ddof 0, as in the published table), everywhere here"
MIN_CI_RUNS = 3  # a 95 % t-interval from two runs spans hundreds of points: not given


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """The study's table: one row per group, one column per seed, then the mean, std (ddof 0: see STD), n and a 95%
    t-interval (from MIN_CI_RUNS runs) of the accuracies that exist, and the outcome counts; computed for every
    group at once (a study of 100,000 runs has thousands of groups)."""
    acts, varied = group_keys(runs)
    keys = acts + varied
    by = [runs[key] for key in keys]
    acc = runs["acc"].astype(float).groupby(by, sort=False, dropna=False)
    n = acc.count()
    half = pd.Series(stats.t.ppf(0.975, n - 1), index=n.index) * acc.std(ddof=1) / np.sqrt(n)
    half = half.where(n >= MIN_CI_RUNS)
    mean = acc.mean()
    summary = pd.DataFrame(
        {"mean": mean, "std": acc.std(ddof=0), "n": n, "ci95_low": mean - half, "ci95_high": mean + half}
    )
    for outcome in ("diverged", "failed"):
        summary[outcome] = runs["status"].eq(outcome).groupby(by, sort=False, dropna=False).sum().astype(int)
    seeds = runs.groupby([*by, runs["seed"]], sort=False, dropna=False)["acc"].first().unstack(len(keys))
    seeds.columns = [f"seed{s}" for s in seeds.columns]
    frame = pd.concat([seeds, summary], axis=1)
    frame.index.names = keys
    return sort_rows(frame.reset_index(), keys)


def markdown(frame: pd.DataFrame, digits: int = 2, keys: Iterable[str] = ()) -> str:
    """The frame as a markdown table: numbers with `digits` decimals (accuracies), but the `keys` columns (what the
    sweep varied) as typed: a learning rate of 0.003 is no 0.00."""
    keys = set(keys)

    def cell(value, column: str) -> str:
        if isinstance(value, float | np.floating) and np.isnan(value):
            return ""
        if column in keys:
            return shown(value)
        if isinstance(value, float | np.floating):
            return f"{value:.{digits}f}"
        return str(value)

    columns = list(map(str, frame.columns))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(cell(v, c) for v, c in zip(row, columns)) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join(lines) + "\n"


def comparison(runs: pd.DataFrame, ours: pd.DataFrame) -> tuple[pd.DataFrame, str] | None:
    """Our table next to the published one, when the sweep has the study's architecture and activations."""
    acts, varied = group_keys(runs)
    if acts != ["act1", "act2", "act3"] or set(runs.get("widths", [])) != {"784-500-256-10"}:
        return None
    frames = []
    for bn, filename in REFERENCE.items():
        mine = ours[ours["batch_norm"] == bn] if "batch_norm" in varied else ours
        if "batch_norm" not in varied and runs["batch_norm"].iloc[0] != bn:
            continue
        published = pd.read_csv(resources.files("sherlocked") / "reference" / filename)
        merged = published[[*acts, "mean", "std"]].merge(mine, on=acts, suffixes=("_published", ""))
        if merged.empty:
            continue
        merged = merged.rename(columns={"mean": "mean_ours", "std": "std_ours"})
        merged.insert(0, "reference", filename)
        merged["difference"] = merged["mean_ours"] - merged["mean_published"]
        columns = ["reference", *acts, "mean_published", "std_published", "mean_ours", "std_ours", "n", "difference"]
        frames.append(merged[columns])
    if not frames:
        return None
    compared = pd.concat(frames, ignore_index=True)
    ranks = ""
    if len(compared) >= 3 and compared["mean_ours"].nunique() > 1 and compared["mean_published"].nunique() > 1:
        rho, p = stats.spearmanr(compared["mean_published"], compared["mean_ours"])
        ranks = (
            f"Rank correlation of our means with the published ones over the {len(compared)} rows: "
            f"Spearman's rho = {rho:.2f} (p = {p:.2g})."
        )
    differs = {k: runs[k].iloc[0] for k, v in STUDY_SETUP.items() if k in runs and runs[k].iloc[0] != v}
    setup = (
        "This sweep has the published setup, so the numbers are directly comparable."
        if not differs
        else "This sweep differs from the published setup in "
        + ", ".join(f"{k}={shown(v)} (published: {STUDY_SETUP[k]})" for k, v in differs.items())
        + ": compare the pattern across triples (the rank correlation), not the absolute numbers."
    )
    return compared, f"{setup} {ranks}".strip()
