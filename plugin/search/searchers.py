"""One small searcher per view: BM25 over ``contents`` and HNSW over ``vector``.

Both call Lucene's IndexSearcher directly (Anserini's searcher facades read a stored id per
hit, which costs more through pyjnius than the search itself) and return ``Hits``: parallel
arrays of Lucene doc numbers, ids and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lucerag.index.reader import LuceneIndex, top_docs as _top_docs
from lucerag.lucene.classes import CONTENTS, java
from lucerag.lucene.errors import java_errors


@dataclass(frozen=True)
class Hits:
    """A ranked list from one view (best first)."""

    ids: list[str]
    scores: np.ndarray      # float32; BM25 score, or cosine similarity for the dense view
    docnums: list[int]      # Lucene doc numbers in that view's index

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def empty(cls) -> "Hits":
        return cls([], np.zeros(0, np.float32), [])




def _le_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


class BM25Searcher:
    """BM25 (Anserini's analyzer and bag-of-words query) over the ``contents`` field."""

    def __init__(self, index: LuceneIndex, k1: float = 0.9, b: float = 0.4):
        self.index = index
        self.searcher = java.IndexSearcher(index.reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
        self.searcher.setSimilarity(java.BM25Similarity(float(k1), float(b)))
        self._generator = java.BagOfWordsQueryGenerator()
        self._analyzer = java.analyzer

    def query(self, text: str):
        """The Lucene query for ``text`` (build it once when both search and score need it)."""
        # The analyzer turns any text into terms: Lucene syntax (AND, :, *, ~ ...) is just text.
        # More distinct terms than Lucene's clause limit (1024) raise QueryError naming the limit.
        with java_errors():
            return self._generator.buildQuery(CONTENTS, self._analyzer, text)

    def search(self, text: str, k: int = 100, parsed=None) -> Hits:
        """The top ``k`` by BM25. Raises :class:`~lucerag.errors.QueryError` when the query has
        more distinct terms than Lucene's clause limit."""
        with java_errors():
            docnums, scores = _top_docs(self.searcher, parsed if parsed is not None else self.query(text), k)
        return Hits(self.index.ids(docnums), scores, docnums)

    def score(self, text: str, docnums: list[int], parsed=None) -> dict[int, float]:
        """Exact BM25 scores of passages given by doc number in this index (a passage that
        contains no query term scores 0 and is absent from the result)."""
        if not docnums:
            return {}
        parsed = parsed if parsed is not None else self.query(text)
        with java_errors():
            blob = java.Bridge.scoreDocs(self.searcher, parsed, np.asarray(docnums, "<i4").tobytes()).tostring()
        scores = np.frombuffer(blob, "<f4", len(docnums)).tolist()
        return {d: s for d, s in zip(docnums, scores) if s > 0.0}


def auto_ef_search(passages: int) -> int:
    """The HNSW beam width when none is configured: 400 below 100K passages, 800 from there.

    With the writer's default graph (M 48, beam 400) these keep R@100 against exact search at
    >= 0.98 at 5K, 50K and 200K passages (docs/results.md, ``lucerag bench scale --ef-sweep``).
    """
    return 400 if passages < 100_000 else 800


def auto_rescore(index: LuceneIndex) -> bool:
    """Rescore HNSW candidates exactly when the index's vectors format is 1-bit (BBQ): its graph
    scores are rough estimates (recall@10 ~0.74 at 5K passages before rescoring, ~0.99 after)."""
    return index.manifest is not None and index.manifest.vector_format == "bbq"


class DenseSearcher:
    """HNSW k-nearest-neighbour search over unit vectors (DOT_PRODUCT similarity).

    Lucene is asked for ``max(k, ef_search)`` neighbours, so ``ef_search`` is the beam width and
    a ``k`` above it is never silently cut (a trap in Anserini's HnswDenseSearcher).
    ``ef_search`` None: :func:`auto_ef_search` of the index size.

    ``rescore`` True: all ``max(k, ef_search)`` candidates of the graph search are rescored with the
    stored float vectors (Lucene's full-precision rescorer) and the best ``k`` are kept, with exact
    cosines. None: :func:`auto_rescore` (on for BBQ indexes).
    """

    def __init__(self, index: LuceneIndex, ef_search: int | None = None, rescore: bool | None = None):
        self.index = index
        self.ef_search = ef_search if ef_search is not None else auto_ef_search(index.size)
        self.rescore = auto_rescore(index) if rescore is None else bool(rescore)
        self.searcher = java.IndexSearcher(index.reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")

    def search(self, vector: np.ndarray, k: int = 100) -> Hits:
        candidates = max(k, self.ef_search)
        if self.rescore:
            query = java.Bridge.rescoredKnnQuery(self.index.vector_field, _le_bytes(vector), candidates, k, None)
        else:
            query = java.Bridge.knnQuery(self.index.vector_field, _le_bytes(vector), candidates, None)
        docnums, scores = _top_docs(self.searcher, query, k)
        # Lucene maps a dot product d to (1 + d) / 2; give callers the cosine back.
        return Hits(self.index.ids(docnums), scores * 2.0 - 1.0, docnums)

    def score(self, vector: np.ndarray, docnums: list[int]) -> np.ndarray:
        """Exact cosine similarities of passages given by doc number, from their stored vectors."""
        if not docnums:
            return np.zeros(0, np.float32)
        return self.index.vectors(docnums) @ np.asarray(vector, np.float32)
