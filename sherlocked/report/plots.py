"""The report's pictures: the accuracy heatmap, the per-epoch curves and the diagnostics scatter of a sweep.

python -m sherlocked.report outputs/sweeps/demo   # writes heatmap.png, curves.png, diagnostics.png
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sherlocked.report.mechanism import measures, output_measure  # noqa: E402
from sherlocked.report.runs import act_keys, group_keys, last_pair, sort_rows, strata  # noqa: E402


def _panels(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One panel per value of the keys the sweep varied besides the activations (or one for all)."""
    parts = list(strata(runs))
    return parts[1:] if len(parts) > 1 else parts


def heatmap(runs: pd.DataFrame, path: Path) -> None:
    """Mean final test accuracy, rows act1, columns the remaining activations, annotated."""
    acts = act_keys(runs)
    rows_key, cols = acts[0], acts[1:]
    panels = _panels(runs)
    width = runs[cols].drop_duplicates().shape[0] if cols else 1
    height = runs[rows_key].nunique()
    size = (max(6, 0.9 * width + 2.5), (0.5 * height + 1.8) * len(panels))
    fig, axes = plt.subplots(len(panels), 1, figsize=size, squeeze=False)
    for ax, (title, part) in zip(axes[:, 0], panels):
        done = part[part["status"] != "failed"].copy()
        done["columns"] = done[cols].astype(str).agg(", ".join, axis=1) if cols else ""
        means = done.groupby([rows_key, *cols, "columns"], dropna=False)["acc"].mean().reset_index()
        means = sort_rows(means, [*cols, rows_key])
        grid = means.pivot_table(index=rows_key, columns="columns", values="acc", sort=False)
        grid = grid.loc[sort_rows(grid.index.to_frame(index=False), [rows_key])[rows_key]]
        image = ax.imshow(grid.to_numpy(), cmap="viridis", vmin=0, vmax=100, aspect="auto")
        for (i, j), value in np.ndenumerate(grid.to_numpy()):
            if not np.isnan(value):
                ax.text(
                    j, i, f"{value:.1f}", ha="center", va="center", fontsize=7, color="white" if value < 60 else "black"
                )
        ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=8)
        ax.set_ylabel(rows_key)
        ax.set_xlabel(", ".join(cols))
        ax.set_title(f"mean final test accuracy (%): {title}", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves(runs: pd.DataFrame, path: Path) -> None:
    """Per-epoch test accuracy, mean and min-max band over seeds: one small multiple per act1 (and stratum)."""
    acts = act_keys(runs)
    _, varied = group_keys(runs)
    panels = _panels(runs)
    firsts = sort_rows(runs[[acts[0]]].drop_duplicates(), [acts[0]])[acts[0]].tolist()
    fig, axes = plt.subplots(
        len(panels), len(firsts), figsize=(4 * len(firsts), 3.2 * len(panels)), squeeze=False, sharey=True
    )
    for row, (title, part) in enumerate(panels):
        for col, first in enumerate(firsts):
            ax = axes[row, col]
            subset = part[(part[acts[0]] == first) & (part["status"] != "failed")]
            groups = sort_rows(subset[acts[1:]].drop_duplicates(), acts[1:]) if acts[1:] else pd.DataFrame([{}])
            for _, labels in groups.iterrows():
                match = np.ones(len(subset), dtype=bool)
                for key, value in labels.items():
                    match &= (subset[key] == value).to_numpy()
                lengths = {len(c) for c in subset.loc[match, "curve"]}
                if len(lengths) != 1 or 0 in lengths:
                    continue
                stack = np.array(subset.loc[match, "curve"].tolist())
                epochs = np.arange(1, stack.shape[1] + 1)
                label = ", ".join(map(str, labels.values))
                (line,) = ax.plot(epochs, stack.mean(0), label=label, lw=1.2)
                ax.fill_between(epochs, stack.min(0), stack.max(0), color=line.get_color(), alpha=0.15)
            ax.set_title(f"{acts[0]}={first}" + (f" | {title}" if varied else ""), fontsize=9)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel("test accuracy (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, title=", ".join(acts[1:]), loc="center right", fontsize=7)
        fig.tight_layout(rect=(0, 0, 0.88, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def diagnostics(runs: pd.DataFrame, pair: tuple[str, str], path: Path) -> None:
    """Final accuracy against the output units that pass no gradient and against last-hidden-layer saturation."""
    columns = measures(runs)
    done = runs[runs["status"] != "failed"]
    hit = last_pair(done) == ",".join(pair)
    output, _, _ = output_measure(pair, columns)
    panels = [(name, column) for name, column in columns.items() if column == output or name.startswith("saturated")]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (name, column) in zip(axes[0], panels):
        ax.scatter(done.loc[~hit, column], done.loc[~hit, "acc"], s=12, alpha=0.5, label="other last pairs")
        ax.scatter(
            done.loc[hit, column], done.loc[hit, "acc"], s=18, color="crimson", label=f"(x, {pair[0]}, {pair[1]})"
        )
        ax.set_xlabel(name.replace("_", " ") + " (fraction)")
        ax.set_ylabel("final test accuracy (%)")
        ax.set_xlim(-0.03, 1.03)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("every run's final test accuracy against its last-epoch diagnostics", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
