"""The signals that ask training to stop, and how a process ends on one (torch-free: the sweep's driver uses it).

SIGTERM is a scheduler's preemption notice, scancel, a cloud's shutdown, `kill`; SIGUSR2 is
submitit's signal ahead of a time limit (hydra.launcher.submitit.signal_delay_s before it). A
population saves at the end of the step it gets one in (sherlocked.training.checkpoints); a
sweep's driver that gets one lets its local workers save, then ends (sherlocked.sweep.backends).
Either then ends as the signal asks: the process's own handler gets it, else it ends by it.
"""

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


class StopSignal(BaseException):
    """Raised in a sweep's driver by a stop signal, as Ctrl-C raises KeyboardInterrupt: not an error of any job."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def name(signum: int) -> str:
    return signal.Signals(signum).name


def handlers() -> dict[int, object]:
    """The process's handlers of the stop signals now."""
    return {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}


def listen(handler, before: dict[int, object]) -> None:
    """`handler` for every stop signal but those `before` ignored (a process told to ignore one goes on ignoring
    it). Only the main thread may set handlers: elsewhere (a thread of a Ray worker, say) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, was in before.items():
        if was != signal.SIG_IGN:
            signal.signal(signum, handler)


@contextmanager
def raised() -> Iterator[None]:
    """Within the block, a stop signal raises StopSignal in the main thread (a process told to ignore one goes on
    ignoring it); the handlers before it come back after."""

    def raise_it(signum, frame):
        raise StopSignal(signum)

    before = handlers()
    listen(raise_it, before)
    try:
        yield
    finally:
        for signum, handler in before.items():
            if threading.current_thread() is threading.main_thread():  # the only thread listen set them in
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)


def end_by(signum: int) -> NoReturn:
    """End this process as `signum` asks: its handler gets it (submitit's SIGUSR2 one requeues the element; a
    driver's raises StopSignal), or, where it has none, the process ends by the signal (exit status 128 + N)."""
    sys.stdout.flush()
    sys.stderr.flush()
    handler = signal.getsignal(signum)
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # a handler that returned (submitit's for SIGTERM only logs it): stopped anyway


@contextmanager
def interrupt_held() -> Iterator[None]:
    """Ctrl-C within the block raises KeyboardInterrupt as the block ends, not inside it: an import of torch
    stopped half way ended in a RecursionError or torch's logging at exit instead of the run's one line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    heard = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: heard.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if heard:
        raise KeyboardInterrupt
