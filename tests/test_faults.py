"""Faults on purpose, as a user meets them: the driver killed with -9 or interrupted with Ctrl-C mid-sweep."""

import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sherlocked.records import layout, table
from sherlocked.records.population_progress import PopulationProgress
from tests.conftest import MODELS, SMALL, checkout_on_path
from tests.ray_helpers import PACED

pytestmark = pytest.mark.slow  # sweeps started as processes and interrupted, killed, resumed


def start_sweep(
    tmp_path: Path, data_root: Path, *extra: str, log: str = "out.txt", workers: int = 2
) -> subprocess.Popen:
    """A population sweep on two worker processes (or as `extra` says), slow enough to interrupt: 4 populations
    of one job."""
    command = [sys.executable, "-m", "sherlocked.train", "-m", "hydra/launcher=population"]
    command += [f"hydra.launcher.workers={workers}", "hydra.launcher.max_members=1", "seed=0,1,2,3", *SMALL]
    command += ["model.widths=[784,16,12,10]", f"dataset.root={data_root}", "trainer.max_epochs=30"]
    command += [f"hydra.sweep.dir={tmp_path / 'sweep'}", *extra]
    out = open(tmp_path / log, "w")  # noqa: SIM115 (the process writes it)
    env = {**os.environ, "PYTHONPATH": checkout_on_path()}  # PACED
    return subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env, start_new_session=True
    )


def wait_for(condition, seconds: float = 300) -> None:
    """Until `condition` holds; generous: a loaded 2-core CI machine took over 120 s to start a population."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def workers_started(tmp_path: Path) -> bool:
    """Both workers are training: each wrote its job's first TensorBoard events."""
    return len(list((tmp_path / "sweep").rglob("events.out.tfevents.*"))) >= 2


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def fork_server_started(driver: int) -> bool:
    """The driver started its workers' fork server, which imports torch for seconds before it forks them."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == driver and b"forkserver" in command:
            return True
    return False


@pytest.mark.parametrize("moment", ["workers starting", "workers training"])
def test_workers_die_with_a_driver_killed_with_minus_9(tmp_path, data_root, moment):
    """Starting: the fork server imports torch (seconds), and then forks the workers or finds the driver gone."""
    sweep = start_sweep(tmp_path, data_root)
    if moment == "workers starting":
        wait_for(lambda: fork_server_started(sweep.pid))
    else:
        wait_for(lambda: workers_started(tmp_path))
    sweep.kill()  # SIGKILL: no handler runs in the driver
    sweep.wait()
    wait_for(lambda: not group_alive(sweep.pid), seconds=60)  # the workers were told by the kernel
    assert not list((tmp_path / "sweep").rglob("result.json"))


def test_ctrl_c_says_what_is_kept_exits_130_and_a_rerun_finishes_the_sweep(tmp_path, data_root):
    sweep = start_sweep(tmp_path, data_root)
    wait_for(lambda: workers_started(tmp_path))
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: to the whole process group
    assert sweep.wait(timeout=60) == 130
    wait_for(lambda: not group_alive(sweep.pid), seconds=20)
    out = (tmp_path / "out.txt").read_text()
    last = out.strip().splitlines()[-1]
    assert last.startswith("sherlocked: interrupted;") and "run the same command again" in last, out[-2000:]
    assert "Traceback" not in out
    assert not list((tmp_path / "sweep").rglob("*.tmp"))  # nothing half-written
    rerun = start_sweep(tmp_path, data_root, "trainer.max_epochs=1")  # a shorter sweep: other jobs, same dir
    assert rerun.wait(timeout=300) == 0


def two_in_their_first_half(sweep_dir: Path) -> bool:
    """Two populations in training, each short of half its steps (by the progress files they write)."""
    reported = [PopulationProgress.read(path) for path in layout.progress_files(sweep_dir)]
    if None in reported:  # gone meanwhile (its population finished)
        return False
    return len(reported) == 2 and all(0 < p.step < p.steps / 2 for p in reported)


@pytest.mark.parametrize("to", ["driver", "group"])
def test_sigterm_to_a_sweep_lets_its_workers_save_where_they_stand_and_a_rerun_goes_on_from_there(
    tmp_path, data_root, to
):
    """SIGTERM to the driver alone (kill PID) or to every process (a cloud's shutdown, SLURM preempting the sweep's
    own job): each worker saves its population at the end of its step, then the driver ends by the signal."""
    longer = ["checkpoint_every_s=3600", PACED, "trainer.max_epochs=20"]  # 16 s a job, paced; no checkpoint due
    sweep = start_sweep(tmp_path, data_root, *longer)
    wait_for(lambda: two_in_their_first_half(tmp_path / "sweep"))  # neither finishes before the signal
    if to == "driver":
        sweep.send_signal(signal.SIGTERM)
    else:
        os.killpg(sweep.pid, signal.SIGTERM)
    assert sweep.wait(timeout=60) == 128 + signal.SIGTERM
    wait_for(lambda: not group_alive(sweep.pid), seconds=20)
    out = (tmp_path / "out.txt").read_text()
    last = out.strip().splitlines()[-1]
    assert last.startswith("sherlocked: SIGTERM; the populations in training were saved; 0 of 4 jobs"), out[-2000:]
    assert "Traceback" not in out and not list((tmp_path / "sweep").rglob("*.tmp")), out[-3000:]
    assert len(list((tmp_path / "sweep" / ".checkpoints").glob("*.ckpt"))) == 2  # the two in training
    rerun = start_sweep(tmp_path, data_root, *longer, log="rerun.txt")
    assert rerun.wait(timeout=300) == 0
    resumed = sorted(json.loads(p.read_text())["resumed_step"] > 0 for p in (tmp_path / "sweep").rglob("result.json"))
    assert resumed == [False, False, True, True]


# Where a population trains: the sweep's own process, a local Ray, submitit (worker processes: the test above).
BACKENDS = {
    "in-process": (0, []),
    "ray": (0, ["hydra.launcher.backend=ray", "+hydra.launcher.ray.init.num_cpus=2"]),
    "submitit": (0, ["hydra.launcher.backend=submitit", "hydra.launcher.submitit.cluster=local"]),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctrl_c_on_any_backend_says_one_line_and_exits_130(tmp_path, data_root, backend):
    """Lightning catches a Ctrl-C inside its fit and exits 1; a sweep training in its own process said nothing."""
    workers, extra = BACKENDS[backend]
    if backend in ("ray", "submitit"):
        pytest.importorskip(backend)
    sweep = start_sweep(tmp_path, data_root, *extra, workers=workers)
    wait_for(lambda: list((tmp_path / "sweep").rglob("events.out.tfevents.*")))  # a population is training
    os.killpg(sweep.pid, signal.SIGINT)
    assert sweep.wait(timeout=60) == 130, (tmp_path / "out.txt").read_text()[-3000:]
    wait_for(lambda: not group_alive(sweep.pid), seconds=30)
    out = (tmp_path / "out.txt").read_text()
    last = out.strip().splitlines()[-1]
    assert last.startswith("sherlocked: interrupted;") and "run the same command again" in last, out[-2000:]
    assert "Traceback" not in out, out[-3000:]


def test_ctrl_c_on_a_single_run_says_one_line_and_exits_130(tmp_path, data_root):
    command = [sys.executable, "-m", "sherlocked.train", *SMALL, "trainer.max_epochs=30", "model.widths=[784,16,12,10]"]
    command += [f"dataset.root={data_root}", f"hydra.run.dir={tmp_path / 'run'}"]
    with open(tmp_path / "out.txt", "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    wait_for(lambda: list((tmp_path / "run").rglob("events.out.tfevents.*")))
    os.killpg(run.pid, signal.SIGINT)
    assert run.wait(timeout=60) == 130
    out = (tmp_path / "out.txt").read_text()
    assert out.strip().splitlines()[-1].startswith("sherlocked: interrupted"), out[-2000:]
    assert "Traceback" not in out, out[-3000:]


def test_ctrl_c_on_a_single_run_before_it_trains_leaves_no_empty_run_dir(tmp_path, data_root):
    command = [sys.executable, "-m", "sherlocked.train", *SMALL, "model.widths=[784,16,12,10]"]
    command += [f"dataset.root={data_root}", f"hydra.run.dir={tmp_path / 'runs' / 'now'}"]
    with open(tmp_path / "out.txt", "w") as out:
        run = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    wait_for(lambda: (tmp_path / "runs" / "now" / ".hydra" / "overrides.yaml").is_file(), seconds=60)
    os.killpg(run.pid, signal.SIGINT)  # while it imports torch, before it trains
    assert run.wait(timeout=60) == 130
    assert (tmp_path / "out.txt").read_text().strip().splitlines()[-1].startswith("sherlocked: interrupted")
    assert list((tmp_path / "runs").iterdir()) == []


def test_unreadable_results_and_table_are_not_finished_the_jobs_rerun_and_the_files_are_replaced(sweep, tmp_path):
    grid = ["act3=relu,tanh", "seed=0,1", "hydra/launcher=population"]
    with sweep(tmp_path / "sweep", *grid):
        paths = sorted((tmp_path / "sweep").rglob("result.json"))
        good = paths[3].read_bytes()
        paths[0].write_bytes(os.urandom(300))  # random bytes
        paths[1].write_text("[]")  # valid JSON, not a result
        paths[2].write_text(paths[2].read_text()[:50])  # truncated
        (part,) = table.parts(tmp_path / "sweep")
        part.write_bytes(os.urandom(3000))  # the results table too: each job is looked up in its own result.json
        with sweep(tmp_path / "sweep", *grid) as again:
            statuses = sorted((r.return_value.skipped, r.return_value.status) for r in again.returns[0])
            assert statuses == [(False, "ok")] * 3 + [(True, "ok")]
            assert all(json.loads(p.read_text())["status"] == "ok" for p in paths)
            assert paths[3].read_bytes() == good
            rows = table.read(tmp_path / "sweep")  # every job's row there again, the unreadable file kept aside
            assert sorted(rows["status"]) == ["ok"] * 4 and part.with_name(part.name + ".unreadable").is_file()


def test_two_sweeps_into_one_directory_share_the_work_and_keep_every_result(tmp_path, data_root):
    """Started together: each job is trained once, by whichever sweep locked it; the other reads it back."""
    shorter = ["trainer.max_epochs=3", "hydra.launcher.workers=0"]
    first, second = (start_sweep(tmp_path, data_root, *shorter, log=f"{name}.txt") for name in ("a", "b"))
    assert first.wait(timeout=300) == 0 and second.wait(timeout=300) == 0
    summaries = [(tmp_path / f"{name}.txt").read_text().strip().splitlines()[-1] for name in ("a", "b")]
    counts = [re.search(r"4/4 jobs: (\d+) ok, 0 diverged, 0 failed, (\d+) skipped", s) for s in summaries]
    assert all(counts), summaries
    assert sum(int(c[1]) for c in counts) == 4 and sum(int(c[2]) for c in counts) == 4  # each job trained once
    results = [json.loads(p.read_text()) for p in (tmp_path / "sweep").rglob("result.json")]
    assert len(results) == 4 and all(r["status"] == "ok" for r in results)


def read_only(path: Path, command: list[str]) -> list[str]:
    """`command` run where `path` is mounted read-only (its own mount namespace: root cannot write there either)."""
    mount = 'mount --bind -o ro "$0" "$0" && exec "$@"'
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", mount, str(path), *command]


def test_a_finished_sweep_on_read_only_storage_reruns_and_reports(tmp_path, data_root):
    sweep_dir = tmp_path / "sweep"
    command = [sys.executable, "-m", "sherlocked.train", "-m", "hydra/launcher=population", "seed=0,1", *SMALL]
    command += ["model.widths=[784,16,12,10]", f"dataset.root={data_root}", f"hydra.sweep.dir={sweep_dir}"]
    subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    files = {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()}
    probe = subprocess.run(read_only(sweep_dir, ["touch", str(sweep_dir / "probe")]), capture_output=True, text=True)
    assert probe.returncode != 0 and "Read-only" in probe.stderr, probe.stderr  # the storage really is read-only

    rerun = subprocess.run(read_only(sweep_dir, command), cwd=tmp_path, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stdout.strip().splitlines()[-1].endswith("2/2 jobs: 0 ok, 0 diverged, 0 failed, 2 skipped")

    report = [sys.executable, "-m", "sherlocked.report", str(sweep_dir)]
    refused = subprocess.run(read_only(sweep_dir, report), capture_output=True, text=True)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().endswith("write it elsewhere with --out DIR"), refused.stderr
    elsewhere = subprocess.run(read_only(sweep_dir, [*report, "--out", str(tmp_path / "report")]), capture_output=True)
    assert elsewhere.returncode == 0, elsewhere.stderr[-3000:]
    rows = [line for line in (tmp_path / "report" / "table.md").read_text().splitlines() if line.startswith("| relu")]
    assert len(rows) == 1 and rows[0].split("|")[-6].strip() == "2"  # one group, its two seeds
    assert {p: p.read_bytes() for p in sweep_dir.rglob("*") if p.is_file()} == files


def test_a_population_killed_after_epoch_2_of_3_resumes_there_and_ends_as_if_never_stopped(
    tmp_path, data_root, hydra_multirun
):
    grid = ["hydra/launcher=population", "act3=relu,tanh", "model.batch_norm=none,last", "model.optimizer.lr=0.01,0.05"]
    grid += SMALL  # the member-wise optimiser too (learning rates differ): its state resumes as well
    grid += ["trainer.max_epochs=3", "checkpoint_every_s=0", "model.widths=[784,16,12,10]", f"dataset.root={data_root}"]
    killed = [sys.executable, str(Path(__file__).parent / "kill_after_epoch.py"), "2", "-m", *grid]
    command = [sys.executable, "-m", "sherlocked.train", "-m", *grid]
    sweep = tmp_path / "sweep"
    first = subprocess.run([*killed, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert not list(sweep.rglob("result.json")) and len(list((sweep / ".checkpoints").glob("*.ckpt"))) == 1
    # What writers killed mid-write leave (runtime.atomic's temporaries), beside each file the population replaces:
    (checkpoint,) = (sweep / ".checkpoints").glob("*.ckpt")
    progress = sweep / ".progress" / checkpoint.with_suffix(".json").name
    job_dirs = [path.parent for path in sweep.rglob(".hydra")]
    left = [path.with_name(f".{path.name}.0123abcd.tmp") for path in (checkpoint, progress)]
    left += [job / ".result.json.0123abcd.tmp" for job in job_dirs]
    unrelated = sweep / ".notes.txt.0123abcd.tmp"  # not the population's: stays
    for path in [*left, unrelated]:
        path.parent.mkdir(exist_ok=True)
        path.write_text("half")

    subprocess.run([*command, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, check=True, capture_output=True)
    assert sorted(sweep.rglob("*.tmp")) == [unrelated] and len(left) == 2 + len(job_dirs) == 10
    with hydra_multirun(tmp_path / "whole", grid):  # never stopped, to compare with: in-process (its dir goes after)
        assert not (sweep / ".checkpoints").exists()  # dropped once every member's result was written
        for path in sorted(sweep.rglob("result.json")):
            job, same_job = path.parent, tmp_path / "whole" / path.parent.relative_to(sweep)
            resumed, whole = (json.loads((d / "result.json").read_text()) for d in (job, same_job))
            assert (resumed["resumed_epochs"], whole["resumed_epochs"]) == (2, 0)
            assert resumed["history"] == whole["history"] and resumed["diagnostics"] == whole["diagnostics"]
            assert resumed["status"] == "ok" and len(resumed["history"]["test_acc"]) == 3
            swept = ("act3=", "model.batch_norm=", "model.optimizer.lr=")
            run = "tensorboard/" + ",".join(o for o in resumed["overrides"] if o.startswith(swept))
            curves = [scalars(d / run, "accuracy/test") for d in (sweep, tmp_path / "whole")]
            assert curves[0] == curves[1] and len(curves[0]) == 3  # epochs 1-2 from the killed run's events


def test_a_resumed_population_writes_each_event_once_whenever_it_was_killed(tmp_path, data_root, hydra_multirun):
    """Checkpointed after epoch 1, killed after epoch 3 with epochs 2-3's events on disk: the resumed run cuts them
    and writes them again, once; its TensorBoard curves equal an uninterrupted run's, epoch and step tags alike."""
    grid = ["hydra/launcher=population", "act3=relu,tanh", *SMALL, "trainer.max_epochs=4", "checkpoint_every_s=0"]
    grid += ["model.widths=[784,16,12,10]", f"dataset.root={data_root}", "trainer.log_every_n_steps=4"]
    killed = [sys.executable, str(Path(__file__).parent / "kill_after_epoch.py"), "3:1", "-m", *grid]
    command = [sys.executable, "-m", "sherlocked.train", "-m", *grid]
    sweep = tmp_path / "sweep"
    first = subprocess.run([*killed, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert len(scalars(sweep / "tensorboard" / "act3=relu", "accuracy/test")) == 3  # epochs 2-3 past the checkpoint
    subprocess.run([*command, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, check=True, capture_output=True)
    with hydra_multirun(tmp_path / "whole", grid):  # never stopped, to compare with: in-process (its dir goes after)
        for run in ("act3=relu", "act3=tanh"):
            for tag in ("accuracy/test", "loss/train"):
                resumed, whole = (steps_and_values(d / "tensorboard" / run, tag) for d in (sweep, tmp_path / "whole"))
                assert resumed == whole, (run, tag)
        assert steps_and_values(sweep / "tensorboard" / "act3=relu", "accuracy/test")[0] == [1, 2, 3, 4]


def steps_and_values(folder: Path, tag: str) -> tuple[list[int], list[float]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [event.step for event in events.Scalars(tag)], [event.value for event in events.Scalars(tag)]


def scalars(folder: Path, tag: str) -> list[float]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return [event.value for event in events.Scalars(tag)]


def all_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    value = lambda v: None if math.isnan(v) else v  # noqa: E731 (a member's nan, say no saturable layer, equals itself)
    return {tag: [(e.step, value(e.value)) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("model", MODELS)
def test_a_population_sent_sigterm_mid_epoch_saves_at_that_steps_end_and_resumes_as_if_never_stopped(
    tmp_path, data_root, hydra_multirun, model
):
    """16 steps an epoch; SIGTERM arrives during step 21 (epoch 2): saved after it, the rerun goes on from step 22.
    An MLP's population, and a CNN's (its conv layers' weights, momentum and diagnostics resume alike)."""
    grid = ["hydra/launcher=population", "act3=relu,tanh", "model.optimizer.lr=0.01,0.05", *SMALL]
    grid += ["trainer.max_epochs=3", "model.widths=[784,16,12,10]", *MODELS[model], f"dataset.root={data_root}"]
    grid += ["checkpoint_every_s=3600", "diagnostics.interval=4", "trainer.log_every_n_steps=2"]  # saved: on the signal
    signalled = [sys.executable, str(Path(__file__).parent / "signal_at_step.py"), "21", "TERM", "-m", *grid]
    command = [sys.executable, "-m", "sherlocked.train", "-m", *grid]
    sweep = tmp_path / "sweep"
    first = subprocess.run([*signalled, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 128 + signal.SIGTERM, first.stderr[-3000:]
    (checkpoint,) = (sweep / ".checkpoints").glob("*.ckpt")
    said = first.stderr.strip().splitlines()
    assert said[-1].startswith("sherlocked: SIGTERM; the populations in training were saved; 0 of 4 jobs")  # driver
    assert (  # the population, trained in the driver's process here
        f"sherlocked: SIGTERM stopped training after step 21; the population is saved in {checkpoint}: "
        "run the same command again to go on"
    ) in said
    assert not list(sweep.rglob("result.json")) and "Traceback" not in first.stderr

    subprocess.run([*command, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, check=True, capture_output=True)
    with hydra_multirun(tmp_path / "whole", grid):  # never stopped, to compare with: in-process (its dir goes after)
        paths = sorted(sweep.rglob("result.json"))
        assert len(paths) == 4 and not (sweep / ".checkpoints").exists()
        for path in paths:
            same_job = tmp_path / "whole" / path.parent.relative_to(sweep)
            resumed, whole = (json.loads((d / "result.json").read_text()) for d in (path.parent, same_job))
            assert (resumed["resumed_step"], resumed["resumed_epochs"], whole["resumed_step"]) == (21, 1, 0)
            assert resumed["config"]["model"].get("channels") == {"mlp": None, "cnn": [2, 3]}[model]
            assert resumed["history"] == whole["history"] and resumed["diagnostics"] == whole["diagnostics"]
            assert resumed["status"] == "ok" and len(resumed["history"]["test_acc"]) == 3
            swept = ("act3=", "model.optimizer.lr=")
            run = "tensorboard/" + ",".join(o for o in resumed["overrides"] if o.startswith(swept))
            curves = [all_scalars(d / run) for d in (sweep, tmp_path / "whole")]
            assert curves[0] == curves[1]  # every step's loss and diagnostics once, before and after the signal alike
            steps = [step for step, _ in curves[0]["loss/train"]]
            mechanism = [curve for tag, curve in curves[0].items() if tag.startswith("mechanism/")]
            assert steps == list(range(0, 48, 2)) and mechanism and all(len(curve) == 15 for curve in mechanism)


@pytest.mark.parametrize("every_s", ["3600", "null"])
def test_a_single_run_sent_sigterm_says_what_it_saved_and_the_command_that_goes_on(tmp_path, data_root, every_s):
    """A single run (no sweep driver): it ends by SIGTERM, as the process would have, once it said what it saved and
    how to go on: its own run dir (the same command would start in a new one); with checkpoints off (null)
    Lightning stops it at the step's end and nothing is saved."""
    run_dir = tmp_path / "run"
    overrides = [*SMALL, "model.widths=[784,16,12,10]", f"dataset.root={data_root}", f"checkpoint_every_s={every_s}"]
    command = [sys.executable, str(Path(__file__).parent / "signal_at_step.py"), "5", "TERM", *overrides]
    run = subprocess.run([*command, f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == -signal.SIGTERM, run.stderr[-3000:]
    checkpoints = list((run_dir / ".checkpoints").glob("*.ckpt"))
    said = run.stderr.strip().splitlines()[-1]
    assert not (run_dir / "result.json").exists() and "Traceback" not in run.stderr
    if every_s == "null":
        assert not checkpoints
        assert said == (
            "sherlocked: SIGTERM stopped training at step 5 with nothing new saved: run the same command again to "
            "train from the start"
        )
        return
    head = (
        f"sherlocked: SIGTERM stopped training after step 5; the population is saved in {checkpoints[0]}: go on with: "
    )
    assert said.startswith(head), said
    go_on = shlex.split(said.removeprefix(head))
    assert go_on[:3] == ["python", "-m", "sherlocked.train"] and go_on[-1] == f"hydra.run.dir={run_dir}"
    subprocess.run([sys.executable, *go_on[1:]], cwd=tmp_path, check=True, capture_output=True)
    result = json.loads((run_dir / "result.json").read_text())
    assert (result["status"], result["resumed_step"]) == ("ok", 5) and not checkpoints[0].exists()


def test_a_population_killed_after_an_epoch_cut_short_by_limit_train_batches_resumes_as_if_never_stopped(
    tmp_path, data_root, hydra_multirun
):
    """5 of an epoch's 16 batches (limit_train_batches): the checkpoint after epoch 1 is an epoch's end, not its
    middle; the resumed epoch 2 draws its own data order, not epoch 1's again."""
    grid = ["hydra/launcher=population", "act3=relu,tanh", "seed=0,1", *SMALL, "trainer.max_epochs=2"]
    grid += ["+trainer.limit_train_batches=5", "checkpoint_every_s=0", "diagnostics=off"]
    grid += ["model.widths=[784,16,12,10]", f"dataset.root={data_root}"]
    killed = [sys.executable, str(Path(__file__).parent / "kill_after_epoch.py"), "1", "-m", *grid]
    command = [sys.executable, "-m", "sherlocked.train", "-m", *grid]
    sweep = tmp_path / "sweep"
    first = subprocess.run([*killed, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    subprocess.run([*command, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, check=True, capture_output=True)
    with hydra_multirun(tmp_path / "whole", grid):  # never stopped, to compare with: in-process (its dir goes after)
        paths = sorted(sweep.rglob("result.json"))
        assert len(paths) == 4
        for path in paths:
            same_job = tmp_path / "whole" / path.parent.relative_to(sweep)
            resumed, whole = (json.loads((d / "result.json").read_text()) for d in (path.parent, same_job))
            assert (resumed["resumed_epochs"], resumed["resumed_step"], whole["resumed_epochs"]) == (1, 5, 0)
            assert resumed["history"] == whole["history"]


def test_a_population_that_starts_afresh_over_an_earlier_attempts_events_writes_each_point_once(sweep, tmp_path):
    """The same job dirs trained again from the start (here: on another accelerator setting, part of a job's identity
    but not of its dir's name; likewise a population stopped before its first checkpoint): one point an epoch."""
    grid = ["hydra/launcher=population", "act3=relu,tanh"]
    with sweep(tmp_path / "sweep", *grid), sweep(tmp_path / "sweep", *grid, "trainer.accelerator=auto") as again:
        assert not any(job.return_value.skipped for job in again.returns[0])  # trained again, in the same dirs
        for run in ("act3=relu", "act3=tanh"):
            assert steps_and_values(tmp_path / "sweep" / "tensorboard" / run, "accuracy/test")[0] == [1, 2]


def on_a_full_disk(path: Path, size: str, command: list[str]) -> list[str]:
    """`command` run where `path` is a file system of `size` bytes (a tmpfs in its own mount namespace)."""
    mount = 'mount -t tmpfs -o size="$1" tmpfs "$0" && shift && exec "$@"'
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", mount, str(path), size, *command]


@pytest.mark.parametrize("where", ["single run, checkpoint", "sweep, job dirs", "sweep, checkpoint"])
def test_a_full_disk_is_one_line_not_a_traceback(tmp_path, data_root, where):
    full = tmp_path / "full"
    full.mkdir()
    command = [sys.executable, "-m", "sherlocked.train", *SMALL, "trainer.max_epochs=1", "checkpoint_every_s=0"]
    command += [f"dataset.root={data_root}", "diagnostics=off"]  # the study's widths: a 5 MB checkpoint
    if where.startswith("single"):
        command += [f"hydra.run.dir={full / 'run'}"]
    else:
        command[3:3] = ["-m", "hydra/launcher=population", "seed=0,1", f"hydra.sweep.dir={full / 'sweep'}"]
    size = "4k" if "job dirs" in where else "1m"
    done = subprocess.run(on_a_full_disk(full, size, command), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1] if where.startswith("single") or "job dirs" in where else ""
    if last:  # the run stopped there: one line says why
        assert last.startswith("sherlocked: No space left on device") and "free some space" in last, last
    else:  # the sweep went on: each population's failure is one line, its jobs counted failed
        assert done.stdout.strip().endswith("2/2 jobs: 0 ok, 0 diverged, 2 failed, 0 skipped"), done.stdout[-2000:]
        assert "No space left on device" in done.stderr + done.stdout


@pytest.mark.parametrize("step", [15, 10])
def test_a_population_sent_sigterm_in_epochs_cut_by_limit_train_batches_resumes_as_if_never_stopped(
    tmp_path, data_root, hydra_multirun, step
):
    """10 of an epoch's 16 batches; SIGTERM during step 15 (step 5 of epoch 2: the rerun trains epoch 2's other 5),
    or during step 10, epoch 1's last (saved at the epoch's end: the rerun draws epoch 2's order)."""
    grid = ["hydra/launcher=population", "act3=relu,tanh", *SMALL, "trainer.max_epochs=3", "diagnostics=off"]
    grid += ["+trainer.limit_train_batches=10", "checkpoint_every_s=3600"]
    grid += ["model.widths=[784,16,12,10]", f"dataset.root={data_root}"]
    signalled = [sys.executable, str(Path(__file__).parent / "signal_at_step.py"), str(step), "TERM", "-m", *grid]
    command = [sys.executable, "-m", "sherlocked.train", "-m", *grid]
    sweep = tmp_path / "sweep"
    first = subprocess.run([*signalled, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 128 + signal.SIGTERM, first.stderr[-3000:]
    subprocess.run([*command, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, check=True, capture_output=True)
    with hydra_multirun(tmp_path / "whole", grid):  # never stopped, to compare with: in-process (its dir goes after)
        for path in sorted(sweep.rglob("result.json")):
            same_job = tmp_path / "whole" / path.parent.relative_to(sweep)
            resumed, whole = (json.loads((d / "result.json").read_text()) for d in (path.parent, same_job))
            assert (resumed["resumed_step"], resumed["resumed_epochs"]) == (step, 1)
            assert resumed["history"] == whole["history"] and len(whole["history"]["test_acc"]) == 3
