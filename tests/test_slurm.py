"""Sweeps on a real SLURM (one node, started here: tests/slurm_cluster.py), with the faults a cluster has: an
element requeued by an administrator, an element cancelled, the driver killed while elements run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sherlocked.records import layout
from tests.conftest import SMALL, checkout_on_path
from tests.ray_helpers import PACED
from tests.slurm_cluster import Slurm, why_not
from tests.test_backends import GRID, results, same_results
from tests.test_faults import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]  # one SLURM, on one of xdist's workers
ON_SLURM = ["hydra.launcher.backend=submitit", "hydra.launcher.submitit.cluster=slurm"]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = why_not()
    if reason:
        pytest.skip(reason)
    cluster = Slurm(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


def start_sweep(
    tmp_path: Path, data_root: Path, *extra: str, log: str = "out.txt", into: str = "sweep"
) -> subprocess.Popen:
    """The command line's sweep on SLURM: 2 elements of 2 jobs, 30 epochs (long enough to act on). Its elements
    import tests/ (PACED) from the checkout: SLURM passes them the driver's environment."""
    command = [sys.executable, "-m", "sherlocked.train", "-m", *ELEMENTS, *ON_SLURM, *SMALL, "trainer.max_epochs=30"]
    command += ["model.widths=[784,16,12,10]", f"dataset.root={data_root}", f"hydra.sweep.dir={tmp_path / into}"]
    out = open(tmp_path / log, "w")  # noqa: SIM115 (the process writes it)
    env = {**os.environ, "PYTHONPATH": checkout_on_path()}
    return subprocess.Popen([*command, *extra], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)


ELEMENTS = ["hydra/launcher=population", "hydra.launcher.max_members=2", "act3=relu,tanh", "seed=0,1"]  # 2 x 2 jobs


def never_stopped(sweep, tmp_path: Path, *extra: str):
    """The same sweep never stopped, to compare with: in-process, on the local backend (the SLURM array gives its
    results: test_a_sweep_on_slurm_is_one_array_with_the_local_backends_results); its dir goes after the block."""
    return sweep(tmp_path / "alone", *ELEMENTS, "trainer.max_epochs=30", *extra)


def said(tmp_path: Path) -> str:
    """What a failed sweep's driver and its elements said last (progress lines left out): the elements' logs say
    which signals came when, which the driver's output does not."""
    logs = [tmp_path / "out.txt", *sorted((tmp_path / "sweep").glob(".submitit/*/*_log.err"))]
    lines: list[str] = []
    for log in logs:
        told = [line for line in log.read_text().splitlines() if " epoch " not in line and "sacct" not in line]
        lines += [f"== {log}", *told[-15:]]
    return "\n".join(lines)


def running(cluster: Slurm) -> list[str]:
    return [job["id"] for job in cluster.jobs() if job["state"] == "RUNNING"]


def test_a_sweep_on_slurm_is_one_array_with_the_local_backends_results(slurm, sweep, tmp_path, capsys):
    with sweep(tmp_path / "local", *GRID), sweep(tmp_path / "slurm", *GRID, *ON_SLURM):
        assert same_results(results(tmp_path / "local"), results(tmp_path / "slurm"))
        assert "4/4 jobs: 4 ok" in capsys.readouterr().out
        elements = sorted(p.name for p in (tmp_path / "slurm" / ".submitit").iterdir() if "_" in p.name and p.is_dir())
        assert len(elements) == 2 and len({name.split("_")[0] for name in elements}) == 1  # one array of two


def test_a_cancelled_element_fails_its_jobs_with_one_line_and_a_rerun_trains_only_them(slurm, tmp_path, data_root):
    long = [PACED, "trainer.max_epochs=25"]  # 20 s, paced: the element is cancelled while it trains
    sweep = start_sweep(tmp_path, data_root, *long)
    wait_for(lambda: len(running(slurm)) == 2 and len(list((tmp_path / "sweep").rglob("events.out.*"))) == 4)
    cancelled = running(slurm)[0]
    subprocess.run(["scancel", cancelled], check=True)
    assert sweep.wait(timeout=300) == 1
    out = (tmp_path / "out.txt").read_text()
    assert out.strip().splitlines()[-1].endswith("4/4 jobs: 2 ok, 0 diverged, 2 failed, 0 skipped"), out[-2000:]
    found = results(tmp_path / "sweep")
    failed = {job: r["error"] for job, r in found.items() if r["status"] == "failed"}
    assert len(failed) == 2 and all(
        error == f"SlurmEnded: SLURM cancelled job {cancelled} (scancel, or the scheduler); run the same command "
        "again to train it"
        for error in failed.values()
    ), failed
    rerun = start_sweep(tmp_path, data_root, *long, log="rerun.txt")
    assert rerun.wait(timeout=300) == 0
    summary = (tmp_path / "rerun.txt").read_text().strip().splitlines()[-1]
    assert summary.endswith("4/4 jobs: 2 ok, 0 diverged, 0 failed, 2 skipped"), summary


def test_a_rerun_while_the_killed_drivers_elements_run_submits_nothing_and_reads_their_results(
    slurm, tmp_path, data_root
):
    sweep = start_sweep(tmp_path, data_root)
    # the elements hold their jobs' locks once they train (their event files): before that, SLURM's RUNNING is a
    # Python still starting, and a rerun then trains the jobs itself (the old elements wait, read, train nothing)
    wait_for(
        lambda: len(running(slurm)) == 2 and len(list((tmp_path / "sweep").rglob("events.out.*"))) == 4, seconds=120
    )
    first = {job["id"] for job in slurm.jobs()}
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    rerun = start_sweep(tmp_path, data_root, log="rerun.txt")
    assert rerun.wait(timeout=300) == 0
    assert {job["id"] for job in slurm.jobs()} == first  # nothing submitted twice
    summary = (tmp_path / "rerun.txt").read_text().strip().splitlines()[-1]
    assert summary.endswith("4/4 jobs: 0 ok, 0 diverged, 0 failed, 4 skipped") or "4 ok" in summary, summary
    assert sorted(r["status"] for r in results(tmp_path / "sweep").values()) == ["ok"] * 4


def test_elements_requeued_after_a_checkpoint_resume_from_it_with_the_same_numbers(slurm, sweep, tmp_path, data_root):
    every_epoch = ["checkpoint_every_s=0", PACED, "trainer.max_epochs=25"]  # 20 s, paced: both train when requeued
    driver = start_sweep(tmp_path, data_root, *every_epoch)
    wait_for(lambda: len(list((tmp_path / "sweep" / layout.CHECKPOINTS).glob("*.ckpt"))) == 2)
    array = running(slurm)[0].split("_")[0]
    subprocess.run(["scontrol", "requeue", array], check=True)  # what an administrator, or preemption, does
    # SLURM holds a requeued job back a while (its BeginTime): started at once here, as when the cluster is idle
    wait_for(lambda: [job["state"] for job in slurm.jobs() if job["id"].startswith(f"{array}_")] == ["PENDING"] * 2)
    subprocess.run(["scontrol", "update", f"JobId={array}", "StartTime=now"], check=True)
    assert driver.wait(timeout=600) == 0, said(tmp_path)
    found = results(tmp_path / "sweep")
    assert all(r["status"] == "ok" and r["resumed_epochs"] > 0 for r in found.values()), found
    with never_stopped(sweep, tmp_path, *every_epoch):
        assert same_results(found, results(tmp_path / "alone"))


def test_elements_preempted_without_a_checkpoint_save_at_the_signal_and_resume_from_that_step(
    slurm, sweep, tmp_path, data_root
):
    """Preemption as SLURM does it (REQUEUE mode; scontrol requeue takes the same path): SIGTERM to the elements,
    SIGKILL after KillWait, requeued. No epoch checkpoint is due (checkpoint_every_s=3600): what the requeued
    elements resume from is what each saved at the end of the step the SIGTERM came in."""
    rarely = ["checkpoint_every_s=3600", PACED, "trainer.max_epochs=25"]  # 20 s, paced: preempted while it trains
    driver = start_sweep(tmp_path, data_root, *rarely)
    wait_for(lambda: len(running(slurm)) == 2 and len(list((tmp_path / "sweep").rglob("events.out.*"))) == 4)
    time.sleep(2)  # into their first epochs
    array = running(slurm)[0].split("_")[0]
    subprocess.run(["scontrol", "requeue", array], check=True)
    wait_for(lambda: [job["state"] for job in slurm.jobs() if job["id"].startswith(f"{array}_")] == ["PENDING"] * 2)
    assert len(list((tmp_path / "sweep" / layout.CHECKPOINTS).glob("*.ckpt"))) == 2  # both saved at the signal
    subprocess.run(["scontrol", "update", f"JobId={array}", "StartTime=now"], check=True)
    assert driver.wait(timeout=600) == 0, said(tmp_path)
    found = results(tmp_path / "sweep")
    assert all(r["status"] == "ok" and r["resumed_step"] > 0 for r in found.values()), found
    with never_stopped(sweep, tmp_path, *rarely):
        assert same_results(found, results(tmp_path / "alone"))


def test_an_element_at_its_time_limit_is_requeued_and_resumes(slurm, tmp_path, data_root):
    """timeout_min=2, signalled (USR2) 45 s before it: the element saves at the end of the step under way, submitit
    requeues it, each time (up to max_retries), and every attempt resumes from there (no epoch checkpoint is due:
    checkpoint_every_s=3600). SLURM checks time limits every 30 s and signals early rather than late (sbatch(1): "up
    to 60 seconds earlier"): an attempt is signalled at 45-75 s of its 2 minutes, less what it spends importing."""
    limit = ["hydra.launcher.submitit.timeout_min=2", "hydra.launcher.submitit.signal_delay_s=45"]
    # 80 s of training, paced: more than any attempt, and requeues to spare on a busy machine (CI: 10 ran out)
    one_element = ["hydra.launcher.max_members=4", "checkpoint_every_s=3600", PACED, "trainer.max_epochs=100"]
    one_element += ["hydra.launcher.max_retries=20"]
    sweep = start_sweep(tmp_path, data_root, *limit, *one_element)
    ran, requeued = set(), set()
    while sweep.poll() is None:  # SLURM holds a requeued job a while: started at once, as on an idle cluster
        for job in slurm.jobs():
            if job["state"] == "RUNNING":
                ran.add(job["id"])
            elif job["state"] == "PENDING" and job["id"] in ran:
                requeued.add(job["id"])
                subprocess.run(["scontrol", "update", f"JobId={job['id']}", "StartTime=now"], capture_output=True)
        time.sleep(1)
    assert sweep.returncode == 0, said(tmp_path)
    found = results(tmp_path / "sweep")
    assert sorted(r["status"] for r in found.values()) == ["ok"] * 4
    assert requeued, "the element was never requeued"
    assert all(r["resumed_step"] > 0 for r in found.values()), [r["resumed_step"] for r in found.values()]
