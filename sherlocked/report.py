"""Turn a sweep into the study's answer: the table, the plots, the statistics, the published comparison.

    python -m sherlocked.report outputs/sweeps/demo
    python -m sherlocked.report outputs/sweeps/mnist --pair sigmoid,relu --pair tanh,relu

Writes into the sweep dir: table.md/.csv, heatmap.png, curves.png, stats.md and, when the
sweep has the published study's architecture, comparison.md/.csv. Columns adapt to what
the sweep varied; failed and diverged runs are counted, never silently dropped.
"""

import argparse
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from sherlocked.activations import ACTIVATIONS
from sherlocked.results import RESULT

# Config keys under the short names the study's tables use.
ALIASES = {
    "dataset.name": "dataset",
    "model.widths": "widths",
    "model.batch_norm": "batch_norm",
    "model.output_activation": "output_activation",
    "model.init": "init",
    "model.optimizer.lr": "lr",
    "model.optimizer.momentum": "momentum",
    "dataset.batch_size": "batch_size",
    "trainer.max_epochs": "epochs",
}
# Keys that never tell runs apart in a table (paths, display, the seed has its own columns).
NOT_GROUPS = {"seed", "study", "dataset.root", "trainer.enable_progress_bar", "trainer.accelerator", "trainer.devices"}
STUDY_SETUP = {"dataset": "mnist", "epochs": 10, "batch_size": 32, "lr": 0.01, "momentum": 0.5, "init": "default"}
REFERENCE = {"none": "sherlocked_mnist_no_bn.csv", "all": "sherlocked_mnist_bn_all.csv"}
DIAG = "diag."  # prefix of the diagnostics columns read from result.json


def flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in flatten(value, f"{prefix}{key}.").items()}
    if isinstance(node, list):
        node = "-".join(map(str, node)) if all(isinstance(v, int | float) for v in node) else json.dumps(node)
    return {prefix[:-1]: node}


def read_runs(sweep_dir: Path) -> pd.DataFrame:
    """One row per job: its config (short names), status, final accuracy (%) and accuracy curve (%)."""
    rows = []
    for path in sorted(Path(sweep_dir).rglob(RESULT)):
        result = json.loads(path.read_text())
        row = {ALIASES.get(key, key): value for key, value in flatten(result.get("config", {})).items()}
        acc = result.get("final_test_acc")
        row.update(
            job=str(path.parent.relative_to(sweep_dir)),
            status=result["status"],
            acc=np.nan if acc is None else 100 * acc,
            curve=[100 * a for a in result.get("history", {}).get("test_acc", [])],
        )
        # the last epoch's diagnostics, when the run measured them
        row.update({f"{DIAG}{name}": values[-1] for name, values in result.get("diagnostics", {}).items() if values})
        rows.append(row)
    if not rows:
        raise SystemExit(f"sherlocked: no {RESULT} under {sweep_dir}; run a sweep first")
    return pd.DataFrame(rows)


def act_keys(runs: pd.DataFrame) -> list[str]:
    keys = sorted((c for c in runs.columns if c.startswith("act") and c[3:].isdigit()), key=lambda c: int(c[3:]))
    return [k for k in keys if runs[k].notna().any()]


def group_keys(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(activation columns, other columns the sweep varied): what the table's rows are made of."""
    skip = {"job", "status", "acc", "curve", *NOT_GROUPS, *act_keys(runs)}
    varied = [c for c in runs.columns if c not in skip and not c.startswith(DIAG) and runs[c].astype(str).nunique() > 1]
    return act_keys(runs), varied


def sort_rows(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Activations in the study's order (relu, tanh, sigmoid, selu, ...), other keys naturally."""
    order = {name: i for i, name in enumerate(ACTIVATIONS)}

    def key(column: pd.Series) -> pd.Series:
        if column.name.startswith("act"):
            return column.map(lambda v: order.get(v, len(order)))
        return column

    return frame.sort_values(keys, key=key, kind="stable").reset_index(drop=True)


def summarise(values: np.ndarray) -> dict:
    """mean, std (ddof 0, as the study), n and a 95% t-interval of the accuracies that exist."""
    values = values[~np.isnan(values)]
    n = len(values)
    mean = values.mean() if n else np.nan
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    return {
        "mean": mean,
        "std": values.std() if n else np.nan,
        "n": n,
        "ci95_low": mean - half,
        "ci95_high": mean + half,
    }


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """The study's table: one row per group, one column per seed, then mean, std, n, CI and outcome counts."""
    acts, varied = group_keys(runs)
    keys = acts + varied
    seeds = sorted(runs["seed"].unique())
    rows = []
    for values, group in runs.groupby(keys, sort=False, dropna=False):
        row = dict(zip(keys, values if isinstance(values, tuple) else (values,)))
        by_seed = group.set_index("seed")["acc"]
        row.update({f"seed{s}": by_seed.get(s, np.nan) for s in seeds})
        row.update(summarise(group["acc"].to_numpy(dtype=float)))
        row.update(diverged=int((group["status"] == "diverged").sum()), failed=int((group["status"] == "failed").sum()))
        rows.append(row)
    return sort_rows(pd.DataFrame(rows), keys)


def markdown(frame: pd.DataFrame, digits: int = 2) -> str:
    def cell(value) -> str:
        if isinstance(value, float | np.floating):
            return "" if np.isnan(value) else f"{value:.{digits}f}"
        return str(value)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def effect_sizes(a: np.ndarray, b: np.ndarray) -> dict:
    """Welch's t-test, Mann-Whitney U, Cohen's d (pooled sd) and the probability that a run of a beats one of b."""
    welch = stats.ttest_ind(a, b, equal_var=False)
    mwu = stats.mannwhitneyu(a, b, alternative="two-sided")
    pooled = np.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))
    return {
        "welch_t": welch.statistic,
        "welch_p": welch.pvalue,
        "mannwhitney_u": mwu.statistic,
        "mannwhitney_p": mwu.pvalue,
        "cohens_d": (a.mean() - b.mean()) / pooled if pooled > 0 else np.nan,
        "p_a_beats_b": mwu.statistic / (len(a) * len(b)),
    }


def describe(values: np.ndarray) -> str:
    mean = f"{values.mean():.2f}%" if len(values) else "-"
    sd = f"{values.std(ddof=1):.2f}" if len(values) > 1 else "-"
    return f"n={len(values)}, mean {mean}, sd {sd}"


def pair_test(runs: pd.DataFrame, pair: tuple[str, str]) -> tuple[str, dict | None]:
    """Runs whose last two activations are `pair` against all the others, as markdown (and the numbers)."""
    acts = act_keys(runs)
    if len(acts) < 2:
        return "The sweep has fewer than two activation layers: no last pair to test.\n", None
    done = runs[runs["status"] != "failed"]
    last = done[acts[-2]].astype(str) + "," + done[acts[-1]].astype(str)
    a = done.loc[last == ",".join(pair), "acc"].to_numpy(dtype=float)
    b = done.loc[last != ",".join(pair), "acc"].to_numpy(dtype=float)
    label = f"(x, {pair[0]}, {pair[1]})" if len(acts) == 3 else f"(..., {pair[0]}, {pair[1]})"
    head = f"{label}: {describe(a)}; every other last pair: {describe(b)}"
    if len(a) < 2 or len(b) < 2:
        return f"{head}. Too few runs for a test (need 2 on each side).\n", None
    numbers = effect_sizes(a, b)
    text = (
        f"{head}.\n\n"
        f"- difference of means: {a.mean() - b.mean():+.2f} points\n"
        f"- Welch's t-test: t = {numbers['welch_t']:.2f}, p = {numbers['welch_p']:.3g}\n"
        f"- Mann-Whitney U: U = {numbers['mannwhitney_u']:.0f}, p = {numbers['mannwhitney_p']:.3g}\n"
        f"- effect size: Cohen's d = {numbers['cohens_d']:.2f}; "
        f"P(a {label} run beats another run) = {numbers['p_a_beats_b']:.2f}\n"
    )
    return text, {"n_a": len(a), "mean_a": a.mean(), "n_b": len(b), "mean_b": b.mean(), **numbers}


def strata(runs: pd.DataFrame):
    """(title, runs) for the whole sweep and, when it varied other keys (batch_norm, dataset...), each value."""
    _, varied = group_keys(runs)
    yield "all runs", runs
    if varied:
        for values, part in runs.groupby(varied, sort=True):
            values = values if isinstance(values, tuple) else (values,)
            yield ", ".join(f"{k}={v}" for k, v in zip(varied, values)), part


def stats_markdown(runs: pd.DataFrame, pairs: list[tuple[str, str]]) -> str:
    acts = act_keys(runs)
    failed = int((runs["status"] == "failed").sum())
    diverged = int((runs["status"] == "diverged").sum())
    out = [
        "# Statistics\n",
        "Hypothesis (the study's): runs whose last two activations are (sigmoid, relu) reach a lower final "
        "test accuracy than runs with any other last pair. Two-sided tests over single runs (every seed one "
        f"observation). {len(runs)} runs: {diverged} diverged (kept, with the accuracy they reached), "
        f"{failed} failed (no accuracy; left out of the tests).\n",
    ]
    for pair in pairs:
        for title, part in strata(runs):
            text, _ = pair_test(part, pair)
            out.append(f"## {pair[0]}, {pair[1]} as the last pair: {title}\n\n{text}")
    if len(acts) >= 2:
        done = runs[runs["status"] != "failed"]
        means = done.groupby([acts[-2], acts[-1]])["acc"].agg(["mean", "std", "min", "max", "count"]).reset_index()
        out.append(f"## Mean final test accuracy (%) per last pair ({acts[-2]}, {acts[-1]})\n")
        out.append(markdown(sort_rows(means, [acts[-2], acts[-1]])))
    return "\n".join(out)


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
    differs = {k: runs[k].iloc[0] for k, v in STUDY_SETUP.items() if k in runs and runs[k].iloc[0] != v}
    setup = (
        "This sweep has the published setup, so the numbers are directly comparable."
        if not differs
        else "This sweep differs from the published setup in "
        + ", ".join(f"{k}={v} (published: {STUDY_SETUP[k]})" for k, v in differs.items())
        + ": compare the pattern across triples, not the absolute numbers."
    )
    return pd.concat(frames, ignore_index=True), setup


def report(sweep_dir: Path, pairs: list[tuple[str, str]]) -> dict[str, Path]:
    from sherlocked import plots

    sweep_dir = Path(sweep_dir)
    runs = read_runs(sweep_dir)
    ours = table(runs)
    written = {name: sweep_dir / name for name in ("table.md", "table.csv", "heatmap.png", "curves.png", "stats.md")}
    ours.to_csv(written["table.csv"], index=False)
    note = (
        f"Final-epoch test accuracy (%) of {len(runs)} runs in {sweep_dir}. std is the population standard "
        "deviation (ddof 0, as the study); ci95 is a t-interval of the mean; an empty seed cell is a failed "
        "run; diverged runs keep the accuracy they reached.\n\n"
    )
    written["table.md"].write_text("# Results\n\n" + note + markdown(ours))
    written["stats.md"].write_text(stats_markdown(runs, pairs))
    plots.heatmap(runs, written["heatmap.png"])
    plots.curves(runs, written["curves.png"])
    if any(c.startswith(DIAG) for c in runs.columns):
        from sherlocked.mechanism import diagnostics_markdown

        written["diagnostics.md"], written["diagnostics.png"] = (
            sweep_dir / "diagnostics.md",
            sweep_dir / "diagnostics.png",
        )
        written["diagnostics.md"].write_text(diagnostics_markdown(runs, pairs[0]))
        plots.diagnostics(runs, pairs[0], written["diagnostics.png"])
    compared = comparison(runs, ours)
    if compared is not None:
        frame, setup = compared
        written["comparison.csv"] = sweep_dir / "comparison.csv"
        written["comparison.md"] = sweep_dir / "comparison.md"
        frame.to_csv(written["comparison.csv"], index=False)
        source = "Published figures: sherlocked/reference/ (Nishant Nikhil's `sherlocked`, inspect_activations/)."
        written["comparison.md"].write_text(
            f"# Ours against the published study\n\n{setup} {source}\n\n" + markdown(frame)
        )
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sherlocked.report", description=__doc__.split("\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a sweep's directory, e.g. outputs/sweeps/demo")
    parser.add_argument(
        "--pair",
        action="append",
        default=None,
        metavar="ACT,ACT",
        help="a last pair of activations to test against the rest (repeatable; default sigmoid,relu)",
    )
    args = parser.parse_args(argv)
    pairs = [tuple(p.split(",")) for p in args.pair or ["sigmoid,relu"]]
    for pair in pairs:
        if len(pair) != 2 or any(a not in ACTIVATIONS for a in pair):
            parser.error(f"--pair {','.join(pair)}: give two activations from {', '.join(ACTIVATIONS)}")
    written = report(args.sweep_dir, pairs)
    ours = pd.read_csv(written["table.csv"])
    keys, _ = group_keys(read_runs(args.sweep_dir))
    ranked = ours.sort_values("mean", ascending=False)[[*keys, "mean", "std", "n"]]
    print(f"report: {args.sweep_dir}  ({', '.join(p.name for p in written.values())})")
    print(f"TensorBoard: python -m tensorboard.main --logdir {args.sweep_dir}")
    print("best:\n" + ranked.head(5).to_string(index=False, float_format="%.2f"))
    print("worst:\n" + ranked.tail(5).to_string(index=False, float_format="%.2f"))


if __name__ == "__main__":
    main()
