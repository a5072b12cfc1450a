"""Evaluation inputs: TREC topics (``qid<TAB>text``) and qrels (``qid 0 docid grade``); BEIR
``queries.jsonl`` and ``qrels/<split>.tsv`` (``query-id<TAB>corpus-id<TAB>score``, header optional)."""

from __future__ import annotations

import json

from lucerag.connectors.beir import find_file as _find
from lucerag.connectors.document import ConnectorError
from lucerag.connectors.files import PathLike, require_file, text_lines


def read_trec_topics(path: PathLike) -> dict[str, str]:
    """``{query id: text}`` from a tab-separated topics file (whitespace accepted when no tab)."""
    p = require_file(path)
    topics: dict[str, str] = {}
    for lineno, line in text_lines(p):
        parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
        if len(parts) != 2 or not parts[1].strip():
            raise ConnectorError(str(p), f"line {lineno}", f"expected 'qid<TAB>text', got {line!r}")
        topics[parts[0].strip()] = parts[1].strip()
    return topics


def read_trec_qrels(path: PathLike) -> dict[str, dict[str, int]]:
    """``{query id: {doc id: grade}}`` from a TREC qrels file (grade 0 judgments kept)."""
    p = require_file(path)
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in text_lines(p):
        try:
            qid, _, docid, grade = line.split()
            qrels.setdefault(qid, {})[docid] = int(grade)
        except ValueError as e:
            raise ConnectorError(str(p), f"line {lineno}", f"expected 'qid 0 docid grade', got {line!r}") from e
    return qrels


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
