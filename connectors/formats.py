"""Format names, their readers, and guessing a format from a path."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .beir import read_beir_corpus
from .csvfile import read_csv
from .document import ConnectorError, Record, Rejected
from .extract import EXTRACTORS
from .folder import read_folder
from .jsonl import read_jsonl
from .sql import read_sql
from .tsv import read_tsv

Reader = Callable[..., Iterator[Record | Rejected]]

READERS: dict[str, Reader] = {
    "jsonl": read_jsonl,
    "jsonl.gz": read_jsonl,
    "beir": read_beir_corpus,
    "tsv": read_tsv,
    "csv": read_csv,
    "folder": read_folder,
    "sqlite": read_sql,
    "sql": read_sql,
}
FORMATS = tuple(READERS)

_SUFFIXES = {
    ".jsonl": "jsonl", ".json": "jsonl", ".jsonl.gz": "jsonl.gz", ".json.gz": "jsonl.gz",
    ".tsv": "tsv", ".tsv.gz": "tsv", ".csv": "csv",
    ".db": "sqlite", ".sqlite": "sqlite", ".sqlite3": "sqlite",
    **{ext: "folder" for ext in EXTRACTORS},
}


def guess_format(path: str | os.PathLike[str]) -> str:
    """The format name for ``path``; raises ConnectorError when it cannot be told."""
    s = os.fspath(path)
    if "://" in s:
        return "sql"
    p = Path(s)
    if p.is_dir():
        return "beir" if any((p / n).is_file() for n in ("corpus.jsonl", "corpus.jsonl.gz")) else "folder"
    name = p.name.lower()
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return _SUFFIXES[suffix]
    if not p.exists():
        raise ConnectorError(s, "", "no such file or folder")
    raise ConnectorError(s, "", f"cannot guess the format from the name; pass one of {', '.join(FORMATS)}")


def reader_for(fmt: str) -> Reader:
    try:
        return READERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}") from None


def check_options(fmt: str, path: str, options: dict[str, Any]) -> None:
    if fmt in ("sqlite", "sql") and "query" not in options:
        raise ConnectorError(path, "", "a SQL source needs a query: lucerag index --query 'SELECT id, text FROM docs' "
                                       "(Python: read_documents(path, query=...))")
