"""TensorBoard over every sweep and run under a folder, with one HParams table for all of them.

    python -m sherlocked.board                      # outputs/ (make tensorboard)
    python -m sherlocked.board outputs --port 6007  # what follows the folder goes to TensorBoard

Pointed at outputs/ itself, TensorBoard names a run by its whole path (sweeps/demo/tensorboard/
act1=relu,...: the part that varies is cut off), shows each sweep's HParams folder as a run, and
its HParams tab takes the first experiment summary it finds: one sweep's, whose filters offer only
that sweep's values. Here each sweep's runs are named by its study, then what varies
(demo/act1=relu,act2=tanh,act3=sigmoid,seed=0; single runs: runs/<date>/<time>), and the one
experiment summary (a run named "hparams") holds every key with the values any run took, in any
sweep, so every sweep can be filtered by all its values and its study is a column (TensorBoard lists
that run too, without curves). The summary is written into a temporary folder, removed when
TensorBoard stops: nothing under the folder changes.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from sherlocked import layout
from sherlocked.dashboard import write_experiment_of

SWEEPS, RUNS = "sweeps", "runs"  # where sweeps and single runs go under outputs/ (conf/train.yaml)
EXPERIMENT = "hparams"  # the run holding the experiment summary


def sweeps_under(root: Path) -> list[Path]:
    """Every sweep under `root`: a folder with a results table."""
    return sorted(table.parent for table in Path(root).rglob(layout.results_table(".").name) if table.is_dir())


def logdir_spec(root: Path, experiment: Path) -> str:
    """TensorBoard's --logdir_spec: name:folder for each sweep's runs, the single runs and the experiment."""
    root = Path(root)
    entries = []
    for sweep in sweeps_under(root):
        parts = sweep.relative_to(root).parts or (sweep.resolve().name,)  # root itself a sweep: its name
        name = "/".join(parts[1:] if parts[0] == SWEEPS and len(parts) > 1 else parts)
        if (sweep / layout.TENSORBOARD).is_dir():
            entries.append(f"{name}:{sweep / layout.TENSORBOARD}")
    if (root / RUNS).is_dir():
        entries.append(f"{RUNS}:{root / RUNS}")
    return ",".join([*entries, f"{EXPERIMENT}:{experiment}"])


def command(root: Path, experiment: Path, extra: list[str]) -> list[str]:
    """The TensorBoard command over `root`, its experiment summary written into `experiment` first."""
    write_experiment_of(sweeps_under(root), experiment)
    return [sys.executable, "-m", "tensorboard.main", "--logdir_spec", logdir_spec(root, experiment), *extra]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    folder_given = bool(argv) and not argv[0].startswith("-")
    root, extra = (Path(argv[0]), argv[1:]) if folder_given else (Path("outputs"), argv)
    if not root.is_dir():
        print(f"sherlocked: no {root} here: run a sweep first (make demo)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sherlocked-hparams-") as experiment:
        try:
            return subprocess.run(command(root, Path(experiment), extra)).returncode
        except KeyboardInterrupt:  # TensorBoard's own Ctrl-C: it stopped, the summary goes
            return 0


if __name__ == "__main__":
    sys.exit(main())
