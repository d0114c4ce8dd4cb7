"""Everything around the engine, for CNNs and skip connections (issue 29, item 4): diagnostics of conv layers, the
mechanism's verdict, --plan's FLOPs and memory, the report whatever the depth and with residual as a swept key, and
TensorBoard (each member's events, conv layers' histograms, the sweep's HParams with the CNN's keys). A mid-step
SIGTERM of a CNN population is tests/test_faults.py's test, parametrized by model; every backend with a CNN is
tests/test_backends.py's."""

import json
import math
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from sherlocked.records import layout
from sherlocked.records.dashboard import write_experiment_of
from sherlocked.report import plots
from sherlocked.report.cli import report
from sherlocked.report.mechanism import diagnostics_markdown, measured_columns, mechanism_text
from sherlocked.report.runs import group_keys, read_runs
from sherlocked.spec.checks import MemberSpec
from sherlocked.spec.shapes import Conv
from sherlocked.training.diagnostics import measure
from sherlocked.training.population import Population
from tests.conftest import CNN, RESIDUAL, SMALL, checkout_on_path

# A member on 8x8 images: conv 4 channels (3x3: 6x6, no pool), conv 3 channels (3x3: 4x4, max-pooled to 2x2), Linear.
CONVS = (Conv(4, 3, 0, "none"), Conv(3, 3, 0, "max"))


def cnn(*acts: str, **kw) -> Population:
    return Population([MemberSpec((12, 5), tuple(acts), convs=CONVS, image=(1, 8, 8), **kw)])


def test_a_conv_layers_dead_units_are_its_channels_dead_at_every_position_of_every_probe_image():
    population = cnn("relu", "relu", "relu")
    first = population.layers[0]
    with torch.no_grad():
        first.weight.zero_()
        first.bias.copy_(torch.tensor([[-1.0, 1.0, -2.0, 0.0]]))  # channels 0 and 2 below zero everywhere
        first.weight[0, 3, 0, 1, 1] = 1.0  # channel 3 is the pixel under its kernel's centre: > 0 at some positions
    probe = torch.randn(16, 64)  # some pixels of every image are negative: channel 3 is <= 0 there, not everywhere
    values, trace = measure(population, probe)
    pre = trace[0][0][0]  # [B, C, H, W]
    assert (pre[:, 3] <= 0).any() and (pre[:, 3] > 0).any()
    assert values["layer1/dead"].item() == 0.5  # 2 of its 4 channels; not a fraction of positions
    assert values["layer1/flat_units"].item() == 0.5
    zero = (2 + (pre[:, 3] <= 0).float().mean().item()) / 4  # outputs: a dead channel's all, channel 3's negatives
    assert values["layer1/zero"].item() == pytest.approx(zero)
    assert values["layer1/dead"].shape == (1,)
    with torch.no_grad():
        first.bias.fill_(-1e3)
    assert measure(population, probe)[0]["layer1/dead"].item() == 1.0


def test_a_conv_layers_saturation_counts_each_channels_outputs_at_every_position():
    population = cnn("relu", "sigmoid", "relu")
    second = population.layers[1]
    with torch.no_grad():
        second.weight.zero_()
        second.bias.copy_(torch.tensor([[10.0, -10.0, 0.0]]))  # saturated high, low, and in the middle
        second.weight[0, 2, :, 1, 1] = 100.0  # channel 2 follows the centre of each input channel: saturated where
    probe = torch.randn(16, 64)  # its 16 inputs are large, but not where they are near zero
    values, trace = measure(population, probe)
    post = trace[1][1][0]  # [B, C, H, W], before pooling
    saturated = ((post < 0.01) | (post > 0.99)).float().mean((0, 2, 3))
    assert saturated[0] == saturated[1] == 1.0 and 0 < saturated[2] < 1
    assert values["layer2/saturated"].item() == pytest.approx(saturated.mean().item())
    assert math.isnan(values["layer2/dead"].item()) and math.isnan(values["layer1/saturated"].item())
    assert values["layer2/flat_units"].item() == pytest.approx(2 / 3)  # channel 2 is not flat everywhere


def test_a_cnn_populations_diagnostics_are_each_members_solo_diagnostics():
    members = [
        MemberSpec((12, 5), ("sigmoid", "relu", "relu"), convs=CONVS, image=(1, 8, 8), seed=0),
        MemberSpec((12, 5), ("relu", "tanh", "sigmoid"), convs=CONVS, image=(1, 8, 8), batch_norm=(1, 2), seed=1),
    ]
    together, batch, probe = Population(members), torch.randn(2, 16, 64), torch.randn(20, 64)
    together(batch)  # training mode: moves the BN running statistics
    values, _ = measure(together, probe)
    for k, member in enumerate(members):
        alone = Population([member])
        alone(batch[k : k + 1])
        solo, _ = measure(alone, probe)
        for name, value in values.items():
            torch.testing.assert_close(value[k : k + 1], solo[name], equal_nan=True, rtol=1e-5, atol=1e-6)


def train(directory: Path, data_root: Path, *overrides: str) -> None:
    """python -m sherlocked.train -m: a population sweep on the tiny data into `directory`."""
    command = [sys.executable, "-m", "sherlocked.train", "-m", "hydra/launcher=population", *SMALL]
    command += [f"dataset.root={data_root}", *overrides, f"hydra.sweep.dir={directory}"]
    env = {**os.environ, "PYTHONPATH": checkout_on_path()}
    done = subprocess.run(command, capture_output=True, text=True, cwd=directory.parent, env=env)
    assert done.returncode == 0, done.stderr[-3000:]


CNN_GRID = ["act2=sigmoid,relu", "act3=relu,sigmoid", "seed=0,1"]  # the study's question, asked of a CNN


@pytest.fixture(scope="module")
def cnn_sweep(tmp_path_factory, data_root) -> Path:
    """A finished CNN sweep of 8 jobs (one population) with diagnostics and their histograms."""
    directory = tmp_path_factory.mktemp("cnn") / "sweep"
    histograms = ["diagnostics.histograms=true", "diagnostics.interval=8", "trainer.log_every_n_steps=4"]
    train(directory, data_root, *CNN, *CNN_GRID, *histograms)
    return directory


def results(directory: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(directory)): json.loads(p.read_text()) for p in directory.rglob("result.json")}


@pytest.mark.slow
def test_the_mechanism_verdict_over_a_cnn_sweep_reads_its_conv_layers(cnn_sweep):
    """The last pair of a 2-conv CNN is (conv layer 2, the head): its saturation is conv layer 2's, per channel."""
    found = results(cnn_sweep)
    assert len(found) == 8 and {r["status"] for r in found.values()} == {"ok"}
    runs = read_runs(cnn_sweep, diagnostics=measured_columns())
    text = mechanism_text(runs, ("sigmoid", "relu"))
    hit = [r for r in found.values() if (r["config"]["act2"], r["config"]["act3"]) == ("sigmoid", "relu")]
    dead = sum(r["diagnostics"]["layer3/dead"][-1] for r in hit) / len(hit)
    saturated = sum(r["diagnostics"]["layer2/saturated"][-1] for r in hit) / len(hit)
    accuracy = 100 * sum(r["final_test_acc"] for r in hit) / len(hit)
    said = f"In the 2 runs whose last pair is (sigmoid, relu) (mean final test accuracy {accuracy:.1f}%"
    assert text.startswith(said), text
    assert f"{100 * dead:.1f}% of the output units are dead, <= 0 on every probe image" in text
    assert f"In layer2, {100 * saturated:.1f}% of the sigmoid outputs are saturated" in text, text
    assert "The data support" in text or "Neither the output units nor saturation" in text
    assert "nan" not in text and "No finished run" not in text
    page = diagnostics_markdown(runs, ("sigmoid", "relu"))
    header = next(line for line in page.splitlines() if line.startswith("| act1"))
    assert "| saturated_layer2 |" in header and "| dead_output |" in header, header


@pytest.mark.slow
def test_the_report_of_a_cnn_sweep_draws_its_swept_activations(cnn_sweep, tmp_path):
    done = report(cnn_sweep, [("sigmoid", "relu")], tmp_path / "report")
    assert {"heatmap.png", "curves.png", "table.md", "stats.md", "diagnostics.md", "index.md"} <= set(done.files)
    assert all(path.stat().st_size > 0 for path in done.files.values())
    assert group_keys(done.runs) == (["act1", "act2", "act3"], [])  # channels, kernel, pool: shared, not swept
    assert done.runs["channels"].unique().tolist() == ["2-3"]
    assert sorted(zip(done.table["act2"], done.table["act3"], done.table["n"])) == [
        (a2, a3, 2) for a2 in ("relu", "sigmoid") for a3 in ("relu", "sigmoid")
    ]
    grid = plots.heatmap_layout(done.runs, done.table)
    assert (grid.rows_key, grid.cols_key, grid.shape) == ("act2", "act3", (2, 2))
    drawn = plots.curves(done.runs, ("sigmoid", "relu"), tmp_path / "curves.png")
    assert len({panel for panel, *_ in drawn}) == 4  # a panel for each last pair
    assert plots.measure_label("saturated_layer2", done.runs) == "saturated channels of layer 2 (of 3), fraction"
    assert plots.measure_label("dead_output", done.runs) == "dead output units (of 10), fraction"
    page = (tmp_path / "report" / "index.md").read_text()  # the setup names the conv layers, not the head alone
    assert "widths 10" in page and "channels 2-3, kernel 3, padding 0, pool max" in page


def events(folder: Path) -> EventAccumulator:
    found = EventAccumulator(str(folder), size_guidance={"histograms": 0, "scalars": 0})
    found.Reload()
    return found


@pytest.mark.slow
def test_each_cnn_members_tensorboard_run_has_its_scalars_and_its_conv_layers_histograms(cnn_sweep, data_root):
    swept = ("act2=", "act3=", "seed=")  # a run is named by what its sweep varied
    found = {",".join(o for o in r["overrides"] if o.startswith(swept)): r for r in results(cnn_sweep).values()}
    runs = sorted(p.name for p in (cnn_sweep / layout.TENSORBOARD).iterdir() if p.name != layout.MEAN)
    assert runs == sorted(found) and len(runs) == 8  # a run a member
    probe = min(256, 100)  # diagnostics.probe_size of the tiny data's 100 test images
    for run in runs:
        run_events = events(cnn_sweep / layout.TENSORBOARD / run)
        tags = run_events.Tags()
        accuracy = [e.value for e in run_events.Scalars("accuracy/test")]
        assert accuracy == pytest.approx(found[run]["history"]["test_acc"]) and len(accuracy) == 2
        assert {"loss/train", "mechanism/layer1/dead", "mechanism/layer2/saturated"} <= set(tags["scalars"])
        # Conv layers' histograms hold every position of every probe image: [probe, C, H, W] before pooling.
        for layer, values in ((1, 2 * 26 * 26), (2, 3 * 11 * 11), (3, 10)):
            for what in ("pre_activation", "activation"):
                (first, second) = run_events.Histograms(f"mechanism/layer{layer}/{what}")  # an epoch's end each
                assert first.histogram_value.num == second.histogram_value.num == probe * values
        last = run_events.Histograms("mechanism/layer2/activation")[-1].histogram_value  # a conv layer's outputs
        assert last.min >= 0 and (last.max <= 1 or found[run]["config"]["act2"] == "relu")  # sigmoid's, or relu's


def hparams_data(folder: Path) -> list[HParamsPluginData]:
    return [HParamsPluginData.FromString(c) for c in events(folder).PluginTagToContent("hparams").values()]


@pytest.mark.slow
def test_a_cnn_sweeps_hparams_show_its_channels_kernel_and_pool(cnn_sweep, sweep, tmp_path):
    (summary,) = [d.experiment for d in hparams_data(cnn_sweep / layout.HPARAMS)]
    domains = {info.name: list(info.domain_discrete) for info in summary.hparam_infos}
    assert domains["act2"] == ["relu", "sigmoid"] and domains["act3"] == ["relu", "sigmoid"]
    assert (domains["channels"], domains["kernel"], domains["padding"], domains["pool"]) == (
        ["2-3"],
        ["3"],
        ["0"],
        ["max"],
    )
    assert domains["widths"] == ["10"]
    run = next(p for p in (cnn_sweep / layout.TENSORBOARD).iterdir() if p.name != layout.MEAN)
    (start,) = [d.session_start_info for d in hparams_data(run) if d.HasField("session_start_info")]
    assert start.hparams["channels"].string_value == "2-3" and start.hparams["pool"].string_value == "max"
    with sweep(tmp_path / "mlp", "act3=relu,tanh", "hydra/launcher=population", "trainer.max_epochs=1"):
        (mlp,) = [d.experiment for d in hparams_data(tmp_path / "mlp" / layout.HPARAMS)]
        names = {info.name for info in mlp.hparam_infos}
        assert "widths" in names and not names & {"channels", "kernel", "padding", "pool"}  # an MLP has none of them
        write_experiment_of([cnn_sweep, tmp_path / "mlp"], tmp_path / "both")  # python -m sherlocked.board's summary
        (both,) = [d.experiment for d in hparams_data(tmp_path / "both")]
        domains = {info.name: list(info.domain_discrete) for info in both.hparam_infos}
        assert domains["widths"] == ["10", "784-16-12-10"] and domains["channels"] == ["2-3"]  # no nan for the MLP


@pytest.mark.slow
def test_plan_of_a_cnn_sweep_counts_its_conv_layers_flops_and_memory(tmp_path):
    from tests.test_plan import plan_command

    bench = tmp_path / "outputs" / "bench"
    bench.mkdir(parents=True)
    overhead = {"framework_overhead_s_per_job": 0.02}  # a slow device: the estimate in seconds, to the FLOP
    cnn = {"model": "cnn", "population_gflops": 0.1}  # the CNN's speed, not the MLP's, estimates a CNN sweep
    figures = {"device": "cpu (2 threads)", "model": "mlp", "population_gflops": 50.0, "sweep_overhead": overhead}
    figures["shapes"] = {"cnn": cnn}
    (bench / "bench_cpu.json").write_text(json.dumps(figures))
    done = plan_command(tmp_path, *CNN, *CNN_GRID, "dataset=mnist_5k", "trainer=cpu", "diagnostics=off")
    assert done.returncode == 0, done.stderr[-3000:]
    plan, memory, time, _ = done.stdout.strip().splitlines()[-4:]
    assert plan.endswith("8 to train in 1 population (1 x 8 members) on this process, cpu"), plan
    # By hand, per sample: conv 1 (1 -> 2 channels, 3x3) computes 2x26x26 values of 9 multiply-adds each, conv 2
    # (2 -> 3) 3x11x11 of 18, the head 10 of 75 (3x5x5, pooled); pooling counts nothing.
    forward = [2 * 9 * 2 * 26 * 26, 2 * 18 * 3 * 11 * 11, 2 * 75 * 10]
    assert forward == [24_336, 13_068, 1_500]
    train = 2 * sum(forward) + sum(forward[1:])  # forward, weight gradients, input gradients but the first layer's
    epoch = train * 32 * 125 + sum(forward) * 1000  # mnist_5k: 4,000 training images in batches of 32, 1,000 tests
    seconds = 8 * (10 * epoch / 0.1e9 + 0.02)  # 8 jobs of 10 epochs at 0.1 GFLOP/s, 20 ms a job besides
    assert time.startswith(f"  time: about {timedelta(seconds=round(seconds))} on this machine"), time
    assert round(seconds) == 327
    # Memory: parameters (x4: weights, gradients, momentum, slack) and every layer's values for a batch of 32 and a
    # test batch of 1,000 (x4), 4 bytes each; the data: 5,000 images of 784.
    params = (2 * 9 + 2) + (3 * 18 + 3) + (75 * 10 + 10)
    values = 2 * 26 * 26 + 3 * 11 * 11 + 10
    member = 4 * (4 * params + 4 * values * (32 + 1000))
    total = 8 * member + 4 * 5000 * 784
    assert memory == (
        f"  memory: about {total / 2**30:.2f} GiB a device (the largest population: 8 members x "
        f"{member / 2**20:.1f} MiB, and the data 15 MiB)"
    )
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow
def test_the_report_of_a_five_layer_cnn_sweep_draws_its_last_pair_in_panels_of_the_activations_before(sweep, tmp_path):
    """3 conv layers and a head of 2 (act1..act5): the heatmap's grid is (act4, act5), a panel per act3."""
    deeper = ["model.channels=[2,2,2]", "model.pool=[max,max,none]", "model.widths=[6,10]"]  # 28: 13, 5, 3x3
    grid = ["act3=relu,tanh", "+act4=relu,tanh", "+act5=relu,sigmoid", "hydra/launcher=population"]
    with sweep(tmp_path / "sweep", *CNN, *deeper, *grid, "trainer.max_epochs=1"):
        done = report(tmp_path / "sweep", [("tanh", "relu")], tmp_path / "report")
        assert group_keys(done.runs) == ([f"act{i}" for i in range(1, 6)], [])
        assert len(done.runs) == 8 and set(done.runs["status"]) == {"ok"}
        assert {"heatmap.png", "curves.png", "diagnostics.md"} <= set(done.files)
        grid_of = plots.heatmap_layout(done.runs, done.table)
        assert (grid_of.rows_key, grid_of.cols_key, grid_of.shape) == ("act4", "act5", (2, 2))
        assert [title for title, _ in grid_of.panels] == [
            "act1=relu, act2=relu, act3=relu",
            "act1=relu, act2=relu, act3=tanh",
        ]
        drawn = plots.curves(done.runs, ("tanh", "relu"), tmp_path / "curves.png")
        assert sorted({panel for panel, *_ in drawn}) == [
            f"act4={a}, act5={b}" for a in ("relu", "tanh") for b in ("relu", "sigmoid")
        ]
        assert {label for _, label, *_ in drawn} == {
            "act1=relu, act2=relu, act3=relu",
            "act1=relu, act2=relu, act3=tanh",
        }
        table_md = (tmp_path / "report" / "table.md").read_text()
        assert "| act1 | act2 | act3 | act4 | act5 | seed0 |" in table_md
        diagnostics = (tmp_path / "report" / "diagnostics.md").read_text()
        assert "saturated_layer4" in diagnostics and "nan" not in diagnostics.split("## Per group")[0]
        assert plots.measure_label("saturated_layer4", done.runs) == "saturated units of layer 4 (of 6), fraction"


@pytest.mark.slow
def test_the_report_of_a_residual_sweep_shows_residual_as_a_swept_key(sweep, tmp_path):
    grid = ["model.residual=false,true", "act3=relu,sigmoid", "seed=0,1", "hydra/launcher=population"]
    with sweep(tmp_path / "sweep", *RESIDUAL, *grid, "trainer.max_epochs=1"):
        found = results(tmp_path / "sweep")
        assert sorted(r["hparams"]["residual"] for r in found.values()) == ["False"] * 4 + ["True"] * 4
        done = report(tmp_path / "sweep", [("relu", "sigmoid")], tmp_path / "report")
        assert group_keys(done.runs) == (["act1", "act2", "act3"], ["residual"])
        assert sorted(zip(done.table["residual"], done.table["act3"], done.table["n"])) == [
            (residual, act, 2) for residual in ("False", "True") for act in ("relu", "sigmoid")
        ]
        table_md = (tmp_path / "report" / "table.md").read_text()
        assert "| act1 | act2 | act3 | residual | seed0 | seed1 |" in table_md
        rows = [line for line in table_md.splitlines() if line.startswith("| relu | relu |")]
        assert sorted(row.split(" | ")[3] for row in rows) == ["False", "False", "True", "True"]
        assert [title for title, _ in plots.heatmap_layout(done.runs, done.table).panels] == [
            "act1=relu | residual=False",
            "act1=relu | residual=True",
        ]
        drawn = plots.curves(done.runs, ("relu", "sigmoid"), tmp_path / "curves.png")
        assert [(panel, label) for panel, label, *_ in drawn] == [  # a line each, told apart by its style
            (f"act2=relu, act3={act}", f"act1=relu, residual={residual}")
            for act in ("relu", "sigmoid")
            for residual in ("False", "True")
        ]
        assert len({style for *_, style in drawn}) == 2
        assert plots.measure_label("saturated_layer2", done.runs) == "saturated units of layer 2 (of 8), fraction"


@pytest.mark.slow
def test_the_report_of_a_study_of_an_mlp_and_a_cnn_gives_each_its_panel_and_lines(sweep, tmp_path, capsys):
    """An MLP's runs and a CNN's in one study (two sweeps into its dir, as model=mlp,cnn would): the MLP's lack the
    CNN's keys (NaN). Its heatmap panel, its curves and its strata were left out (pandas drops NaN groups), its
    curves' lines were looked up and not found (a KeyError), their labels said channels=nan."""
    grid = ["act3=relu,sigmoid", "seed=0,1", "hydra/launcher=population", "trainer.max_epochs=1"]
    with sweep(tmp_path / "sweep", *grid), sweep(tmp_path / "sweep", *CNN, *grid):
        done = report(tmp_path / "sweep", [("relu", "sigmoid")], tmp_path / "report")
        assert group_keys(done.runs) == (["act1", "act2", "act3"], ["widths", "channels", "kernel", "padding", "pool"])
        cnn_named = "widths=10, channels=2-3, kernel=3, padding=0, pool=max"
        heatmap = plots.heatmap_layout(done.runs, done.table)
        assert [title for title, _ in heatmap.panels] == [f"act1=relu | {cnn_named}", "act1=relu | widths=784-16-12-10"]
        figure, _ = plots.heatmap_figure(done.runs, done.table, ("relu", "sigmoid"))
        grids = [ax.images[0].get_array() for ax in figure.axes if ax.images]
        means = done.table.set_index(["widths", "act3"])["mean"]
        for grid_of, widths in zip(grids, ("10", "784-16-12-10")):  # every cell filled, from the table
            assert grid_of.tolist() == [[means[(widths, "relu")], means[(widths, "sigmoid")]]]
        drawn = plots.curves(done.runs, ("relu", "sigmoid"), tmp_path / "curves.png")
        assert [label for _, label, *_ in drawn] == [f"act1=relu, {cnn_named}", "act1=relu, widths=784-16-12-10"] * 2
        table_md = (tmp_path / "report" / "table.md").read_text()
        assert "| relu | relu | relu | 784-16-12-10 |  |  |  |  |" in table_md  # the MLP has no conv layers
        page = (tmp_path / "report" / "index.md").read_text()
        assert "channels (2 values)" in page and "nan" not in page
