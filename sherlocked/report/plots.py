"""The report's pictures: the accuracy heatmap, the per-epoch curves and the diagnostics scatter of a sweep.

python -m sherlocked.report outputs/sweeps/demo   # writes heatmap.png, curves.png, diagnostics.png
"""

import itertools
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import Normalize, TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sherlocked.report.mechanism import measures, output_measure  # noqa: E402
from sherlocked.report.runs import (  # noqa: E402
    act_keys,
    finished,
    finished_with_last_pair,
    group_keys,
    shown,
    sort_rows,
    strata,
)

STYLES = ("-", "--", ":", "-.")
# A figure is drawn for a page: at most PAGE_WIDTH inches at DPI (800 pixels, the text column of a rendered
# markdown page), its text at FONT points or more (12.5 pixels at full size).
PAGE_WIDTH, DPI, FONT = 8.0, 100, 9
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
            named = ", ".join(f"{k}={shown(v)}" for k, v in values.items())
            panels.append(
                (" | ".join(t for t in (named, title if title != "all runs" else "") if t), {**values, **fixed})
            )
    same_n = filled["n"].nunique() == 1
    return HeatmapLayout(panels, rows_key, cols_key, {key: _ordered(runs, key) for key in acts}, keys, cells, same_n)


def heatmap(runs: pd.DataFrame, table: pd.DataFrame, pair: tuple[str, str], path: Path) -> list[str]:
    """Writes heatmap_figure's picture; returns its panels' titles."""
    fig, titles = heatmap_figure(runs, table, pair)
    save(fig, path)
    return titles


def heatmap_figure(runs: pd.DataFrame, table: pd.DataFrame, pair: tuple[str, str]) -> tuple[Figure, list[str]]:
    """Mean final test accuracy as grids of (second-last activation) x (last activation), one panel per value of
    the activations before them (act1 for the study) and per value of any other swept key, two panels a line;
    each cell says its mean, std (ddof 0) and, where it is not the same everywhere, n: the study's table's
    (tables.table) numbers. The colours are centred on the control (white: the mean of every other last pair),
    red below and blue above, each side stretched over the range the study spans; the pair's cells are framed."""
    layout = heatmap_layout(runs, table)
    n_rows, n_cols = layout.shape
    columns = min(2, len(layout.panels))
    lines = -(-len(layout.panels) // columns)
    cell = min(0.62, (PAGE_WIDTH - 1.0 - columns * 1.25) / (columns * n_cols))  # inches; 1.25 a panel's labels
    with style():
        fig, axes = plt.subplots(
            lines,
            columns,
            figsize=(columns * (n_cols * cell + 1.25) + 1.0, lines * (n_rows * cell + 0.85) + 0.7),
            squeeze=False,
            layout="constrained",
        )
        norm, centre = colour_scale(runs, layout, pair)
        image = None
        for ax, (title, fixed) in zip(axes.flat, layout.panels):
            image = heatmap_panel(ax, layout, fixed, norm, pair)
            ax.set_title(title or "all runs")
        for ax in list(axes.flat)[len(layout.panels) :]:
            ax.axis("off")
        counts = [int(n) for _, _, n in layout.cells.values()]
        n_text = f"n = {counts[0]} runs a cell" if layout.same_n else "n runs a cell as marked"
        fig.suptitle(fitted(f"mean final test accuracy (%) ± std over seeds; {n_text}", fig))
        if image is not None:
            bar = fig.colorbar(image, ax=axes, fraction=0.04, pad=0.02)
            if centre is not None:
                bar.set_label(f"white: {centre:.1f} %, every other last pair's mean")
    return fig, [title for title, _ in layout.panels]


def colour_scale(runs: pd.DataFrame, layout: HeatmapLayout, pair: tuple[str, str]) -> tuple[Normalize, float | None]:
    """Red below the control's mean accuracy, blue above, each side spanning what the study's cells reach (a 0-100
    scale paints every cell from 80 to 92 % alike); the control's mean, where it lies inside that range."""
    means = [mean for mean, _, _ in layout.cells.values()]
    low, high = (min(means), max(means)) if means else (0.0, 100.0)
    acts = act_keys(runs)
    done, last = finished_with_last_pair(runs) if len(acts) >= 2 else (runs[finished(runs)], None)
    others = done[last != ",".join(pair)]["acc"] if last is not None else done["acc"]
    centre = float(others.mean()) if len(others) else None
    if centre is not None and low < centre < high:
        return TwoSlopeNorm(vcenter=centre, vmin=low, vmax=high), centre
    return Normalize(vmin=low - 0.5, vmax=high + 0.5), None


def heatmap_panel(ax, layout: HeatmapLayout, fixed: dict, norm: Normalize, pair: tuple[str, str]):
    """One panel: its grid of means, each cell with its numbers written in (where a grid is small enough to
    read them: a study of 11 activations has 121 cells a panel, coloured only), the pair's cell framed."""
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
                dark = abs(float(norm(mean)) - 0.5) > 0.3  # the scale's deep ends: white text
                ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
    image = ax.imshow(grid, cmap="RdBu", norm=norm)
    if pair[0] in rows and pair[1] in cols:
        i, j = rows.index(pair[0]), cols.index(pair[1])
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=2.5))
    ax.set_xticks(range(len(cols)), cols if layout.cols_key else [""])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(layout.cols_key or "")
    ax.set_ylabel(layout.rows_key)
    return image


def curves(runs: pd.DataFrame, pair: tuple[str, str], path: Path) -> list[tuple[str, str, str, str]]:
    """Writes curves_figure's picture; returns each line drawn: (panel title, label, colour, line style)."""
    fig, drawn = curves_figure(runs, pair)
    save(fig, path)
    return drawn


def curves_figure(runs: pd.DataFrame, pair: tuple[str, str]) -> tuple[Figure, list[tuple[str, str, str, str]]]:
    """Per-epoch test accuracy as small multiples: one panel per (second-last, last activation), as the heatmap's
    cells, the pair's panel framed in red; in a panel, one line per value of the activations before them (act1)
    and of any other swept key, the mean over seeds with its min-max band."""
    acts = act_keys(runs)
    _, varied = group_keys(runs)
    rows_key, cols_key = (acts[-2], acts[-1]) if len(acts) >= 2 else (None, acts[0])
    rows, cols = _ordered(runs, rows_key) or [None], _ordered(runs, cols_key)
    inner = [*acts[: len(acts) - (2 if rows_key else 1)], *varied]  # what tells a panel's lines apart
    look = line_looks(runs, inner)
    side = min(1.9, (PAGE_WIDTH - 1.0) / len(cols))
    done = runs[finished(runs)]
    drawn = []
    with style():
        fig, axes = plt.subplots(
            len(rows),
            len(cols),
            figsize=(len(cols) * side + 1.0, len(rows) * side * 0.8 + 1.3),
            squeeze=False,
            sharex=True,
            sharey=True,
            layout="constrained",
        )
        for (i, row), (j, col) in itertools.product(enumerate(rows), enumerate(cols)):
            ax = axes[i, j]
            here = (done[rows_key] == row if rows_key else True) & (done[cols_key] == col)
            title = ", ".join(f"{k}={v}" for k, v in ((rows_key, row), (cols_key, col)) if k)
            ax.set_title(f"{cols_key}={col}" if i == 0 else "")
            drawn += [(title, *line) for line in curve_lines(ax, done[here], inner, look)]
            small_panel(ax, framed=(row, col) == pair or (rows_key is None and col == pair[1]))
            if j == 0:
                ax.set_ylabel(f"{rows_key}={row}" if rows_key else "accuracy (%)")
            if i == len(rows) - 1:
                ax.set_xlabel("epoch")
        fig.supylabel("test accuracy (%)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        title = "test accuracy per epoch: mean and min-max over seeds; framed in red: " + f"({', '.join(pair)})"
        fig.suptitle(fitted(title, fig))
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(labels)), frameon=False)
    return fig, drawn


def line_looks(runs: pd.DataFrame, keys: list[str]):
    """look(labels) -> (colour, line style) of a line: its colour by the first key's value, its style by the
    second's: no two lines of a panel look alike."""
    colour_key, style_key = (keys + [None, None])[:2]
    colours = {v: f"C{i % 10}" for i, v in enumerate(_ordered(runs, colour_key))}
    styles = {v: STYLES[i % len(STYLES)] for i, v in enumerate(_ordered(runs, style_key))}

    def look(labels: pd.Series) -> tuple:
        colour = colours.get(labels.get(colour_key)) if colour_key else "C0"
        return colour, styles.get(labels.get(style_key), "-") if style_key else "-"

    return look


def small_panel(ax, framed: bool) -> None:
    """A curves panel's axes: accuracy 0-100, a few epoch ticks; framed in red for the pair the study asks about."""
    if framed:
        for spine in ax.spines.values():
            spine.set(edgecolor="crimson", linewidth=2.5)
    ax.set_ylim(0, 100)
    ax.set_yticks([0, 50, 100])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    ax.grid(alpha=0.3)


def curve_lines(ax, subset: pd.DataFrame, keys: list[str], look) -> list[tuple[str, str, str]]:
    """One line per combination of `keys` in the panel's runs: the mean over seeds, with its min-max band (up to
    MAX_BANDS lines: more bands only hide one another); look(labels) gives its (colour, line style).
    Returns each line's (label, colour, line style)."""
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
        label = ", ".join(f"{k}={shown(v)}" for k, v in zip(keys, labels.values)) or "all runs"
        colour, line_style = look(labels)
        marker = "o" if len(epochs) == 1 else None  # a one-epoch run is a point, not a line
        (line,) = ax.plot(epochs, stack.mean(0), label=label, lw=1.4, color=colour, ls=line_style, marker=marker)
        if len(groups) <= MAX_BANDS:
            ax.fill_between(epochs, stack.min(0), stack.max(0), color=line.get_color(), alpha=0.15)
        drawn.append((label, line.get_color(), line.get_linestyle()))
    return drawn


def _ordered(runs: pd.DataFrame, key: str | None) -> list:
    return sort_rows(runs[[key]].drop_duplicates(), [key])[key].tolist() if key else []


def diagnostics(runs: pd.DataFrame, pair: tuple[str, str], path: Path) -> bool:
    """Writes diagnostics_figure's picture; False (nothing written) where no diagnostic tells runs apart."""
    fig = diagnostics_figure(runs, pair)
    if fig is None:
        return False
    save(fig, path)
    return True


def diagnostics_figure(runs: pd.DataFrame, pair: tuple[str, str]) -> Figure | None:
    """Final accuracy against the output units that pass no gradient and against last-hidden-layer saturation,
    each run a point (jittered sideways: runs with the same value would hide one another); a diagnostic that is
    the same in every run (every point at 0) says nothing and gets no panel. None if none is left."""
    columns = measures(runs)
    done, last = finished_with_last_pair(runs)
    hit = (last == ",".join(pair)).to_numpy()
    output, _, _ = output_measure(pair, columns)
    panels = [
        (name, column)
        for name, column in columns.items()
        if (column == output or name.startswith("saturated")) and done[column].dropna().nunique() > 1
    ]
    if not panels:
        return None
    jitter = np.random.default_rng(0).uniform(-0.012, 0.012, len(done))
    with style():
        fig, axes = plt.subplots(
            1, len(panels), figsize=(min(PAGE_WIDTH, 4.0 * len(panels)), 3.6), squeeze=False, layout="constrained"
        )
        for ax, (name, column) in zip(axes[0], panels):
            x = done[column].to_numpy(dtype=float) + jitter
            ax.scatter(x[~hit], done["acc"][~hit], s=12, alpha=0.45, label="other last pairs")
            ax.scatter(x[hit], done["acc"][hit], s=20, alpha=0.8, color="crimson", label=f"(x, {pair[0]}, {pair[1]})")
            ax.set_xlabel(measure_label(name, runs))
            ax.set_ylabel("final test accuracy (%)")
            ax.set_xlim(-0.04, 1.04)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
        axes[0, 0].legend(loc="lower left")
        fig.suptitle("each run's final test accuracy against its last epoch's diagnostics")
    return fig


def measure_label(name: str, runs: pd.DataFrame) -> str:
    """What a diagnostic's fraction counts, e.g. "dead output units (of 10)"."""
    widths = [int(w) for w in str(runs["widths"].iloc[0]).split("-")] if "widths" in runs else []
    if name in ("dead_output", "flat_output"):
        units = f" (of {widths[-1]})" if widths else ""
        return f"{name.split('_')[0]} output units{units}, fraction"
    if name.startswith("saturated_layer"):
        layer = int(name.removeprefix("saturated_layer"))
        units = f" (of {widths[layer]})" if len(widths) > layer else ""
        return f"saturated units of layer {layer}{units}, fraction"
    return name.replace("_", " ") + ", fraction"


def fitted(title: str, fig: Figure) -> str:
    """A figure's title in lines as wide as the figure: a sweep of one last activation draws a narrow one, whose
    one-line title would be cut at both sides."""
    per_inch = 72 / (0.6 * (FONT + 1))  # characters of the title's font an inch, roughly
    return textwrap.fill(title, width=max(24, int(fig.get_figwidth() * per_inch)))


@contextmanager
def style():
    """Every figure's text at FONT points or more: legible at page width (see PAGE_WIDTH)."""
    sizes = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize", "legend.fontsize")
    with plt.rc_context({**dict.fromkeys(sizes, FONT), "figure.titlesize": FONT + 1, "figure.labelsize": FONT}):
        yield


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
