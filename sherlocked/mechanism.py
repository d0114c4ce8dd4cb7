"""The report's diagnostics: which mechanism the data support when a last pair of activations fails.

Reads the last epoch's diagnostics of every run (see sherlocked/diagnostics.py) and sets the
two candidate explanations side by side with numbers: dead output ReLUs (every logit <= 0,
so no gradient flows) against saturation of the layer before the output.
"""

import numpy as np
import pandas as pd
from scipy import stats

from sherlocked.report import DIAG, group_keys, markdown, sort_rows

MEASURES = {  # column in the table -> diagnostics key (layer numbers filled in per model)
    "dead_output": "layer{output}/dead",
    "samples_no_gradient": "output/samples_all_nonpos",
    "logits_nonpos": "output/logits_nonpos",
    "saturated_layer{last_hidden}": "layer{last_hidden}/saturated",
    "grad_w_layer1": "layer1/grad_w",
}


def measures(runs: pd.DataFrame) -> dict[str, str]:
    """Table column -> runs column, for this sweep's depth."""
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


def verdict(pair: tuple[str, str], hit: pd.DataFrame, rest: pd.DataFrame, columns: dict, r: float) -> str:
    """A paragraph of numbers: what distinguishes the runs whose last pair is `pair`, and which mechanism fits."""
    dead, nonpos, no_gradient = columns.get("dead_output"), columns.get("logits_nonpos"), columns["samples_no_gradient"]
    saturated = next((c for n, c in columns.items() if n.startswith("saturated")), None)
    grad = columns.get("grad_w_layer1")
    if hit.empty or dead is None:
        return f"No finished run has ({pair[0]}, {pair[1]}) as its last pair, or no diagnostics were recorded.\n"

    def mean(frame: pd.DataFrame, column: str | None) -> float:
        return frame[column].mean() if column else np.nan

    a_dead, b_dead = mean(hit, dead), mean(rest, dead)
    a_sat, b_sat = mean(hit, saturated), mean(rest, saturated)
    layer = saturated.split("/")[0].removeprefix(DIAG) if saturated else "the last hidden layer"
    text = (
        f"In the {len(hit)} runs whose last pair is ({pair[0]}, {pair[1]}) (mean final test accuracy "
        f"{hit['acc'].mean():.1f}%, other runs {rest['acc'].mean():.1f}%), {100 * a_dead:.1f}% of the output "
        f"units are dead, <= 0 on every probe image, at the end of training (other runs with a ReLU-family "
        f"output: {100 * b_dead:.1f}%): their classes can never be predicted and pass no gradient. "
        f"{100 * mean(hit, no_gradient):.1f}% of the probe images have every logit <= 0, so no gradient at all "
        f"reaches them (other runs: {100 * mean(rest, no_gradient):.1f}%); {100 * mean(hit, nonpos):.1f}% of all "
        f"logits are <= 0 (other runs: {100 * mean(rest, nonpos):.1f}%). "
    )
    if not np.isnan(a_sat):
        text += (
            f"In {layer}, {100 * a_sat:.1f}% of the {pair[0]} outputs are saturated (other runs with a sigmoid or "
            f"tanh there: {100 * b_sat:.1f}%). "
        )
    if grad:
        text += (
            f"The weight-gradient norm at layer 1 after the last step is {mean(hit, grad):.3g} "
            f"(other runs: {mean(rest, grad):.3g}). "
        )
    text += f"Over all runs with a ReLU-family output, accuracy and the dead-output fraction correlate at r = {r:.2f}. "
    if a_dead >= 0.5 and (np.isnan(a_sat) or a_dead > a_sat):
        text += "The data support dead output ReLUs, not saturation, as the mechanism."
    elif not np.isnan(a_sat) and a_sat >= 0.5:
        text += f"The data support saturation of {layer} (vanishing gradients), not dead output ReLUs."
    else:
        text += "Neither dead outputs nor saturation covers most of these runs' probe images or units."
    return text + "\n"


def diagnostics_markdown(runs: pd.DataFrame, pair: tuple[str, str]) -> str:
    acts, varied = group_keys(runs)
    columns = measures(runs)
    done = runs[runs["status"] != "failed"]
    keys = acts + varied
    per_group = done.groupby(keys, dropna=False)[["acc", *columns.values()]].mean().reset_index()
    per_group = sort_rows(per_group.rename(columns={v: k for k, v in columns.items()}), keys)
    last = done[acts[-2]].astype(str) + "," + done[acts[-1]].astype(str)
    hit, rest = done[last == ",".join(pair)], done[last != ",".join(pair)]
    r, rho = correlation(done["acc"], done[columns["dead_output"]]) if "dead_output" in columns else (np.nan,) * 2
    relu_outputs = int(done[columns["dead_output"]].notna().sum()) if "dead_output" in columns else 0
    intro = (
        "# Diagnostics\n\n"
        "Measured on a fixed probe batch of test images after the last epoch (sherlocked/diagnostics.py). "
        "dead_output: fraction of output units <= 0 on every probe image (ReLU-family outputs only); "
        "samples_no_gradient: fraction of probe images whose logits are all <= 0; logits_nonpos: fraction of "
        "logits <= 0; saturated: fraction of sigmoid outputs < 0.01 or > 0.99 (|tanh| > 0.99), empty for other "
        "activations; grad_w_layer1: L2 norm of the first layer's weight gradient after the last step. "
        "Means over seeds; accuracy in %.\n\n"
    )
    correlations = (
        f"Accuracy against the dead-output fraction over the {relu_outputs} runs with a ReLU-family output: "
        f"Pearson r = {r:.2f}, Spearman rho = {rho:.2f}.\n"
    )
    return (
        f"{intro}## Which mechanism: ({pair[0]}, {pair[1]}) as the last pair\n\n"
        f"{verdict(pair, hit, rest, columns, r)}\n{correlations}\n## Per group\n\n{markdown(per_group, digits=3)}"
    )
