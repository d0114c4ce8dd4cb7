"""The report's one page, index.md: the question, the setup, the answer with its test, the figures, the
table, the mechanism and the published figures, in that order, with links to the files that hold more.

python -m sherlocked.report outputs/sweeps/demo   # writes index.md beside the figures it shows
"""

import pandas as pd

from sherlocked.report.plots import MAX_BANDS, curve_panels
from sherlocked.report.runs import act_keys, finished, group_keys, shown, table_keys
from sherlocked.report.significance import by_stratum, compare
from sherlocked.report.tables import MIN_CI_RUNS, STD, markdown
from sherlocked.spec.config import KEYS

SETUP_KEYS = ("dataset", "widths", "optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs", "init")
CNN_KEYS = tuple(key.name for key in KEYS if key.optional)  # the keys only some configs have: a CNN's


def setup_text(runs: pd.DataFrame) -> str:
    acts, varied = group_keys(runs)
    fixed = [f"{k} {shown(runs[k].iloc[0])}" for k in SETUP_KEYS if k in runs and k not in varied]
    for key in ("batch_norm", "output_activation", "residual", *CNN_KEYS):  # a CNN's where its runs have them
        if key in runs and key not in varied and not pd.isna(runs[key].iloc[0]):
            fixed.append(f"{key} {shown(runs[key].iloc[0])}")
    counts = runs["status"].value_counts()
    outcome = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "diverged", "failed"))
    seeds = runs["seed"].nunique()
    swept = ", ".join(
        f"{k} ({runs[k].nunique(dropna=False)} values)" for k in [*acts, *varied] if runs[k].nunique(dropna=False) > 1
    )
    return (
        f"{len(runs)} runs ({outcome}): {seeds} seeds of every combination of {swept or 'one setting'}. "
        f"Fixed: {', '.join(fixed)}."
    )


def answer_text(runs: pd.DataFrame, pair: tuple[str, str], errors: pd.Series | None) -> str:
    """The page's answer: the test of the pair, said to be over diverged runs where every run diverged; or, where
    every run failed, that and what they ended with."""
    if errors is not None:
        return failures_text(runs, errors)
    diverged = runs.loc[finished(runs), "status"].eq("diverged")
    if not diverged.all():
        return headline(runs, pair)
    which = "runs" if diverged.size == len(runs) else "runs that finished"
    return (
        f"Every one of the {diverged.size} {which} diverged (its loss turned NaN or infinite): each keeps the accuracy "
        f"it had reached. {headline(runs, pair)}"
    )


def failures_text(runs: pd.DataFrame, errors: pd.Series) -> str:
    """Every run failed: how many, and how many ended with each error line, most first."""
    head = f"None: every one of the {len(runs)} runs failed, so none has an accuracy to compare."
    if errors.empty:
        return f"{head} The table records no error: see each job's result.json.\n"
    lines = "\n".join(f"- {n} run{'s' if n > 1 else ''}: {line}" for line, n in errors.items())
    return f"{head} They ended with:\n\n{lines}\n"


def headline(runs: pd.DataFrame, pair: tuple[str, str]) -> str:
    isolated, study = compare(runs, pair, isolate=True), compare(runs, pair, isolate=False)
    if isolated is None:
        return "The sweep has fewer than two activation layers: no last pair to test.\n"
    parts = []
    for first, c in ((True, isolated), (False, study)):
        if c.numbers is None:
            parts.append(f"Against {c.control}: {c.why}.")
            continue
        n = c.numbers
        test = f"Welch's t = {n['welch_t']:.2f}, p = {n['welch_p']:.2g}, Cohen's d = {n['cohens_d']:.2f}"
        if first:
            parts.append(
                f"{c.label} runs reach **{c.a.mean():.1f} %** mean final test accuracy (n = {len(c.a)}) against "
                f"**{c.b.mean():.1f} %** for {c.control} (n = {len(c.b)}): {test}."
            )
        else:
            parts.append(f"Against {c.control}: {c.b.mean():.1f} % (n = {len(c.b)}), {test}.")
    per = [
        f"- {title}: **{c.a.mean():.1f} %** (n = {len(c.a)}) against **{c.b.mean():.1f} %** (n = {len(c.b)}), "
        f"Welch's p = {c.numbers['welch_p']:.2g}, Cohen's d = {c.numbers['cohens_d']:.2f}"
        for title, c in by_stratum(runs, pair)
    ]
    if per:  # another key the sweep varied (model.residual, batch_norm, ...): the same test at each of its values
        parts.append("The same test at each value of the other keys the sweep varied:\n\n" + "\n".join(per))
    return " ".join(parts) + "\n"


def figures(runs: pd.DataFrame, pair: tuple[str, str]) -> list[str]:
    panels = curve_panels(runs, pair)
    curves = (
        f"{panels.note[0].upper()}{panels.note[1:]}."
        if panels.note
        else f"One panel per last pair, as the heatmap's cells; the ({pair[0]}, {pair[1]}) panel is framed in red."
    )
    return [
        "## Figures\n",
        "![mean final test accuracy per combination](heatmap.png)\n",
        f"Each cell: the mean final test accuracy of its runs. Red is below, blue above the mean of every other "
        f"last pair; the ({pair[0]}, {pair[1]}) cells are framed.\n",
        "![test accuracy per epoch](curves.png)\n",
        f"{curves} In a panel, a line per value of the activations before the last two (and of any other key the "
        f"sweep varied): the mean over seeds, with its min-max band where a panel has at most {MAX_BANDS} lines.\n",
    ]


def index_markdown(
    name: str,
    runs: pd.DataFrame,
    ours: pd.DataFrame,
    pairs: list[tuple[str, str]],
    files: dict,
    mechanism: str | None,
    compared: tuple[pd.DataFrame, str] | None,
    errors: pd.Series | None = None,
) -> str:
    """errors: where every run failed, how many ended with each error line (the page then has no figures)."""
    pair = pairs[0]
    acts = act_keys(runs)
    question = (
        f"Does ({pair[0]}, {pair[1]}) as the last two activations ({', '.join(acts[-2:])}) break learning, "
        "and does anything else this sweep varied change that? (The published study found that it does, "
        "and that batch norm fixes it.)"
    )
    out = [
        f"# {name}: how the activations interact\n",
        f"**Question.** {question}\n",
        f"**Setup.** {setup_text(runs)}\n",
        f"**Answer.** {answer_text(runs, pair, errors)}",
        "Details, other pairs and per-stratum tests (Holm-corrected): [stats.md](stats.md). "
        f"Accuracies are final-epoch test accuracies in %; {STD}.\n",
    ]
    if "heatmap.png" in files:
        out += figures(runs, pair)
    if mechanism is not None:
        out += ["## Why: the diagnostics\n", mechanism, "More: [diagnostics.md](diagnostics.md).\n"]
        if "diagnostics.png" in files:
            out.append("![accuracy against the diagnostics](diagnostics.png)\n")
    ours = ours.sort_values("mean", ascending=False)
    note = (
        f"Sorted by mean. ci95 is a t-interval of the mean, given from {MIN_CI_RUNS} runs on (empty below); "
        "diverged runs keep the accuracy they reached; failed runs have none. Every column: "
        "[table.md](table.md), [table.csv](table.csv).\n"
    )
    out += [
        "## Every combination\n",
        note,
        markdown(ours.drop(columns=[c for c in ours if c.startswith("seed")]), keys=table_keys(runs)),
    ]
    if compared is not None:
        _, setup = compared
        out += ["## Against the published study\n", f"{setup} Every row: [comparison.md](comparison.md).\n"]
    out.append("Files: " + ", ".join(f"[{p.name}]({p.name})" for p in files.values()) + "\n")
    return "\n".join(out)
