"""Where the benchmarks find evaluation data: a path the caller gives, never one beside the source tree.

A benchmark takes its data as an option (``--data DIR``, ``--input FILE``, ``--queries FILE``) or from
the environment variable ``LUCERAG_DATA``: a folder holding ``msmarco-dl19-5k/`` (BEIR layout) and
``topics-and-qrels/`` (for example the shared evaluation data, ``../shared/data`` from a clone).
Without either, :func:`data_path` raises :class:`~lucerag.errors.InputError` saying so.
"""

from __future__ import annotations

import os
from pathlib import Path

from lucerag.errors import InputError

ENV = "LUCERAG_DATA"
DL19_SLICE = "msmarco-dl19-5k"
DEV_TOPICS = "topics-and-qrels/topics.msmarco-passage.dev-subset.txt"


def data_root(root: str | Path | None = None) -> Path | None:
    """``root``, else ``$LUCERAG_DATA``, else None."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV)
    return Path(env) if env else None


def has_data(relative: str, root: str | Path | None = None) -> bool:
    base = data_root(root)
    return base is not None and (base / relative).exists()


def data_path(relative: str, root: str | Path | None = None, option: str = "--data") -> Path:
    """``<root or $LUCERAG_DATA>/relative``; raises InputError naming what is missing and how to give it."""
    base = data_root(root)
    if base is None:
        raise InputError(f"this benchmark reads {relative}: pass {option} DIR or set {ENV} to the folder "
                         f"that holds it (e.g. ../shared/data)")
    path = base / relative
    if not path.exists():
        raise InputError(f"{path} not found: {option} / {ENV} must name the folder holding {relative}")
    return path
