"""The study's hypothesis tested: runs whose last two activations are a pair, against two control groups.

python -m sherlocked.report outputs/sweeps/demo --pair sigmoid,relu   # writes stats.md

- against the other runs with the same last activation ((x, y, relu), y not sigmoid): the test that
  isolates the pair, since the last activation alone also moves accuracy (relu on the logits
  leaves dead classes);
- against every other last pair: the published study's comparison.
Per value of any other key the sweep varied (batch_norm, lr, ...) the isolating test is repeated,
its p-values corrected for the number of such tests (Holm).
"""

from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from sherlocked.report.runs import act_keys, finished, finished_with_last_pair, sort_rows, strata
from sherlocked.report.tables import STD, markdown


class Comparison(NamedTuple):
    label: str  # the pair's runs, e.g. "(x, sigmoid, relu)"
    control: str  # what they are compared with
    a: np.ndarray  # accuracies (%) of the pair's runs
    b: np.ndarray  # and of the control group's
    numbers: dict | None  # effect_sizes(a, b); None where no test can be made
    why: str = ""  # why not, where numbers is None


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


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down correction of several p-values (each multiplied by its rank's remaining count)."""
    order = np.argsort(pvalues)
    adjusted, running = np.empty(len(pvalues)), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted.tolist()


def compare(runs: pd.DataFrame, pair: tuple[str, str], isolate: bool) -> Comparison | None:
    """The pair's finished runs against the control group (isolate: the same last activation, else all others)."""
    acts = act_keys(runs)
    if len(acts) < 2:
        return None
    done, last = finished_with_last_pair(runs)
    hit = last == ",".join(pair)
    control = ~hit & (done[acts[-1]] == pair[1]) if isolate else ~hit
    label = f"(x, {pair[0]}, {pair[1]})" if len(acts) == 3 else f"(..., {pair[0]}, {pair[1]})"
    against = f"the other (x, y, {pair[1]}) runs, y not {pair[0]}" if isolate else "every other last pair"
    a, b = (done.loc[mask, "acc"].to_numpy(dtype=float) for mask in (hit, control))
    why = no_test(a, b)
    return Comparison(label, against, a, b, None if why else effect_sizes(a, b), why)


def no_test(a: np.ndarray, b: np.ndarray) -> str:
    """Why two groups of accuracies cannot be tested ("" where they can)."""
    if len(a) < 2 or len(b) < 2:
        return "too few runs for a test (need 2 on each side)"
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # every run diverged to chance, say: Welch's t is 0/0 (or x/0)
        if a[0] == b[0]:
            return f"no test: every run on both sides reached the same accuracy ({a[0]:.2f} %)"
        return f"no test: every run on each side reached the same accuracy ({a[0]:.2f} % against {b[0]:.2f} %)"
    return ""


MAX_STRATA_SAID = 4  # the answer names each value of the other swept keys up to this many; stats.md has them all


def answer(sweep_dir, pair: tuple[str, str] = ("sigmoid", "relu")) -> str | None:
    """The study's answer in one line, as the report's page leads with it (the isolating test, and its result per
    value of any other key the sweep varied, model.residual say); None where the sweep cannot say (fewer than two
    activation layers, too few runs of the pair or of its control)."""
    from sherlocked.report.runs import read_runs  # the table, read once more at the sweep's end

    runs = read_runs(sweep_dir)
    c = compare(runs, pair, isolate=True)
    if c is None or c.numbers is None:
        return None
    per = by_stratum(runs, pair)
    said = "; ".join(f"{title}: {x.a.mean():.1f} % against {x.b.mean():.1f} %" for title, x in per)
    return (
        f"answer: {c.label} runs reach {c.a.mean():.1f} % mean final test accuracy (n = {len(c.a)}), "
        f"{c.control}: {c.b.mean():.1f} % (n = {len(c.b)}); Welch's p = {c.numbers['welch_p']:.2g}"
        f"{f' ({said})' if said else ''}. The report: python -m sherlocked.report {sweep_dir}"
    )


def by_stratum(runs: pd.DataFrame, pair: tuple[str, str]) -> list[tuple[str, Comparison]]:
    """The isolating test per value of the other keys the sweep varied, where each can be tested and there are at
    most MAX_STRATA_SAID of them (beyond, a first line would be a table: stats.md has it); [] where none varied."""
    tested = [(title, compare(part, pair, isolate=True)) for title, part in list(strata(runs))[1:]]
    tested = [(title, c) for title, c in tested if c is not None and c.numbers is not None]
    return tested if len(tested) <= MAX_STRATA_SAID else []


def describe(values: np.ndarray) -> str:
    mean = f"{values.mean():.2f}%" if len(values) else "-"
    return f"n={len(values)}, mean {mean}, std {values.std():.2f}" if len(values) else f"n=0, mean {mean}"


def comparison_text(c: Comparison) -> str:
    head = f"{c.label}: {describe(c.a)}; {c.control}: {describe(c.b)}"
    if c.numbers is None:
        return f"{head}. {c.why[0].upper()}{c.why[1:]}.\n"
    n = c.numbers
    return (
        f"{head}.\n\n"
        f"- difference of means: {c.a.mean() - c.b.mean():+.2f} points\n"
        f"- Welch's t-test: t = {n['welch_t']:.2f}, p = {n['welch_p']:.3g}\n"
        f"- Mann-Whitney U: U = {n['mannwhitney_u']:.0f}, p = {n['mannwhitney_p']:.3g}\n"
        f"- effect size: Cohen's d = {n['cohens_d']:.2f}; "
        f"P(a {c.label} run beats one of the others) = {n['p_a_beats_b']:.2f}\n"
    )


def per_stratum(runs: pd.DataFrame, pair: tuple[str, str]) -> str:
    """The isolating test per value of the other swept keys, Holm-corrected across them."""
    rows = []
    for title, part in list(strata(runs))[1:]:
        c = compare(part, pair, isolate=True)
        if c is not None and c.numbers is not None:
            rows.append(
                {
                    "stratum": title,
                    "n pair": len(c.a),
                    "mean pair": c.a.mean(),
                    "n others": len(c.b),
                    "mean others": c.b.mean(),
                    "difference": c.a.mean() - c.b.mean(),
                    "welch t": c.numbers["welch_t"],
                    "p": c.numbers["welch_p"],
                }
            )
    if not rows:
        return ""
    frame = pd.DataFrame(rows)
    frame["p (Holm)"] = holm(frame["p"].tolist())
    frame["p"], frame["p (Holm)"] = frame["p"].map("{:.3g}".format), frame["p (Holm)"].map("{:.3g}".format)
    return (
        f"### Per value of the other swept keys: against the other (x, y, {pair[1]}) runs\n\n"
        f"Welch's t-test in each; p (Holm) corrects for the {len(frame)} tests.\n\n{markdown(frame)}"
    )


def stats_markdown(runs: pd.DataFrame, pairs: list[tuple[str, str]]) -> str:
    failed = int((runs["status"] == "failed").sum())
    diverged = int((runs["status"] == "diverged").sum())
    out = [
        "# Statistics\n",
        "Hypothesis (the study's): runs whose last two activations are (sigmoid, relu) reach a lower final "
        "test accuracy than other runs. Two-sided tests over single runs (every seed one observation). "
        f"{len(runs)} runs: {diverged} diverged (kept, with the accuracy they reached), {failed} failed (no "
        f"accuracy; left out of the tests). {STD}; Cohen's d pools the sample variances (ddof 1).\n",
    ]
    if not finished(runs).any():
        return "\n".join([*out, "No run finished: nothing to test.\n"])
    for pair in pairs:
        out += pair_sections(runs, pair)
    out.append(per_pair_means(runs))
    return "\n".join(p for p in out if p)


def pair_sections(runs: pd.DataFrame, pair: tuple[str, str]) -> list[str]:
    """The pair against both control groups, then per value of the other swept keys."""
    out = [f"## {pair[0]}, {pair[1]} as the last pair\n"]
    for isolate, why in ((True, "isolates the pair: the same last activation"), (False, "the study's")):
        c = compare(runs, pair, isolate)
        if c is None:
            return [*out, "The sweep has fewer than two activation layers: no last pair to test.\n"]
        out.append(f"### Against {c.control} ({why})\n\n{comparison_text(c)}")
    return [*out, per_stratum(runs, pair)]


def per_pair_means(runs: pd.DataFrame) -> str:
    """Mean, std, min, max and count of the finished runs' accuracies per last pair."""
    acts = act_keys(runs)
    if len(acts) < 2:
        return ""
    by_pair = runs[finished(runs)].groupby([acts[-2], acts[-1]])["acc"]
    means = by_pair.agg(["mean", lambda v: v.std(ddof=0), "min", "max", "count"]).reset_index()
    means.columns = [acts[-2], acts[-1], "mean", "std", "min", "max", "count"]
    heading = f"## Mean final test accuracy (%) per last pair ({acts[-2]}, {acts[-1]})\n"
    return f"{heading}\n{markdown(sort_rows(means, [acts[-2], acts[-1]]))}"
