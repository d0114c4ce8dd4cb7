"""Each member a run in every tracker the config names (conf/logger): MLflow (a real SQLite store, read back through
MLflow's own client), W&B offline (its run files, read in their documented format), CSV (Lightning's), any
Lightning logger; several at once; a killed population's runs resumed; the push of a finished sweep."""

import csv
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from lightning.pytorch.loggers.logger import DummyLogger

from sherlocked.records.results import EPOCH_CURVES, FINAL
from tests.conftest import SMALL
from tests.test_backends import GRID, results

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[1]
TINY = ["model.widths=[784,16,12,10]"]


def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def runs_of(uri: str, study: str = "default") -> dict[str, object]:
    """The study's runs in the store at `uri`, by their job dir's name, read back through MLflow's client."""
    client = mlflow.tracking.MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    found = client.search_runs([experiment.experiment_id]) if experiment else []
    return {Path(run.data.tags["sherlocked.job_dir"]).name: run for run in found}


def history(uri: str, run, name: str) -> list[tuple[int, float]]:
    points = mlflow.tracking.MlflowClient(uri).get_metric_history(run.info.run_id, name)
    return sorted((point.step, point.value) for point in points)


def mlflow_equals_results(uri: str, sweep_dir: Path) -> None:
    """Every job's run holds its result: params, epoch curves, final metrics, status, tags."""
    found, runs = results(sweep_dir), runs_of(uri)
    assert sorted(runs) == sorted(found)
    for job, result in found.items():
        run = runs[job]
        assert run.info.status == "FINISHED" and run.data.tags["study"] == "default"
        assert run.data.params == {name: str(value) for name, value in result["hparams"].items()}
        for key, name in EPOCH_CURVES.items():
            assert history(uri, run, name) == list(zip(result["history"]["epoch"], result["history"][key])), name
        assert {name: run.data.metrics[FINAL + name] for name in result["final"]} == result["final"]


def wandb_records(path: Path) -> list:
    """A W&B run file's records: the LevelDB log format (a 7-byte header, then 32 KiB blocks of records, each a
    7-byte header: checksum, length, type (full, first, middle, last)) holding W&B's Record protobufs."""
    from wandb.proto.wandb_internal_pb2 import Record

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, position, pending, records = 32768, 7, b"", []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # full, last
            records.append(Record.FromString(pending))
            pending = b""
    return records


def wandb_runs(folder: Path) -> dict[str, dict]:
    """Each offline W&B run under `folder` by its id (offline-run-<time>-<id>), its files in the order they began:
    their config and history rows (W&B's service writes them on its own: the file of a process just killed may
    still be growing)."""
    runs = {}
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run = {"id": path.parent.name.rsplit("-", 1)[1], "config": {}, "history": [], "name": None}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["name"], run["group"] = record.run.display_name, record.run.run_group
                run["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "history":
                run["history"].append(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                )
        runs.setdefault(run["id"], []).append(run)
    return runs


def epochs_logged(run: dict, name: str) -> list[tuple[int, float]]:
    return [(row["epoch"], row[name]) for row in run["history"] if name in row]


def same_outcomes(a: dict, b: dict) -> bool:
    """The same jobs with the same results, the trackers they were logged to aside."""
    keys = ("status", "final_test_acc", "history", "hparams")
    same = set(a) == set(b) and all(a[job][key] == b[job][key] for job in a for key in keys)
    return same and all({**a[job]["config"], "logger": 0} == {**b[job]["config"], "logger": 0} for job in a)


def test_every_tracker_at_once_holds_each_members_runs_as_its_results_say(sweep, tmp_path):
    """logger=[tensorboard,csv,mlflow,wandb] on a sweep of two populations: each job a run in each, equal to its
    result.json; the results equal a sweep's with no tracker, and pushing that one gives the same MLflow runs."""
    uri = store(tmp_path / "live")
    trackers = ["logger=[tensorboard,csv,mlflow,wandb]", f"logger.mlflow.tracking_uri={uri}"]
    trackers += [f"logger.wandb.save_dir={tmp_path / 'live'}"]
    with sweep(tmp_path / "live", *GRID, *trackers), sweep(tmp_path / "off", *GRID, "logger=off"):
        live = tmp_path / "live"
        assert same_outcomes(results(live), results(tmp_path / "off"))  # whatever the logger
        mlflow_equals_results(uri, live)
        for job, result in results(live).items():
            rows = (live / job / "csv" / "metrics.csv").read_text().splitlines()
            header = rows[0].split(",")
            column = [row.split(",")[header.index("accuracy/test")] for row in rows[1:]]
            assert [float(v) for v in column if v] == result["history"]["test_acc"]
            assert (live / job / "csv" / "hparams.yaml").is_file()
            assert (
                live / "tensorboard" / ",".join(o for o in result["overrides"] if o.startswith(("act3=", "seed=")))
            ).is_dir()
        by_name = {runs[0]["name"]: runs[0] for runs in wandb_runs(live).values()}
        assert len(by_name) == 4 and all(len(runs) == 1 for runs in wandb_runs(live).values())
        for result in results(live).values():
            run = by_name[",".join(o for o in result["overrides"] if o.startswith(("act3=", "seed=")))]
            assert run["group"] == "default" and run["config"]["act3"] == result["hparams"]["act3"]
            assert run["config"]["seed"] == result["hparams"]["seed"]
            assert epochs_logged(run, "accuracy/test") == list(
                zip(*[result["history"][k] for k in ("epoch", "test_acc")])
            )
        pushed = store(tmp_path / "pushed")
        report = [sys.executable, "-m", "sherlocked.report", str(tmp_path / "off"), "--to", "mlflow", "--tracking-uri"]
        first = subprocess.run([*report, pushed], capture_output=True, text=True, cwd=ROOT)
        assert first.returncode == 0 and "4 runs written, 0 the store held already" in first.stdout, first.stderr
        mlflow_equals_results(pushed, tmp_path / "off")
        names = lambda uri: sorted(run.info.run_name for run in runs_of(uri).values())  # noqa: E731
        assert names(pushed) == names(uri)  # the same runs as logging live: named by their swept values
        again = subprocess.run([*report, pushed], capture_output=True, text=True, cwd=ROOT)
        assert "0 runs written, 4 the store held already" in again.stdout, again.stderr  # nothing twice


def command(sweep_dir: Path, data_root: Path, *overrides: str) -> list[str]:
    grid = ["-m", "hydra/launcher=population", "act3=relu,tanh", "seed=0,1", *SMALL, *TINY]
    return [*grid, f"dataset.root={data_root}", f"hydra.sweep.dir={sweep_dir}", *overrides]


def test_two_sweeps_and_two_workers_writing_one_new_store_at_once_lose_no_run(tmp_path, data_root):
    """Three writers at once into one SQLite store that none of them made: a sweep's two worker processes and a
    second sweep training in its own process, each a population of one job at a time. Every run is there,
    finished (no "database is locked", no table created twice)."""
    uri = store(tmp_path)
    each = ["hydra.launcher.max_members=1", "logger=mlflow", f"logger.mlflow.tracking_uri={uri}"]
    workers = {"one": ["hydra.launcher.workers=2"], "two": []}
    started = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sherlocked.train",
                *command(tmp_path / name, data_root, *each, *workers[name], f"study={name}"),
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in workers
    ]
    for process in started:
        out = process.communicate(timeout=300)[0]
        assert process.returncode == 0, out[-3000:]
    for name in workers:
        runs = runs_of(uri, name)
        assert len(runs) == 4 and {run.info.status for run in runs.values()} == {"FINISHED"}
        assert sorted(runs) == sorted(results(tmp_path / name))


def csv_points(path: Path, name: str) -> list[tuple[int, float]]:
    """A metric's (step, value) in a CSVLogger's metrics.csv, in the file's order."""
    rows = list(csv.DictReader(path.open()))
    return [(int(row["step"]), float(row[name])) for row in rows if row[name] != ""]


def test_a_killed_population_goes_on_in_its_runs_without_a_step_twice(tmp_path, data_root):
    """Checkpointed after epoch 1, killed after epoch 3 with epochs 2-3 written to every tracker: the resumed
    population continues the same MLflow runs and W&B run ids; in MLflow (the killed run's points up to epoch 3,
    then the resumed run's) and in CSV (cut back to epoch 1, then the resumed run's) every step is there once, with
    the same value in both, and the epoch curves are the results'."""
    logged = [
        "logger=[mlflow,csv,wandb]",
        "trainer.max_epochs=4",
        "checkpoint_every_s=0",
        "trainer.log_every_n_steps=4",
    ]
    sweep = tmp_path / "sweep"
    logged += [f"logger.mlflow.tracking_uri={store(sweep)}", f"logger.wandb.save_dir={sweep}"]
    killer = [sys.executable, str(ROOT / "tests" / "kill_after_epoch.py"), "3:1"]
    # Started by a process that used W&B (a notebook, a test worker): each population still runs its own service
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_SERVICE": "3-1-unix-/nonexistent/wandb.sock"}
    first = subprocess.run([*killer, *command(sweep, data_root, *logged)], cwd=tmp_path, capture_output=True, env=env)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    before = runs_of(store(sweep))
    assert len(before) == 4 and len(history(store(sweep), next(iter(before.values())), "accuracy/test")) == 3
    ids_before = set(wandb_runs(sweep))
    train = [sys.executable, "-m", "sherlocked.train", *command(sweep, data_root, *logged)]
    done = subprocess.run(train, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    resumed = runs_of(store(sweep))
    assert {job: run.info.run_id for job, run in resumed.items()} == {
        job: run.info.run_id for job, run in before.items()
    }
    for job, result in results(sweep).items():
        run = resumed[job]
        assert run.info.status == "FINISHED" and result["resumed_epochs"] == 1
        for key, name in EPOCH_CURVES.items():
            assert history(store(sweep), run, name) == list(zip(result["history"]["epoch"], result["history"][key]))
        # every 4th of 64 steps; the diagnostics at each epoch's end (of 16 steps)
        for name, steps in (("loss/train", range(0, 64, 4)), ("mechanism/layer1/dead", range(16, 65, 16))):
            stored, written = history(store(sweep), run, name), csv_points(sweep / job / "csv" / "metrics.csv", name)
            assert [step for step, _ in stored] == list(steps), name  # each step once
            assert stored == pytest.approx(sorted(written)) and len(written) == len(stored), name
    assert set(wandb_runs(sweep)) == ids_before and len(ids_before) == 4  # the same runs, continued
    for runs in wandb_runs(sweep).values():  # the killed attempt's file, then the resumed one's
        assert len(runs) == 2 and [e for e, _ in epochs_logged(runs[1], "accuracy/test")] == [2, 3, 4]


def hidden(package: str, module: str, *arguments: str) -> list[str]:
    """python -m `module` ARGS with `package` not installed (find_spec finds nothing where sys.modules has None)."""
    code = f"import runpy, sys; sys.modules[{package!r}] = None; sys.argv = [{module!r}, *sys.argv[1:]]; "
    return [sys.executable, "-c", code + f"runpy.run_module({module!r}, run_name='__main__')", *arguments]


@pytest.mark.parametrize("package", ["mlflow", "wandb"])
def test_a_tracker_whose_package_is_missing_is_one_line_exit_2_nothing_written(tmp_path, data_root, package):
    sweep = tmp_path / "sweep"
    done = subprocess.run(
        hidden(package, "sherlocked.train", *command(sweep, data_root, f"logger=[tensorboard,{package}]")),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert (
        done.stderr.strip()
        == f"sherlocked: logger={package} needs {package}, which is not installed: pip install -e '.[{package}]'"
    )
    assert not sweep.exists()
    if package == "mlflow":
        pushed = subprocess.run(
            hidden("mlflow", "sherlocked.report", str(tmp_path), "--to", "mlflow"), capture_output=True, text=True
        )
        assert pushed.returncode == 2 and pushed.stderr.strip().endswith("pip install -e '.[mlflow]'"), pushed.stderr


class Recording(DummyLogger):
    """Stands for any Lightning logger sherlocked has no tracker for (Comet, Neptune, a lab's own): it records what it
    is given into <folder>/<a name of its own>.json as it is finalized; fail: every write fails (a full disk)."""

    def __init__(self, folder: str, fail: bool = False, unreachable: bool = False):
        if unreachable:
            raise ConnectionError("Connection refused")
        super().__init__()
        self.path, self.fail = Path(folder) / f"{uuid.uuid4().hex}.json", fail
        self.seen = {"metrics": [], "hparams": {}}

    def log_metrics(self, metrics, step=None):
        if self.fail:
            raise OSError(28, "No space left on device")
        self.seen["metrics"].append([step, metrics])

    def log_hyperparams(self, params, *args, **kwargs):
        self.seen["hparams"].update(params)

    def finalize(self, status):
        self.path.write_text(json.dumps({**self.seen, "status": status}))


def test_any_lightning_logger_gets_one_instance_a_member_and_one_that_fails_stops_only_itself(sweep, tmp_path, capsys):
    folder = tmp_path / "recorded"
    folder.mkdir()
    logger = ["logger=off", "+logger.lab._target_=tests.test_trackers.Recording", f"+logger.lab.folder={folder}"]
    with sweep(tmp_path / "sweep", *GRID, *logger):
        found = [json.loads(path.read_text()) for path in folder.glob("*.json")]
        assert len(found) == 4 and {f["status"] for f in found} == {"success"}
        by_seed_act = {(f["hparams"]["seed"], f["hparams"]["act3"]): f for f in found}
        for result in results(tmp_path / "sweep").values():
            seen = by_seed_act[result["hparams"]["seed"], result["hparams"]["act3"]]
            curve = [(step, m["accuracy/test"]) for step, m in seen["metrics"] if "accuracy/test" in m]
            assert curve == list(zip(result["history"]["epoch"], result["history"]["test_acc"]))
    with sweep(tmp_path / "failing", *GRID, *logger, "+logger.lab.fail=true"):
        assert {r["status"] for r in results(tmp_path / "failing").values()} == {"ok"}  # training went on
    warned = [line for line in capsys.readouterr().out.splitlines() if "logger lab stopped" in line]
    assert warned and all("No space left on device" in line for line in warned)
    with sweep(tmp_path / "unreachable", *GRID, *logger, "+logger.lab.unreachable=true"):
        assert {r["status"] for r in results(tmp_path / "unreachable").values()} == {"ok"}  # trained without it
    warned = [line for line in capsys.readouterr().out.splitlines() if "logger lab could not start" in line]
    assert len(warned) == 2 and "(ConnectionError: Connection refused); training goes on without it" in warned[0]


def test_the_mlflow_ui_shows_a_sweeps_runs_and_filters_them_by_a_param(sweep, tmp_path):
    """`mlflow ui` on a sweep's store, rendered in headless Chromium: the runs table lists every run, and a search
    by param (as TensorBoard's HParams filters) keeps only the matching ones."""
    from tests.test_page import needs

    needs("chromium")
    uri = store(tmp_path)
    with sweep(tmp_path / "sweep", *GRID, "logger=mlflow", f"logger.mlflow.tracking_uri={uri}"):
        pass  # the runs are in the store (the sweep's dir goes)
    experiment = mlflow.tracking.MlflowClient(uri).get_experiment_by_name("default").experiment_id
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        page = f"http://127.0.0.1:{port}/#/experiments/{experiment}"
        everything = rendered(page, "act3=relu,seed=0")
        assert all(
            name in everything
            for name in ("act3=relu,seed=0", "act3=relu,seed=1", "act3=tanh,seed=0", "act3=tanh,seed=1")
        )
        only = rendered(page + "?searchFilter=params.act3%20%3D%20%27tanh%27", "act3=tanh,seed=0")
        assert "act3=tanh,seed=1" in only and "act3=relu" not in only
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rendered(url: str, expected: str, tries: int = 30) -> str:
    """The page's DOM once `expected` shows in it (the server starts, then the runs table renders)."""
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1600,1000"]
    dom = ""
    for _ in range(tries):
        done = subprocess.run(
            [*browser, "--virtual-time-budget=15000", "--dump-dom", url], capture_output=True, text=True, timeout=120
        )
        dom = done.stdout
        if expected in dom:
            return dom
    raise AssertionError(f"{expected} never rendered at {url}: {dom[-2000:]}")


def test_the_writers_bench_counts_every_run_it_writes(tmp_path):
    """Two writer processes into a new store with the lock: every run there (the bench's own count, read back)."""
    from sherlocked.bench import writers

    uri = store(tmp_path)
    assert writers.measure(uri, writers=2, runs=2, epochs=2, locked=True)[0] == 0
    assert writers.finished(uri) == 4
    assert writers.measure(uri, writers=1, runs=3, epochs=1, locked=True)[0] == 0  # into the store it made
