"""Progress lines of long work (ingest, the close-time HNSW graph build): where they go, how
durations read, a heartbeat for one long call, and the named stage a build is in (what an
interrupted build reports; a stage that must not be cut short holds Ctrl-C until it ends). Standard
library only."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import Iterator


def emit(logger: logging.Logger, text: str) -> None:
    """``text`` to ``logger`` at INFO when logging is configured (the root logger or ``logger`` has a
    handler), else to stderr: a build without a terminal or a logging set-up is never silent."""
    if logging.getLogger().handlers or logger.handlers:
        logger.info(text)
    else:
        print(text, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    """``"1m04s"`` below an hour, ``"2h05m"`` from there."""
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Heartbeat:
    """While one long call runs (``with``), e.g. into Java: a line every ``every`` seconds saying what
    runs and for how long, then one when it ends; nothing for a call shorter than ``every``. Lines go
    through :func:`emit` to ``logger``; ``lines`` keeps them."""

    def __init__(self, what: str, logger: logging.Logger, every: float = 10.0):
        self.what, self.logger, self.every = what, logger, every
        self.start = time.monotonic()
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lucerag-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self.start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        self._thread.join()
        if self.lines and exc_type is None:
            self._emit(f"{self.what}: built in {duration(time.monotonic() - self.start)}")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._emit(f"{self.what}: building, {duration(time.monotonic() - self.start)} so far")

    def _emit(self, text: str) -> None:
        self.lines.append(text)
        emit(self.logger, text)


_stage: list[str] = []
_entered: dict[str, int] = {}

# The signals that stop a build: Ctrl-C, a supervisor's or kill's SIGTERM, and a closed terminal's SIGHUP.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stage(name: str, *, hold_signals: bool = False) -> Iterator[None]:
    """Mark the work inside the ``with`` as stage ``name`` of a build (e.g. ``"graph merge"``,
    ``"publish"``); stages nest, the innermost is :func:`current_stage`. ``hold_signals``: the stage
    must not be cut short (a swap, an append's commit and manifest), see :func:`held_signals`."""
    depth = len(_stage)
    try:  # an interrupt anywhere in here still leaves the stack as it found it
        _stage.append(name)
        _entered[name] = _entered.get(name, 0) + 1
        with held_signals() if hold_signals else nullcontext():
            yield
    finally:
        del _stage[depth:]


@contextmanager
def held_signals() -> Iterator[None]:
    """SIGINT / SIGTERM / SIGHUP (``STOP_SIGNALS``) that arrive inside the ``with`` are held and
    delivered to the handlers in place before it once it ends (Ctrl-C then raises
    ``KeyboardInterrupt`` after the block, not inside it). Off the main thread, where Python cannot set
    handlers, it does nothing; a signal ignored or handled outside Python stays so."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    previous = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) not in (signal.SIG_IGN, None):
            previous[sig] = signal.signal(sig, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        for signum in dict.fromkeys(got):  # each once, in the order they came
            signal.raise_signal(signum)


def current_stage() -> str | None:
    """The innermost stage now running (see :func:`stage`), or None."""
    return _stage[-1] if _stage else None


def times_entered(name: str) -> int:
    """How many times stage ``name`` has begun in this process (e.g. ``"publish"``: a build that began
    it has changed the index, whatever happens after)."""
    return _entered.get(name, 0)
