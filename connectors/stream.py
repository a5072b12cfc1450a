"""DocumentStream: applies the error policy, rejects duplicate ids and keeps the counts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator
from itertools import islice
from typing import Literal

from .dedupe import SeenIds
from .document import Document, ReadStats, Record, Rejected

log = logging.getLogger("lucerag.connectors")

OnError = Literal["fail", "skip"]
Rejects = list[Rejected] | Callable[[Rejected], object] | None


class DocumentStream(Iterator[Document]):
    """Iterator of valid Documents; ``stats`` counts records read and rejected so far.

    ``on_error="fail"`` raises ConnectorError at the first bad record (after yielding every good
    record before it); ``"skip"`` hands it to ``rejects`` (a list to append to, or a callable) and
    goes on. Duplicate ids are checked in batches of ``batch_size`` records."""

    def __init__(
        self,
        records: Iterator[Record | Rejected],
        source: str,
        *,
        on_error: OnError = "fail",
        rejects: Rejects = None,
        check_duplicates: bool = True,
        batch_size: int = 1024,
    ) -> None:
        if on_error not in ("fail", "skip"):
            raise ValueError(f"on_error must be 'fail' or 'skip', not {on_error!r}")
        self.stats = ReadStats()
        self.source = source
        self._records = records
        self._on_error = on_error
        self._rejects = rejects
        self._seen = SeenIds() if check_duplicates else None
        self._batch_size = batch_size
        self._it = self._run()
        self.location = ""  # where the last yielded document was read (e.g. "line 12")

    def __next__(self) -> Document:
        return next(self._it)

    def close(self) -> None:
        """Stop reading and release the source (open file, database connection)."""
        self._it.close()
        close = getattr(self._records, "close", None)
        if close:
            close()

    def _reject(self, r: Rejected) -> None:
        self.stats.rejected += 1
        if self._on_error == "fail":
            raise r.error()
        if isinstance(self._rejects, list):
            self._rejects.append(r)
        elif self._rejects is not None:
            self._rejects(r)
        else:
            log.warning("rejected %s: %s: %s", r.source, r.location, r.reason)

    def _run(self) -> Generator[Document, None, None]:
        while batch := list(islice(self._records, self._batch_size)):
            good = [r for r in batch if isinstance(r, Record)]
            dup = self._seen.add_batch([r.doc.id for r in good]) if self._seen is not None else [False] * len(good)
            is_dup = {id(r) for r, d in zip(good, dup, strict=True) if d}
            for r in batch:
                self.stats.read += 1
                if isinstance(r, Rejected):
                    self._reject(r)
                elif id(r) in is_dup:
                    self._reject(Rejected(source=self.source, location=r.location,
                                          reason=f"duplicate id {r.doc.id!r}", record=r.doc.model_dump_json()))
                else:
                    self.location = r.location
                    yield r.doc
