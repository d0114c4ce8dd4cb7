"""Atomic writes, which every file of a sweep goes through: a reader sees the old file or the whole new one, never
half of one, and a writer stopped at any point (Ctrl-C, a stop signal) leaves nothing behind.

    python -c "from sherlocked.runtime.atomic import write_json; write_json('/tmp/x.json', {'a': 1})"

Results (sherlocked.records.results), the results table's files (sherlocked.records.table), checkpoints and
progress files (sherlocked.training), unpacked datasets (sherlocked.spec.datasets) all write through here.
"""

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary file beside `path` to write; renamed over `path` when the block ends without error, removed
    otherwise. Readers see the old file or the whole new one, and the temporary name is this writer's own,
    so two processes writing the same file never share one. Named before anything is created, so that an
    interrupt at any point still removes it; only a writer killed mid-write leaves one (see temporaries)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def temporaries(path: Path) -> list[Path]:
    """What writers of `path` (see replacing) that were killed mid-write left beside it."""
    path = Path(path)
    return list(path.parent.glob(f".{path.name}.*.tmp"))


def discard(path: Path) -> None:
    """Remove a file, and its folder once nothing else is in it (a population's checkpoint, its progress)."""
    Path(path).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        Path(path).parent.rmdir()


def write_json(path: Path, data: dict) -> None:
    """Write atomically (see replacing), synced to disk before it is renamed into place."""
    with replacing(path) as temporary, open(temporary, "w") as f:
        json.dump(data, f, indent=2, allow_nan=True)
        f.flush()
        os.fsync(f.fileno())
