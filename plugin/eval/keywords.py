"""Keyword queries drawn reproducibly from a judged collection, to measure how the relevance filter
treats one-word queries (docs/fusion-and-filter.md, "Lexical evidence").

For each judged query: its words (runs of letters and digits) that Anserini's analyzer turns into
exactly one term, keeping those whose term occurs in a passage judged relevant for the query; the
one whose term is rarest in the corpus (fewest passages; ties: the first in the query) is the
keyword query. A query with no such word gives none. The word comes back as written in the query.
Every keyword query is answerable by construction: a relevant passage holds it.
"""

from __future__ import annotations

import re

from lucerag.lucene.classes import CONTENTS, java
from lucerag.search.lexical import analysed_terms


def keyword_queries(queries: dict[str, str], qrels: dict[str, dict[str, int]], index) -> dict[str, str]:
    """{query id: keyword} for the judged ``queries`` (id -> text) with ``qrels`` (id -> {passage
    id: grade}; grade >= 1 is relevant) on ``index`` (a :class:`lucerag.index.reader.LuceneIndex`
    holding the passages, their ``contents`` stored in the record)."""
    relevant = {q: [d for d, g in judged.items() if g > 0] for q, judged in qrels.items()}
    wanted = sorted({d for ds in relevant.values() for d in ds})
    where = index.docnums(wanted)
    texts = {d: r.get("contents", "") for d, r in zip(where, index.records(list(where.values())))}
    terms_of = {d: set(analysed_terms(t)) for d, t in texts.items()}
    df: dict[str, int] = {}

    def freq(term: str) -> int:
        if term not in df:
            df[term] = int(index.reader.docFreq(java.Term(CONTENTS, term)))
        return df[term]

    out = {}
    for qid, text in queries.items():
        held = set().union(*(terms_of.get(d, set()) for d in relevant.get(qid, [])))
        best: tuple[int, str] | None = None
        for word in re.findall(r"\w+", text):
            terms = analysed_terms(word)
            if len(terms) == 1 and terms[0] in held and (best is None or freq(terms[0]) < best[0]):
                best = (freq(terms[0]), word)
        if best is not None:
            out[qid] = best[1]
    return out
