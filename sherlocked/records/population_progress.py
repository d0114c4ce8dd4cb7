"""Where a population in training stands: one record, written by whichever process trains it
(sherlocked.training.reporter) and read by the sweep that shows it (sherlocked.sweep.progress), through this one
class, to <sweep dir>/.progress/<population>.json (sherlocked.records.layout).

    python -c "from sherlocked.records.population_progress import read_all; print(read_all('outputs/sweeps/demo'))"

Every backend shares the sweep dir, so a population on a Ray node or a SLURM element is seen as one in a local
worker. The file is replaced whole (sherlocked.runtime.atomic) and removed once its jobs' results are written.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from sherlocked.records import layout
from sherlocked.runtime.atomic import write_json


@dataclass
class PopulationProgress:
    members: int
    epoch: int  # the epoch under way, from 1
    epochs: int  # of the run (trainer.max_epochs)
    epochs_done: int  # epochs whose test pass is done
    step: int  # training steps done (of a member: all members step together)
    steps: int  # training steps of the whole run
    started: float  # when the population began training (time.time())
    updated: float  # when this was written
    acc: list[float] | None = None  # the lowest and highest test accuracy of the last test pass
    diverged: int = 0  # members whose loss is no longer finite
    where: str = "?"  # the host, and the GPU (CUDA_VISIBLE_DEVICES) or cpu
    jobs: list[str] = field(default_factory=list)  # each member's overrides, as one line (the sweep counts each once)
    pid: int | None = None  # the process training it (a worker, a Ray task, a SLURM element)

    def write(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: Path) -> "PopulationProgress | None":
        """The record in a progress file; None where it is gone (its population finished) or not one (a file of an
        older sherlocked, or one replaced while read)."""
        try:
            data = json.loads(Path(path).read_text())
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{name: value for name, value in data.items() if name in known})
        except (OSError, ValueError, TypeError, AttributeError):
            return None


def read_all(sweep_dir: Path) -> dict[str, PopulationProgress]:
    """The progress of every population in training in the sweep, by its key (its file's name)."""
    found = {path.stem: PopulationProgress.read(path) for path in layout.progress_files(sweep_dir)}
    return {key: progress for key, progress in found.items() if progress is not None}
