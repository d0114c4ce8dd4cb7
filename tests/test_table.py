"""A sweep's results table: equal to its result.json files, read by resume and the report, every writer's rows
kept, never half a row, rebuilt from the files alike."""

import errno
import json
import logging
import multiprocessing
import shutil
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sherlocked.records import table
from sherlocked.records.results import Result, read_result
from sherlocked.report.runs import read_runs

GRID = ["act2=relu,sigmoid", "act3=relu,tanh", "seed=0,1", "hydra/launcher=population", "hydra.launcher.max_members=3"]


def result_files(sweep_dir) -> dict[str, dict]:
    return {str(p.parent.relative_to(sweep_dir)): json.loads(p.read_text()) for p in sweep_dir.rglob("result.json")}


@pytest.mark.slow
def test_the_table_holds_each_jobs_result_and_the_report_reads_it_as_it_reads_the_files(sweep, tmp_path):
    sweep_dir = tmp_path / "sweep"
    with sweep(sweep_dir, *GRID):  # 8 jobs in populations of 3, 3 and 2: three files, compacted at the end
        rows = table.read(sweep_dir)
        assert len(table.parts(sweep_dir)) == 1 and len(rows) == 8
        assert {job: json.loads(result) for job, result in zip(rows["job"], rows["result"])} == result_files(sweep_dir)
        assert not list(sweep_dir.rglob(".lock"))  # a finished job needs its lock no more
        from_table = read_runs(sweep_dir)
        assert sorted(from_table["act2"]) == ["relu"] * 4 + ["sigmoid"] * 4 and from_table["acc"].notna().all()
        rows.to_parquet(tmp_path / "before.parquet")
        for part in table.parts(sweep_dir):
            part.unlink()
        pd.testing.assert_frame_equal(read_runs(sweep_dir), from_table)  # no table: the files, as it would hold them
        assert table.rebuild(sweep_dir) == 8  # python -m sherlocked.report DIR --rebuild
        rebuilt = table.read(sweep_dir).sort_values("job").reset_index(drop=True)
        before = pd.read_parquet(tmp_path / "before.parquet").sort_values("job").reset_index(drop=True)
        assert rebuilt.drop(columns="written").to_json() == before.drop(columns="written").to_json()
        pd.testing.assert_frame_equal(read_runs(sweep_dir), from_table)


@pytest.mark.slow
def test_resume_trusts_the_files_on_disk_retrains_deleted_jobs_restores_damaged_ones_and_adds_lacking_rows(
    sweep, tmp_path
):
    sweep_dir = tmp_path / "sweep"
    with sweep(sweep_dir, *GRID):
        lacking, deleted_result, deleted_dir, damaged, *kept = sorted(p.parent for p in sweep_dir.rglob("result.json"))
        rows = table.read(sweep_dir)
        for part in table.parts(sweep_dir):  # the table without the first job's row
            part.unlink()
        table.write(sweep_dir, pa.Table.from_pandas(rows[rows["job"] != lacking.name], preserve_index=False))
        (deleted_result / "result.json").unlink()
        shutil.rmtree(deleted_dir)
        whole = (damaged / "result.json").read_bytes()
        (damaged / "result.json").write_bytes(whole[:100])  # cut short
        # The report counts the runs of the table whose files are on disk: 5 (the first job's row comes back with the
        # next run of the sweep; a run killed between a job's result.json and its row leaves the same).
        assert len(read_runs(sweep_dir)) == 5
        with sweep(sweep_dir, *GRID) as again:
            skipped = sorted(r.return_value.skipped for r in again.returns[0])
            assert skipped == [False] * 2 + [True] * 6  # the two deleted trained again
            assert (damaged / "result.json").read_bytes() == whole  # restored from the table, as it was
            assert sorted(table.read(sweep_dir)["job"]) == sorted(rows["job"])  # the first job's row added back
            assert all((job / "result.json").is_file() for job in (deleted_result, deleted_dir))
            assert len(read_runs(sweep_dir)) == 8


@pytest.mark.slow
def test_a_damaged_file_of_the_table_is_rebuilt_from_the_result_files_it_covered(sweep, tmp_path, caplog):
    sweep_dir = tmp_path / "sweep"
    with sweep(sweep_dir, *GRID, "hydra.launcher.max_members=2"):
        rows = table.read(sweep_dir)
        for part in table.parts(sweep_dir):  # the table as four files, one per population (as before compaction)
            part.unlink()
        for start in range(0, 8, 2):
            table.write(sweep_dir, pa.Table.from_pandas(rows[start : start + 2], preserve_index=False))
        damaged = table.parts(sweep_dir)[1]
        damaged.write_bytes(damaged.read_bytes()[:-40])  # cut short
        said = logging.getLogger("sherlocked.records.table")
        said.addHandler(caplog.handler)  # Hydra's logging replaced the root's handlers, caplog's among them
        try:
            assert len(read_runs(sweep_dir)) == 8  # not 6
        finally:
            said.removeHandler(caplog.handler)
        assert "could not be read: the 2 jobs the other files lack were read from their result.json" in caplog.text
        assert damaged.with_name(damaged.name + ".unreadable").is_file() and damaged not in table.parts(sweep_dir)
        rebuilt = table.read(sweep_dir)
        assert sorted(rebuilt["job"]) == sorted(rows["job"])
        assert sorted(rebuilt["result"].map(table.result_of).map(lambda r: r.final_test_acc)) == sorted(
            rows["result"].map(table.result_of).map(lambda r: r.final_test_acc)
        )


def test_one_identity_in_two_dirs_is_read_once_its_latest_finished_row(tmp_path):
    def job(name: str, status: str, lr: float) -> Result:
        (tmp_path / name).mkdir()
        result = Result(status=status, config={"seed": 0, "model": {"optimizer": {"lr": lr}}}, final_test_acc=0.5)
        result.write(tmp_path / name)
        return result

    table.append(tmp_path, ["seed=0", "other"], [job("seed=0", "ok", 0.01), job("other", "ok", 0.1)])
    table.append(tmp_path, ["lr=0.01,seed=0"], [job("lr=0.01,seed=0", "ok", 0.01)])  # the same job spelled out
    table.append(tmp_path, ["seed=0,study=b"], [job("seed=0,study=b", "failed", 0.01)])  # later, but failed
    assert sorted(table.read(tmp_path)["job"]) == ["lr=0.01,seed=0", "other"]
    assert len(table.read(tmp_path, on_disk=False)) == 4  # as written


@pytest.mark.slow
def test_a_table_that_cannot_be_written_fails_no_finished_job_and_the_next_run_adds_its_rows(
    sweep, tmp_path, capsys, monkeypatch
):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    sweep_dir = tmp_path / "sweep"
    grid = ["hydra/launcher=population", "act3=relu,tanh", "seed=0,1"]
    monkeypatch.setattr(table, "write", read_only)
    with sweep(sweep_dir, *grid) as first:
        assert [job.return_value.status for job in first.returns[0]] == ["ok"] * 4
        assert capsys.readouterr().out.strip().endswith("4/4 jobs: 4 ok, 0 diverged, 0 failed, 0 skipped")
        assert not table.parts(sweep_dir)
        monkeypatch.undo()
        with sweep(sweep_dir, *grid) as again:
            assert all(job.return_value.skipped for job in again.returns[0])
            assert len(table.read(sweep_dir)) == 4


def append_populations(sweep_dir, first: int, count: int) -> None:
    result = Result(status="ok", config={"seed": 0}, final_test_acc=0.5)
    for p in range(first, first + count):
        table.append(sweep_dir, [f"p{p}/job{k}" for k in range(4)], [result] * 4)


def compact_while(sweep_dir, times: int) -> None:
    for _ in range(times):
        table.compact(sweep_dir)


@pytest.mark.slow
def test_two_writers_and_a_compaction_at_once_lose_no_row(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=append_populations, args=(tmp_path, first, 60)) for first in (0, 60)]
    workers.append(context.Process(target=compact_while, args=(tmp_path, 20)))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    rows = table.read(tmp_path, on_disk=False)  # rows without job dirs: the table alone
    assert len(rows) == 120 * 4 and rows["job"].is_unique


KILLED = """
import os, signal, sys
import pyarrow.parquet as pq
from sherlocked.records import table
from sherlocked.records.results import Result

def half_then_killed(data, where, **options):  # the writer dies half way through its file
    write(data, where, **options)
    with open(where, "r+b") as f:
        f.truncate(os.path.getsize(where) // 2)
    os.kill(os.getpid(), signal.SIGKILL)

write, pq.write_table = pq.write_table, half_then_killed
table.append(sys.argv[1], ["killed/a", "killed/b"], [Result(status="ok", config={})] * 2)
"""


def test_a_writer_killed_while_it_writes_leaves_no_half_row(tmp_path):
    table.append(tmp_path, ["kept/a"], [Result(status="ok", config={"seed": 1}, final_test_acc=0.9)])
    killed = subprocess.run([sys.executable, "-c", KILLED, str(tmp_path)], capture_output=True)
    assert killed.returncode == -9
    assert list(table.read(tmp_path, on_disk=False)["job"]) == ["kept/a"]  # its population: all rows or none
    assert len(table.parts(tmp_path)) == 1 and len(list((tmp_path / "results").glob(".*.tmp"))) == 1


def test_a_row_keeps_the_whole_result(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    result = Result(status="diverged", config={"act1": "relu", "seed": 3}, final_test_acc=0.1, resumed_epochs=2)
    result.write(job)
    table.append(tmp_path, ["job"], [result])
    (row,) = table.read(tmp_path).itertuples()
    assert table.result_of(row.result) == read_result(job) and row.status == "diverged"


def test_compaction_keeps_each_jobs_latest_row_and_every_column(tmp_path):
    def result(status: str, **acts) -> Result:
        return Result(status=status, config={"seed": 0, **acts}, hparams={"seed": 0, **acts}, final_test_acc=0.5)

    table.append(tmp_path, ["x", "z"], [result("failed", act1="relu"), result("ok", act1="tanh")])
    table.append(tmp_path, ["x", "y"], [result("ok", act1="relu"), result("ok", act1="selu", act5="gelu")])  # deeper
    merged = table.compact(tmp_path)
    assert table.parts(tmp_path) == [merged]
    rows = table.read(tmp_path, on_disk=False).set_index("job")
    assert rows["status"].to_dict() == {"x": "ok", "y": "ok", "z": "ok"}  # x trained again after failing
    assert rows["hp.act5"].fillna("-").to_dict() == {"x": "-", "y": "gelu", "z": "-"}
    assert {json.loads(r)["status"] for r in rows["result"]} == {"ok"}


def test_compaction_writes_row_groups_of_thousands_of_rows_not_one_a_population(tmp_path):
    result = Result(status="ok", config={"seed": 0}, final_test_acc=0.5)
    for p in range(40):  # 40 populations of 16: one row group of 640 rows once merged, not 40 of 16
        table.append(tmp_path, [f"p{p}/job{k}" for k in range(16)], [result] * 16)
    merged = table.compact(tmp_path)
    assert pq.ParquetFile(merged).metadata.num_row_groups == 1 and len(table.read(tmp_path, on_disk=False)) == 640
