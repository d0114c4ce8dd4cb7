"""The report's diagnostics: which mechanism the data support when a last pair of activations fails.

    python -m sherlocked.report outputs/sweeps/demo   # writes diagnostics.md and diagnostics.png

Reads the last epoch's diagnostics of every run (see sherlocked/training/diagnostics.py) and sets the
two candidate explanations side by side with numbers: output units that pass no gradient
(dead ReLUs, <= 0 on every input; for any other output activation, units whose slope is flat
on every input) against saturation of the layer before the output. It says "dead" only of
relu and leaky_relu outputs, the activations whose units can die.
"""

import numpy as np
import pandas as pd
from scipy import stats

from sherlocked.report.runs import DIAG, finished, finished_with_last_pair, group_keys, sort_rows
from sherlocked.report.tables import markdown
from sherlocked.spec.activations import family

MEASURES = {  # column in the table -> diagnostics key (layer numbers filled in per model)
    "dead_output": "layer{output}/dead",
    "flat_output": "layer{output}/flat_units",
    "samples_no_gradient": "output/samples_no_gradient",
    "samples_all_nonpos": "output/samples_all_nonpos",
    "logits_nonpos": "output/logits_nonpos",
    "saturated_layer{last_hidden}": "layer{last_hidden}/saturated",
    "grad_w_layer1": "layer1/grad_w",
}
DEFINITIONS = (
    "dead_output: fraction of output units <= 0 on every probe image (relu and leaky_relu outputs only: "
    "a dead relu passes no gradient, a dead leaky_relu only its 0.01 slope); flat_output: fraction of output "
    "units whose activation's slope is < 0.01 on every probe image, for any activation (they pass almost no "
    "gradient); samples_no_gradient: fraction of probe images on which every output unit is flat, so almost "
    "no gradient reaches them; samples_all_nonpos: fraction of probe images whose logits are all <= 0; "
    "logits_nonpos: fraction of logits <= 0; saturated: fraction of sigmoid outputs < 0.01 or > 0.99 "
    "(|tanh| > 0.99), empty for other activations; grad_w_layer1: L2 norm of the first layer's weight "
    "gradient after the last step."
)


def measured_columns(depth: int = 32) -> list[str]:
    """The diag.* columns of MEASURES for models of up to `depth` layers (each layer number a measure may take):
    what the report reads of the diagnostics."""
    layers = range(1, depth + 1)
    return sorted({DIAG + key.format(output=k, last_hidden=k) for key in MEASURES.values() for k in layers})


def measures(runs: pd.DataFrame) -> dict[str, str]:
    """Table column -> runs column, for this sweep's depth (measures the runs did not record are left out)."""
    acts, _ = group_keys(runs)
    layers = {"output": len(acts), "last_hidden": len(acts) - 1}
    found = {}
    for name, key in MEASURES.items():
        column = DIAG + key.format(**layers)
        if column in runs:
            found[name.format(**layers)] = column
    return found


def correlation(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    """Pearson r and Spearman rho over the runs where both exist (NaN when either is constant)."""
    both = pd.concat([x, y], axis=1).dropna()
    if len(both) < 3 or both.iloc[:, 0].nunique() < 2 or both.iloc[:, 1].nunique() < 2:
        return np.nan, np.nan
    return stats.pearsonr(both.iloc[:, 0], both.iloc[:, 1])[0], stats.spearmanr(both.iloc[:, 0], both.iloc[:, 1])[0]


def output_measure(pair: tuple[str, str], columns: dict) -> tuple[str | None, str, str]:
    """(column, what it counts, which runs it applies to: "" for all) for the pair's output activation."""
    if family(pair[1]) == "relu":
        return columns.get("dead_output"), "dead, <= 0 on every probe image", " with a relu or leaky_relu output"
    return columns.get("flat_output"), f"flat ({pair[1]}'s slope < 0.01 on every probe image)", ""


def verdict(pair: tuple[str, str], hit: pd.DataFrame, rest: pd.DataFrame, columns: dict, r: float) -> str:
    """A paragraph of numbers: what distinguishes the runs whose last pair is `pair`, and which mechanism fits. A
    measure no run recorded, and a group with no run to compare (no other run with a sigmoid or tanh there), go
    unsaid: nothing is said of them, rather than "nan%"."""
    column, counted, others = output_measure(pair, columns)
    if hit.empty or column is None or hit[column].isna().all():
        return f"No finished run has ({pair[0]}, {pair[1]}) as its last pair, or no diagnostics were recorded.\n"
    if hit["status"].eq("diverged").all():  # NaN weights: nothing is <= 0 or saturated, every fraction says 0
        return (
            f"In the {len(hit)} runs whose last pair is ({pair[0]}, {pair[1]}), every one of these runs diverged: "
            "their diagnostics were measured on non-finite weights and tell no mechanism.\n"
        )

    saturated = next((c for n, c in columns.items() if n.startswith("saturated")), None)
    a_sat = hit[saturated].mean() if saturated else np.nan
    layer = saturated.split("/")[0].removeprefix(DIAG) if saturated else "the last hidden layer"
    consequence = {
        "relu": "their classes can never be predicted and pass no gradient",
        "leaky_relu": "they pass only their 0.01 slope of the gradient",
    }.get(pair[1], "they pass almost no gradient")
    rest_acc = "" if rest.empty else f", other runs {rest['acc'].mean():.1f}%"
    text = (
        f"In the {len(hit)} runs whose last pair is ({pair[0]}, {pair[1]}) (mean final test accuracy "
        f"{hit['acc'].mean():.1f}%{rest_acc}), "
        f"{percent(hit[column].mean())} of the output units are {counted}, at the end of training"
        f"{against(f'other runs{others}', rest[column].mean())}: {consequence}. "
    )
    text += measured_sentences(hit, rest, columns, pair, layer, saturated)
    if not np.isnan(r):
        text += f"Over all runs{others}, accuracy and the fraction of such output units correlate at r = {r:.2f}. "
    return text + conclusion(pair, hit[column].mean(), a_sat, layer) + "\n"


def measured_sentences(
    hit: pd.DataFrame, rest: pd.DataFrame, columns: dict, pair: tuple[str, str], layer: str, saturated: str | None
) -> str:
    """The pair's runs against the others in each measure besides the output units' that the runs recorded."""

    def mean(frame: pd.DataFrame, name: str) -> float:
        return frame[columns[name]].mean() if name in columns else np.nan

    said = {
        "samples_no_gradient": "On {} of the probe images every output unit is flat, so almost no gradient reaches "
        "them{}. ",
        "samples_all_nonpos": "{} of the probe images have every logit <= 0{}. ",
        "logits_nonpos": "{} of all logits are <= 0{}. ",
    }
    text = "".join(
        sentence.format(percent(mean(hit, name)), against("other runs", mean(rest, name)))
        for name, sentence in said.items()
        if not np.isnan(mean(hit, name))
    )
    if saturated and not np.isnan(hit[saturated].mean()):
        others = against("other runs with a sigmoid or tanh there", rest[saturated].mean())
        text += f"In {layer}, {percent(hit[saturated].mean())} of the {pair[0]} outputs are saturated{others}. "
    if not np.isnan(mean(hit, "grad_w_layer1")):
        others = against("other runs", mean(rest, "grad_w_layer1"), "{:.3g}".format)
        text += f"The weight-gradient norm at layer 1 after the last step is {mean(hit, 'grad_w_layer1'):.3g}{others}. "
    return text


def percent(fraction: float) -> str:
    return f"{100 * fraction:.1f}%"


def against(group: str, value: float, shown=percent) -> str:
    """The same measure in the runs compared with, as ' (group: value)'; nothing where that group has no run that
    recorded it (a sweep whose only sigmoid at layer 2 is the pair's has no other saturation to give)."""
    return "" if np.isnan(value) else f" ({group}: {shown(value)})"


def conclusion(pair: tuple[str, str], output: float, saturated: float, layer: str) -> str:
    """Which mechanism covers most of the pair's runs: output units that pass no gradient, or saturation."""
    if output >= 0.5 and (np.isnan(saturated) or output > saturated):
        cause = "dead output ReLUs" if family(pair[1]) == "relu" else f"flat {pair[1]} output units"
        return f"The data support {cause}, not saturation, as the mechanism."
    if not np.isnan(saturated) and saturated >= 0.5:
        return f"The data support saturation of {layer} (vanishing gradients), not the output units."
    return "Neither the output units nor saturation covers most of these runs' probe images or units."


def mechanism_text(runs: pd.DataFrame, pair: tuple[str, str]) -> str:
    """Which mechanism the diagnostics support for the pair's runs, with the correlation behind it."""
    columns = measures(runs)
    done, last = finished_with_last_pair(runs)
    hit, rest = done[last == ",".join(pair)], done[last != ",".join(pair)]
    column, _, others = output_measure(pair, columns)
    r, rho = correlation(done["acc"], done[column]) if column else (np.nan, np.nan)
    counted = int(done[column].notna().sum()) if column else 0
    correlations = f"Accuracy against the fraction of output units counted above, over the {counted} runs{others}: "
    if np.isnan(r):
        correlations += "no correlation to give (fewer than 3 runs, or one of the two the same in every run).\n"
    else:
        correlations += f"Pearson r = {r:.2f}, Spearman rho = {rho:.2f}.\n"
    return f"{verdict(pair, hit, rest, columns, r)}\n{correlations}"


def diagnostics_markdown(runs: pd.DataFrame, pair: tuple[str, str]) -> str:
    acts, varied = group_keys(runs)
    columns = measures(runs)
    done = runs[finished(runs)]
    keys = acts + varied
    per_group = done.groupby(keys, dropna=False)[["acc", *columns.values()]].mean().reset_index()
    per_group = sort_rows(per_group.rename(columns={v: k for k, v in columns.items()}), keys)
    intro = "# Diagnostics\n\nMeasured on a fixed probe batch of test images after the last epoch "
    intro += f"(sherlocked/training/diagnostics.py). {DEFINITIONS} Means over seeds; accuracy in %.\n\n"
    return (
        f"{intro}## Which mechanism: ({pair[0]}, {pair[1]}) as the last pair\n\n"
        f"{mechanism_text(runs, pair)}\n## Per group\n\n{markdown(per_group, digits=3, keys=keys)}"
    )
