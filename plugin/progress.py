"""Progress lines of long work (ingest, the close-time HNSW graph build): where they go and how
durations read. Standard library only."""

from __future__ import annotations

import logging
import sys


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
