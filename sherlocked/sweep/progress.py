"""A sweep's live progress: each population in training says where it stands; the sweep shows it.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act1=relu,tanh,sigmoid,selu seed=0,1

A population in training keeps a small JSON file, <sweep dir>/.progress/<population>.json
(sherlocked.layout), written by sherlocked.training.reporter from whichever process or machine
trains it (every backend shares the sweep dir), and removed once its results are written.
The sweep (sherlocked.sweep.callback.StudyCallback) reads those files: in a terminal a live table of the
populations in training under the sweep's line (rich), elsewhere (CI, a log file) one line each
time a population finishes an epoch. The ETA counts training steps, not jobs, so a sweep whose
jobs finish a whole population at a time still gets one that holds after the first population.
"""

import atexit
import json
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from sherlocked import layout

console = Console(highlight=False, soft_wrap=True)  # the sweep's lines and its live table share it
watching: list["Watch"] = []  # started and not stopped


def stop_watching() -> None:
    """Stop every live view, so that a last line (Ctrl-C's) is the last one."""
    for watch in list(watching):
        watch.stop()


def read_populations(sweep_dir: Path) -> dict[str, dict]:
    """The progress of every population in training in the sweep, by key."""
    found = {}
    for path in layout.progress_files(sweep_dir):
        try:
            found[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):  # removed or replaced while read
            continue
    return found


class Watch:
    """The sweep while it trains: a live table in a terminal, a line per population epoch elsewhere."""

    def __init__(
        self,
        sweep_dir: Path,
        line: Callable[[dict[str, dict]], str],
        live_line: Callable[[dict[str, dict]], str] | None = None,
        every_s: float = 1.0,
    ):
        """line(populations): the sweep's own line (counts, elapsed, ETA), given what trains now; live_line: the
        same for the live view, which a narrow terminal cuts (default: line)."""
        self.sweep_dir, self.line, self.every_s = Path(sweep_dir), line, every_s
        self.live_line = live_line or line
        self.live: Live | None = None
        self.thread: threading.Thread | None = None
        self.stopped = threading.Event()
        self.printed: dict[str, int] = {}
        self.last_read: dict[str, dict] = {}
        self.read_at: float | None = None
        self.said = threading.Lock()  # say() and the thread that prints epochs share the last line said
        self.said_at: float | None = None
        self.unsaid: str | None = None  # the latest sweep line held back, for the next tick

    def start(self) -> None:
        if console.is_terminal:
            self.live = Live(get_renderable=self.render, console=console, refresh_per_second=2, transient=True)
            self.live.start()
        else:
            self.thread = threading.Thread(target=self._print_epochs, daemon=True)
            self.thread.start()
        watching.append(self)
        atexit.register(self.stop)  # Ctrl-C ends a sweep with sys.exit: the terminal gets its cursor back

    def stop(self) -> None:
        self.stopped.set()
        if self in watching:
            watching.remove(self)
        if self.live is not None:
            self.live.stop()
            self.live = None
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    def say(self, line: str, last: bool = False) -> None:
        """The sweep's line after a job ends, at most one every `every_s`: a population's 16 jobs end together,
        and 16 lines in one second say nothing the last of them does not. A line held back is said at the next
        tick in a log (a terminal's live view shows it meanwhile); the sweep's last line always at once."""
        with self.said:
            now = time.monotonic()
            if last or self.said_at is None or now - self.said_at >= self.every_s:
                console.print(line)
                self.said_at, self.unsaid = now, None
            else:
                self.unsaid = line

    def say_held_back(self) -> None:
        with self.said:
            if self.unsaid is not None and time.monotonic() - self.said_at >= self.every_s:
                console.print(self.unsaid)
                self.said_at, self.unsaid = time.monotonic(), None

    def populations(self) -> dict[str, dict]:
        """What trains now, read at most every `every_s`: a population's jobs end together, so one read
        serves them all."""
        now = time.monotonic()
        if self.read_at is None or now - self.read_at >= self.every_s:
            self.last_read, self.read_at = read_populations(self.sweep_dir), now
        return self.last_read

    def render(self) -> Group:
        populations = self.populations()
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("population", "members", "epoch", "step", "test acc %", "diverged", "where"):
            table.add_column(column)
        for key, p in sorted(populations.items(), key=lambda item: item[1].get("started", 0)):
            table.add_row(key[:8], *describe(p))
        line = self.live_line(populations)
        return Group(table, line) if populations else Group(line)

    def _print_epochs(self) -> None:
        while not self.stopped.wait(self.every_s):
            populations = self.populations()
            for key, p in populations.items():
                if p.get("epochs_done", 0) > self.printed.get(key, 0):
                    self.printed[key] = p["epochs_done"]
                    members, epoch, step, acc, diverged, where = describe(p)
                    console.print(
                        f"population {key[:8]} ({members} members on {where}): epoch {epoch}, step {step}, "
                        f"test acc {acc} %, {diverged} diverged | {self.line(populations)}"
                    )
            self.say_held_back()


def describe(p: dict) -> tuple[str, ...]:
    acc = "-" if not p.get("acc") else f"{100 * p['acc'][0]:.1f}-{100 * p['acc'][1]:.1f}"
    return (
        str(p["members"]),
        f"{p['epoch']}/{p['epochs']}",
        f"{p['step']}/{p['steps']}",
        acc,
        str(p.get("diverged", 0)),
        p.get("where", "?"),
    )


def steps_per_job(populations: dict[str, dict]) -> float:
    """The training steps one job takes, as the populations in training say (nan with none)."""
    return sum(p["steps"] for p in populations.values()) / len(populations) if populations else math.nan


def eta_s(jobs_left: int, jobs_trained: int, in_flight: float, elapsed_s: float, per_job: float) -> float:
    """Seconds left, from the training steps done so far (member-steps: a step of 16 members is 16).

    in_flight: the member-steps done by the jobs in training (not among jobs_trained; see SweepProgress);
    per_job: the steps a job takes (steps_per_job; kept by the caller for the moments between populations).
    """
    if math.isnan(per_job):
        return math.nan
    done = jobs_trained * per_job + in_flight
    if done <= 0 or elapsed_s <= 0:
        return math.nan
    left = jobs_left * per_job - in_flight
    return max(left, 0) * elapsed_s / done


def clock(seconds: float) -> str:
    return "?" if math.isnan(seconds) else str(timedelta(seconds=round(seconds)))
