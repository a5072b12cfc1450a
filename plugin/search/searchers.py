"""One small searcher per view: BM25 over ``contents`` and HNSW over ``vector``.

Both call Lucene's IndexSearcher directly (Anserini's searcher facades read a stored id per
hit, which costs more through pyjnius than the search itself) and return ``Hits``: parallel
arrays of Lucene doc numbers, ids and scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lucerag.index.hnsw import GRAPH_FROM
from lucerag.index.reader import LuceneIndex, top_docs as _top_docs
from lucerag.lucene.classes import CONTENTS, java
from lucerag.lucene.errors import java_errors
from lucerag.search.scan import Int8Scan


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




# Extra BM25 hits asked of Lucene beyond k, so that hits tied with the k-th are seen (widened when
# they are not enough).
TIE_PAD = 16


def _ties_by_id(hits: Hits, k: int) -> Hits:
    """The best ``k`` of ``hits`` with equal scores ordered by id, ascending: Anserini's order
    (SimpleSearcher and SearchCollection sort on the score, then the ``id`` field), so that a
    BM25 ranking and the hits that make its cut-off are the ones Anserini returns on the same index.
    Lucene itself breaks ties by doc number, which depends on indexing threads and merges."""
    order = sorted(range(len(hits)), key=lambda i: (-float(hits.scores[i]), hits.ids[i] or ""))[:k]
    return Hits([hits.ids[i] for i in order], hits.scores[order], [hits.docnums[i] for i in order])


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

    def search(self, text: str, k: int = 100, parsed=None, filter=None) -> Hits:
        """The top ``k`` by BM25; ``filter`` (a Lucene query, lucerag.search.filters) restricts the
        hits to its matches before the top-k (a FILTER clause: scores are unchanged). Raises
        :class:`~lucerag.errors.QueryError` when the query has more distinct terms than Lucene's
        clause limit."""
        with java_errors():
            query = parsed if parsed is not None else self.query(text)
            if filter is not None:
                query = java.Bridge.filtered(query, filter)
            docnums, scores = _top_docs(self.searcher, query, k + TIE_PAD if k > 0 else k)
            # Hits tied with the k-th may lie beyond the first k + TIE_PAD: widen until one scores less.
            pad = TIE_PAD
            while k > 0 and len(docnums) == k + pad and scores[-1] >= scores[k - 1]:
                pad = 2 * pad + k
                docnums, scores = _top_docs(self.searcher, query, k + pad)
        return _ties_by_id(Hits(self.index.ids(docnums), scores, docnums), k)

    def search_and_score(self, text: str, k: int, also: list[int], filter=None) -> tuple[Hits, np.ndarray, bool]:
        """:meth:`search`, the exact BM25 score of each doc number in ``also`` (e.g. the dense view's
        hits, in this index) and the relevance filter's lexical evidence in one bridge call: (the top
        ``k`` hits, scores float32 of shape (len(also),), 0 where no query term occurs, whether a hit
        tied for first holds every analysed query term; see :mod:`lucerag.search.lexical`). The text is
        analysed once, in Java. Raises :class:`~lucerag.errors.QueryError` as :meth:`search` does."""
        with java_errors():
            blob = java.Bridge.bm25Hits(self.searcher, self._generator, self._analyzer, CONTENTS, text, filter,
                                        int(k), np.asarray(also, "<i4").tobytes()).tostring()
        n = int.from_bytes(blob[:4], "little")
        docnums = np.frombuffer(blob, "<i4", n, offset=4).tolist()
        scores = np.frombuffer(blob, "<f4", n, offset=4 + 4 * n)
        extra = np.frombuffer(blob, "<f4", len(also), offset=4 + 8 * n)
        covered = blob[4 + 8 * n + 4 * len(also)] == 1
        return Hits(self.index.ids(docnums), scores, docnums), extra, covered

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


def auto_ef_search(passages: int, k: int = 100) -> int:
    """The HNSW beam width for a top-``k`` search of an index of ``passages`` passages, when none is
    configured: :data:`EF_BY_SIZE`'s width for the index size (measured for k = 100, the fusion depth),
    and never below ``2 * k`` (a beam only slightly wider than ``k`` loses recall at ``k``).

    The widths keep R@100 against an exact scan at >= 0.98 with the writer's default graph
    (docs/results.md, ``lucerag bench graph``).
    """
    base = next(ef for below, ef in EF_BY_SIZE if passages < below)
    return max(base, 2 * int(k))


# (passages below, beam width): the smallest measured beam width giving R@100 >= 0.98 against exact
# search with the default graph (hnsw.HNSW_M / HNSW_BEAM), per index size (docs/results.md).
EF_BY_SIZE = ((100_000, 400), (float("inf"), 800))


def auto_rescore(index: LuceneIndex) -> bool:
    """Rescore HNSW candidates exactly when the index's vectors are quantised (int8 or 1-bit BBQ):
    their graph scores are estimates (BBQ: recall@10 ~0.74 at 5K passages before rescoring, ~0.99
    after; int8 misorders near-ties at the cut-off), while rescoring the beam's candidates from the
    stored float vectors costs one dot product per candidate."""
    return index.manifest is not None and index.manifest.vector_format in ("int8", "bbq")


# Below this many passages the dense view is searched exactly (lucerag.search.scan: an int8 scan of
# every stored vector, then the best 2k rescored in float) rather than through the HNSW graph: at
# 50K x 384 on an AVX2 EPYC the scan costs ~3.4 ms against ~5.3 ms for the graph at ef 400, with
# R@100 1.0 against a float scan (the graph: 0.98). The scan grows linearly, the graph slowly; they
# cross near 100K (docs/results.md, ``lucerag bench graph``). The writer builds no HNSW graph for
# segments below the same size (index.hnsw.GRAPH_FROM).
EXACT_BELOW = GRAPH_FROM


def auto_exact(passages: int) -> bool:
    """Search the dense view by an exact scan when the index holds fewer than :data:`EXACT_BELOW` passages."""
    return passages < EXACT_BELOW


def norm_range(index: LuceneIndex, sample: int = 64) -> tuple[float, float] | None:
    """(smallest, largest) L2 norm of the stored vectors of the first ``sample`` doc numbers that
    hold one (one bridge call); None when none of them does."""
    docnums = list(range(min(int(sample), int(index.reader.maxDoc()))))
    if not docnums or index.dim <= 0:
        return None
    norms = np.linalg.norm(index.vectors(docnums), axis=1)
    norms = norms[norms > 0]  # a document without a vector reads as zeros
    return (float(norms.min()), float(norms.max())) if len(norms) else None


class DenseSearcher:
    """Dense k-nearest-neighbour search over unit vectors (DOT_PRODUCT similarity): HNSW, or an
    exact scan of every stored vector for small indexes.

    Lucene is asked for ``max(k, ef_search)`` neighbours, so ``ef_search`` is the beam width and
    a ``k`` above it is never silently cut (a trap in Anserini's HnswDenseSearcher).
    ``ef_search`` None: :func:`auto_ef_search` of the index size and each search's ``k``.

    ``rescore`` True: all ``max(k, ef_search)`` candidates of the graph search are rescored with the
    stored float vectors (Lucene's full-precision rescorer) and the best ``k`` are kept, with exact
    cosines. None: :func:`auto_rescore` (on for BBQ indexes).

    ``exact`` True: every live stored vector is read once into a (passages, dim) float32 matrix
    and an int8 copy (5 * dim bytes per passage, held for the life of the searcher); each query is
    an int8 scan of every passage plus a float rescoring of the best candidates
    (:class:`lucerag.search.scan.Int8Scan`); the graph is not used. None: :func:`auto_exact` of the
    index size.
    """

    def __init__(self, index: LuceneIndex, ef_search: int | None = None, rescore: bool | None = None,
                 exact: bool | None = None):
        self.index = index
        self._ef = ef_search
        self.rescore = auto_rescore(index) if rescore is None else bool(rescore)
        self.exact = auto_exact(index.size) if exact is None else bool(exact)
        self.searcher = java.IndexSearcher(index.reader, signature="(Lorg/apache/lucene/index/IndexReader;)V")
        self._matrix: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._int8: Int8Scan | None = None

    @property
    def ef_search(self) -> int:
        """The configured beam width, else the one :func:`auto_ef_search` gives for k = 100."""
        return self._ef if self._ef is not None else auto_ef_search(self.index.size)

    @ef_search.setter
    def ef_search(self, value: int | None) -> None:
        self._ef = value

    def beam(self, k: int) -> int:
        """The number of graph candidates a top-``k`` search asks Lucene for (its beam width)."""
        return max(k, self._ef) if self._ef is not None else auto_ef_search(self.index.size, k)

    def _all(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(doc numbers, vectors, row of each doc number or -1) of every live passage with a vector."""
        if self._matrix is None:
            docnums, matrix = self.index.all_vectors()
            rows = np.full(int(self.index.reader.maxDoc()), -1, np.int64)
            rows[docnums] = np.arange(len(docnums))
            self._matrix = (docnums, matrix, rows)
        return self._matrix

    def _scan(self) -> Int8Scan:
        """The int8 scan over :meth:`_all`'s vectors (lucerag.search.scan), built on first use."""
        if self._int8 is None:
            self._int8 = Int8Scan(self._all()[1])
        return self._int8

    def search(self, vector: np.ndarray, k: int = 100, filter=None) -> Hits:
        """The ``k`` nearest passages; ``filter`` (a Lucene query, lucerag.search.filters) restricts
        the search to its matches: the exact scan scores only them (:meth:`exact_search`), the graph
        search is Lucene's filtered kNN (it scores the matches exhaustively when they are few)."""
        if self.exact and filter is not None:
            return self.exact_search(vector, k, filter)
        if self.exact:
            docnums, _, _ = self._all()
            rows, scores = self._scan().search(vector, k)
            found = docnums[rows].tolist()
            return Hits(self.index.ids(found), scores, found)
        candidates = self.beam(k)
        if self.rescore:
            query = java.Bridge.rescoredKnnQuery(self.index.vector_field, _le_bytes(vector), candidates, k, filter)
        else:
            query = java.Bridge.knnQuery(self.index.vector_field, _le_bytes(vector), candidates, filter)
        hit_docs, scores = _top_docs(self.searcher, query, k)
        # Lucene maps a dot product d to (1 + d) / 2; give callers the cosine back.
        return Hits(self.index.ids(hit_docs), scores * 2.0 - 1.0, hit_docs)

    def exact_search(self, vector: np.ndarray, k: int = 100, filter=None) -> Hits:
        """The exact ``k`` nearest passages (every passage, or every match of ``filter``, scored
        from its stored vector): the reference the HNSW search is measured against. Cost grows with
        the matches (their vectors are cached per reader)."""
        query = filter if filter is not None else java.Bridge.booleanQuery([], [], [])
        docnums, _ = _top_docs(self.searcher, query, max(1, self.index.reader.maxDoc()))
        if not docnums:
            return Hits.empty()
        scores = self.score(vector, docnums)
        top = np.argsort(-scores, kind="stable")[:k]
        picked = [docnums[i] for i in top]
        return Hits(self.index.ids(picked), scores[top].astype(np.float32), picked)

    def score(self, vector: np.ndarray, docnums: list[int]) -> np.ndarray:
        """Exact cosine similarities of passages given by doc number, from their stored vectors."""
        if not docnums:
            return np.zeros(0, np.float32)
        if self._matrix is not None:
            _, matrix, rows = self._matrix
            at = rows[np.asarray(docnums, np.int64)]
            if (at >= 0).all():
                return matrix[at] @ np.asarray(vector, np.float32)
        return self.index.vectors(docnums) @ np.asarray(vector, np.float32)
