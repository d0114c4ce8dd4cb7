"""Several processes writing MLflow runs into one SQLite store at once, with and without sherlocked's file lock.

    python -m sherlocked.bench.writers                       # 8 writers x 16 runs x 10 epochs, then 16 writers
    python -m sherlocked.bench.writers --writers 2 --runs 2 --into /tmp/w

Each writer is what one population's tracker does (sherlocked.records.mlflow_store): a run a member, one
log_batch a run an epoch, then its end. Into a new store (the first writers create its tables) and into
one that exists, each with the lock (mlflow_store.store_lock) and without; what counts is the runs the
store holds FINISHED afterwards against those written, and the wall time. docs/trackers.md has the figures.
"""

import argparse
import contextlib
import multiprocessing
import tempfile
import time
from pathlib import Path

from sherlocked.records import mlflow_store


def write(uri: str, writer: int, runs: int, epochs: int, locked: bool) -> None:
    """One writer's runs, a population's way; a failed write ("database is locked") loses that run, as it would."""
    if not locked:
        mlflow_store.store_lock = lambda uri: contextlib.nullcontext()
    try:
        store = mlflow_store.client(uri)
        experiment = mlflow_store.experiment_id(store, uri, "bench")
    except Exception:
        return
    for run in range(runs):
        try:
            with mlflow_store.store_lock(uri):
                tags = mlflow_store.tags("bench", "/bench", f"/bench/{writer}/{run}")
                run_id = mlflow_store.new_run(store, experiment, f"{writer}-{run}", {"seed": run}, tags)
            for epoch in range(1, epochs + 1):
                points = [(name, 1 / epoch, epoch) for name in ("accuracy/test", "loss/test", "loss/train_epoch")]
                with mlflow_store.store_lock(uri):
                    mlflow_store.log_metrics(store, run_id, mlflow_store.metrics(points))
            with mlflow_store.store_lock(uri):
                mlflow_store.end_run(store, run_id, failed=False)
        except Exception:
            continue


def finished(uri: str) -> int:
    store = mlflow_store.client(uri)
    experiment = store.get_experiment_by_name("bench")
    if experiment is None:
        return 0
    return sum(
        run.info.status == "FINISHED"
        for runs in mlflow_store.runs_by_job(store, experiment.experiment_id).values()
        for run in runs
    )


def measure(uri: str, writers: int, runs: int, epochs: int, locked: bool) -> tuple[int, float]:
    """(runs the store lacks afterwards, seconds): `writers` processes at once."""
    before = finished(uri) if Path(mlflow_store.sqlite_path(uri)).exists() else 0
    context = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    processes = [context.Process(target=write, args=(uri, w, runs, epochs, locked)) for w in range(writers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    took = time.perf_counter() - start
    return writers * runs - (finished(uri) - before), took


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sherlocked.bench.writers", description=__doc__.split("\n")[0])
    parser.add_argument("--writers", type=int, default=8, help="processes at once into a new store (default 8)")
    parser.add_argument("--runs", type=int, default=16, help="runs each writes (default 16: a population's members)")
    parser.add_argument("--epochs", type=int, default=10, help="log_batch calls a run (default 10)")
    parser.add_argument("--into", type=Path, help="where the stores go (default: a temporary folder)")
    args = parser.parse_args(argv)
    folder = args.into or Path(tempfile.mkdtemp(prefix="sherlocked-writers-"))
    folder.mkdir(parents=True, exist_ok=True)
    print("| store | writers | lock | runs lost | seconds |\n|---|---:|---|---:|---:|")
    for locked in (True, False):
        name = "lock" if locked else "no lock"
        uri = f"sqlite:///{folder / name.replace(' ', '_')}.db"
        for store, writers in (("new", args.writers), ("existing", args.writers * 2)):
            lost, took = measure(uri, writers, args.runs, args.epochs, locked)
            print(f"| {store} | {writers} | {name} | {lost}/{writers * args.runs} | {took:.1f} |", flush=True)


if __name__ == "__main__":
    main()
