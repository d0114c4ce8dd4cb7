"""Sweeps on a multi-node Ray cluster (ray.cluster_utils.Cluster: a head and three one-CPU nodes, each its own raylet
on this machine), reached through hydra.launcher.ray.address as a real cluster is; and a node lost mid-sweep."""

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sherlocked.records import layout
from tests.conftest import SMALL, checkout_on_path
from tests.ray_helpers import PACED
from tests.test_backends import GRID, results, same_results
from tests.test_faults import wait_for

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray_cluster")]  # one cluster, on one of xdist's workers
NODES = 3


@pytest.fixture(scope="module")
def cluster():
    """The cluster, its nodes' workers and the sweeps started beside it importing tests/ (PACED) from the checkout."""
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", checkout_on_path())
        small = {"object_store_memory": 80_000_000}
        head = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **small})
        for _ in range(NODES):
            head.add_node(num_cpus=1, **small)
        head.wait_for_nodes()
        yield head
        head.shutdown()


def on(cluster, *extra: str) -> list[str]:
    return ["hydra.launcher.backend=ray", f"hydra.launcher.ray.address={cluster.address}", *extra]


def test_a_sweep_on_a_ray_cluster_gives_the_local_backends_results(cluster, sweep, tmp_path, capsys):
    with sweep(tmp_path / "local", *GRID), sweep(tmp_path / "ray", *GRID, *on(cluster)):
        assert same_results(results(tmp_path / "local"), results(tmp_path / "ray"))
        assert "4/4 jobs: 4 ok" in capsys.readouterr().out


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def node_training(cluster, sweep_dir: Path):
    """The node whose worker trains a population that has saved a checkpoint (its raylet started the worker)."""
    saved = {p.stem for p in (sweep_dir / layout.CHECKPOINTS).glob("*.ckpt")}
    for path in (sweep_dir / layout.PROGRESS).glob("*.json"):
        progress = json.loads(path.read_text())
        if path.stem in saved and progress.get("epochs_done", 0) < progress["epochs"]:
            raylet = parent(progress["pid"])
            for node in cluster.worker_nodes:
                if node.all_processes["raylet"][0].process.pid == raylet:
                    return node
    return None


def test_a_node_lost_mid_sweep_is_retried_elsewhere_from_its_checkpoint_with_the_same_numbers(cluster, sweep, tmp_path):
    grid = [*GRID, "checkpoint_every_s=0", PACED, "trainer.max_epochs=10"]  # 8 s a population, paced
    removed = []

    def lose_a_node():
        deadline = time.monotonic() + 120
        while not removed and time.monotonic() < deadline:
            node = node_training(cluster, tmp_path / "ray") if (tmp_path / "ray").is_dir() else None
            if node is not None:
                cluster.remove_node(node)  # its raylet and workers killed, as when a machine goes
                removed.append(node)
            time.sleep(0.1)

    killer = threading.Thread(target=lose_a_node)
    killer.start()
    with sweep(tmp_path / "ray", *grid, *on(cluster)), sweep(tmp_path / "local", *grid):
        killer.join()
        assert removed, "no node was training a population with a checkpoint"
        found = results(tmp_path / "ray")
        assert sorted(r["status"] for r in found.values()) == ["ok"] * 4
        assert any(r["resumed_epochs"] > 0 for r in found.values())  # the retried population resumed
        assert same_results(results(tmp_path / "local"), found)
    cluster.add_node(num_cpus=1, object_store_memory=80_000_000)  # the cluster as it was, for the next test
    cluster.wait_for_nodes()


def command_line_sweep(tmp_path: Path, data_root: Path, into: str, *extra: str, log: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "sherlocked.train", "-m", "hydra/launcher=population", *GRID[:2]]
    command += ["hydra.launcher.max_members=2", *SMALL, "model.widths=[784,16,12,10]", f"dataset.root={data_root}"]
    command += ["checkpoint_every_s=0", PACED, "trainer.max_epochs=20"]  # 16 s a population, paced
    command += [f"hydra.sweep.dir={tmp_path / into}", *extra]
    out = open(tmp_path / log, "w")  # noqa: SIM115 (the process writes it)
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)


def test_a_driver_killed_mid_sweep_is_started_again_and_its_populations_resume(cluster, sweep, tmp_path, data_root):
    """Ray ends a dead driver's tasks (their processes, and with them the jobs' locks); the same command started
    again resumes each population from its checkpoint, with the numbers of a sweep never stopped."""
    driver = command_line_sweep(tmp_path, data_root, "sweep", *on(cluster), log="out.txt")
    wait_for(lambda: len(list((tmp_path / "sweep" / layout.CHECKPOINTS).glob("*.ckpt"))) == 2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    rerun = command_line_sweep(tmp_path, data_root, "sweep", *on(cluster), log="rerun.txt")
    assert rerun.wait(timeout=300) == 0, (tmp_path / "rerun.txt").read_text()[-2000:]
    found = results(tmp_path / "sweep")
    assert sorted(r["status"] for r in found.values()) == ["ok"] * 4
    assert any(r["resumed_epochs"] > 0 for r in found.values())
    never_stopped = ["checkpoint_every_s=0", PACED, "trainer.max_epochs=20"]  # in-process, on the local backend
    with sweep(tmp_path / "alone", *GRID, *never_stopped):  # (its dir goes after the block)
        assert same_results(results(tmp_path / "alone"), found)
