"""The report's pictures: the accuracy heatmap, the per-epoch curves and the diagnostics scatter of a sweep.

python -m sherlocked.report outputs/sweeps/demo   # writes heatmap.png, curves.png, diagnostics.png
"""

import functools
import itertools
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import RendererAgg  # noqa: E402
from matplotlib.colors import Normalize, TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from sherlocked.report.mechanism import measures, output_measure  # noqa: E402
from sherlocked.report.runs import (  # noqa: E402
    act_keys,
    finished,
    finished_with_last_pair,
    group_keys,
    named,
    sort_rows,
    strata,
)

STYLES = ("-", "--", ":", "-.")
# A figure is drawn for a page: at most PAGE_WIDTH inches at DPI (800 pixels, the text column of a rendered
# markdown page), its text at FONT points or more (12.5 pixels at full size).
PAGE_WIDTH, DPI, FONT = 8.0, 100, 9
LINE = 0.2  # inches a line of text takes, at FONT points and a little over
MIN_WIDTH = 4.0  # inches: a figure of one narrow panel still has room for its title and legend
MIN_CELL_TEXT = 0.45  # inches: a heatmap cell this big holds its three lines of numbers; a smaller one is colour only
MAX_BANDS = 16  # a curves panel shades each line's min-max band up to this many lines
MAX_PANELS = 16  # the curves draw every last pair up to a 4 x 4 grid; beyond, the pair, the best and the worst
RANKED = 3  # ... the RANKED best and the RANKED worst last pairs


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
    cells: dict[tuple, tuple]  # (mean, std, n) of the study's table, by its keys (_group_key), where n > 0
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
    cells = dict(
        zip(map(_group_key, filled[keys].itertuples(index=False, name=None)), filled[["mean", "std", "n"]].to_numpy())
    )
    panels = []
    for title, stratum in _panels(runs):
        fixed = stratum[varied].iloc[0].to_dict() if varied else {}
        firsts = sort_rows(stratum[outer].drop_duplicates(), outer) if outer else pd.DataFrame([{}])
        for _, values in firsts.iterrows():
            name = named(values.index, values)
            panels.append(
                (" | ".join(t for t in (name, title if title != "all runs" else "") if t), {**values, **fixed})
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
    (tables.table) numbers, where the cell is big enough to hold them. The colours are centred on the control
    (white: the mean of every other last pair), red below and blue above, each side stretched over the range the
    study spans; the pair's cells are framed. The figure grows with its labels (see HeatmapSizes)."""
    layout = heatmap_layout(runs, table)
    size = heatmap_sizes(layout)
    with style():
        fig, axes = plt.subplots(size.lines, size.columns, figsize=size.figure, squeeze=False, layout="constrained")
        norm, centre = colour_scale(runs, layout, pair)
        image = None
        for ax, (title, fixed) in zip(axes.flat, layout.panels):
            image = heatmap_panel(ax, layout, fixed, norm, pair, size)
            ax.set_title(wrapped(title or "all runs", size.grid))
        for ax in list(axes.flat)[len(layout.panels) :]:
            ax.axis("off")
        if not size.numbers:
            outer_heatmap_labels(axes, len(layout.panels))
        fig.suptitle(wrapped(heatmap_title(layout, size.numbers), size.figure[0] - 0.2, FONT + 1))
        if image is not None:
            colour_bar(fig, image, axes, centre, size.figure[0])
    return fig, [title for title, _ in layout.panels]


@dataclass
class HeatmapSizes:
    """The heatmap's panels laid out for the page: as many cells across as PAGE_WIDTH holds beside each panel's row
    labels (measured), at most 0.62 inches a cell; numbers in cells of MIN_CELL_TEXT inches or more; column labels
    turned upright where they are wider than a cell; a grid at least as wide as its title's longest word; the figure
    as tall as its lines of panels and text."""

    columns: int  # panels a line
    lines: int
    cell: float  # inches
    grid: float  # inches a panel's grid is wide (and its title)
    upright: bool  # column labels turned 90 degrees
    figure: tuple[float, float]  # inches

    @property
    def numbers(self) -> bool:
        return self.cell >= MIN_CELL_TEXT


def outer_heatmap_labels(axes, panels: int) -> None:
    """Colour-only grids (many activations) as small multiples: activations named left of the first column and
    under each column's lowest panel only (every panel has the same rows and columns); a figure of 8 panels of 8 x 8
    is shorter so, and a third quicker to draw."""
    columns = axes.shape[1]
    for k, ax in enumerate(axes.flat[:panels]):
        lowest = k + columns >= panels
        ax.tick_params(labelleft=k % columns == 0, labelbottom=lowest)
        if k % columns:
            ax.set_ylabel("")
        if not lowest:
            ax.set_xlabel("")


def heatmap_sizes(layout: HeatmapLayout) -> HeatmapSizes:
    n_rows, n_cols = layout.shape
    columns = min(2, len(layout.panels))
    lines = -(-len(layout.panels) // columns)
    row_labels = max(text_width(str(v)) for v in layout.order[layout.rows_key]) + 0.45
    cell = min(0.62, (PAGE_WIDTH - 0.3 - columns * row_labels) / (columns * n_cols))
    col_names = layout.order[layout.cols_key] if layout.cols_key else [""]
    widest = max(text_width(str(v)) for v in col_names)
    upright = widest > 0.9 * cell
    below = (widest + 0.1 if upright else LINE) + LINE + 0.15  # tick labels, the axis label, padding
    numbers = cell >= MIN_CELL_TEXT
    gaps = lines * below if numbers else below + (lines - 1) * 0.15  # colour only: labels under the last line
    # a panel's title is centred on its grid and may not be wider (constrained layout makes room for its height
    # only): a grid too narrow for a title's longest word is drawn wider
    grid = max(n_cols * cell, *(text_width(word) for title, _ in layout.panels for word in (title or "").split()))
    titles = max(lines_of(wrapped(title or "all runs", grid)) for title, _ in layout.panels)
    width = max(2.5, columns * (grid + row_labels) + 0.3)
    title = lines_of(wrapped(heatmap_title(layout, numbers), width - 0.2, FONT + 1))
    bar = 0.15 + 2.5 * LINE  # the colour bar, its tick labels and (at least) one line of its label
    height = lines * (n_rows * cell + titles * LINE) + gaps + title * LINE + bar + 0.2
    return HeatmapSizes(columns, lines, cell, grid, upright, (width, height))


def heatmap_title(layout: HeatmapLayout, numbers: bool) -> str:
    """What the cells show and how many runs each holds."""
    counts = [int(n) for _, _, n in layout.cells.values()]
    if layout.same_n and counts:
        n_text = f"n = {counts[0]} runs a cell"
    else:
        n_text = "n runs a cell as marked" if numbers else "n per cell in table.md"
    shows = "± std over seeds" if numbers else "by colour (cells too small for numbers: table.md has them)"
    return f"mean final test accuracy (%) {shows}; {n_text}"


def colour_bar(fig: Figure, image, axes, centre: float | None, width: float) -> None:
    """The colour scale under the panels, its label wrapped to its length: a label along a bar beside a short
    figure ran past the figure's top and bottom."""
    # pad is a fraction of the panels' height: the default (0.15) left a tall figure's label under its bottom edge
    bar = fig.colorbar(image, ax=axes, location="bottom", shrink=0.6, aspect=max(10.0, 0.6 * width / 0.15), pad=0.02)
    if centre is not None:
        bar.set_label(wrapped(f"white: {centre:.1f} %, every other last pair's mean", 0.6 * width))


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


def heatmap_panel(ax, layout: HeatmapLayout, fixed: dict, norm: Normalize, pair: tuple[str, str], size):
    """One panel: its grid of means, each cell with its numbers written in where the cells are big enough to read
    them (size.numbers), the pair's cell framed."""
    rows, cols = layout.order[layout.rows_key], layout.order[layout.cols_key] if layout.cols_key else [None]
    grid = np.full(layout.shape, np.nan)
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            named = {**fixed, layout.rows_key: row, **({layout.cols_key: col} if layout.cols_key else {})}
            cell = layout.cells.get(_group_key(tuple(named[k] for k in layout.keys)))
            if cell is None:
                continue
            mean, std, n = cell
            grid[i, j] = mean
            if size.numbers:
                text = f"{mean:.1f}\n±{std:.1f}" + ("" if layout.same_n else f"\nn={int(n)}")
                dark = abs(float(norm(mean)) - 0.5) > 0.3  # the scale's deep ends: white text
                ax.text(j, i, text, ha="center", va="center", color="white" if dark else "black")
    # aspect "auto": constrained layout then places the panel's labels and title in full (an equal-aspect image
    # shrinks inside its box after the layout is made); the figure's size keeps the cells near square
    image = ax.imshow(grid, cmap="RdBu", norm=norm, aspect="auto")
    if pair[0] in rows and pair[1] in cols:
        i, j = rows.index(pair[0]), cols.index(pair[1])
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", lw=2.5))
    ax.set_xticks(range(len(cols)), cols if layout.cols_key else [""], rotation=90 if size.upright else 0)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel(layout.cols_key or "")
    ax.set_ylabel(layout.rows_key)
    return image


def curves(runs: pd.DataFrame, pair: tuple[str, str], path: Path) -> list[tuple[str, str, str, str]]:
    """Writes curves_figure's picture; returns each line drawn: (panel title, label, colour, line style)."""
    fig, drawn = curves_figure(runs, pair)
    save(fig, path)
    return drawn


@dataclass
class CurvePanels:
    """Which last pairs the curves draw, a panel each. Up to MAX_PANELS, every one, as the heatmap's grid; beyond
    (64 panels for 8 activations: unreadable at page width, and a minute to draw), those a reader needs: the pair
    the study asks about, the RANKED best and the RANKED worst by mean final accuracy, each titled with its rank."""

    rows_key: str | None  # the second-last activation (none in a one-layer sweep)
    cols_key: str  # the last
    shape: tuple[int, int]  # panels: lines x columns
    panels: list[tuple]  # (row value, column value) of each panel, line by line
    titles: list[str]
    total: int  # the sweep's last pairs
    note: str = ""  # what the figure leaves out ("" where it draws every last pair)

    @property
    def grid(self) -> bool:
        return not self.note


def curve_panels(runs: pd.DataFrame, pair: tuple[str, str]) -> CurvePanels:
    acts = act_keys(runs)
    rows_key, cols_key = (acts[-2], acts[-1]) if len(acts) >= 2 else (None, acts[0])
    rows, cols = _ordered(runs, rows_key) or [None], _ordered(runs, cols_key)
    if len(rows) * len(cols) > MAX_PANELS:
        return ranked_panels(runs, pair, rows_key, cols_key, len(rows) * len(cols))
    panels = list(itertools.product(rows, cols))
    titles = [f"{cols_key}={col}" if i == 0 else "" for i, _ in enumerate(rows) for col in cols]  # the grid's top
    return CurvePanels(rows_key, cols_key, (len(rows), len(cols)), panels, titles, len(panels))


def ranked_panels(runs: pd.DataFrame, pair: tuple[str, str], rows_key: str, cols_key: str, total: int) -> CurvePanels:
    """The pair's panel, the RANKED best and the RANKED worst, best first, four a line; the note says the rest."""
    ranked = ranked_last_pairs(runs, rows_key, cols_key)
    shown = [*ranked.index[:RANKED], *ranked.index[-RANKED:], *([pair] if pair in ranked.index else [])]
    shown = sorted(set(shown), key=ranked.index.get_loc)
    titles = [
        f"{rows_key}={row}, {cols_key}={col}\nrank {ranked.index.get_loc((row, col)) + 1} of {len(ranked)}: "
        f"{ranked[(row, col)]:.1f} %"
        for row, col in shown
    ]
    framed = f"({pair[0]}, {pair[1]}) framed in red, " if pair in ranked.index else ""
    note = (
        f"{len(shown)} of the {total} last pairs ({rows_key}, {cols_key}) drawn: {framed}the {RANKED} best and the "
        f"{RANKED} worst by mean final test accuracy, each titled with its rank; the other {total - len(shown)} are "
        "in the heatmap and table.md"
    )
    columns = min(4, len(shown))
    return CurvePanels(rows_key, cols_key, (-(-len(shown) // columns), columns), shown, titles, total, note)


def ranked_last_pairs(runs: pd.DataFrame, rows_key: str, cols_key: str) -> pd.Series:
    """Mean final accuracy of each last pair's finished runs, best first (a pair with none has no rank)."""
    done = runs[finished(runs)]
    means = done.groupby([rows_key, cols_key], sort=False)["acc"].mean()
    return means.sort_values(ascending=False, kind="stable")


def curves_figure(runs: pd.DataFrame, pair: tuple[str, str]) -> tuple[Figure, list[tuple[str, str, str, str]]]:
    """Per-epoch test accuracy as small multiples: one panel per (second-last, last activation), as the heatmap's
    cells, the pair's panel framed in red (beyond MAX_PANELS, the panels a reader needs: CurvePanels); in a panel,
    one line per value of the activations before them (act1) and of any other swept key, the mean over seeds with
    its min-max band. The panels share their limits without sharing axes: matplotlib's bookkeeping of shared axes
    grows with the square of their number."""
    panels = curve_panels(runs, pair)
    acts = act_keys(runs)
    _, varied = group_keys(runs)
    inner = [*acts[: len(acts) - (2 if panels.rows_key else 1)], *varied]  # what tells a panel's lines apart
    look = line_looks(runs, inner)
    done = runs[finished(runs)]
    epochs = max((len(c) for c in done["curve"]), default=1)
    size = curves_sizes(panels, line_labels(done, inner), pair)
    drawn = []
    with style():
        fig, axes = plt.subplots(*panels.shape, figsize=size.figure, squeeze=False, layout="constrained")
        for ax, (row, col), title in zip(axes.flat, panels.panels, panels.titles):
            here = (done[panels.rows_key] == row if panels.rows_key else True) & (done[panels.cols_key] == col)
            named = ", ".join(f"{k}={v}" for k, v in ((panels.rows_key, row), (panels.cols_key, col)) if k)
            drawn += [(named, *line) for line in curve_lines(ax, done[here], inner, look)]
            small_panel(ax, framed=(row, col) == pair or (panels.rows_key is None and col == pair[1]), epochs=epochs)
            ax.set_title(wrapped(title, size.panel))
        outer_labels(axes, panels)
        fig.supylabel("test accuracy (%)")
        fig.suptitle(size.title)
        legend(fig, axes, size)
    return fig, drawn


@dataclass
class CurvesSizes:
    """The curves' figure for the page: panels as wide as PAGE_WIDTH holds, 1.9 inches at most; the figure at least
    MIN_WIDTH wide, as tall as its panels, titles and legend; the legend in as many columns as its widest label
    leaves room for, a label wider than the figure wrapped."""

    figure: tuple[float, float]
    panel: float  # inches a panel's title may take
    title: str  # the figure's, wrapped
    label_width: float  # inches a legend label may take
    legend_columns: int


def curves_sizes(panels: CurvePanels, labels: list[str], pair: tuple[str, str]) -> CurvesSizes:
    lines, columns = panels.shape
    side = min(1.9, (PAGE_WIDTH - 1.0) / columns)
    width = max(MIN_WIDTH, columns * side + 1.0)
    title = "test accuracy per epoch: mean and min-max over seeds; framed in red: " + f"({', '.join(pair)})"
    title = wrapped(f"{title}. {panels.note}." if panels.note else title, width - 0.2, FONT + 1)
    labels = [legend_label(label, width - 0.8) for label in labels]
    column = max((text_width(label) for label in labels), default=0) + 0.6  # a label, its line's sample, the gaps
    legend_columns = max(1, min(4, len(labels), int((width - 0.2) // column)))
    per_line = [
        max(lines_of(label) for label in labels[i : i + legend_columns]) for i in range(0, len(labels), legend_columns)
    ]
    panel_titles = max(lines_of(wrapped(t, side)) for t in panels.titles) if any(panels.titles) else 0
    height = lines * (side * 0.8 + panel_titles * LINE) + 3 * LINE + lines_of(title) * LINE + sum(per_line) * LINE + 0.2
    return CurvesSizes((width, height), side, title, width - 0.8, legend_columns)


def legend_label(label: str, width: float) -> str:
    """A line's label, one key a line where it is wider than `width` inches."""
    return label.replace(", ", ",\n") if text_width(label) > width else label


def line_labels(done: pd.DataFrame, keys: list[str]) -> list[str]:
    """The labels of the lines the panels draw, in their order: the legend's."""
    if not keys:
        return ["all runs"]
    groups = sort_rows(done[keys].drop_duplicates(), keys)
    return [named(keys, values) for values in groups.itertuples(index=False)]


def outer_labels(axes, panels: CurvePanels) -> None:
    """Epochs under each column's lowest panel (a ranked figure's last line may be short), accuracies left of the
    first column; each line of a grid named on its left. (A figure-wide "epoch" would sit on the legend.)"""
    columns = axes.shape[1]
    for k, ax in enumerate(axes.flat):
        if k >= len(panels.panels):
            ax.axis("off")
            continue
        lowest = k + columns >= len(panels.panels)
        ax.tick_params(labelleft=k % columns == 0, labelbottom=lowest)
        ax.set_xlabel("epoch" if lowest else "")
        if panels.grid and k % columns == 0 and panels.rows_key:
            ax.set_ylabel(f"{panels.rows_key}={panels.panels[k][0]}")


def legend(fig: Figure, axes, size: CurvesSizes) -> None:
    """One legend for every panel, under them, inside the figure: each line's label once, in drawing order."""
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if not handles:
        return
    fig.legend(
        list(handles.values()),
        [legend_label(label, size.label_width) for label in handles],
        loc="outside lower center",
        ncol=size.legend_columns,
        frameon=False,
    )


def line_looks(runs: pd.DataFrame, keys: list[str]):
    """look(labels) -> (colour, line style) of a line: its colour by the first key's value, its style by the
    second's: no two lines of a panel look alike."""
    colour_key, style_key = (keys + [None, None])[:2]
    colours = {_group_key(v): f"C{i % 10}" for i, v in enumerate(_ordered(runs, colour_key))}
    styles = {_group_key(v): STYLES[i % len(STYLES)] for i, v in enumerate(_ordered(runs, style_key))}

    def look(labels: pd.Series) -> tuple:
        colour = colours.get(_group_key(labels.get(colour_key))) if colour_key else "C0"
        return colour, styles.get(_group_key(labels.get(style_key)), "-") if style_key else "-"

    return look


def small_panel(ax, framed: bool, epochs: int) -> None:
    """A curves panel's axes: accuracy 0-100, whole epochs (a one-epoch run is its marked point at epoch 1, not a
    sliver of axis around it); framed in red for the pair the study asks about."""
    if framed:
        for spine in ax.spines.values():
            spine.set(edgecolor="crimson", linewidth=2.5)
    ax.set_ylim(0, 100)
    ax.set_yticks([0, 50, 100])
    if epochs == 1:
        ax.set_xlim(0.5, 1.5)
        ax.set_xticks([1])
    else:
        ax.set_xlim(1, epochs)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
    ax.grid(alpha=0.3)


def curve_lines(ax, subset: pd.DataFrame, keys: list[str], look) -> list[tuple[str, str, str]]:
    """One line per combination of `keys` in the panel's runs: the mean over seeds, with its min-max band (up to
    MAX_BANDS lines: more bands only hide one another); look(labels) gives its (colour, line style).
    Returns each line's (label, colour, line style)."""
    drawn = []
    groups = sort_rows(subset[keys].drop_duplicates(), keys) if keys else pd.DataFrame([{}])
    # Grouped with the runs that lack a key (an MLP's channels beside a CNN's: NaN), found by their values as typed.
    grouped = subset.groupby(keys, sort=False, dropna=False)["curve"] if keys else ()
    curves = {_group_key(values): found for values, found in grouped}
    for _, labels in groups.iterrows():
        found = curves[_group_key(tuple(labels.tolist()))] if keys else subset["curve"]
        lengths = {len(c) for c in found}
        if len(lengths) != 1 or 0 in lengths:
            continue
        stack = np.array(found.tolist())
        epochs = np.arange(1, stack.shape[1] + 1)
        label = named(keys, labels.tolist()) or "all runs"
        colour, line_style = look(labels)
        marker = "o" if len(epochs) == 1 else None  # a one-epoch run is a point, not a line
        (line,) = ax.plot(epochs, stack.mean(0), label=label, lw=1.4, color=colour, ls=line_style, marker=marker)
        if len(groups) <= MAX_BANDS:
            ax.fill_between(epochs, stack.min(0), stack.max(0), color=line.get_color(), alpha=0.15)
        drawn.append((label, line.get_color(), line.get_linestyle()))
    return drawn


def _group_key(values) -> tuple:
    """A group's values as a key that finds it: NaN (a key a run lacks) equal to NaN."""
    values = values if isinstance(values, tuple) else (values,)  # a group of one key: its value, in older pandas
    return tuple(None if pd.isna(v) else v for v in values)


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
            1, len(panels), figsize=(min(PAGE_WIDTH, MIN_WIDTH * len(panels)), 3.6), squeeze=False, layout="constrained"
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
        title = "each run's final test accuracy against its last epoch's diagnostics"
        fig.suptitle(wrapped(title, fig.get_figwidth() - 0.2, FONT + 1))
    return fig


def measure_label(name: str, runs: pd.DataFrame) -> str:
    """What a diagnostic's fraction counts, e.g. "dead output units (of 10)"; a conv layer's units are its channels.
    Each layer's units: a CNN's channels, then its head's widths (without their flattened input); an MLP's widths
    after its inputs."""
    channels = runs["channels"].iloc[0] if "channels" in runs else None
    convs = [int(c) for c in str(channels).split("-")] if isinstance(channels, str) else []
    widths = [int(w) for w in str(runs["widths"].iloc[0]).split("-")] if "widths" in runs else []
    units = [*convs, *(widths if convs else widths[1:])]  # per layer, from layer 1
    if name in ("dead_output", "flat_output"):
        of = f" (of {widths[-1]})" if widths else ""
        return f"{name.split('_')[0]} output units{of}, fraction"
    if name.startswith("saturated_layer"):
        layer = int(name.removeprefix("saturated_layer"))
        kind = "channels" if layer <= len(convs) else "units"
        of = f" (of {units[layer - 1]})" if len(units) >= layer else ""
        return f"saturated {kind} of layer {layer}{of}, fraction"
    return name.replace("_", " ") + ", fraction"


@functools.cache
def _measure() -> RendererAgg:
    return RendererAgg(1, 1, 72)  # at 72 dots an inch, a text's width in dots is in points


@functools.cache
def _font(size: float) -> FontProperties:
    return FontProperties(size=size)


@functools.lru_cache(maxsize=4096)  # wrapping measures the same words and lines again and again
def _line_width(line: str, size: float) -> float:
    return _measure().get_text_width_height_descent(line, _font(size), ismath=False)[0] / 72


def text_width(text: str, size: float | None = None) -> float:
    """Inches the widest line of `text` takes at `size` points (FONT's), as Agg draws it."""
    return max(_line_width(line, size or FONT) for line in text.split("\n"))


def wrapped(text: str, width: float, size: float | None = None) -> str:
    """`text` broken at spaces into lines at most `width` inches wide at `size` points (a word wider than that
    keeps a line of its own): a figure's one-line title or label, drawn narrower than it, is cut at its edges."""
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            longer = f"{line} {word}" if line else word
            if line and text_width(longer, size) > width:
                lines.append(line)
                longer = word
            line = longer
        lines.append(line)
    return "\n".join(lines)


def lines_of(text: str) -> int:
    return text.count("\n") + 1


@contextmanager
def style():
    """Every figure's text at FONT points or more: legible at page width (see PAGE_WIDTH)."""
    sizes = ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize", "ytick.labelsize", "legend.fontsize")
    with plt.rc_context({**dict.fromkeys(sizes, FONT), "figure.titlesize": FONT + 1, "figure.labelsize": FONT}):
        yield


def save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
