"""TREC evaluation files: topics (``qid<TAB>text``) and qrels (``qid 0 docid grade``)."""

from __future__ import annotations

from .document import ConnectorError
from .files import PathLike, require_file, text_lines


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
