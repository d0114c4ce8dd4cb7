"""The report's pictures: the accuracy heatmap, the per-epoch curves and the diagnostics scatter of a sweep.

python -m sherlocked.report outputs/sweeps/demo   # writes heatmap.png, curves.png, diagnostics.png
"""

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sherlocked.report.mechanism import measures, output_measure  # noqa: E402
from sherlocked.report.runs import act_keys, group_keys, last_pair, sort_rows, strata  # noqa: E402

STYLES = ("-", "--", ":", "-.")
MAX_CELL_TEXTS = 64  # a heatmap panel's cells say their numbers up to an 8 x 8 grid
MAX_BANDS = 16  # a curves panel shades each line's min-max band up to this many lines


def _panels(runs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One panel per value of the keys the sweep varied besides the activations (or one for all)."""
    parts = list(strata(runs))
    return parts[1:] if len(parts) > 1 else parts


@dataclass
class HeatmapLayout:
    """What the heatmap shows where: a panel per value of the activations before the last two (act1 for the study)
    and of any other swept key, each a grid of (second-last activation) x (last activation)."""

    panels: list[tuple[str, dict]]  # (title, the values every cell of the panel shares)
    rows_key: str
    cols_key: str | None
    order: dict[str, list]  # each activation's values, in the study's order
    keys: list[str]  # what names a cell: the study's table's keys
    cells: dict[tuple, tuple]  # (mean, std, n) of the study's table, by its keys, where n > 0
    same_n: bool  # every cell has as many runs

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.order[self.rows_key]), len(self.order[self.cols_key]) if self.cols_key else 1


def heatmap_layout(runs: pd.DataFrame, table: pd.DataFrame) -> HeatmapLayout:
    acts = act_keys(runs)
    rows_key, cols_key = (acts[-2], acts[-1]) if len(acts) >= 2 else (acts[0], None)
    outer = acts[:-2]
    _, varied = group_keys(runs)
    keys = [*acts, *varied]
    filled = table[table["n"] > 0]
    cells = dict(zip(filled[keys].itertuples(index=False, name=None), filled[["mean", "std", "n"]].to_numpy()))
    panels = []
    for title, stratum in _panels(runs):
        fixed = stratum[varied].iloc[0].to_dict() if varied else {}
        firsts = sort_rows(stratum[outer].drop_duplicates(), outer) if outer else pd.DataFrame([{}])
        for _, values in firsts.iterrows():
            named = ", ".join(f"{k}={v}" for k, v in values.items())
            panels.append(
                (" | ".join(t for t in (named, title if title != "all runs" else "") if t), {**values, **fixed})
            )
    same_n = filled["n"].nunique() == 1
    return HeatmapLayout(panels, rows_key, cols_key, {key: _ordered(runs, key) for key in acts}, keys, cells, same_n)


def heatmap(runs: pd.DataFrame, table: pd.DataFrame, path: Path) -> list[str]:
    """Mean final test accuracy as grids of (second-last activation) x (last activation), one panel per value of
    the activations before them (act1 for the study) and per value of any other swept key; each cell says its
    mean, std (ddof 0) and, where it is not the same everywhere, n: the study's table's (tables.table) numbers."""
    layout = heatmap_layout(runs, table)
    columns = min(4, len(layout.panels))
    lines = -(-len(layout.panels) // columns)
    n_rows, n_cols = layout.shape
    fig, axes = plt.subplots(
        lines, columns, figsize=(columns * (1.1 * n_cols + 1.4), lines * (0.8 * n_rows + 1.2)), squeeze=False
    )
    image = None
    for ax, (title, fixed) in zip(axes.flat, layout.panels):
        image = heatmap_panel(ax, layout, fixed)
        ax.set_title(title or "all runs", fontsize=9)
    for ax in list(axes.flat)[len(layout.panels) :]:
        ax.axis("off")
    counts = [int(n) for _, _, n in layout.cells.values()]
    n_text = f"n = {counts[0]} runs a cell" if layout.same_n else "n runs a cell as marked"
    fig.suptitle(f"mean final test accuracy (%) ± std over seeds; {n_text}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title above the panels
    if image is not None:
        fig.colorbar(image, ax=axes, fraction=0.02, pad=0.02)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [title for title, _ in layout.panels]


def heatmap_panel(ax, layout: HeatmapLayout, fixed: dict):
    """One panel: its grid of means, each cell with its numbers written in (where a grid is small enough to
    read them: a study of 11 activations has 121 cells a panel, coloured only)."""
    rows, cols = layout.order[layout.rows_key], layout.order[layout.cols_key] if layout.cols_key else [None]
    grid = np.full(layout.shape, np.nan)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            named = {**fixed, layout.rows_key: row, **({layout.cols_key: col} if layout.cols_key else {})}
            cell = layout.cells.get(tuple(named[k] for k in layout.keys))
            if cell is None:
                continue
            mean, std, n = cell
            grid[i, j] = mean
            if grid.size <= MAX_CELL_TEXTS:
                text = f"{mean:.1f}\n±{std:.1f}" + ("" if layout.same_n else f"\nn={int(n)}")
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if mean < 60 else "black")
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100)
    ax.set_xticks(range(len(cols)), cols if layout.cols_key else [""], fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(layout.cols_key or "")
    ax.set_ylabel(layout.rows_key)
    return image


def curves(runs: pd.DataFrame, path: Path) -> list[tuple[str, str, str, str]]:
    """Per-epoch test accuracy, mean and min-max band over seeds: one small multiple per act1 (and stratum).
    Returns each line drawn: (panel title, label, colour, line style)."""
    acts = act_keys(runs)
    _, varied = group_keys(runs)
    panels = _panels(runs)
    firsts = sort_rows(runs[[acts[0]]].drop_duplicates(), [acts[0]])[acts[0]].tolist()
    # told apart by colour (the second activation) and line style (the last), not by a colour each
    colour_key, style_key = (acts[1], acts[-1]) if len(acts) >= 2 else (None, None)
    colours = {v: f"C{i % 10}" for i, v in enumerate(_ordered(runs, colour_key))}
    styles = {v: STYLES[i % len(STYLES)] for i, v in enumerate(_ordered(runs, style_key))}

    def look(labels: pd.Series) -> tuple:
        colour = colours.get(labels.get(colour_key)) if colour_key else None
        style = styles.get(labels.get(style_key), "-") if style_key and style_key != colour_key else "-"
        return colour, style

    fig, axes = plt.subplots(
        len(panels), len(firsts), figsize=(4 * len(firsts), 3.2 * len(panels)), squeeze=False, sharey=True
    )
    drawn = []
    for row, (title, part) in enumerate(panels):
        for col, first in enumerate(firsts):
            ax = axes[row, col]
            ax.set_title(f"{acts[0]}={first}" + (f" | {title}" if varied else ""), fontsize=9)
            subset = part[(part[acts[0]] == first) & (part["status"] != "failed")]
            drawn += curve_lines(ax, subset, acts[1:], look)
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
    return drawn


def curve_lines(ax, subset: pd.DataFrame, keys: list[str], look) -> list[tuple[str, str, str, str]]:
    """One line per combination of `keys` in the panel's runs: the mean over seeds, with its min-max band (up to
    MAX_BANDS lines: more bands only hide one another); look(labels) gives its (colour, line style)."""
    drawn = []
    groups = sort_rows(subset[keys].drop_duplicates(), keys) if keys else pd.DataFrame([{}])
    curves = subset.groupby(keys, sort=False)["curve"] if keys else None
    for _, labels in groups.iterrows():
        found = curves.get_group(tuple(labels.values)) if keys else subset["curve"]
        lengths = {len(c) for c in found}
        if len(lengths) != 1 or 0 in lengths:
            continue
        stack = np.array(found.tolist())
        epochs = np.arange(1, stack.shape[1] + 1)
        label = ", ".join(map(str, labels.values))
        colour, style = look(labels)
        marker = "o" if len(epochs) == 1 else None  # a one-epoch run is a point, not a line
        (line,) = ax.plot(epochs, stack.mean(0), label=label, lw=1.3, color=colour, ls=style, marker=marker)
        if len(groups) <= MAX_BANDS:
            ax.fill_between(epochs, stack.min(0), stack.max(0), color=line.get_color(), alpha=0.12)
        drawn.append((ax.get_title(), label, line.get_color(), line.get_linestyle()))
    return drawn


def _ordered(runs: pd.DataFrame, key: str | None) -> list:
    return sort_rows(runs[[key]].drop_duplicates(), [key])[key].tolist() if key else []


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
