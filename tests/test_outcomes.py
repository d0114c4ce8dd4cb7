"""The one recorder of a job's outcome (sherlocked.records.outcomes): on every path a job ends on, its result.json and
its table row are what that path should leave; and nothing else in sherlocked writes either."""

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from sherlocked.records import outcomes, table
from sherlocked.records.job import Job
from sherlocked.records.results import Result, finished_result, read_result
from sherlocked.spec.config import hparams

ROOT = Path(__file__).parents[1]
CONFIG = {"seed": 0, "model": {"act": ["relu", "relu", "relu"]}}


def job(sweep_dir: Path, name: str, seed: int = 0) -> Job:
    return Job({**CONFIG, "seed": seed}, sweep_dir / name, [f"seed={seed}"], sweep_dir=sweep_dir)


def result(the_job: Job, status: str, **more) -> Result:
    return Result(status, the_job.config, the_job.overrides, hparams(the_job.config), **more)


def rows(sweep_dir: Path) -> dict[str, str]:
    found = table.read(sweep_dir, ["status"], on_disk=False)
    return dict(zip(found["job"], found["status"]))


@pytest.mark.parametrize("status", ["ok", "diverged", "failed"])
def test_a_trained_or_failed_job_leaves_its_result_json_then_its_row_once(tmp_path, status):
    ended = job(tmp_path, "a")
    outcome = result(ended, status, final_test_acc=0.9 if status == "ok" else None)
    outcomes.record([ended], [outcome])
    assert read_result(ended.job_dir) == outcome and outcome.recorded
    assert rows(tmp_path) == {"a": status}
    outcomes.record([ended], [outcome])  # heard again (the driver hears what a worker recorded): kept once
    assert len(table.read(tmp_path, on_disk=False)) == 1 and len(table.parts(tmp_path)) == 1


def test_a_failure_never_replaces_a_finished_result(tmp_path):
    """Another sweep finished the job while this one failed on it (a lost worker, say)."""
    ended = job(tmp_path, "a")
    finished = result(ended, "ok", final_test_acc=0.9)
    outcomes.record([ended], [finished])
    outcomes.record([ended], [result(ended, "failed", error="WorkerLost: x")])
    assert read_result(ended.job_dir) == finished and rows(tmp_path) == {"a": "ok"}


def test_a_failure_replaces_an_earlier_failure(tmp_path):
    ended = job(tmp_path, "a")
    outcomes.record([ended], [result(ended, "failed", error="first")])
    outcomes.record([ended], [result(ended, "failed", error="second")])
    assert read_result(ended.job_dir).error == "second"


def test_a_skipped_job_gets_back_what_its_record_lost_and_nothing_else(tmp_path):
    whole, lacking, damaged = job(tmp_path, "whole", 0), job(tmp_path, "lacking", 1), job(tmp_path, "damaged", 2)
    for each in (whole, lacking, damaged):
        each.job_dir.mkdir()
        result(each, "ok", final_test_acc=0.5).write(each.job_dir)
    found = [finished_result(each.job_dir, each.config) for each in (whole, lacking, damaged)]
    assert all(r.skipped and r.recorded for r in found)  # read from its record: kept already
    (damaged.job_dir / "result.json").write_text('{"status": "o')  # cut short
    for r in found[1:]:
        r.recorded = False  # what the plan finds: a row the table lacks, a damaged file (sherlocked.sweep.plan)
    outcomes.record([whole, lacking, damaged], found)
    assert read_result(damaged.job_dir) == found[2] and json.loads((damaged.job_dir / "result.json").read_text())
    assert rows(tmp_path) == {"lacking": "ok", "damaged": "ok"}  # the whole one's record was not touched


def test_an_interrupted_job_leaves_nothing(tmp_path):
    stopped, ended = job(tmp_path, "stopped", 0), job(tmp_path, "ended", 1)
    outcomes.record([stopped, ended], [None, result(ended, "ok", final_test_acc=0.5)])
    assert not stopped.job_dir.exists() and rows(tmp_path) == {"ended": "ok"}


def test_a_job_outside_a_sweep_has_its_result_json_and_no_table(tmp_path):
    alone = dataclasses.replace(job(tmp_path, "run"), sweep_dir=None)
    outcomes.record([alone], [result(alone, "ok", final_test_acc=0.5)])
    assert read_result(alone.job_dir).status == "ok" and not table.parts(tmp_path)


def calls(path: Path) -> set[str]:
    """What a file calls as x.write(...) on a result or table.record(...)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = ast.unparse(node.func.value)
            if node.func.attr == "record" and owner == "table":
                found.add("table.record")
            if node.func.attr == "write" and "result" in owner.lower() and "path" not in owner.lower():
                found.add("result.write")
    return found


@pytest.mark.slow
def test_only_the_recorder_writes_a_result_or_a_row(tmp_path):
    writers = {str(p.relative_to(ROOT)) for p in (ROOT / "sherlocked").rglob("*.py") if calls(p)}
    assert writers == {"sherlocked/records/outcomes.py"}
    (tmp_path / "bad.py").write_text("def f(job, result):\n    result.write(job.job_dir)\n    table.record([], [])\n")
    assert calls(tmp_path / "bad.py") == {"table.record", "result.write"}  # the check can fail
