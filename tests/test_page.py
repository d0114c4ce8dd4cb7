"""The report's page as a researcher reads it: index.md rendered to HTML (pandoc) in a browser (headless Chromium),
each figure measured where the browser shows it: its size on the page, and its smallest text there."""

import itertools
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.text import Text

from sherlocked.report import plots
from sherlocked.report.cli import report
from sherlocked.report.runs import read_runs
from sherlocked.report.tables import table
from sherlocked.results import read_result
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


def test_every_figure_of_the_page_is_legible_at_page_width(tmp_path):
    needs("pandoc", "chromium")
    sweep = demo_like_sweep(tmp_path / "sweep")
    assert problems(sweep, report(sweep, [("sigmoid", "relu")]).files) == []


def test_figures_drawn_too_big_with_small_text_are_caught(tmp_path, monkeypatch):
    """The check above fails figures saved at twice the resolution with 5-point text."""
    needs("pandoc", "chromium")
    sweep = demo_like_sweep(tmp_path / "sweep")
    monkeypatch.setattr(plots, "DPI", 200)
    monkeypatch.setattr(plots, "FONT", 5)
    found = problems(sweep, report(sweep, [("sigmoid", "relu")]).files)
    assert "heatmap.png is 1600 px wide: shrunk to 50% on the page" in found
    assert any(line.startswith("curves.png's smallest text is") for line in found)


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
