"""Evaluation inputs: TREC topics (``qid<TAB>text``) and qrels (``qid 0 docid grade``); BEIR
``queries.jsonl`` and ``qrels/<split>.tsv`` (``query-id<TAB>corpus-id<TAB>score``, header optional).

Every reader refuses, naming file and line: a query id given twice (topics, queries), a
(query, document) pair judged twice with different grades (the same grade twice is accepted),
and, in tab-separated qrels, a field holding whitespace (a space where a tab belongs would
otherwise make a document id such as ``" 0 31715818"`` that matches nothing, and all-zero metrics).
"""

from __future__ import annotations

import json

from lucerag.connectors.beir import find_file as _find
from lucerag.connectors.document import ConnectorError
from lucerag.connectors.files import PathLike, require_file, text_lines


def read_trec_topics(path: PathLike) -> dict[str, str]:
    """``{query id: text}`` from a tab-separated topics file (whitespace accepted when no tab)."""
    p = require_file(path)
    topics: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, line in text_lines(p):
        parts = line.split("\t", 1) if "\t" in line else line.split(None, 1)
        if len(parts) != 2 or not parts[1].strip():
            raise ConnectorError(str(p), f"line {lineno}", f"expected 'qid<TAB>text', got {line!r}")
        _add_query(topics, lines, p, lineno, parts[0].strip(), parts[1].strip())
    return topics


def _add_query(queries: dict[str, str], lines: dict[str, int], path, lineno: int, qid: str, text: str) -> None:
    if qid in queries:
        raise ConnectorError(str(path), f"line {lineno}", f"query id {qid!r} is repeated (first on line {lines[qid]})")
    queries[qid], lines[qid] = text, lineno


def _add_judgment(qrels: dict[str, dict[str, int]], lines: dict, path, lineno: int, qid: str, docid: str,
                  grade: int) -> None:
    judged = qrels.setdefault(qid, {})
    if docid in judged and judged[docid] != grade:
        raise ConnectorError(str(path), f"line {lineno}",
                             f"query {qid!r} judges document {docid!r} {grade}, but line {lines[qid, docid]} "
                             f"judged it {judged[docid]}")
    if docid not in judged:
        judged[docid], lines[qid, docid] = grade, lineno


def read_trec_qrels(path: PathLike) -> dict[str, dict[str, int]]:
    """``{query id: {doc id: grade}}`` from a TREC qrels file (grade 0 judgments kept)."""
    p = require_file(path)
    qrels: dict[str, dict[str, int]] = {}
    lines: dict = {}
    for lineno, line in text_lines(p):
        try:
            qid, _, docid, grade = line.split()
            value = int(grade)
        except ValueError as e:
            raise ConnectorError(str(p), f"line {lineno}", f"expected 'qid 0 docid grade', got {line!r}") from e
        _add_judgment(qrels, lines, p, lineno, qid, docid, value)
    return qrels


def read_beir_queries(folder: PathLike) -> dict[str, str]:
    """``{query id: text}`` from ``queries.jsonl``."""
    path = _find(folder, "queries.jsonl", "queries.jsonl.gz")
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, line in text_lines(path):
        try:
            obj = json.loads(line)
            qid, text = obj["_id"], obj["text"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConnectorError(str(path), f"line {lineno}", f"expected {{\"_id\", \"text\"}}: {e}") from e
        _add_query(queries, lines, path, lineno, str(qid), str(text))
    return queries


def read_beir_qrels(folder: PathLike, split: str = "test") -> dict[str, dict[str, int]]:
    """``{query id: {doc id: grade}}`` from ``qrels/<split>.tsv``, else ``qrels.tsv``."""
    path = _find(folder, f"qrels/{split}.tsv", "qrels.tsv")
    qrels: dict[str, dict[str, int]] = {}
    lines: dict = {}
    for lineno, line in text_lines(path):
        fields = line.split("\t") if "\t" in line else line.split()
        if lineno == 1 and fields[:2] == ["query-id", "corpus-id"]:
            continue
        try:
            qid, docid, score = fields
            grade = int(score)
        except ValueError as e:
            raise ConnectorError(str(path), f"line {lineno}",
                                 f"expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}") from e
        for name, value in (("query-id", qid), ("corpus-id", docid), ("score", score)):
            if not value.strip() or value != value.strip() or len(value.split()) != 1:
                raise ConnectorError(str(path), f"line {lineno}",
                                     f"{name} {value!r} holds whitespace (a space where a tab belongs?); "
                                     f"expected 'query-id<TAB>corpus-id<TAB>score', got {line!r}")
        _add_judgment(qrels, lines, path, lineno, qid, docid, grade)
    return qrels
