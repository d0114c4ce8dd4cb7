"""The study's hypothesis tested: runs whose last two activations are a pair against all the others.

python -m sherlocked.report outputs/sweeps/demo --pair sigmoid,relu   # writes stats.md
"""

import numpy as np
import pandas as pd
from scipy import stats

from sherlocked.report.runs import act_keys, last_pair, sort_rows, strata
from sherlocked.report.tables import markdown


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
    last = last_pair(done)
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
