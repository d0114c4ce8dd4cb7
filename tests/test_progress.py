"""Live progress: populations report where they stand, the sweep shows it and estimates what is left."""

import json
import re
import subprocess
import sys
import time

import pytest
from rich.console import Console

from sherlocked.records import layout
from sherlocked.records.job import Job
from sherlocked.records.layout import PROGRESS as FOLDER
from sherlocked.records.population_progress import PopulationProgress, read_all
from sherlocked.records.results import Result
from sherlocked.sweep import progress
from sherlocked.sweep.progress import Watch, eta_s, steps_per_job
from tests.conftest import SMALL


def population(step: int, steps: int = 100, members: int = 16, **more) -> PopulationProgress:
    at = {"started": time.time(), "updated": time.time(), **more}
    return PopulationProgress(members, 3, 10, 2, step, steps, acc=[0.1, 0.912], diverged=1, where="gpu-node, 0", **at)


def times(sweep_dir) -> dict:
    """What the population of fedcba98... said of its times (written, then read back)."""
    data = json.loads((sweep_dir / FOLDER / "fedcba9876543210.json").read_text())
    return {"started": data["started"], "updated": data["updated"]}


def test_the_eta_counts_steps_so_it_holds_while_whole_populations_finish_at_once():
    """4 populations of 16 jobs, 100 steps each, one at a time at 1 step/s: 400 s in all."""
    for done_s in (10, 50, 100, 250, 330):  # seconds into the sweep
        finished, step = divmod(done_s, 100)
        running = {"p": population(step)}
        eta = eta_s(64 - 16 * finished, 16 * finished, step * 16, done_s, steps_per_job(running))
        assert eta == pytest.approx(400 - done_s, rel=0.2)
    assert eta_s(64, 0, 0, 5.0, steps_per_job({})) != eta_s(64, 0, 0, 5.0, steps_per_job({}))  # unknown (nan)
    # between two populations, with what the last one said a job takes
    assert eta_s(48, 16, 0, 100.0, per_job=100) == pytest.approx(300)


def test_the_eta_holds_while_a_finished_populations_jobs_are_counted_one_by_one(monkeypatch):
    """The sweep learns of a population's end as 16 job lines in a row; what it last read of the population (its
    progress file, read at most every second) still shows it training. Each job counts once."""
    from sherlocked.sweep.progress import SweepProgress

    monkeypatch.setattr(time, "time", lambda: 1100.0)  # the lines come in the same second
    progress = SweepProgress(total=64)
    jobs = [[f"seed={i}"] for i in range(16)]
    first = {"p": population(90, jobs=[" ".join(j) for j in jobs], started=1000)}
    before = progress.line(first)
    done = {"p": population(100, jobs=first["p"].jobs, started=1000)}
    etas = [before]
    for n, job in enumerate(jobs):
        progress.add(Result(status="ok", config={}), job)
        etas.append(progress.line(done if n < 8 else {}))  # its file read finished, then gone
    seconds = [sum(int(x) * 60**i for i, x in enumerate(reversed(e.rsplit("ETA ", 1)[1].split(":")))) for e in etas]
    assert max(seconds) <= 1.2 * min(seconds), etas  # was: halved as the jobs arrived, doubled back after


def test_the_live_table_shows_each_population_in_training_under_the_sweep(tmp_path, monkeypatch):
    (tmp_path / FOLDER).mkdir()
    population(250, steps=1250).write(tmp_path / FOLDER / "0123456789abcdef.json")
    nested = [Job({"seed": s}, tmp_path / "model" / f"optimizer=adam,seed={s}", sweep_dir=tmp_path) for s in (0, 1)]
    assert layout.progress(nested).parent == tmp_path / FOLDER  # jobs one folder down (a config group override)
    population(5, members=4).write(tmp_path / FOLDER / "fedcba9876543210.json")
    (tmp_path / FOLDER / "half-written.json").write_text("{")
    (tmp_path / FOLDER / "not-a-record.json").write_text('{"members": 3}')
    assert set(read_all(tmp_path)) == {"0123456789abcdef", "fedcba9876543210"}
    assert read_all(tmp_path)["fedcba9876543210"] == population(5, members=4, **times(tmp_path))
    screen = Console(record=True, width=120)
    screen.print(Watch(tmp_path, lambda populations: f"sweep line ({len(populations)} training)").render())
    text = screen.export_text()
    row = next(line for line in text.splitlines() if line.startswith("01234567"))
    assert row.split()[:6] == ["01234567", "16", "3/10", "250/1250", "10.0-91.2", "1"] and "gpu-node, 0" in row
    assert text.strip().endswith("sweep line (2 training)")


def test_the_live_view_fits_an_80_column_terminal(tmp_path, monkeypatch):
    from sherlocked.sweep.progress import SweepProgress

    monkeypatch.setattr(time, "time", lambda: 4000.0)
    (tmp_path / FOLDER).mkdir()
    population(250, steps=1250, started=1000.0).write(tmp_path / FOLDER / "0123456789abcdef.json")
    progress = SweepProgress(total=4608)
    progress.counts.update(ok=1200, diverged=16)
    progress.start = 0.0
    screen = Console(record=True, width=80)
    screen.print(Watch(tmp_path, progress.line, progress.live_line).render())
    lines = screen.export_text().strip().splitlines()
    assert lines[-1] == "sweep 1216/4608 jobs: 1200 ok, 16 diverged | elapsed 1:06:40, ETA 2:18:59", lines
    assert all(len(line) <= 80 for line in lines)


@pytest.mark.slow
def test_a_sweep_not_on_a_terminal_prints_a_line_per_population_epoch_while_it_trains(tmp_path, data_root):
    command = [sys.executable, "-m", "sherlocked.train", "-m", "hydra/launcher=population", "seed=0,1", *SMALL]
    command += ["hydra.launcher.max_members=1", "trainer.max_epochs=40", "model.widths=[784,16,12,10]"]
    command += [f"dataset.root={data_root}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=True).stdout.splitlines()
    first_job = next(i for i, line in enumerate(out) if line.startswith("sweep 1/2 jobs"))
    pattern = r"population \w{8} \(1 members on .+\): epoch \d+/40, step \d+/\d+, test acc [\d.]+-[\d.]+ %, 0 diverged"
    assert any(re.match(pattern + r" \| sweep 0/2 jobs", line) for line in out[:first_job]), "\n".join(out)
    assert not (tmp_path / "sweep" / FOLDER).exists()  # each population's file went with its results


def test_a_watch_stops_with_the_sweep(tmp_path):
    watch = Watch(tmp_path, lambda populations: "line", every_s=0.05)
    watch.start()
    assert watch in progress.watching
    progress.stop_watching()
    assert not progress.watching and watch.thread is None


@pytest.mark.slow
def test_jobs_that_end_together_get_one_line_and_the_last_of_them_at_the_next_tick(tmp_path, capsys):
    watch = Watch(tmp_path, lambda populations: "", every_s=0.2)
    watch.start()  # not a terminal here: a thread ticks every 0.2 s
    try:
        for n in range(1, 17):  # a population of 16 ends
            watch.say(f"sweep {n}/32 jobs")
        time.sleep(0.5)
        watch.say("sweep 32/32 jobs", last=True)
    finally:
        watch.stop()
    assert capsys.readouterr().out.splitlines() == ["sweep 1/32 jobs", "sweep 16/32 jobs", "sweep 32/32 jobs"]
