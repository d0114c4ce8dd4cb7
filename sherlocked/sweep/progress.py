"""A sweep's live progress: each population in training says where it stands; the sweep shows it.

    python -m sherlocked.train -m hydra/launcher=population dataset=mnist_5k act1=relu,tanh,sigmoid,selu seed=0,1

A population in training keeps a small JSON file (sherlocked.records.population_progress: one record,
written by sherlocked.training.reporter from whichever process or machine trains it, read here).
The sweep (SweepProgress, Watch; Hydra's callback, sherlocked.sweep.callback, feeds them each
job's end) reads those files: in a terminal a live table of the populations in training under
the sweep's line (rich), elsewhere (CI, a log file) one line each time a population finishes an
epoch. The ETA counts training steps, not jobs, so a sweep whose jobs finish a whole population
at a time still gets one that holds after the first population.
"""

import atexit
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from sherlocked.records.population_progress import PopulationProgress, read_all
from sherlocked.records.results import Result

console = Console(highlight=False, soft_wrap=True)  # the sweep's lines and its live table share it
watching: list["Watch"] = []  # started and not stopped


def stop_watching() -> None:
    """Stop every live view, so that a last line (Ctrl-C's) is the last one."""
    for watch in list(watching):
        watch.stop()


class SweepProgress:
    """Counts a sweep's jobs by outcome and says where it stands."""

    def __init__(self, total: int | None):
        """total: the jobs the sweep will run, None where nobody can say."""
        self.total, self.start = total, time.time()
        self.counts = {"ok": 0, "diverged": 0, "failed": 0, "skipped": 0}
        self.training_since: float | None = None  # when the first population began training
        self.steps_per_job = math.nan  # training steps of a job, as the last populations in training said
        self.ended: set[str] = set()  # the jobs counted, by their overrides
        # each population seen in training, until its jobs are all counted
        self.training: dict[str, PopulationProgress] = {}

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def add(self, result: Result | None, overrides: list[str] = ()) -> None:
        self.ended.add(" ".join(overrides))
        if result is None:
            self.counts["failed"] += 1
        elif result.skipped:
            self.counts["skipped"] += 1
        else:
            self.counts[result.status] += 1

    def summary(self, short: bool = False) -> str:
        """done/total jobs and each outcome's count; short: the outcomes that occurred (a live line in 80 columns)."""
        parts = ", ".join(f"{n} {status}" for status, n in self.counts.items() if n or not short)
        return f"{self.done}/{'?' if self.total is None else self.total} jobs" + (f": {parts}" if parts else "")

    def live_line(self, populations: dict[str, PopulationProgress] | None = None) -> str:
        """The sweep's line as the live view shows it under its populations, in 80 columns."""
        return self.line(populations, short=True)

    def line(self, populations: dict[str, PopulationProgress] | None = None, short: bool = False) -> str:
        """The sweep's line; with the populations in training (sherlocked.sweep.progress), an ETA from their steps."""
        now = time.time()
        for p in (populations or {}).values():
            self.training_since = min(self.training_since or p.started, p.started)
        if populations:
            self.steps_per_job = steps_per_job(populations)
        if self.total is None:
            return f"sweep {self.summary(short)} | elapsed {clock(now - self.start)}"
        trained, remaining = self.done - self.counts["skipped"], self.total - self.done
        training_s = now - (self.training_since or self.start)
        eta = eta_s(remaining, trained, self.in_flight(populations or {}), training_s, self.steps_per_job)
        if math.isnan(eta) and trained:  # no population in training now: jobs at the rate they finished so far
            eta = training_s / trained * remaining
        return f"sweep {self.summary(short)} | elapsed {clock(now - self.start)}, ETA {clock(eta)}"

    def in_flight(self, populations: dict[str, PopulationProgress]) -> float:
        """The member-steps of jobs not counted yet. A population's 16 jobs end together and are counted one by
        one: each counts once, as trained or in flight (the ETA halved and doubled back as they arrived)."""
        self.training.update(populations)
        steps = 0.0
        for key, p in list(self.training.items()):
            left = [job for job in p.jobs if job not in self.ended]
            if p.jobs and not left:  # all counted
                del self.training[key]
            elif key in populations:
                steps += p.step * (len(left) if p.jobs else p.members)
            else:  # its file is gone: it finished, and its jobs are being counted
                steps += p.steps * len(left)
        return steps


class Watch:
    """The sweep while it trains: a live table in a terminal, a line per population epoch elsewhere."""

    def __init__(
        self,
        sweep_dir: Path,
        line: Callable[[dict[str, PopulationProgress]], str],
        live_line: Callable[[dict[str, PopulationProgress]], str] | None = None,
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
        self.last_read: dict[str, PopulationProgress] = {}
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

    def populations(self) -> dict[str, PopulationProgress]:
        """What trains now, read at most every `every_s`: a population's jobs end together, so one read
        serves them all."""
        now = time.monotonic()
        if self.read_at is None or now - self.read_at >= self.every_s:
            self.last_read, self.read_at = read_all(self.sweep_dir), now
        return self.last_read

    def render(self) -> Group:
        populations = self.populations()
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column in ("population", "members", "epoch", "step", "test acc %", "diverged", "where"):
            table.add_column(column)
        for key, p in sorted(populations.items(), key=lambda item: item[1].started):
            table.add_row(key[:8], *describe(p))
        line = self.live_line(populations)
        return Group(table, line) if populations else Group(line)

    def _print_epochs(self) -> None:
        while not self.stopped.wait(self.every_s):
            populations = self.populations()
            for key, p in populations.items():
                if p.epochs_done > self.printed.get(key, 0):
                    self.printed[key] = p.epochs_done
                    members, epoch, step, acc, diverged, where = describe(p)
                    console.print(
                        f"population {key[:8]} ({members} members on {where}): epoch {epoch}, step {step}, "
                        f"test acc {acc} %, {diverged} diverged | {self.line(populations)}"
                    )
            self.say_held_back()


def describe(p: PopulationProgress) -> tuple[str, ...]:
    acc = "-" if not p.acc else f"{100 * p.acc[0]:.1f}-{100 * p.acc[1]:.1f}"
    return str(p.members), f"{p.epoch}/{p.epochs}", f"{p.step}/{p.steps}", acc, str(p.diverged), p.where


def steps_per_job(populations: dict[str, PopulationProgress]) -> float:
    """The training steps one job takes, as the populations in training say (nan with none)."""
    return sum(p.steps for p in populations.values()) / len(populations) if populations else math.nan


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
