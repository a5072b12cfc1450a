"""Long Java calls that a signal can interrupt (Ctrl-C during the close-time HNSW graph merge).

Python runs a signal handler only in the main thread and only between bytecodes, so a Java call of
minutes made from the main thread defers Ctrl-C until it returns. :func:`run_interruptibly` makes the
call on a worker thread instead while the main thread waits in short steps: a handler that raises
(``KeyboardInterrupt``) then reaches the caller within about 0.1 s. Java cannot be stopped mid-call
from Python, so an interrupted call is left to run on its worker (a daemon thread) and the caller
cleans up around it; :func:`abandoned` tells whether one still runs (a command line about to exit
then ends the process with ``os._exit``, as the JVM would not stop it).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

WORKER_NAME = "lucerag-java-call"
_POLL_S = 0.1
_left_running: list[threading.Thread] = []  # workers whose caller was interrupted


def run_interruptibly(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` (a Java call through pyjnius) run on a worker thread; returns its result and
    re-raises its exception. Called off the main thread it simply calls ``fn`` (only the main thread
    receives Python's signal handlers). An exception raised in the waiting thread (the handler's
    ``KeyboardInterrupt``) propagates at once, leaving the call to finish on its own."""
    if threading.current_thread() is not threading.main_thread():
        return fn(*args)
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        from lucerag.lucene.jvm import detach_thread

        try:
            outcome["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc
        finally:
            done.set()
            detach_thread()

    worker = threading.Thread(target=work, name=WORKER_NAME, daemon=True)
    worker.start()
    # Timed waits: a signal delivered to one of the JVM's threads would not wake an untimed one. On an
    # Event, not Thread.join: an exception raised inside join (3.12) marks the still running thread
    # as finished.
    try:
        while not done.wait(_POLL_S):
            pass
    except BaseException:
        _left_running.append(worker)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def abandoned() -> bool:
    """Whether a call left running by an interrupt is still running on its worker thread."""
    return any(t.is_alive() for t in _left_running)
