"""BEIR dataset folders: ``corpus.jsonl`` (documents), ``queries.jsonl`` and qrels
(``qrels/<split>.tsv`` or ``qrels.tsv``, ``query-id<TAB>corpus-id<TAB>score``, header optional)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .document import ConnectorError, Record, Rejected
from .files import PathLike, text_lines
from .jsonl import read_jsonl


def _find(folder: PathLike, *names: str) -> Path:
    root = Path(folder)
    if not root.is_dir():
        raise ConnectorError(str(root), "", "not a folder")
    for name in names:
        if (root / name).is_file():
            return root / name
    raise ConnectorError(str(root), "", f"no {' or '.join(names)} in the folder")


def corpus_path(folder: PathLike) -> Path:
    return _find(folder, "corpus.jsonl", "corpus.jsonl.gz")


def read_beir_corpus(folder: PathLike) -> Iterator[Record | Rejected]:
    """Documents of ``corpus.jsonl`` (or ``corpus.jsonl.gz``) in a BEIR folder."""
    return read_jsonl(corpus_path(folder))


def read_beir_queries(folder: PathLike) -> dict[str, str]:
    """``{query id: text}`` from ``queries.jsonl``."""
    path = _find(folder, "queries.jsonl", "queries.jsonl.gz")
    queries: dict[str, str] = {}
    for lineno, line in text_lines(path):
        try:
            obj = json.loads(line)
            qid, text = obj["_id"], obj["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConnectorError(str(path), f"line {lineno}", f"expected {{\"_id\", \"text\"}}: {e}") from e
        queries[str(qid)] = str(text)
    return queries


def read_beir_qrels(folder: PathLike, split: str = "test") -> dict[str, dict[str, int]]:
    """``{query id: {doc id: grade}}`` from ``qrels/<split>.tsv``, else ``qrels.tsv``."""
    path = _find(folder, f"qrels/{split}.tsv", "qrels.tsv")
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in text_lines(path):
        fields = line.split("\t") if "\t" in line else line.split()
        if lineno == 1 and fields[:2] == ["query-id", "corpus-id"]:
            continue
        try:
            qid, docid, score = fields
            qrels.setdefault(qid, {})[docid] = int(score)
        except ValueError as e:
            raise ConnectorError(str(path), f"line {lineno}",
                                 f"expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}") from e
    return qrels
