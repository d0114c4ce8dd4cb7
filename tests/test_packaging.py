"""A wheel carries everything a run needs (configs, launcher plugin), with no checkout in sight."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_a_wheel_installed_elsewhere_trains_from_outside_the_checkout(data_root, tmp_path):
    wheels, site, source = tmp_path / "wheels", tmp_path / "site", tmp_path / "source"
    # A copy, since pip builds in the source tree (build/, *.egg-info) and the checkout stays as it is.
    generated = ("outputs", "data", "build", "*.egg-info", ".*", "__pycache__")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*generated))
    # The build uses this Python's setuptools: no network, no isolated build environment.
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    subprocess.run([*build, str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("sherlocked-*.whl")
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)]
    subprocess.run(install, check=True, capture_output=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}  # first on the path: before any editable install of the checkout

    def python(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=elsewhere, env=env)

    where = python("-c", "import sherlocked.spec.config as c; print(c.__file__); print(c.CONFIG_DIR)")
    # A user's repository around the install: a run records sherlocked's version, not that repository's commit.
    git = ["git", "-C", str(tmp_path), "-c", "user.name=u", "-c", "user.email=u@e"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "the user's own"], check=True)
    recorded = python(
        "-c", "from sherlocked.records.results import git_commit, versions; print(git_commit(), versions())"
    )
    assert recorded.stdout.startswith("None {") and "'sherlocked': '0.1.0'" in recorded.stdout, recorded.stderr
    module, config_dir = where.stdout.split()
    assert module.startswith(str(site)) and config_dir == str(site / "sherlocked" / "conf"), where.stderr

    one_step = [
        f"dataset.root={data_root}",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=1",
        "model.widths=[784,16,12,10]",
    ]
    out = python("-m", "sherlocked.train", *one_step, "hydra.run.dir=run")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((elsewhere / "run" / "result.json").read_text())["status"] == "ok"

    # The launcher plugin ships too: Hydra finds hydra/launcher=population in the wheel.
    out = python(
        "-m", "sherlocked.train", "-m", "hydra/launcher=population", "seed=0,1", *one_step, "hydra.sweep.dir=s"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2/2 jobs: 2 ok" in out.stdout
    assert {json.loads(p.read_text())["population_size"] for p in (elsewhere / "s").rglob("result.json")} == {2}


def externally_managed(python: str) -> bool:
    """Whether `python` refuses pip installs (PEP 668's marker file beside its standard library)."""
    marker = "sysconfig.get_path('stdlib') + '/EXTERNALLY-MANAGED'"
    check = f"import os, sys, sysconfig; sys.exit(not os.path.exists({marker}))"
    return subprocess.run([python, "-c", check]).returncode == 0


def install_commands(tmp_path: Path, python: str) -> str:
    """What `make install` would run with `python` as the machine's python3 (make -n: nothing is run)."""
    make = ["make", "-s", "-n", "install", f"SYSTEM_PYTHON={python}", f"VENV={tmp_path / 'venv'}"]
    return subprocess.run(make, cwd=ROOT, capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(not externally_managed("/usr/bin/python3"), reason="no Python here refuses pip installs")
def test_make_installs_into_a_virtual_environment_where_python3_refuses_pip(tmp_path):
    venv = tmp_path / "venv"
    managed = install_commands(tmp_path, "/usr/bin/python3")
    assert f"/usr/bin/python3 -m venv {venv}" in managed and f"{venv}/bin/python -m pip install -e" in managed
    assert not externally_managed(sys.executable)  # this one installs as it is, into itself
    assert f"{sys.executable} -m pip install -e" in install_commands(tmp_path, sys.executable)


def test_make_test_installs_what_ci_tests_with(tmp_path):
    """The README's make test runs every test CI runs: the Ray, submitit and Optuna ones too."""
    (extras,) = re.findall(r"pip install -e '\.\[([^\]]+)\]'", (ROOT / ".ci" / "run").read_text())
    assert set(extras.split(",")) >= {"dev", "ray", "slurm", "optuna"}
    assert f"{sys.executable} -m pip install -e '.[{extras}]'" in install_commands(tmp_path, sys.executable)


def a_checkout_with_a_venv(tmp_path: Path) -> Path:
    """The Makefile and pyproject.toml in a folder whose .venv/bin/python is this Python, except that it notes a pip
    install (in pip-ran) instead of running one."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(
        f'#!/bin/sh\nif [ "$1 $2" = "-m pip" ]; then echo "$@" >> {tmp_path / "pip-ran"}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    return tmp_path


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_make_installs_once_and_a_second_make_install_runs_no_pip(tmp_path):
    checkout = a_checkout_with_a_venv(tmp_path)
    make = ["make", "-s", "install", "PYTHON=.venv/bin/python"]  # the path make picks once .venv exists
    first = subprocess.run(make, cwd=checkout, capture_output=True, text=True)
    assert first.returncode == 0 and (checkout / "pip-ran").is_file(), first.stderr  # nothing installed yet
    (checkout / "pip-ran").unlink()
    second = subprocess.run(make, cwd=checkout, capture_output=True, text=True)
    assert second.returncode == 0 and not (checkout / "pip-ran").exists(), second.stdout + second.stderr
    assert second.stdout == ""
