"""Passage runs -> document runs: score each document from the scores of its retrieved passages.

A chunking index stores a long document as passages ``<docid>#0``, ``<docid>#1``, ... (a document
that fits one passage keeps its own id), while BEIR and TREC judgments name documents. Before a
passage run is scored against document-level qrels its passages are mapped to their document and
their scores combined:

- ``maxp``: the best passage's score (MaxP; Dai & Callan, SIGIR 2019, "Deeper Text Understanding
  for IR with Contextual Neural Language Modeling");
- ``firstp``: the score of the document's first passage (``#0``, or the document itself); a
  document whose first passage was not retrieved is dropped (FirstP, same paper);
- ``sum``: the sum of its retrieved passages' scores (SumP).

Runs are ``{qid: {id: score}}`` as in :mod:`lucerag.eval.runs`.
"""

from __future__ import annotations

import re
from collections.abc import Collection


AGGREGATIONS = ("maxp", "firstp", "sum")

_CHUNK = re.compile(r"^(.*)#(\d+)$")


def split_passage_id(pid: str, corpus_ids: Collection[str] | None = None) -> tuple[str, int] | None:
    """``(document id, chunk index)`` of passage id ``pid``; None when it belongs to no document.

    With ``corpus_ids``, ``pid`` is a document when it is one of them (chunk 0), else a chunk
    ``<doc>#<n>`` of a corpus document; anything else is unknown (None). Without them, a trailing
    ``#<digits>`` is read as a chunk number and any other id as a whole document.
    """
    if corpus_ids is not None and pid in corpus_ids:
        return pid, 0
    m = _CHUNK.match(pid)
    if m is not None and (corpus_ids is None or m.group(1) in corpus_ids):
        return m.group(1), int(m.group(2))
    return None if corpus_ids is not None else (pid, 0)


def aggregate_run(run: dict[str, dict[str, float]], how: str = "maxp",
                  corpus_ids: Collection[str] | None = None,
                  unknown: list[tuple[str, str]] | None = None) -> dict[str, dict[str, float]]:
    """The document run ``{qid: {docid: score}}`` of a passage run (see the module docstring).

    ``how``: ``"maxp"`` (default), ``"firstp"`` or ``"sum"``. ``corpus_ids`` (the corpus' document
    ids) resolves ids that contain ``#`` themselves and exposes ids that belong to no document:
    those are left out of the result and appended to ``unknown`` as ``(qid, id)`` when a list is
    given. A run that already names documents comes back unchanged (for every ``how``).
    Raises ValueError for an unknown ``how``.
    """
    if how not in AGGREGATIONS:
        raise ValueError(f"unknown passage aggregation {how!r}: use one of {', '.join(AGGREGATIONS)}")
    out: dict[str, dict[str, float]] = {}
    for qid, scores in run.items():
        docs: dict[str, float] = {}
        for pid, score in scores.items():
            parsed = split_passage_id(pid, corpus_ids)
            if parsed is None:
                if unknown is not None:
                    unknown.append((qid, pid))
                continue
            doc, chunk = parsed
            if how == "maxp":
                if doc not in docs or score > docs[doc]:
                    docs[doc] = score
            elif how == "sum":
                docs[doc] = docs.get(doc, 0.0) + score
            elif chunk == 0:
                docs[doc] = score
        out[qid] = docs
    return out


def unknown_ids(run: dict[str, dict[str, float]], corpus_ids: Collection[str]) -> list[tuple[str, str]]:
    """``(qid, id)`` for every run id that is neither a corpus id nor a chunk of one."""
    return [(qid, pid) for qid, scores in run.items() for pid in scores
            if split_passage_id(pid, corpus_ids) is None]
