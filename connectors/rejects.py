"""Writing rejected records to a JSON Lines file (one Rejected per line)."""

from __future__ import annotations

import os
from types import TracebackType
from typing import TextIO

from .document import Rejected


class RejectsFile:
    """Callable sink for ``read_documents(..., rejects=...)``; use as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.count = 0
        self._f: TextIO = open(path, "w", encoding="utf-8")

    def __call__(self, rejected: Rejected) -> None:
        self._f.write(rejected.model_dump_json() + "\n")
        self.count += 1

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> RejectsFile:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
