"""One sweep trains a job at a time: a lock per job, so two sweeps into one directory share the work.

    python -m sherlocked.train -m hydra/launcher=population study=s seed=0,1 &  # twice, at once
    python -m sherlocked.train -m hydra/launcher=population study=s seed=0,1

The lock is an fcntl.flock on `<job dir>/.lock` (sherlocked.records.layout), held while the job trains by the process
that trains it: the driver, or the Ray task or SLURM element it handed the job to; the kernel
releases it when that process exits, however it exits (kill -9 included), so a lock is never
left stale. A sweep trains the jobs it could lock, then waits for the others and reads
their results, or trains them itself if their holder stopped without one. A job whose result
is finished needs no lock any more: its holder removes the file (a process still waiting on it
gets the lock, finds the result and trains nothing; later sweeps find the job finished).
"""

import fcntl
import os
from pathlib import Path

from sherlocked.records import layout


class JobLocks:
    """The locks this process holds, by job dir."""

    def __init__(self):
        self.held: dict[Path, int] = {}

    def try_lock(self, job_dir: Path) -> bool:
        """Lock the job if no other process holds it; True when this process holds it now."""
        return self._lock(job_dir, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def wait(self, job_dir: Path) -> None:
        """Block until the process that holds the job's lock lets it go, then hold it."""
        self._lock(job_dir, fcntl.LOCK_EX)

    def _lock(self, job_dir: Path, mode: int) -> bool:
        if job_dir in self.held:
            return True
        fd = os.open(layout.lock(job_dir), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
        except BlockingIOError:
            os.close(fd)
            return False
        self.held[job_dir] = fd
        return True

    def finished(self, job_dir: Path) -> None:
        """The job's result is finished: its lock file goes, and the lock with it."""
        fd = self.held.pop(job_dir, None)
        if fd is not None:
            layout.lock(job_dir).unlink(missing_ok=True)
            os.close(fd)

    def hand_over(self, job_dirs) -> None:
        """Let the jobs' locks go, for the processes that train them elsewhere (a Ray task, a SLURM element) to
        take: they hold them while they train, so a sweep started again while they run (its driver killed, say)
        waits for their results instead of training the jobs a second time."""
        for job_dir in job_dirs:
            fd = self.held.pop(job_dir, None)
            if fd is not None:
                os.close(fd)

    def release(self) -> None:
        for fd in self.held.values():
            os.close(fd)  # closing the file releases its flock
        self.held.clear()
