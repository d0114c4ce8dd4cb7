"""The report on hand-made result files, whose numbers are known."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sherlocked.records.results import Result, read_result
from sherlocked.report.cli import main, report
from sherlocked.report.runs import read_runs
from sherlocked.report.tables import table
from sherlocked.runtime.atomic import write_json
from sherlocked.spec.config import hparams

ACTS = ["relu", "tanh", "sigmoid", "selu"]


def fake_sweep(directory, triples, seeds, batch_norms=("none",), accuracy=None, status=None, tweak=None):
    """result.json files as the engine writes them; accuracy(triple, seed, bn) in [0, 1]; tweak(config, i)."""
    accuracy = accuracy or (lambda t, s, bn: 0.15 if t[1:] == ("sigmoid", "relu") else 0.9 + 0.01 * s)
    status = status or (lambda t, s, bn: "ok")
    for i, ((a1, a2, a3), seed, bn) in enumerate(itertools.product(triples, seeds, batch_norms)):
        job = directory / f"act1={a1},act2={a2},act3={a3},model.batch_norm={bn},seed={seed}"
        job.mkdir(parents=True)
        config = {
            "act1": a1,
            "act2": a2,
            "act3": a3,
            "seed": seed,
            "study": "x",
            "dataset": {"name": "mnist", "root": "data", "batch_size": 32},
            "model": {
                "widths": [784, 500, 256, 10],
                "batch_norm": bn,
                "init": "default",
                "output_activation": True,
                "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.01, "momentum": 0.5, "weight_decay": 0.0},
            },
            "trainer": {"max_epochs": 10},
        }
        if tweak:
            tweak(config, i)
        result = Result(status=status((a1, a2, a3), seed, bn), config=config, hparams=hparams(config))
        if result.status != "failed":
            acc = accuracy((a1, a2, a3), seed, bn)
            result.final_test_acc, result.history = acc, {"epoch": [1, 2], "test_acc": [acc / 2, acc]}
        result.write(job)
    return directory


def test_results_of_schema_0_without_hparams_are_read_by_their_config(tmp_path):
    config = {"act1": "relu", "act2": "sigmoid", "act3": "relu", "seed": 4, "model": {"batch_norm": "none"}}
    (tmp_path / "job").mkdir()
    write_json(tmp_path / "job" / "result.json", {"status": "ok", "diverged": False, "config": config})
    runs = read_runs(tmp_path)
    assert runs.loc[0, ["act1", "act2", "act3", "seed", "batch_norm", "status"]].tolist() == [
        "relu",
        "sigmoid",
        "relu",
        4,
        "none",
        "ok",
    ]


def test_an_unreadable_result_is_left_out_with_a_warning(tmp_path, capsys):
    fake_sweep(tmp_path, [("relu", "relu", "relu")], seeds=[0, 1])
    next(tmp_path.rglob("result.json")).write_text('{"status": "ok", "conf')
    assert len(read_runs(tmp_path)) == 1
    assert "unreadable; left out of the report" in capsys.readouterr().err


def test_the_table_has_the_studys_format_and_numbers(tmp_path):
    triples = [("relu", "relu", "relu"), ("tanh", "sigmoid", "relu"), ("relu", "tanh", "selu")]
    fake_sweep(tmp_path, triples, seeds=[0, 1, 2])
    ours = table(read_runs(tmp_path))
    assert list(ours.columns[:6]) == ["act1", "act2", "act3", "seed0", "seed1", "seed2"]
    assert {"mean", "std", "n", "ci95_low", "ci95_high", "diverged", "failed"} <= set(ours.columns)
    assert "batch_norm" not in ours.columns and "seed" not in ours.columns  # only what the sweep varied
    # sorted like the study: relu < tanh < sigmoid < selu, act1 first
    assert [tuple(r) for r in ours[["act1", "act2", "act3"]].to_numpy()] == [
        ("relu", "relu", "relu"),
        ("relu", "tanh", "selu"),
        ("tanh", "sigmoid", "relu"),
    ]
    row = ours.iloc[0]
    values = np.array([90.0, 91.0, 92.0])
    assert [row.seed0, row.seed1, row.seed2] == pytest.approx(values)
    assert row["mean"] == pytest.approx(values.mean()) and row["std"] == pytest.approx(values.std())
    half = stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert (row.ci95_low, row.ci95_high) == pytest.approx((values.mean() - half, values.mean() + half))


def test_failed_and_diverged_runs_are_counted_not_dropped(tmp_path):
    state = {0: "ok", 1: "diverged", 2: "failed"}
    fake_sweep(
        tmp_path,
        [("relu", "relu", "relu")],
        seeds=[0, 1, 2],
        status=lambda t, s, bn: state[s],
        accuracy=lambda t, s, bn: 0.9 if s == 0 else 0.1,
    )
    row = table(read_runs(tmp_path)).iloc[0]
    assert (row.n, row.diverged, row.failed) == (2, 1, 1)
    assert np.isnan(row.seed2) and row["mean"] == pytest.approx(50.0)
    report(tmp_path, [("sigmoid", "relu")])
    assert "| relu | relu | relu | 90.00 | 10.00 |  | 50.00 |" in (tmp_path / "table.md").read_text()


@pytest.mark.slow
def test_columns_adapt_to_a_swept_batch_norm_and_stats_are_given_per_value(tmp_path):
    triples = list(itertools.product(ACTS[:2], ["sigmoid", "tanh"], ["relu", "tanh"]))
    bn_fixes = lambda t, s, bn: 0.15 if t[1:] == ("sigmoid", "relu") and bn == "none" else 0.9 + 0.01 * s  # noqa: E731
    fake_sweep(tmp_path, triples, seeds=[0, 1], batch_norms=("none", "all"), accuracy=bn_fixes)
    ours = table(read_runs(tmp_path))
    assert "batch_norm" in ours.columns and len(ours) == 16
    report(tmp_path, [("sigmoid", "relu")])
    text = (tmp_path / "stats.md").read_text()
    assert "### Per value of the other swept keys: against the other (x, y, relu) runs" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| batch_norm=")}
    assert set(rows) == {"| batch_norm=all", "| batch_norm=none"} and "p (Holm)" in text


@pytest.mark.slow
def test_the_isolating_test_compares_the_pair_with_the_same_last_activation_only(tmp_path):
    triples = list(itertools.product(ACTS, ACTS, ["relu", "tanh"]))
    relu_last = lambda t, s, bn: (0.3 if t[1] == "sigmoid" else 0.6) if t[2] == "relu" else 0.9 + 0.01 * s  # noqa: E731
    fake_sweep(tmp_path, triples, seeds=[0, 1, 2], accuracy=lambda t, s, bn: relu_last(t, s, bn) + 0.001 * s)
    report(tmp_path, [("sigmoid", "relu")])
    runs = read_runs(tmp_path)
    hit = (runs.act2 == "sigmoid") & (runs.act3 == "relu")
    same_last = ~hit & (runs.act3 == "relu")
    welch = stats.ttest_ind(runs.acc[hit], runs.acc[same_last], equal_var=False)
    text = (tmp_path / "stats.md").read_text()
    isolating = text.split("### Against the other (x, y, relu) runs, y not sigmoid")[1].split("###")[0]
    assert f"t = {welch.statistic:.2f}, p = {welch.pvalue:.3g}" in isolating
    assert "the other (x, y, relu) runs, y not sigmoid: n=36, mean 60.10%" in isolating


def test_holm_multiplies_the_smallest_p_by_the_count_and_keeps_the_order():
    from sherlocked.report.significance import holm

    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


@pytest.mark.slow
def test_stats_give_welch_and_mann_whitney_as_scipy_computes_them(tmp_path):
    triples = list(itertools.product(ACTS, ACTS, ACTS))
    rng = np.random.default_rng(0)
    noise = {key: rng.uniform(-0.05, 0.05) for key in itertools.product(triples, range(3))}
    acc = lambda t, s, bn: (0.3 if t[1:] == ("sigmoid", "relu") else 0.9) + noise[(t, s)]  # noqa: E731
    fake_sweep(tmp_path, triples, seeds=range(3), accuracy=acc)
    report(tmp_path, [("sigmoid", "relu"), ("tanh", "relu")])
    runs = read_runs(tmp_path)
    hit = (runs.act2 == "sigmoid") & (runs.act3 == "relu")
    a, b = runs.acc[hit].to_numpy(), runs.acc[~hit].to_numpy()
    text = (tmp_path / "stats.md").read_text()
    welch = stats.ttest_ind(a, b, equal_var=False)
    mwu = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert f"t = {welch.statistic:.2f}, p = {welch.pvalue:.3g}" in text
    assert f"U = {mwu.statistic:.0f}, p = {mwu.pvalue:.3g}" in text
    assert f"(x, sigmoid, relu): n=12, mean {a.mean():.2f}%" in text
    assert "## tanh, relu as the last pair" in text
    per_pair = text.split("per last pair")[1]
    assert per_pair.count("\n| ") == 1 + 16  # header + one row per last pair


def test_the_published_figures_sit_next_to_ours_for_the_studys_setup(tmp_path):
    fake_sweep(tmp_path, [("relu", "relu", "relu"), ("sigmoid", "sigmoid", "relu")], seeds=[0, 1])
    written = report(tmp_path, [("sigmoid", "relu")]).files
    compared = pd.read_csv(written["comparison.csv"])
    assert compared["mean_published"].tolist() == [85.15, 16.03]
    assert compared["difference"].tolist() == pytest.approx([90.5 - 85.15, 15.0 - 16.03])
    assert "This sweep has the published setup" in written["comparison.md"].read_text()
    assert "Spearman's rho" not in written["comparison.md"].read_text()  # two rows: no rank correlation


@pytest.mark.slow
def test_the_comparison_gives_the_rank_correlation_with_the_published_table(tmp_path):
    triples = list(itertools.product(ACTS, ACTS, ACTS))
    fake_sweep(tmp_path, triples, seeds=[0, 1])
    written = report(tmp_path, [("sigmoid", "relu")]).files
    compared = pd.read_csv(written["comparison.csv"])
    rho, p = stats.spearmanr(compared["mean_published"], compared["mean_ours"])
    assert f"Spearman's rho = {rho:.2f} (p = {p:.2g})" in written["comparison.md"].read_text()


@pytest.mark.slow
def test_one_page_holds_the_question_setup_answer_figures_table_and_comparison(tmp_path):
    triples = list(itertools.product(ACTS, ACTS, ACTS))
    fake_sweep(tmp_path, triples, seeds=[0, 1, 2])
    written = report(tmp_path, [("sigmoid", "relu")]).files
    page = written["index.md"].read_text()
    order = ["**Question.**", "**Setup.**", "**Answer.**", "## Figures", "## Every combination", "## Against the"]
    assert [page.index(part) for part in order] == sorted(page.index(part) for part in order)
    assert "192 runs (192 ok, 0 diverged, 0 failed): 3 seeds of every combination of act1 (4 values)" in page
    assert "(x, sigmoid, relu) runs reach **15.0 %** mean final test accuracy (n = 12)" in page
    assert "![mean final test accuracy per combination](heatmap.png)" in page and "Spearman's rho" in page
    for link in ("heatmap.png", "curves.png", "stats.md", "table.csv", "comparison.md"):
        assert (tmp_path / link).is_file()


@pytest.mark.slow
def test_the_answer_says_the_pairs_test_at_each_value_of_another_swept_key_and_pooled(tmp_path):
    """A sweep over batch norm (or model.residual) asks whether it changes the answer: the first lines say so."""
    from sherlocked.report.significance import answer

    def accuracy(t, s, bn):  # the pair fails without batch norm, half fails with it
        return (0.1 if bn == "none" else 0.5) + 0.01 * s if t[1:] == ("sigmoid", "relu") else 0.9 + 0.01 * s

    fake_sweep(tmp_path, list(itertools.product(ACTS, ACTS, ACTS)), [0, 1, 2], ("none", "all"), accuracy)
    page = report(tmp_path, [("sigmoid", "relu")]).files["index.md"].read_text()
    answered = page.split("**Answer.**")[1].split("Details")[0]
    assert "(x, sigmoid, relu) runs reach **31.0 %** mean final test accuracy (n = 24)" in answered
    assert "- batch_norm=all: **51.0 %** (n = 12) against **91.0 %** (n = 36)" in answered
    assert "- batch_norm=none: **11.0 %** (n = 12) against **91.0 %** (n = 36)" in answered
    line = answer(tmp_path)
    assert "(batch_norm=all: 51.0 % against 91.0 %; batch_norm=none: 11.0 % against 91.0 %)" in line


@pytest.mark.slow
def test_the_heatmap_has_a_grid_per_first_activation_and_curves_are_told_apart(tmp_path, monkeypatch):
    from sherlocked.report import plots

    said = []
    triples = list(itertools.product(ACTS, ACTS, ACTS))
    fake_sweep(tmp_path, triples, seeds=[0, 1], batch_norms=("none", "all"))
    runs = read_runs(tmp_path)
    monkeypatch.setattr(plots.plt.Figure, "suptitle", lambda fig, text, **kw: said.append(text))
    cells = []
    monkeypatch.setattr(plots.plt.Axes, "text", lambda ax, x, y, text, **kw: cells.append(text))
    ours = table(runs)
    titles = plots.heatmap(runs, ours, ("sigmoid", "relu"), tmp_path / "heatmap.png")
    assert said == ["mean final test accuracy (%) ± std over seeds; n = 2 runs a cell"]  # per cell, not per triple
    assert len(titles) == 8 and titles[:2] == ["act1=relu | batch_norm=all", "act1=tanh | batch_norm=all"]
    # panel by panel (batch_norm=all first, act1 in the study's order), act2 rows, act3 columns: the table's numbers
    by_panel = ours.set_index(["batch_norm", "act1", "act2", "act3"])
    expected = [
        f"{by_panel.loc[(bn, a, b, c), 'mean']:.1f}\n±{by_panel.loc[(bn, a, b, c), 'std']:.1f}"
        for bn in ("all", "none")
        for a in ACTS
        for b in ACTS
        for c in ACTS
    ]
    assert cells == expected
    drawn = plots.curves(runs, ("sigmoid", "relu"), tmp_path / "curves.png")
    panels = {title for title, *_ in drawn}
    assert len(panels) == 16 and "act2=sigmoid, act3=relu" in panels  # a panel per last pair, as the heatmap's cells
    for panel in panels:
        looks = [(colour, style) for title, _, colour, style in drawn if title == panel]
        assert len(looks) == 8 and len(set(looks)) == 8  # act1 x batch_norm: no two lines of a panel look alike


def test_ci_is_left_out_below_three_runs(tmp_path):
    fake_sweep(tmp_path, [("relu", "relu", "relu")], seeds=[0, 1])
    row = table(read_runs(tmp_path)).iloc[0]
    assert row.n == 2 and np.isnan(row.ci95_low) and np.isnan(row.ci95_high)
    assert "given from 3 runs on" in (report(tmp_path, [("sigmoid", "relu")]).files["table.md"]).read_text()


@pytest.mark.slow
def test_plots_are_written_as_pictures(tmp_path):
    fake_sweep(tmp_path, list(itertools.product(ACTS[:2], ACTS[:2], ACTS)), seeds=[0, 1], batch_norms=("none", "last"))
    written = report(tmp_path, [("sigmoid", "relu")]).files
    for name in ("heatmap.png", "curves.png"):
        data = written[name].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_the_command_line_prints_where_the_report_is_and_the_configurations_ranked(tmp_path, capsys):
    fake_sweep(tmp_path, [("relu", "relu", "relu"), ("relu", "sigmoid", "relu")], seeds=[0])
    main([str(tmp_path)])
    out = capsys.readouterr().out
    assert f"report: {tmp_path}" in out and "the 2 configurations by mean, best first:" in out
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--pair", "sigmoid,swish"])


def console_rows(out: str) -> list[str]:
    """The configurations' rows the command printed: act1 act2 act3 mean std n, the header left out."""
    return [line.split() for line in out.splitlines() if line.split()[:1] in (["relu"], ["tanh"], ["sigmoid"])]


@pytest.mark.slow
def test_few_configurations_are_printed_once_ranked_and_many_as_the_best_and_the_worst(tmp_path, capsys):
    """4 configurations printed as the 5 best and the 5 worst were the same table twice."""
    few = tmp_path / "few"
    fake_sweep(few, list(itertools.product(["relu"], ["sigmoid", "relu"], ["relu", "tanh"])), seeds=[0, 1])
    main([str(few)])
    out = capsys.readouterr().out
    assert "the 4 configurations by mean, best first:" in out and "best" not in out.replace("best first", "")
    rows = console_rows(out)
    assert len(rows) == 4 and len({tuple(r[:3]) for r in rows}) == 4  # each once
    assert [float(r[3]) for r in rows] == sorted((float(r[3]) for r in rows), reverse=True)
    many = tmp_path / "many"
    fake_sweep(many, list(itertools.product(ACTS[:3], ["sigmoid", "relu"], ["relu", "tanh"])), seeds=[0])
    main([str(many)])
    out = capsys.readouterr().out
    assert "best 5:" in out and "worst 5:" in out and "configurations by mean" not in out
    best, worst = out.split("best 5:")[1].split("worst 5:")
    assert len(console_rows(best)) == 5 and len(console_rows(worst)) == 5  # of 12
    assert not {tuple(r) for r in console_rows(best)} & {tuple(r) for r in console_rows(worst)}


@pytest.mark.slow
def test_diagnostics_state_the_mechanism_with_numbers(tmp_path):
    triples = list(itertools.product(ACTS[:2], ["sigmoid", "tanh"], ["relu", "tanh"]))
    fake_sweep(tmp_path, triples, seeds=[0, 1, 2])
    for path in tmp_path.rglob("result.json"):  # dead outputs where the last pair is (sigmoid, relu)
        result = read_result(path.parent)
        failing = (result.hparams["act2"], result.hparams["act3"]) == ("sigmoid", "relu")
        relu_out = result.hparams["act3"] == "relu"
        result.diagnostics = {
            "layer3/dead": [0.1, 0.9 if failing else 0.1] if relu_out else [float("nan")] * 2,
            "layer3/flat_units": [0.1, 0.9 if failing else 0.1] if relu_out else [0.0, 0.02],
            "output/samples_no_gradient": [0.0, 0.6 if failing else 0.02],
            "output/samples_all_nonpos": [0.0, 0.6 if failing else 0.02],
            "output/logits_nonpos": [0.5, 0.95 if failing else 0.6],
            "layer2/saturated": [0.0, 0.05] if result.hparams["act2"] == "sigmoid" else [0.0, 0.3],
            "layer1/grad_w": [1.0, 0.01 if failing else 0.8],
        }
        result.write(path.parent)
    written = report(tmp_path, [("sigmoid", "relu")]).files
    text = written["diagnostics.md"].read_text()
    assert "90.0% of the output units are dead, <= 0 on every probe image" in text
    assert "(other runs with a relu or leaky_relu output: 10.0%): their classes can never be predicted" in text
    assert "On 60.0% of the probe images every output unit is flat" in text
    assert "60.0% of the probe images have every logit <= 0" in text
    assert "In layer2, 5.0% of the sigmoid outputs are saturated" in text
    assert "The data support dead output ReLUs, not saturation, as the mechanism." in text
    runs = read_runs(tmp_path)
    relu_runs = runs[runs.act3 == "relu"]
    r = stats.pearsonr(relu_runs["diag.layer3/dead"], relu_runs["acc"])[0]
    assert f"Pearson r = {r:.2f}" in text
    header = (
        "| dead_output | flat_output | samples_no_gradient | samples_all_nonpos | logits_nonpos | saturated_layer2 |"
    )
    assert header in text
    assert written["diagnostics.png"].read_bytes()[:4] == b"\x89PNG"

    # A smooth output (tanh here; selu, gelu... alike) has no dead units: the text speaks of flat ones.
    text = report(tmp_path, [("sigmoid", "tanh")]).files["diagnostics.md"].read_text()
    assert "of the output units are flat (tanh's slope < 0.01 on every probe image)" in text
    assert "they pass almost no gradient" in text
    assert "dead" not in text.split("## Which mechanism")[1].split("## Per group")[0]


def test_the_diagnostics_say_nothing_of_a_group_without_runs(tmp_path):
    """The init study's shape: sigmoid is layer 2's activation only in the pair's runs, so no other run has a
    saturation to give; nor did the runs record the probe images' measures."""
    fake_sweep(tmp_path, [("relu", "sigmoid", "relu"), ("relu", "relu", "relu")], seeds=[0, 1, 2])
    for path in tmp_path.rglob("result.json"):
        result = read_result(path.parent)
        failing = result.hparams["act2"] == "sigmoid"
        result.diagnostics = {"layer3/dead": [0.1, 0.8 if failing else 0.1 + 0.01 * result.hparams["seed"]]}
        if failing:  # the engine measures saturation of sigmoid and tanh layers only
            result.diagnostics["layer2/saturated"] = [0.0, 0.02]
        result.write(path.parent)
    written = report(tmp_path, [("sigmoid", "relu")]).files
    text = written["diagnostics.md"].read_text().split("## Which mechanism")[1].split("## Per group")[0]
    assert "In layer2, 2.0% of the sigmoid outputs are saturated. " in text
    assert "sigmoid or tanh there" not in text and "logit" not in text and "probe images every" not in text
    assert "nan" not in text and "nan" not in written["index.md"].read_text()


def test_a_sweep_over_init_and_output_activation_gets_those_columns(tmp_path):
    def tweak(config, i):
        config["model"].update(init="xavier" if i % 2 else "default", output_activation=False)

    fake_sweep(tmp_path, [("relu", "sigmoid", "relu")], seeds=[0, 1], tweak=tweak)
    ours = table(read_runs(tmp_path))
    assert "init" in ours.columns and "output_activation" not in ours.columns  # only what varied
    assert sorted(ours["init"]) == ["default", "xavier"]


def test_the_console_rows_show_a_swept_number_as_typed(tmp_path, capsys):
    lrs = {0: 0.003, 1: 0.0125}

    def learning_rate(config, i):
        config["model"]["optimizer"]["lr"] = lrs[i]

    fake_sweep(tmp_path, [("relu", "relu", "relu")], seeds=[0, 1], tweak=learning_rate)
    main([str(tmp_path)])
    ranked = capsys.readouterr().out.split("best first:")[1]
    assert " 0.003 " in ranked and " 0.0125 " in ranked


@pytest.mark.slow
def test_the_report_without_a_sweep_names_the_sweeps_there_are(tmp_path, monkeypatch, capsys):
    """No sweep dir is a question (make report without STUDY): the answer, exit 0; a sweep dir that does not exist
    is an error: the same list, exit 1."""
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    main([])  # returns: exit code 0
    assert "No sweep under outputs/sweeps yet: run one first (make demo)." in capsys.readouterr().out
    fake_sweep(tmp_path / "outputs" / "sweeps" / "demo", [("relu", "sigmoid", "relu")], seeds=[0])
    from sherlocked.records.table import rebuild

    rebuild(tmp_path / "outputs" / "sweeps" / "demo")
    listed = subprocess.run([sys.executable, "-m", "sherlocked.report"], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == (
        "Sweeps to report: outputs/sweeps/demo. Report one: python -m sherlocked.report outputs/sweeps/demo"
    )
    with pytest.raises(SystemExit) as stopped:
        main(["outputs/sweeps/mnist"])  # make report STUDY=mnist before that sweep ran
    assert str(stopped.value.code) == (
        "sherlocked report: no sweep at outputs/sweeps/mnist. Sweeps to report: outputs/sweeps/demo. "
        "Report one: python -m sherlocked.report outputs/sweeps/demo"
    )


def lr_sweep(directory, lrs=(0.003, 0.001, 1e-05), diagnostics=True):
    """A sweep over the learning rate (model.optimizer.lr=0.003,0.001,1e-05), each value's jobs in a folder of its
    own, with (sigmoid, relu) and (tanh, relu) as last pairs, two seeds each, and diagnostics."""
    for lr in lrs:

        def learning_rate(config, i, lr=lr):
            config["model"]["optimizer"]["lr"] = lr

        fake_sweep(
            directory / f"lr={lr}", [("relu", "sigmoid", "relu"), ("relu", "tanh", "relu")], [0, 1], tweak=learning_rate
        )
    for path in directory.rglob("result.json") if diagnostics else ():
        result = read_result(path.parent)
        result.diagnostics = {"layer3/dead": [0.1, 0.2 + 0.1 * result.hparams["seed"]], "layer2/saturated": [0.0, 0.1]}
        result.write(path.parent)
    return directory


@pytest.mark.slow
def test_a_swept_number_is_shown_as_typed_in_every_file(tmp_path, capsys):
    """Learning rates 0.003 and 0.001 are no 0.00 in any table; accuracies keep their two decimals."""
    from sherlocked.report import plots

    sweep = lr_sweep(tmp_path / "sweep")
    main([str(sweep)])
    console = capsys.readouterr().out
    shown = ("0.003", "0.001", "1e-05")
    for name in ("table.md", "index.md", "diagnostics.md"):
        rows = [line for line in (sweep / name).read_text().splitlines() if line.startswith("| relu |")]
        assert len(rows) == 6, name
        assert {row.split(" | ")[3] for row in rows} == set(shown), (name, rows)  # act1, act2, act3, then lr
    assert "| relu | sigmoid | relu | 0.003 | 15.00 | 15.00 |" in (sweep / "table.md").read_text()
    stats_md = (sweep / "stats.md").read_text()
    assert all(f"| lr={lr} |" in stats_md for lr in shown)  # the isolating test per learning rate
    runs = read_runs(sweep)
    titles = plots.heatmap(runs, table(runs), ("sigmoid", "relu"), tmp_path / "heatmap.png")
    assert titles == [f"act1=relu | lr={lr}" for lr in ("1e-05", "0.001", "0.003")]
    labels = {label for _, label, _, _ in plots.curves(runs, ("sigmoid", "relu"), tmp_path / "curves.png")}
    assert labels == {f"act1=relu, lr={lr}" for lr in shown}
    assert all(f" {lr} " in console for lr in shown)  # the best and worst rows


ERRORS = ("ModuleNotFoundError: No module named 'nope'", "RuntimeError: CUDA out of memory")


def failed_sweep(directory, triples, seeds):
    """Every job failed, each with its error line (as the engine records it); the results table rebuilt."""
    from sherlocked.records.table import rebuild

    fake_sweep(directory, triples, seeds, status=lambda t, s, bn: "failed")
    for i, path in enumerate(sorted(directory.rglob("result.json"))):
        result = read_result(path.parent)
        result.error, result.traceback = ERRORS[i % 3 == 2], f"Traceback (most recent call last):\n{ERRORS[i % 3 == 2]}"
        result.write(path.parent)
    rebuild(directory)
    return directory


def test_a_sweep_where_every_run_failed_is_reported_as_such(tmp_path, capsys):
    sweep = failed_sweep(tmp_path / "sweep", [("relu", "sigmoid", "relu"), ("relu", "tanh", "relu")], seeds=[0, 1, 2])
    main([str(sweep)])  # returns: exit code 0
    console = capsys.readouterr().out
    assert "every one of the 6 runs failed" in console and f"4 x {ERRORS[0]}" in console
    page = (sweep / "index.md").read_text()
    assert "**Answer.** None: every one of the 6 runs failed, so none has an accuracy" in page
    assert f"- 4 runs: {ERRORS[0]}\n- 2 runs: {ERRORS[1]}" in page  # the error lines, most frequent first
    assert "heatmap.png" not in page and "nan" not in page
    group = "| relu | sigmoid | relu |  |  |  |  |  | 0 |  |  | 0 | 3 |"  # no seed, mean or std: n 0, 3 failed
    assert group in (sweep / "table.md").read_text()
    assert "No run finished: nothing to test." in (sweep / "stats.md").read_text()
    assert not [p for p in sweep.iterdir() if p.suffix == ".png"] and not (sweep / "diagnostics.md").exists()


def test_a_value_of_a_swept_key_whose_runs_all_failed_gets_no_test_but_the_others_do(tmp_path):
    sweep = lr_sweep(tmp_path / "sweep", lrs=(0.003, 0.001), diagnostics=False)
    failed_sweep(sweep / "lr=10", [("relu", "sigmoid", "relu"), ("relu", "tanh", "relu")], seeds=[0, 1])
    for path in (sweep / "lr=10").rglob("result.json"):
        result = read_result(path.parent)
        result.config["model"]["optimizer"]["lr"], result.hparams["lr"] = 10.0, 10.0
        result.write(path.parent)
    (sweep / "lr=10" / "results").rename(sweep / "lr=10" / "old")  # one table: the sweep's, made from its results
    from sherlocked.records.table import rebuild

    rebuild(sweep)
    written = report(sweep, [("sigmoid", "relu")]).files
    stats_md = written["stats.md"].read_text()
    assert "| lr=0.001 |" in stats_md and "| lr=0.003 |" in stats_md and "lr=10" not in stats_md
    assert "| relu | sigmoid | relu | 10 |  |  |  |  | 0 |" in written["table.md"].read_text()


def test_a_sweep_where_every_run_diverged_says_so_and_tests_nothing_it_cannot(tmp_path, capsys):
    """Diverged runs sit at chance, each the same accuracy: no test (Welch's t would be nan), and their diagnostics,
    measured on non-finite weights, explain nothing."""
    triples = [("relu", "sigmoid", "relu"), ("relu", "tanh", "relu")]
    chance = lambda t, s, bn: 0.1  # noqa: E731
    fake_sweep(tmp_path, triples, seeds=[0, 1], status=lambda t, s, bn: "diverged", accuracy=chance)
    for path in tmp_path.rglob("result.json"):
        result = read_result(path.parent)
        result.diagnostics = {"layer3/dead": [0.0, 0.0], "layer1/grad_w": [float("nan")] * 2}
        result.write(path.parent)
    main([str(tmp_path)])
    capsys.readouterr()
    page, stats_md = (tmp_path / "index.md").read_text(), (tmp_path / "stats.md").read_text()
    assert "Every one of the 4 runs diverged" in page
    assert "No test: every run on both sides reached the same accuracy (10.00 %)" in stats_md
    assert "nan" not in page and "nan" not in stats_md
    assert "every one of these runs diverged" in (tmp_path / "diagnostics.md").read_text()
    for name in ("heatmap.png", "curves.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert_titles_fit(read_runs(tmp_path))  # one last pair a panel: narrow figures


def assert_titles_fit(runs):
    """Each figure's title lies inside the figure, however narrow it is drawn."""
    from matplotlib.text import Text

    from sherlocked.report import plots

    pair = ("sigmoid", "relu")
    for fig in (plots.heatmap_figure(runs, table(runs), pair)[0], plots.curves_figure(runs, pair)[0]):
        fig.canvas.draw()
        (title,) = [t.get_window_extent() for t in fig.findobj(Text) if t.get_text() == fig.get_suptitle()]
        assert title.x0 >= 0 and title.x1 <= fig.bbox.width, (fig.get_suptitle(), title, fig.bbox.width)
        plots.plt.close(fig)


def read_only(path, command: list[str]) -> list[str]:
    """`command` run where `path` is mounted read-only (its own mount namespace: root cannot write there either);
    as tests/test_faults.py has it."""
    mount = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", mount, str(path), *command]


@pytest.mark.slow
def test_rebuild_on_read_only_storage_names_the_results_table_it_cannot_write(tmp_path):
    import subprocess
    import sys

    from sherlocked.records.layout import results_table
    from sherlocked.records.table import rebuild

    sweep = fake_sweep(tmp_path / "sweep", [("relu", "sigmoid", "relu")], seeds=[0, 1])
    rebuild(sweep)
    report_command = [sys.executable, "-m", "sherlocked.report", str(sweep), "--out", str(tmp_path / "report")]
    refused = subprocess.run(read_only(sweep, [*report_command, "--rebuild"]), capture_output=True, text=True)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    said = refused.stderr.strip()
    assert said.startswith(f"sherlocked report: --rebuild cannot write the results table into {results_table(sweep)}")
    assert "needs write access to the sweep dir; without --rebuild the report reads" in said, said
    assert str(tmp_path / "report") not in said  # the report's folder was never the trouble
    read_as_it_is = subprocess.run(read_only(sweep, report_command), capture_output=True, text=True)
    assert read_as_it_is.returncode == 0, read_as_it_is.stderr[-3000:]


def test_one_job_in_two_dirs_counts_once_without_a_table_too(tmp_path):
    fake_sweep(tmp_path, [("relu", "relu", "relu")], seeds=[0, 1])
    seed_0 = next(tmp_path.glob("*seed=0"))
    spelled_out = tmp_path / f"act1=relu,{seed_0.name}"  # the same job, its default spelled out
    spelled_out.mkdir()
    (spelled_out / "result.json").write_bytes((seed_0 / "result.json").read_bytes())
    assert sorted(read_runs(tmp_path)["seed"]) == [0, 1]
