"""The report's page as a researcher reads it: index.md rendered to HTML (pandoc) in a browser (headless Chromium),
each figure measured where the browser shows it: its size on the page, and its smallest text there."""

import itertools
import json
import re
import shutil
import subprocess
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

from sherlocked.bench import scale
from sherlocked.bench.scale import Shape
from sherlocked.records import table as results_table
from sherlocked.records.results import read_result
from sherlocked.report import plots
from sherlocked.report.cli import report
from sherlocked.report.runs import read_runs, runs_of
from sherlocked.report.tables import table
from tests.test_report import ACTS, fake_sweep

COLUMN = 800  # px: the page's text column (a rendered README's, roughly), where figures are shown
LEGIBLE = 9  # px: the smallest text a figure may show there
MEASURE = """<script>window.addEventListener("load", () => {
  const sizes = [...document.images].map(i => ({src: i.getAttribute("src"), natural: i.naturalWidth,
    shown: i.getBoundingClientRect().width, height: i.naturalHeight}));
  const out = document.createElement("pre"); out.id = "sizes"; out.textContent = JSON.stringify(sizes);
  document.body.appendChild(out);
});</script>"""
PAGE_STYLE = f"<style>body {{ max-width: {COLUMN}px; margin: auto; }} img {{ max-width: 100%; }}</style>"


def needs(*commands: str) -> None:
    missing = [c for c in commands if shutil.which(c) is None]
    if missing:  # make test installs them where it may (root, apt): see the Makefile's test-tools
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install chromium pandoc)")


def demo_like_sweep(directory):
    """The demo's shape (64 triples x 3 seeds) whose (x, sigmoid, relu) runs fail, with diagnostics that say why."""
    rng = np.random.default_rng(0)

    def accuracy(triple, seed, bn):
        return 0.1 + 0.2 * rng.uniform() if triple[1:] == ("sigmoid", "relu") else 0.8 + 0.12 * rng.uniform()

    fake_sweep(directory, list(itertools.product(ACTS, ACTS, ACTS)), seeds=[0, 1, 2], accuracy=accuracy)
    for path in directory.rglob("result.json"):
        result = read_result(path.parent)
        failing = (result.hparams["act2"], result.hparams["act3"]) == ("sigmoid", "relu")
        dead = [0.1, 0.9 if failing else float(rng.uniform(0, 0.2))] if result.hparams["act3"] == "relu" else None
        result.diagnostics = {"layer3/dead": dead or [float("nan")] * 2, "layer2/saturated": [0.0, 0.0]}
        result.write(path.parent)
    return directory


def shown_in_a_browser(page) -> dict[str, dict]:
    """Each image of the page's index.md as Chromium lays it out: natural and shown width, by file name."""
    html = page.with_suffix(".html")
    header = page.parent / "header.html"
    header.write_text(PAGE_STYLE + MEASURE)
    subprocess.run(
        ["pandoc", "-f", "gfm", "-s", "--metadata", "title=report", "-H", str(header), str(page), "-o", str(html)],
        check=True,
    )
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"]
    dom = subprocess.run(
        [*browser, "--virtual-time-budget=10000", "--dump-dom", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    sizes = json.loads(re.search(r'<pre id="sizes">(.*?)</pre>', dom, re.S)[1].replace("&quot;", '"'))
    return {size["src"]: size for size in sizes}


def smallest_text_pt(fig) -> float:
    return min(t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip())


def problems(sweep, files) -> list[str]:
    """What a reader of the rendered page meets: a figure shrunk, taller than a screen, or text too small."""
    shown = shown_in_a_browser(files["index.md"])
    runs = read_runs(sweep)
    figures = {
        "heatmap.png": plots.heatmap_figure(runs, table(runs), ("sigmoid", "relu"))[0],
        "curves.png": plots.curves_figure(runs, ("sigmoid", "relu"))[0],
        "diagnostics.png": plots.diagnostics_figure(runs, ("sigmoid", "relu")),
    }
    found = [f"the page shows {sorted(shown)}"] if set(shown) != set(figures) else []
    for name, fig in figures.items():
        size = shown[name]
        scale = size["shown"] / size["natural"] if size["natural"] else 0
        smallest = smallest_text_pt(fig) * plots.DPI / 72 * scale  # px on the page
        plots.plt.close(fig)
        if scale < 0.75:
            found.append(f"{name} is {size['natural']} px wide: shrunk to {scale:.0%} on the page")
        if size["height"] * scale > 1.2 * COLUMN:
            found.append(f"{name} is {size['height'] * scale:.0f} px tall on the page: more than a screen")
        if smallest < LEGIBLE:
            found.append(f"{name}'s smallest text is {smallest:.1f} px on the page")
    return found


@pytest.mark.slow
def test_every_figure_of_the_page_is_legible_at_page_width(tmp_path):
    needs("pandoc", "chromium")
    sweep = demo_like_sweep(tmp_path / "sweep")
    assert problems(sweep, report(sweep, [("sigmoid", "relu")]).files) == []


@pytest.mark.slow
def test_figures_drawn_too_big_with_small_text_are_caught(tmp_path, monkeypatch):
    """The check above fails figures saved at twice the resolution with 5-point text."""
    needs("pandoc", "chromium")
    sweep = demo_like_sweep(tmp_path / "sweep")
    monkeypatch.setattr(plots, "DPI", 200)
    monkeypatch.setattr(plots, "FONT", 5)
    found = problems(sweep, report(sweep, [("sigmoid", "relu")]).files)
    assert "curves.png is 1600 px wide: shrunk to 50% on the page" in found
    assert any(re.fullmatch(r"heatmap.png is \d+ px wide: shrunk to \d+% on the page", line) for line in found), found
    assert any(line.startswith("curves.png's smallest text is") for line in found), found


def test_the_diagnostics_figure_jitters_points_and_leaves_out_a_diagnostic_every_run_shares(tmp_path):
    runs = read_runs(demo_like_sweep(tmp_path / "sweep"))
    fig = plots.diagnostics_figure(runs, ("sigmoid", "relu"))
    (ax,) = fig.axes  # saturation is 0 in every run: no panel
    assert ax.get_xlabel() == "dead output units (of 10), fraction"
    xs = np.concatenate([c.get_offsets()[:, 0] for c in ax.collections])
    xs = xs[~np.isnan(xs)]  # runs without a relu output have no dead units to count
    relu_out = runs.loc[runs["act3"] == "relu", "diag.layer3/dead"]
    assert len(np.unique(xs)) == len(relu_out)  # no two points on one spot
    assert np.allclose(np.sort(xs), np.sort(relu_out.to_numpy()), atol=0.012)  # each near its value
    plots.plt.close(fig)


ACTS8 = ("relu", "tanh", "sigmoid", "selu", "gelu", "silu", "elu", "leaky_relu")
SHAPES = {  # (the sweep's shape, seeds): from one cell to the 8-activation study, one epoch to many
    "1x1 cells": (Shape(("relu",), ("none",), epochs=2), 2),
    "2x2 cells, two batch-norm placements": (Shape(("sigmoid", "relu"), ("none", "all"), epochs=2), 2),
    "the demo's 4x4x4": (Shape(tuple(ACTS), ("none",), epochs=5), 3),
    "8 activations": (Shape(ACTS8, ("none",), epochs=3), 2),
    "1 epoch": (Shape(("sigmoid", "relu"), ("none",), epochs=1), 2),
    "many epochs": (Shape(("tanh", "sigmoid", "relu"), ("none",), epochs=60), 2),
}


def synthetic_runs(shape: Shape, seeds: int) -> pd.DataFrame:
    """The report's runs of a made-up sweep of `shape` (sherlocked.bench.scale), through the table's rows."""
    n = seeds * len(shape.batch_norms) * len(shape.activations) ** 3
    rows = [results_table.row(job, result, written=0.0) for job, result in scale.runs(n, shape)]
    return runs_of(pd.DataFrame(rows).sort_values("job").reset_index(drop=True))


def report_figures(runs: pd.DataFrame) -> dict:
    pair = ("sigmoid", "relu")
    found = {
        "heatmap": plots.heatmap_figure(runs, table(runs), pair)[0],
        "curves": plots.curves_figure(runs, pair)[0],
        "diagnostics": plots.diagnostics_figure(runs, pair),
    }
    return {name: fig for name, fig in found.items() if fig is not None}


def outside_the_canvas(fig) -> list[str]:
    """Every text the figure draws (titles, labels, tick labels, cell numbers, colour-bar and legend text) and every
    legend, measured by matplotlib where it is drawn, that reaches past the figure's edges (half a pixel of slack)."""
    drawn = []
    draw = Text.draw

    def measured(text, renderer):
        draw(text, renderer)
        if text.get_visible() and text.get_text().strip():
            drawn.append((repr(text.get_text()), text.get_window_extent(renderer)))

    with mock.patch.object(Text, "draw", measured):
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    drawn += [("a legend", legend.get_window_extent(renderer)) for legend in legends]
    canvas = fig.bbox.padded(0.5)
    return [
        f"{what} at x {box.x0:.0f}..{box.x1:.0f}, y {box.y0:.0f}..{box.y1:.0f} (canvas {fig.bbox.width:.0f} x "
        f"{fig.bbox.height:.0f})"
        for what, box in drawn
        if not (canvas.x0 <= box.x0 and box.x1 <= canvas.x1 and canvas.y0 <= box.y0 and box.y1 <= canvas.y1)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_every_figure_keeps_its_text_inside_the_canvas(shape):
    runs = synthetic_runs(*SHAPES[shape])
    found = {}
    for name, fig in report_figures(runs).items():
        assert fig.dpi == plots.DPI  # as savefig writes it
        found[name] = outside_the_canvas(fig)
        plots.plt.close(fig)
    assert found == {name: [] for name in found}


def test_one_epoch_is_a_marked_point_at_a_whole_epoch_and_many_epochs_have_whole_ticks():
    for epochs, ticks in ((1, [1]), (60, None)):
        runs = synthetic_runs(Shape(("sigmoid", "relu"), ("none",), epochs=epochs), seeds=2)
        fig = plots.curves_figure(runs, ("sigmoid", "relu"))[0]
        fig.canvas.draw()
        for ax in fig.axes:
            low, high = ax.get_xlim()
            shown = [t for t in ax.get_xticks() if low <= t <= high]
            assert shown and all(float(t).is_integer() for t in shown), (epochs, shown)
            assert ticks is None or shown == ticks
            assert low <= 1 and high >= epochs and high - low >= 1  # the epochs drawn, and not a sliver around them
            if epochs == 1:
                assert all(line.get_marker() == "o" for line in ax.get_lines())
        plots.plt.close(fig)


@pytest.mark.slow
def test_beyond_sixteen_last_pairs_the_curves_draw_the_pair_the_best_and_the_worst_and_say_what_is_left_out(tmp_path):
    """8 activations: 64 last pairs, 64 panels sharing their axes took a minute to draw (matplotlib's bookkeeping of
    shared axes grows with the square of their number) and were unreadable at page width."""
    sweep = tmp_path / "sweep"
    scale.synthetic_sweep(sweep, 512, Shape(ACTS8, ("none",), epochs=3))
    runs = read_runs(sweep)
    means = runs[runs["status"] == "ok"].groupby(["act2", "act3"])["acc"].mean().sort_values(ascending=False)
    expected = {*means.index[:3], *means.index[-3:], ("sigmoid", "relu")}
    fig, drawn = plots.curves_figure(runs, ("sigmoid", "relu"))
    panels = {tuple(part.split("=")[1] for part in title.split(", ")) for title, *_ in drawn}
    assert panels == expected
    assert sum(ax.has_data() for ax in fig.axes) == len(expected)
    assert all(len(ax.get_shared_x_axes().get_siblings(ax)) == 1 for ax in fig.axes)  # limits set, not shared
    left_out = f"{len(expected)} of the 64 last pairs (act2, act3) drawn: (sigmoid, relu) framed in red, the 3 best"
    assert left_out in " ".join(fig.get_suptitle().split())  # the figure says what it leaves out
    plots.plt.close(fig)
    page = report(sweep, [("sigmoid", "relu")]).files["index.md"].read_text()
    assert f"{left_out} and the 3 worst by mean final test accuracy" in page  # and so does the page
    assert f"the other {64 - len(expected)} are in the heatmap and table.md" in page
