"""Lexical evidence for the relevance filter's answerability gate.

The mixture model's gate (:mod:`lucerag.search.calibration`) reads the best cosine, and a one-word
or name query ("Etna", an error code) has a low best cosine even when the corpus holds the word.
The lexical evidence is one yes/no fact about the query and the BM25 view: does the passage BM25
ranks first hold *every* analysed term of the query (the terms Anserini's analyzer makes of it, the
analyzer the ``contents`` field is indexed with)? Under a metadata filter (``where``) the question is
asked within the filter: "first" is first among the passages the filter accepts, and a passage the
filter rejects is no evidence, however many of the terms it holds (``filter`` of
:meth:`TermCoverage.covered`, the same Lucene query the BM25 view's top-k was restricted by).

Where one index holds both views, the BM25 search reads the same fact from the postings of its own
top hits, in the same bridge call (``Bridge.bm25Hits``, :attr:`lucerag.search.fusion.Candidates.covered`):
~0.3 ms less per query under the gate. :class:`TermCoverage` answers everywhere else (two indexes,
evaluation on cached candidates); tests/test_bridge_reads.py holds the two to the same answers.

Measured held out (docs/fusion-and-filter.md, "Lexical evidence"; ``scripts/lexical_rules.py``): on
the DL19 slice and SciFact-2k this answers every keyword query drawn from a relevant passage (18.6%
and 45.8% were refused by the dense gate) and opens none of the unanswerable queries the dense gate
refuses. Any passage holding every term (not the top one) let through one of the other collection's
queries; a threshold on the top BM25 score over its largest possible value, fitted on one
collection, left 5-7% of the other's keyword queries refused.
"""

from __future__ import annotations

from lucerag.errors import QueryError
from lucerag.index.reader import top_docs
from lucerag.lucene.classes import CONTENTS, java
from lucerag.lucene.errors import java_errors


class TermCoverage:
    """Whether the passage BM25 ranks first for a query holds every analysed term of the query.

    ``searcher``: a :class:`lucerag.search.searchers.BM25Searcher` (its Lucene searcher and BM25
    parameters are used). The conjunction of the query's terms (Lucene's QueryBuilder over the same
    analyzer, every term required) scores a passage holding them all exactly as the bag-of-words
    BM25 query does, so its best score reaches the query's top BM25 score exactly when a passage
    tied for first holds every term. With a metadata filter the conjunction is restricted to the
    filter's passages (a FILTER clause, scores unchanged), as the BM25 view's top-k was. One check
    costs two calls into Java (build the conjunction, fetch its best hit; three with a filter), none
    for a query without any BM25 hit; thread-safe (QueryBuilder keeps no per-call state).
    """

    RTOL = 1e-5  # float32 sums of the same term scores, added in another order

    def __init__(self, searcher):
        self._searcher = searcher.searcher
        self._builder = java.QueryBuilder(java.analyzer)
        self._must = java.BooleanClauseOccur.MUST

    def covered(self, query: str, top_bm25: float, filter=None) -> bool:
        """True when a passage scoring ``top_bm25`` (the query's best BM25 score) holds every
        analysed term of ``query``. False otherwise, and when the analyzer keeps no term (stopwords
        or punctuation only) or the query has more terms than Lucene's clause limit (1024).

        ``filter``: the Lucene query of the metadata filter the candidates were found under
        (:meth:`lucerag.search.retriever.Retriever.filter_query` for the BM25 index; None: none).
        ``top_bm25`` is then the best score among the passages it accepts, and only those count:
        a passage outside the filter holding every term is no evidence."""
        if not top_bm25 > 0:
            return False
        try:
            with java_errors():
                conjunction = self._builder.createBooleanQuery(CONTENTS, query, self._must)
                if conjunction is None:
                    return False
                if filter is not None:
                    conjunction = java.Bridge.filtered(conjunction, filter)
                _, scores = top_docs(self._searcher, conjunction, 1)
        except QueryError:  # more terms than Lucene's clause limit
            return False
        return len(scores) > 0 and float(scores[0]) >= top_bm25 * (1.0 - self.RTOL)


def analysed_terms(text: str) -> list[str]:
    """The terms Anserini's default analyzer makes of ``text`` (in order, repeats kept), as the
    BM25 view indexes and searches them. Terms hold no spaces or commas-followed-by-space."""
    listed = str(java.AnalyzerUtils.analyze(java.analyzer, text).toString())[1:-1]
    return listed.split(", ") if listed else []
