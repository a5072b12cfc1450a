"""Pseudo-queries drawn from a corpus: judgments for a user's own corpus without any labelling.

A sentence of a passage, used as a query, has that passage as a known relevant answer. Passages
are drawn at random (seeded); from each, one sentence of ``min_words``..``max_words`` words is
taken (the document's title instead when it has one that long, as a title is closer to what a
user asks). Other passages are unjudged and count as not relevant, as in any qrels.

Such queries copy the passage's words, so they are easier for BM25 than real questions and every
one has exactly one relevant passage: a calibrator fitted on them alone learns that base rate.
``lucerag calibrate --pseudo N`` therefore mixes them with the team's out-of-domain questions
(never answerable) and, when given, real judgments.
"""

from __future__ import annotations

import re

import numpy as np

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def pseudo_queries(index, n: int = 200, seed: int = 0, min_words: int = 6,
                   max_words: int = 20) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """(queries, qrels) of up to ``n`` pseudo-queries from ``index`` (a LuceneIndex).

    Passages without a usable sentence are skipped; chunks of one document share its id prefix
    but only the drawn passage counts as relevant."""
    rng = np.random.default_rng(seed)
    size = index.size
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for docnum in rng.permutation(size)[: 4 * n].tolist():
        if len(queries) >= n:
            break
        record = index.record(docnum)
        pid = index.ids([docnum])[0]
        title = (record.get("title") or "").strip()
        text = record.get("contents") or ""
        if title and text.startswith(title):
            text = text[len(title):]
        choices = [title] if min_words <= len(title.split()) <= max_words else []
        if not choices:
            choices = [s.strip() for s in _SENTENCE.split(text) if min_words <= len(s.split()) <= max_words]
        if not choices:
            continue
        qid = f"pseudo:{docnum}"
        queries[qid] = choices[int(rng.integers(len(choices)))]
        qrels[qid] = {pid: 1}
    return queries, qrels
