"""Connectors: read documents from where users keep them, as a stream of ``Document``::

    stream = read_documents("corpus.jsonl", on_error="skip", rejects=rejected_list)
    for doc in stream: ...
    stream.stats.read, stream.stats.rejected

The per-format readers (``lucerag.connectors.jsonl.read_jsonl`` ...) yield ``Record | Rejected``;
``read_documents`` wraps them with the error policy, the duplicate check and the counts.
"""

from __future__ import annotations

import os
from typing import Any

from .document import ConnectorError, Document, ReadStats, Rejected
from .formats import FORMATS, check_options, guess_format, reader_for
from .rejects import RejectsFile
from .stream import DocumentStream, OnError, Rejects

__all__ = [
    "FORMATS", "ConnectorError", "Document", "DocumentStream", "ReadStats", "Rejected", "RejectsFile",
    "guess_format", "read_documents",
]


def read_documents(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    on_error: OnError = "fail",
    rejects: Rejects = None,
    check_duplicates: bool = True,
    **options: Any,
) -> DocumentStream:
    """Stream the Documents of ``path`` in ``format`` (guessed from the path when None).

    ``options`` go to the format's reader (e.g. ``query=`` for SQL, ``columns=`` for TSV).
    Bad records raise ConnectorError (``on_error="fail"``) or go to ``rejects`` (``"skip"``);
    the returned stream's ``stats`` reconcile: ``read == accepted + rejected``."""
    source = os.fspath(path)
    fmt = format or guess_format(source)
    reader = reader_for(fmt)
    if fmt != "sql" and not os.path.exists(source):
        raise ConnectorError(source, "", "no such file or folder")
    check_options(fmt, source, options)
    records = reader(source, **options)
    return DocumentStream(records, source, on_error=on_error, rejects=rejects,
                          check_duplicates=check_duplicates, batch_size=16 if fmt == "folder" else 1024)
