"""Ctrl-C (SIGINT), SIGTERM or SIGHUP (a closed terminal) during ``lucerag index`` / ``import-vectors``:
one line on stderr saying what was stopped and what is left, then exit status 130 (SIGINT), 143
(SIGTERM) or 129 (SIGHUP).

The JVM starts with ``-Xrs`` (:func:`lucerag.lucene.jvm.jvm_options`), so the signal reaches Python;
:func:`reporting_interrupts` turns it into ``KeyboardInterrupt`` in the main thread, the index writer
drops its unfinished build on the way out (a fresh build's hidden folders, an append's uncommitted
files), and the long close-time graph merge runs on a worker thread so that the signal is not held
until it ends (:mod:`lucerag.lucene.interruptible`). Once a build has begun publishing (the swap of a
fresh build, an append's commit) the signal is noted and the build finishes: the line then says the
new index is in place.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from lucerag.progress import STOP_SIGNALS as SIGNALS


def _has_index(path: Path) -> bool:
    try:
        return path.is_dir() and any(p.name.startswith("segments_") for p in path.iterdir())
    except OSError:  # unreadable: the build itself will say so
        return False


def _exit(code: int) -> None:
    from lucerag.lucene.interruptible import abandoned

    sys.stdout.flush()
    sys.stderr.flush()
    if abandoned():  # a Java call (the graph merge) still runs on a worker; nothing else would stop it
        os._exit(code)
    raise SystemExit(code)


@contextmanager
def reporting_interrupts(index: Path, *, append: bool, work: str = "ingest") -> Iterator[None]:
    """Around a command's build of ``index`` (``append``: an update in place; ``work``: the name of the
    stage before the writer names its own, e.g. ``"ingest"``): SIGINT/SIGTERM/SIGHUP stop the build with one
    line on stderr and exit status 128 + the signal's number. Off the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from lucerag.progress import current_stage, times_entered

    index = Path(index)
    had_index = _has_index(index)
    start = time.monotonic()
    published = times_entered("publish")
    received: list[tuple[int, str]] = []  # (signal, stage it came in)

    def handler(signum, frame):
        first = not received
        # from the first step of publishing on, the build is let finish (the index has changed)
        now = "publish" if times_entered("publish") > published else current_stage() or work
        received.append((signum, now))
        if first and now != "publish":  # later signals are only noted: the clean-up must finish
            raise KeyboardInterrupt

    # A signal ignored when lucerag started (a background job of a shell, nohup) stays ignored, and one
    # whose handler was not set from Python (None: it could not be put back) is left alone.
    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS
                if signal.getsignal(sig) not in (signal.SIG_IGN, None)}
    try:
        yield
    except BaseException:
        if not received or received[0][1] == "publish":
            raise
        _report(index, append, had_index, received[0], time.monotonic() - start, finished=False)
        _exit(128 + received[0][0])
    else:
        if received:
            _report(index, append, had_index, received[0], time.monotonic() - start, finished=True)
            _exit(128 + received[0][0])
    finally:
        for sig, old in previous.items():
            # once a signal has been reported the exit status is decided: a second one (SIGTERM after
            # Ctrl-C) must not turn it into a death by signal or a traceback on the way out
            signal.signal(sig, signal.SIG_IGN if received else old)


def reports_interrupts(work: str) -> Callable:
    """Decorate a build command whose options include ``index_dir`` and ``append``: its whole run goes
    under :func:`reporting_interrupts` (``work`` names the stage before the writer's own)."""
    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)  # typer reads the options from the wrapped function's signature
        def run(*args, **kwargs):
            with reporting_interrupts(kwargs["index_dir"], append=bool(kwargs.get("append")), work=work):
                return command(*args, **kwargs)
        return run
    return decorate


def _report(index: Path, append: bool, had_index: bool, received: tuple[int, str], seconds: float,
            *, finished: bool) -> None:
    from lucerag.index.writer import build_folders, remove_build_folder
    from lucerag.progress import duration

    signum, stage = received
    name = signal.Signals(signum).name
    doing = "updating" if append else "building"
    head = f"lucerag: stopped by {name} while {doing} {index} ({stage}, {duration(seconds)} in)"
    if finished:
        line = f"{head}; too late to stop: " + ("the update is committed" if append else "the new index is in place")
    elif append:
        line = f"{head}; nothing was committed: the index is as it was before this update"
    else:
        for folder in build_folders(index, os.getpid()):
            remove_build_folder(folder)
        left = build_folders(index, os.getpid())
        before = "the previous index there is unchanged" if had_index else "no index was written there"
        after = ("the partial build was removed" if not left else
                 "the partial build " + ", ".join(str(p) for p in left) + " will be removed by the next build "
                 "of this index")
        line = f"{head}; {before}; {after}"
    print(line, file=sys.stderr, flush=True)
