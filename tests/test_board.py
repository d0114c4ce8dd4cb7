"""python -m sherlocked.board (make tensorboard): the merged HParams experiment it serves first, single runs in its
filters, how it ends, its --help. Its outputs are synthetic (a sweep's results table, result.json files, event
files as sherlocked writes them) where training would only cost time; the single run is a real one."""

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from sherlocked import board
from sherlocked.records import layout, table
from sherlocked.records.dashboard import event, fresh_writer, scalars, session_summaries
from sherlocked.records.results import Result
from sherlocked.spec.config import hparams

pytestmark = pytest.mark.slow  # TensorBoard started and stopped for real

ACTS = ("relu", "tanh", "sigmoid", "selu")
BOARD = [sys.executable, "-m", "sherlocked.board"]


def synthetic_job(study: str, acts: tuple, seed: int, dataset: str) -> Result:
    config = {
        **{f"act{i}": act for i, act in enumerate(acts, 1)},
        "seed": seed,
        "study": study,
        "dataset": {"name": dataset, "batch_size": 32},
        "model": {"batch_norm": "none", "init": "default", "output_activation": True, "optimizer": {"lr": 0.01}},
        "trainer": {"max_epochs": 2},
    }
    overrides = [f"act{i}={act}" for i, act in enumerate(acts, 1)] + [f"seed={seed}"]
    found = Result(status="ok", config=config, hparams=hparams(config), overrides=overrides, final_test_acc=0.5)
    found.history = {"test_acc": [0.4, 0.5], "test_loss": [1.0, 0.9], "train_loss": [1.1, 0.8]}
    return found


def write_run_events(folder: Path, result: Result) -> None:
    """A run's events as a sweep's job writes them: its curves per epoch, then its HParams session."""
    writer = fresh_writer(folder)
    for epoch, (acc, loss) in enumerate(zip(result.history["test_acc"], result.history["test_loss"]), 1):
        writer.add_event(event(scalars({"accuracy/test": acc, "loss/test": loss}), step=epoch))
    for summary in session_summaries(result.hparams):
        writer.add_event(event(summary, step=2))
    writer.close()


def write_sweep(sweep_dir: Path, study: str, seeds: int, dataset: str = "mnist_5k") -> None:
    """A finished sweep of 64 activation triples x `seeds`: job dirs with result.json, the results table, each
    job's TensorBoard run."""
    jobs, results = [], []
    for seed, acts in itertools.product(range(seeds), itertools.product(ACTS, repeat=3)):
        result = synthetic_job(study, acts, seed, dataset)
        job = ",".join(result.overrides)
        (sweep_dir / job).mkdir(parents=True)
        result.write(sweep_dir / job)
        write_run_events(sweep_dir / layout.TENSORBOARD / job, result)
        jobs.append(job)
        results.append(result)
    table.append(sweep_dir, jobs, results)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, data_root) -> Path:
    """outputs/ with a demo sweep of 320 runs on mnist_5k and a real single run of the default study on
    fashion_mnist (the filters must offer both)."""
    from hydra import compose, initialize_config_dir

    from sherlocked.spec.config import CONFIG_DIR
    from sherlocked.training.engine import run

    root = tmp_path_factory.mktemp("outputs")
    write_sweep(root / "sweeps" / "demo", "demo", seeds=5)
    overrides = ["trainer=cpu", "trainer.max_epochs=1", "trainer.enable_progress_bar=false", "seed=7"]
    overrides += ["model.widths=[784,16,12,10]", "dataset=fashion_mnist", f"dataset.root={data_root}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    single_run = root / "runs" / "2025-01-01" / "12-00-00"  # hydra.run.dir's layout
    (result,) = run([cfg], [single_run], [["seed=7", "dataset=fashion_mnist"]], quiet=True)
    assert result.status == "ok"
    return root


def domains_of(hparam_infos) -> dict[str, list]:
    return {info["name"]: info.get("domainDiscrete") for info in hparam_infos}


def test_single_runs_are_in_the_merged_experiments_filters(outputs, tmp_path):
    assert board.write_summary(outputs, tmp_path / "experiment")
    events = EventAccumulator(str(tmp_path / "experiment"))
    events.Reload()
    (content,) = events.PluginTagToContent("hparams").values()
    summary = HParamsPluginData.FromString(content).experiment
    domains = {info.name: list(info.domain_discrete) for info in summary.hparam_infos}
    assert domains["dataset"] == ["fashion_mnist", "mnist_5k"] and domains["study"] == ["default", "demo"]
    assert domains["seed"] == ["0", "1", "2", "3", "4", "7"]  # whole numbers still, in their order
    assert domains["output_activation"] == [True]  # one bool, never "True" beside it


@contextlib.contextmanager
def board_serving(outputs: Path, tmp_path: Path) -> Iterator[tuple[subprocess.Popen, int, list[int]]]:
    """python -m sherlocked.board over `outputs` on 127.0.0.1 (an unused port), its temporary folders in tmp_path:
    it, its port once it says where it serves, and the processes it started. Whatever of them is left at the end
    is killed (a TensorBoard child served on after its board had gone)."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    command = [*BOARD, str(outputs), "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    started = []
    try:
        port = port_of(server)
        started = descendants(server.pid)
        yield server, port, started
    finally:
        if server.poll() is None:
            server.kill()
        for pid in started:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        server.wait()


def port_of(server: subprocess.Popen) -> int:
    """The port the board serves on, once it says so (TensorBoard's line on stderr)."""
    for line in server.stderr:
        if found := re.search(r"http://127\.0\.0\.1:(\d+)/", line):
            return int(found[1])
    raise AssertionError(f"the board stopped before serving (exit code {server.wait()})")


def experiment_answer(port: int) -> dict:
    """The HParams plugin's experiment, asked as the HParams tab asks it."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/data/plugin/hparams/experiment",
        data=json.dumps({"experimentName": "", "hparamsLimit": 1000}).encode(),
        headers={"Content-Type": "application/json", "X-TensorBoard-Feature-Flags": "{}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        started = children.get(todo.pop(), [])
        found += started
        todo += started
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended: only its parent has not read its exit code yet


def serving(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5).close()
    except (urllib.error.URLError, ConnectionError):
        return False
    return True


def test_the_first_hparams_answer_is_the_merged_experiment(outputs, tmp_path):
    """TensorBoard answers with the experiment it infers from the runs read so far until it has read the summary,
    and the HParams tab keeps its first answer: the board serves from the moment it answers with the summary."""
    started = time.monotonic()
    with board_serving(outputs, tmp_path) as (server, port, _):
        first = experiment_answer(port)
        waited = time.monotonic() - started
        server.terminate()
    assert first.get("timeCreatedSecs"), f"not the summary: {len(first.get('hparamInfos', []))} inferred columns"
    domains = domains_of(first["hparamInfos"])
    assert domains["study"] == ["default", "demo"] and domains["seed"] == ["0", "1", "2", "3", "4", "7"]
    assert [metric["displayName"] for metric in first["metricInfos"]][:1] == ["final test accuracy"]
    print(f"first HParams answer, the summary, {waited:.1f} s after the board started")


def board_folder(tmp_path: Path) -> list[Path]:
    return list(tmp_path.glob("sherlocked-hparams-*"))


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_stop_signal_ends_tensorboard_and_removes_the_summarys_folder(outputs, tmp_path, stop):
    with board_serving(outputs, tmp_path) as (server, port, started):
        assert board_folder(tmp_path) and serving(port)
        server.send_signal(stop)
        assert server.wait(timeout=30) == 0
        assert not serving(port), "TensorBoard serves on without the board"
        assert not [pid for pid in started if alive(pid)]
        assert not board_folder(tmp_path)


def test_nothing_of_tensorboard_outlives_the_board_killed_with_9(outputs, tmp_path):
    with board_serving(outputs, tmp_path) as (server, port, started):
        server.kill()
        server.wait(timeout=30)
        assert not serving(port), "TensorBoard serves on without the board"
        assert not [pid for pid in started if alive(pid)]


def test_help_is_the_boards_own(tmp_path):
    shown = subprocess.run([*BOARD, "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("usage: python -m sherlocked.board [FOLDER] [TensorBoard option ...]")
    assert "FOLDER" in shown.stdout and "goes to TensorBoard" in shown.stdout
    assert "TensorFlow" not in shown.stdout + shown.stderr
