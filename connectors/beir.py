"""BEIR dataset folders: the documents of ``corpus.jsonl``.

Queries and qrels of a BEIR folder are evaluation inputs: ``lucerag.eval.topics``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .document import ConnectorError, Record, Rejected
from .files import PathLike
from .jsonl import read_jsonl


def find_file(folder: PathLike, *names: str) -> Path:
    root = Path(folder)
    if not root.is_dir():
        raise ConnectorError(str(root), "", "not a folder")
    for name in names:
        if (root / name).is_file():
            return root / name
    raise ConnectorError(str(root), "", f"no {' or '.join(names)} in the folder")


def corpus_path(folder: PathLike) -> Path:
    return find_file(folder, "corpus.jsonl", "corpus.jsonl.gz")


def read_beir_corpus(folder: PathLike) -> Iterator[Record | Rejected]:
    """Documents of ``corpus.jsonl`` (or ``corpus.jsonl.gz``) in a BEIR folder."""
    return read_jsonl(corpus_path(folder))
