"""TensorBoard over every sweep and run under a folder, with one HParams table for all of them.

    python -m sherlocked.board                      # the outputs folder: paths.outputs (make tensorboard)
    python -m sherlocked.board outputs --port 6007  # what follows the folder goes to TensorBoard
    python -m sherlocked.board --help               # its own usage; TensorBoard's: python -m tensorboard.main --help

Pointed at outputs/ itself, TensorBoard names a run by its whole path (sweeps/demo/tensorboard/
act1=relu,...: the part that varies is cut off), shows each sweep's HParams folder as a run, and
its HParams tab takes the first experiment summary it finds: one sweep's, whose filters offer only
that sweep's values. Here each sweep's runs are named by its study, then what varies
(demo/act1=relu,act2=tanh,act3=sigmoid,seed=0; single runs: runs/<date>/<time>), and the one
experiment summary (a run named "hparams") holds every key with the values any run took, in any
sweep or single run (read from the sweeps' results tables and the single runs' result.json files), so
every run can be filtered by all its values and its study is a column (TensorBoard lists that run too,
without curves). The summary is written into a temporary folder, removed when TensorBoard stops:
nothing under the folder changes.

Until TensorBoard has read the summary, its HParams API answers with an experiment it infers from the
runs read so far (raw tags for metrics, values in reading order, some rows only), and the HParams tab
asks for the experiment once, when it opens: its first answer stays until the page is reloaded.
TensorBoard lists the folders of --logdir_spec, then reads their runs one after another in that order,
so the summary comes first there; and TensorBoard's server is made only once its HParams API answers
with the summary (dashboard.py gives it a time of writing, which an inferred experiment lacks): the
first answer anyone gets is the summary, a moment after the folders are listed, however many runs follow.

TensorBoard runs in this process, so that nothing of it outlives the board, even one killed with -9 (a
TensorBoard child served on after its parent had gone). SIGTERM, SIGHUP (a closed terminal) and
Ctrl-C stop it and remove the summary's folder (exit code 0, a server's normal end); -9 leaves that
folder (one small event file) in the temporary directory.
"""

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from sherlocked.records import layout
from sherlocked.records.dashboard import write_experiment_of

RUNS = "runs"  # what TensorBoard names the single runs (they are in layout.output_paths().runs)
EXPERIMENT = "hparams"  # the run holding the experiment summary
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, a closed terminal
SUMMARY_WAIT_S = 300  # the longest the server waits for TensorBoard to read the summary before it serves anyway
QUIET_S = 5  # after this long waiting for it, the board says why it does not serve yet
EXPERIMENT_REQUEST = "/data/plugin/hparams/experiment"  # what the HParams tab asks first


def usage() -> argparse.ArgumentParser:
    """The board's --help (only that: a folder and TensorBoard's own options follow no parser's rules here)."""
    parser = argparse.ArgumentParser(
        prog="python -m sherlocked.board",
        usage="%(prog)s [FOLDER] [TensorBoard option ...]",
        description="TensorBoard over every sweep and single run under FOLDER, each sweep's runs named by its study, "
        "with one HParams experiment for all of them (make tensorboard).",
        epilog="Every other option goes to TensorBoard (python -m tensorboard.main --help lists them), e.g. "
        "python -m sherlocked.board outputs --port 6007 --bind_all. SIGTERM, SIGHUP and Ctrl-C stop TensorBoard "
        "and remove the experiment's temporary folder.",
    )
    parser.add_argument(
        "folder",
        nargs="?",
        metavar="FOLDER",
        help=f"where the sweeps and runs are (default: {layout.output_paths().outputs}, conf/paths' outputs)",
    )
    return parser


def sweeps_under(root: Path) -> list[Path]:
    """Every sweep under `root`: a folder with a results table."""
    return sorted(table.parent for table in Path(root).rglob(layout.results_table(".").name) if table.is_dir())


def single_runs_under(root: Path, sweeps: list[Path]) -> list[Path]:
    """Every single run in `root`'s runs folder (conf/paths): a folder with a result.json and no results table
    (outside the sweeps)."""
    results = sorted(layout.output_paths(root).runs.rglob(layout.RESULT))
    return [result.parent for result in results if not any(result.is_relative_to(sweep) for sweep in sweeps)]


def logdir_spec(root: Path, experiment: Path) -> str:
    """TensorBoard's --logdir_spec: name:folder for the experiment, each sweep's runs and the single runs.

    The experiment first: TensorBoard reads the runs one after another in this order (its LocalDataIngester
    walks the entries in order, then reloads the runs in the order they were added)."""
    root, places = Path(root), layout.output_paths(root)
    entries = [f"{EXPERIMENT}:{experiment}"]
    for sweep in sweeps_under(root):
        under = places.sweeps if sweep.is_relative_to(places.sweeps) and sweep != places.sweeps else root
        parts = sweep.relative_to(under).parts or (sweep.resolve().name,)  # root itself a sweep: its name
        if (sweep / layout.TENSORBOARD).is_dir():
            entries.append(f"{'/'.join(parts)}:{sweep / layout.TENSORBOARD}")
    if places.runs.is_dir():
        entries.append(f"{RUNS}:{places.runs}")
    return ",".join(entries)


def write_summary(root: Path, experiment: Path) -> bool:
    """The experiment summary of every trained run under `root` into `experiment`; whether there was any."""
    sweeps = sweeps_under(root)
    return write_experiment_of(sweeps, experiment, single_runs_under(root, sweeps)) > 0


def summary_served(app, path_prefix: str) -> bool:
    """Whether TensorBoard's HParams API answers with the summary (it has a time of writing; one TensorBoard
    infers from the runs read so far has none). An answer this check cannot read counts as yes: it never holds
    the server back for good."""
    from werkzeug.test import Client

    answer = Client(app).post(path_prefix + EXPERIMENT_REQUEST, json={"experimentName": ""})
    return answer.status_code != 200 or bool(json.loads(answer.get_data()).get("timeCreatedSecs"))


def wait_for_summary(app, path_prefix: str, seconds: float) -> None:
    """Until TensorBoard's HParams API answers with the summary, at most `seconds`; saying why the board is quiet
    where that takes a while (the folders of many runs to list)."""
    started, said = time.monotonic(), False
    while not summary_served(app, path_prefix):
        waited = time.monotonic() - started
        if waited > seconds:
            print(f"sherlocked: no HParams experiment after {seconds:.0f} s; serving anyway", file=sys.stderr)
            return
        if waited > QUIET_S and not said:
            print("sherlocked: TensorBoard serves once it has read the HParams experiment", file=sys.stderr)
            said = True
        time.sleep(0.05)


def serving_once_summary_read(make_server, seconds: float = SUMMARY_WAIT_S):
    """TensorBoard's server factory, holding its server back until TensorBoard's HParams API answers with the
    summary: the HParams tab asks for the experiment once, and keeps the first answer."""

    def server(app, flags):
        wait_for_summary(app, flags.path_prefix, seconds)
        return make_server(app, flags)

    return server


def tensorboard(spec: str, extra: list[str], summary: bool) -> int:
    """TensorBoard over `spec`, in this process, until it stops; with a summary, serving once it is read."""
    from tensorboard import program
    from tensorboard.plugins.base_plugin import FlagsError

    make_server = program.create_port_scanning_werkzeug_server
    board = program.TensorBoard(server_class=serving_once_summary_read(make_server) if summary else make_server)
    try:
        board.configure(["", "--logdir_spec", spec, *extra])
    except FlagsError as error:  # options that do not go together (--logdir: the board gives it --logdir_spec)
        print(f"sherlocked: TensorBoard: {error}", file=sys.stderr)
        return 2
    return board.main()


def stop(signal_number: int, frame) -> None:
    """Any stop signal ends the board as Ctrl-C does: KeyboardInterrupt unwinds TensorBoard, and the summary's
    folder is removed on the way out; another signal meanwhile is ignored, so that the removal finishes."""
    for stop_signal in STOPS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        usage().print_help()
        return 0
    folder_given = bool(argv) and not argv[0].startswith("-")
    root, extra = (Path(argv[0]), argv[1:]) if folder_given else (layout.output_paths().outputs, argv)
    if not root.is_dir():
        print(f"sherlocked: no {root} here: run a sweep first (make demo)", file=sys.stderr)
        return 2
    for signal_number in STOPS:  # before the folder exists: a signal now still removes it
        signal.signal(signal_number, stop)
    try:
        with tempfile.TemporaryDirectory(prefix="sherlocked-hparams-") as experiment:
            summary = write_summary(root, Path(experiment))
            return tensorboard(logdir_spec(root, Path(experiment)), extra, summary)
    except KeyboardInterrupt:  # a stop signal: TensorBoard stopped, the summary's folder is gone
        return 0


if __name__ == "__main__":
    sys.exit(main())
