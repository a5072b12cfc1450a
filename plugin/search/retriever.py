"""The query path: encode -> search (BM25, HNSW) -> fill in missing scores -> fuse -> passages."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import warnings

import numpy as np

from lucerag.search.filters import FilterCache, Where
from lucerag.search.rerank import Reranker, rerank_order
from lucerag.config import Config
from lucerag.errors import (CalibratorMismatch, CalibratorWarning, EncoderMismatchError, NonUnitVectorsWarning,
                            QueryError, UnsupportedError)
from lucerag.index.reader import LuceneIndex
from lucerag.lucene.classes import CONTENTS
from lucerag.passage import Passage
from lucerag.search.calibration import Calibrator
from lucerag.search.fusion import Candidates, fuse, order as fused_order
from lucerag.search.request import METHODS, Method, check_filter, check_k, check_method, check_query
from lucerag.search.searchers import BM25Searcher, DenseSearcher, Hits, norm_range

__all__ = ["METHODS", "CalibratorMismatch", "CalibratorWarning", "Method", "QueryError", "Ranking", "Retriever"]

S = TypeVar("S", BM25Searcher, DenseSearcher)


@dataclass
class Ranking:
    """A ranked list of ids for one query, with the candidates it was fused from."""

    ids: list[str]
    scores: np.ndarray
    refs: list[tuple[LuceneIndex, int]]   # where each ranked passage is stored
    candidates: Candidates | None = None
    order: np.ndarray | None = None  # candidate index of each ranked id (hybrid only)
    rerank: np.ndarray | None = None  # the re-ranker's score of each ranked id (NaN: below its depth)


class Retriever:
    """Hybrid retrieval over a Lucene index; use as a context manager to close the readers."""

    def __init__(self, config: Config, encoder=None, reranker: Reranker | None = None):
        from lucerag.lucene import jvm

        jvm.start(config.jvm.heap)
        self.config = config
        idx = config.index
        self._indexes: list[LuceneIndex] = []
        self.bm25_index = self._open(idx.bm25) if idx.bm25 else None
        if idx.dense and idx.dense == idx.bm25:
            self.dense_index = self.bm25_index
        else:
            self.dense_index = self._open(idx.dense) if idx.dense else None
        if self.dense_index is not None and idx.vector_field != self.dense_index.vector_field:
            self.dense_index.vector_field = idx.vector_field
        self.bm25 = BM25Searcher(self.bm25_index, config.bm25.k1, config.bm25.b) if self.bm25_index else None
        self.dense = None
        if self.dense_index is not None and self.dense_index.has_vectors():
            self.dense = DenseSearcher(self.dense_index, config.dense.ef_search, config.dense.rescore,
                                       config.dense.exact)
        self.shared_index = self.bm25_index is not None and self.bm25_index is self.dense_index
        if self.dense is not None and self.dense.index.manifest is None:
            _warn_if_not_unit(self.dense.index)
        # Decided once per reader, not per query: a BM25 index without a 'contents' field to search
        # (an Anserini HNSW index given as bm25_path or path) refuses BM25 and hybrid by name.
        self._no_bm25: str | None = None
        if self.bm25 is not None and self.bm25.index.size and not self.bm25.index.has_postings(CONTENTS):
            index = self.bm25.index
            other = " (an HNSW index? set it as index.dense_path)" if index.has_vectors() else ""
            self._no_bm25 = (f"index {index.path} has no '{CONTENTS}' field to search by BM25{other}"
                             + (": use method 'dense'" if self.dense is not None else ""))
        self._encoder = encoder
        self._calibrator: Calibrator | None = None
        self._calibrator_found = False  # looked up yet?
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # query text -> vector (LRU)
        self._vectors_lock = threading.Lock()
        self._filters = FilterCache()
        self._reranker = reranker

    @classmethod
    def from_config(cls, path: str | Path, encoder=None, reranker: Reranker | None = None) -> "Retriever":
        return cls(Config.load(path), encoder, reranker)

    @classmethod
    def from_index(cls, path: str | Path, encoder=None, reranker: Reranker | None = None,
                   **sections) -> "Retriever":
        return cls(Config.for_index(path, **sections), encoder, reranker)

    def _open(self, path: Path) -> LuceneIndex:
        index = LuceneIndex(path, self.config.index.vector_field)
        self._indexes.append(index)
        return index

    @property
    def encoder(self):
        """The query encoder, loaded on first dense query and checked against the index."""
        if self._encoder is None:
            from lucerag.models import load_encoder

            model = self.config.encoder.model
            self._encoder = load_encoder(None if model == "default" else model,
                                         threads=self.config.encoder.threads,
                                         precision=self.config.encoder.precision)
        manifest = self.dense_index.manifest if self.dense_index else None
        # An index lucerag did not write (Anserini's IndexHnswDenseVectors) has no manifest: its
        # vectors' dimension is read from Lucene's field info instead.
        dim = (manifest.dim if manifest and manifest.dim else
               self.dense_index.dim if self.dense_index is not None else 0)
        if dim and dim != self._encoder.dim:
            raise EncoderMismatchError(f"index {self.dense_index.path} holds {dim}-dimensional vectors "
                                       f"in field '{self.dense_index.vector_field}' but the encoder "
                                       f"({self.config.encoder.model}) makes {self._encoder.dim}-dimensional ones")
        if manifest is not None and not getattr(self, "_encoder_checked", False):
            manifest.check_encoder(self._encoder, self.dense_index.path)  # name, weights hash, prefixes
            self._encoder_checked = True
        return self._encoder

    def query_vector(self, query: str) -> np.ndarray:
        """The query's (dim,) float32 vector (read-only), from the LRU cache of ``encoder.cache``
        entries when the same text was encoded recently."""
        size = self.config.encoder.cache
        if size:
            with self._vectors_lock:
                hit = self._vectors.get(query)
                if hit is not None:
                    self._vectors.move_to_end(query)
                    return hit
        vector = self.encoder.encode_query(query)
        if size:
            vector = np.array(vector, np.float32)
            vector.setflags(write=False)
            with self._vectors_lock:
                self._vectors[query] = vector
                while len(self._vectors) > size:
                    self._vectors.popitem(last=False)
        return vector

    @property
    def reranker(self) -> Reranker | None:
        """The re-ranking stage (``[rerank] model``, or the one passed in); None: off."""
        r = self.config.rerank
        if self._reranker is None and r.model:
            from lucerag.search.rerank import OnnxCrossEncoder

            self._reranker = OnnxCrossEncoder(r.model, max_length=r.max_length, batch_size=r.batch_size,
                                              threads=self.config.encoder.threads)
        return self._reranker

    def _rerank(self, query: str, order: np.ndarray, refs) -> tuple[np.ndarray, np.ndarray | None]:
        """Re-rank the best ``rerank.depth`` of a fused order (between fusion and the relevance filter)."""
        reranker = self.reranker
        if reranker is None or not len(order):
            return order, None
        texts = []
        for i in order[:self.config.rerank.depth]:
            index, docnum = refs[i]
            record = index.record(docnum)
            title, text = record.get("title") or "", record.get("contents", "")
            texts.append(f"{title}\n{text}" if title else text)
        return rerank_order(reranker, query, order, texts)

    @property
    def calibrator(self) -> Calibrator | None:
        """The relevance filter's calibrator (None when none fits this index and encoder)."""
        if not self._calibrator_found:
            found = self._find_calibrator()
            # adapted to this index (a mixture calibrator: its lexical evidence, a corpus gate)
            self._calibrator, self._calibrator_found = found.for_corpus(self) if found is not None else None, True
        return self._calibrator

    def _find_calibrator(self) -> Calibrator | None:
        choice = self.config.filter.calibrator
        if choice != "auto":
            return self._checked(Calibrator.load(choice), explicit=True)
        for index in (self.bm25_index, self.dense_index):
            if index is not None and (index.path / Calibrator.FILENAME).is_file():
                return self._checked(Calibrator.load(index.path), explicit=True)
        if self.dense is None:
            return None
        default = Calibrator.default()
        if default.encoder != self.encoder.manifest.name:
            return None
        return self._checked(default, explicit=False)

    def _checked(self, cal: Calibrator, explicit: bool) -> Calibrator | None:
        """Refuse a calibrator fitted on another encoder; warn once when fusion, precision or
        recipe differ (its probabilities are then off by an unknown amount)."""
        encoder = self.encoder if self.dense is not None else None
        problems = cal.mismatches(self.config.fusion.model_dump(), encoder)
        if any(p.startswith("encoder '") or p.startswith('encoder "') for p in problems):
            if explicit:
                raise CalibratorMismatch(f"the relevance calibrator ({cal.trained_on or 'unknown data'}) does "
                                         f"not fit this set-up: {'; '.join(problems)}. Refit it with "
                                         "`lucerag calibrate` or search with filter=False")
            return None
        if problems:
            warnings.warn(f"the relevance calibrator was fitted under another set-up: {'; '.join(problems)}. "
                          "Its probabilities may be off: refit with `lucerag calibrate` under this set-up",
                          CalibratorWarning, stacklevel=3)
        return cal

    # -- the query path ---------------------------------------------------------------

    def filter_query(self, where: Where | None, index: LuceneIndex | None):
        """The Lucene query of a metadata filter for one of the opened indexes (None: no filter).
        Raises :class:`~lucerag.search.filters.FilterError` for a filter the index cannot apply."""
        if where is None or index is None:
            return None
        fields = index.manifest.metadata_fields if index.manifest is not None else None
        return self._filters.query(where, fields, str(index.path))

    def window(self, k: int, method: Method = "hybrid") -> int:
        """The length of the ranked list that pages (``offset``) are cut from: a hybrid ranking is
        the fused top ``max(k, fusion.depth)``; BM25 and dense lists are their views' own top-k."""
        return max(k, self.config.fusion.depth) if method == "hybrid" else 0

    def rank(self, query: str, method: Method = "hybrid", k: int | None = None, *, where: Where | None = None,
             offset: int = 0, window: int | None = None) -> Ranking:
        """Rank ids for ``query`` without fetching text (what evaluation needs).

        ``where``: a metadata filter (:mod:`lucerag.search.filters`) applied inside both views
        before their top-k, so fewer than ``k`` (or no) ids come back when few passages match.
        ``offset``: skip that many ranks (pagination); a hybrid ranking is cut from the fused top
        ``window`` (default :meth:`window`), so consecutive pages of one window never repeat or skip
        an id; an offset beyond it gives an empty ranking."""
        query = check_query(query, self.config.limits)
        k = check_k(k, self.config.limits) or self.config.search.k
        method = check_method(method)
        if method in ("dense", "hybrid") and self._no_passages(method):
            return Ranking([], np.zeros(0, np.float32), [], None, np.zeros(0, np.int64))
        if method == "bm25":
            bm25 = self._require(self.bm25, "bm25")
            hits = bm25.search(query, offset + k, filter=self.filter_query(where, bm25.index))
            return Ranking(hits.ids[offset:], hits.scores[offset:], [(bm25.index, d) for d in hits.docnums[offset:]])
        if method == "dense":
            dense = self._require(self.dense, "dense")
            hits = dense.search(self.query_vector(query), offset + k, self.filter_query(where, dense.index))
            return Ranking(hits.ids[offset:], hits.scores[offset:],
                           [(dense.index, d) for d in hits.docnums[offset:]])
        window = window or self.window(k)
        candidates, refs = self.candidates(query, window, where=where)
        fused = self.fuse(candidates)
        order, reranked = self._rerank(query, fused_order(candidates, fused, self.config.fusion.depth)[:window],
                                       refs)
        order = order[offset:offset + k]
        return Ranking([candidates.ids[i] for i in order], fused[order], [refs[i] for i in order],
                       candidates, order, None if reranked is None else reranked[offset:offset + k])

    def fuse(self, candidates: Candidates) -> np.ndarray:
        """Fused scores under this configuration; statistics from the top ``fusion.depth`` of each
        view whatever the candidate depth, so the first results do not depend on k."""
        f = self.config.fusion
        return fuse(candidates, f.method, dense_weight=f.dense_weight, norm=f.norm, rrf_k=f.rrf_k, depth=f.depth,
                    bm25_weight=f.bm25_weight)

    def candidates(self, query: str, depth: int, *, where: Where | None = None
                   ) -> tuple[Candidates, list[tuple[LuceneIndex, int]]]:
        """Union of both views' top ``depth`` (among the passages ``where`` accepts), each
        candidate with both exact scores, and where each candidate is stored."""
        bm25, dense = self._require(self.bm25, "bm25"), self._require(self.dense, "dense")
        sparse_filter = self.filter_query(where, bm25.index)
        dense_filter = sparse_filter if self.shared_index else self.filter_query(where, dense.index)
        vector = self.query_vector(query)
        dense_hits = dense.search(vector, depth, filter=dense_filter)
        if self.shared_index:  # one bridge call: BM25's top depth and the dense hits' BM25 scores
            sparse_hits, dense_bm25, covered = bm25.search_and_score(query, depth, dense_hits.docnums,
                                                                     filter=sparse_filter)
            candidates = self._merge_shared(vector, sparse_hits, dense_hits, dense_bm25)
            candidates.covered = covered
        else:
            parsed = bm25.query(query)  # analysed once, used for the search and the exact-score fill-in
            sparse_hits = bm25.search(query, depth, parsed, filter=sparse_filter)
            candidates = self._merge(query, vector, sparse_hits, dense_hits, parsed)
        refs = [(bm25.index, d) for d in sparse_hits.docnums]
        seen = set(self._keys(sparse_hits))
        refs += [(dense.index, d) for key, d in zip(self._keys(dense_hits), dense_hits.docnums)
                 if key not in seen]
        return candidates, refs

    def _keys(self, hits: Hits) -> list:
        """What joins the two views' hits: the Lucene doc number in a shared index (one document
        holds both views), the passage id across two indexes (the only link between them)."""
        return hits.docnums if self.shared_index else hits.ids

    def _merge_shared(self, vector: np.ndarray, sparse: Hits, dense: Hits, dense_bm25: np.ndarray) -> Candidates:
        """:meth:`_merge` for one index holding both views (doc numbers join them), with one position
        map and array writes: the BM25 hits in their order, then the dense hits BM25 did not find, in theirs.
        ``dense_bm25``: the BM25 score of every dense hit (0: no query term in it)."""
        ns, nd = len(sparse), len(dense)
        in_sparse = {d: i for i, d in enumerate(sparse.docnums)}
        at = np.fromiter((in_sparse.get(d, -1) for d in dense.docnums), np.int64, nd)  # each dense hit's place
        only_dense = np.flatnonzero(at < 0)
        at[only_dense] = ns + np.arange(len(only_dense))
        n = ns + len(only_dense)
        bm25_scores, dense_scores = np.zeros(n, np.float32), np.zeros(n, np.float32)
        bm25_rank, dense_rank = np.zeros(n, np.int32), np.zeros(n, np.int32)
        bm25_scores[:ns] = sparse.scores
        bm25_rank[:ns] = np.arange(1, ns + 1)
        bm25_scores[ns:] = np.asarray(dense_bm25, np.float32)[only_dense]
        dense_scores[at] = dense.scores
        dense_rank[at] = np.arange(1, nd + 1)
        in_dense = set(dense.docnums)
        only_sparse = [i for i, d in enumerate(sparse.docnums) if d not in in_dense]
        if only_sparse:
            dense_scores[only_sparse] = self._require(self.dense, "dense").score(
                vector, [sparse.docnums[i] for i in only_sparse])
        ids = sparse.ids + [dense.ids[j] for j in only_dense.tolist()]
        return Candidates(ids, bm25_scores, dense_scores, bm25_rank, dense_rank)

    def _merge(self, query: str, vector: np.ndarray, sparse: Hits, dense: Hits, parsed=None) -> Candidates:
        bm25_searcher, dense_searcher = self._require(self.bm25, "bm25"), self._require(self.dense, "dense")
        skeys, dkeys = self._keys(sparse), self._keys(dense)
        keys = list(dict.fromkeys(skeys + dkeys))
        pos = {key: i for i, key in enumerate(keys)}
        n = len(keys)
        ids = [""] * n
        for key, pid in zip(skeys + dkeys, sparse.ids + dense.ids):
            ids[pos[key]] = pid
        bm25_scores, dense_scores = np.zeros(n, np.float32), np.zeros(n, np.float32)
        bm25_rank, dense_rank = np.zeros(n, np.int32), np.zeros(n, np.int32)
        sparse_idx = [pos[key] for key in skeys]
        dense_idx = [pos[key] for key in dkeys]
        bm25_scores[sparse_idx] = sparse.scores
        bm25_rank[sparse_idx] = np.arange(1, len(sparse) + 1)
        dense_scores[dense_idx] = dense.scores
        dense_rank[dense_idx] = np.arange(1, len(dense) + 1)
        seen_dense = set(dkeys)
        only_sparse = [i for i, key in enumerate(skeys) if key not in seen_dense]
        if only_sparse:
            if self.shared_index:  # key -> doc number in the dense view's index
                where = {skeys[i]: sparse.docnums[i] for i in only_sparse}
            else:  # two indexes: find the BM25-only candidates in the dense index by id
                where = dense_searcher.index.docnums([sparse.ids[i] for i in only_sparse])
            if where:
                dense_scores[[pos[key] for key in where]] = dense_searcher.score(vector, list(where.values()))
        seen_sparse = set(skeys)
        only_dense = [i for i, key in enumerate(dkeys) if key not in seen_sparse]
        if only_dense:
            if self.shared_index:
                where = {dkeys[i]: dense.docnums[i] for i in only_dense}
            else:
                where = bm25_searcher.index.docnums([dense.ids[i] for i in only_dense])
            by_docnum = bm25_searcher.score(query, list(where.values()), parsed)
            for key, d in where.items():
                bm25_scores[pos[key]] = by_docnum.get(d, 0.0)
        return Candidates(ids, bm25_scores, dense_scores, bm25_rank, dense_rank)

    def filtered(self, query: str, k: int | None = None, cut: bool = True, *, where: Where | None = None,
                 offset: int = 0, window: int | None = None) -> tuple[Ranking, np.ndarray]:
        """Hybrid ranking with each passage's P(relevant), cut by the relevance filter.

        With ``cut`` (default) only passages whose probability reaches the threshold are kept: an
        empty ranking means nothing is relevant enough. With ``cut=False`` the ranking is the plain
        hybrid top ``k`` and the probabilities are only reported. Probabilities depend on the
        candidates within the top ``fusion.depth`` of each view only, so they do not change with k.
        ``where``, ``offset`` and ``window`` as in :meth:`rank`.
        """
        cal = self.calibrator
        if cal is None:
            raise UnsupportedError("no relevance calibrator fits this index and encoder: fit one with "
                                   "`lucerag calibrate`, or search with filter=False")
        query = check_query(query, self.config.limits)
        k = check_k(k, self.config.limits) or self.config.search.k
        if self._no_passages("hybrid"):
            return Ranking([], np.zeros(0, np.float32), [], None, np.zeros(0, np.int64)), np.zeros(0, np.float32)
        depth = self.config.fusion.depth
        candidates, refs = self.candidates(query, max(k, depth), where=where)
        fused = self.fuse(candidates)
        full = fused_order(candidates, fused, depth)
        order, reranked = self._rerank(query, full[:window] if window else full, refs)
        # the lexical evidence is looked for within the same metadata filter as the candidates
        probs, keep = cal.decide(candidates, fused, query, depth, self.config.filter.threshold,
                                 filter=self.filter_query(where, self._require(self.bm25, "bm25").index))
        probs, keep = (probs[order], keep[order]) if len(order) else (np.zeros(0), np.zeros(0, bool))
        if cut:
            order, probs = order[keep], probs[keep]
            if reranked is not None:
                reranked = reranked[keep]
        order, probs = order[offset:offset + k], probs[offset:offset + k]
        if reranked is not None:
            reranked = reranked[offset:offset + k]
        ranking = Ranking([candidates.ids[i] for i in order], fused[order], [refs[i] for i in order],
                          candidates, order, reranked)
        return ranking, probs

    def filter_applies(self, method: str = "hybrid", filter: bool | None = None) -> bool:
        """Whether a search with this ``method`` and ``filter`` applies the relevance filter: the one
        place this is decided (the Python API, HTTP's ``"filtered"``, MCP and the CLI all ask here).

        The filter is calibrated on fused hybrid scores, so bm25 and dense lists are never filtered,
        whatever ``filter`` says. For hybrid: ``False`` never filters, ``True`` always does (and
        :meth:`filtered` raises :class:`~lucerag.errors.UnsupportedError` when no calibrator fits),
        ``None`` follows ``[filter] enabled`` when a calibrator fits the index and encoder.
        """
        filter = check_filter(filter)
        if check_method(method) != "hybrid" or filter is False:
            return False
        if filter is True:
            return True
        return self.config.filter.enabled and self.calibrator is not None

    def search(self, query: str, k: int | None = None, method: Method = "hybrid",
               filter: bool | None = None, *, where: Where | None = None, offset: int = 0,
               window: int | None = None) -> list[Passage]:
        """The top ``k`` passages for ``query``, with text and per-view evidence.

        ``filter``: see :meth:`filter_applies`; a filtered list keeps only passages whose calibrated
        probability of relevance reaches the threshold, so it may be empty. Hybrid passages carry
        ``p_relevant`` whenever a calibrator fits, with the filter on or off (off: nothing is
        dropped, the probabilities are shown). ``where`` (a metadata filter), ``offset`` and
        ``window`` (pagination) as in :meth:`rank`; ranks count from the top of the whole list.
        Raises :class:`~lucerag.errors.QueryError` for a bad request (:mod:`lucerag.search.request`).
        """
        probs = None
        if self.filter_applies(method, filter):
            ranking, probs = self.filtered(query, k, where=where, offset=offset, window=window)
        elif method == "hybrid" and self._shown_calibrator() is not None:
            ranking, probs = self.filtered(query, k, cut=False, where=where, offset=offset, window=window)
        else:
            ranking = self.rank(query, method, k, where=where, offset=offset, window=window)
        passages = []
        records = self._records(ranking)
        c, order = ranking.candidates, ranking.order
        with_views = False
        if method == "hybrid" and c is not None and order is not None:
            # per-view evidence of the ranked candidates, as plain Python numbers
            with_views = True
            at = np.asarray(order[:len(ranking.ids)], np.int64)
            views = zip(c.bm25[at].tolist(), c.dense[at].tolist(), c.bm25_rank[at].tolist(), c.dense_rank[at].tolist())
        shown = probs.tolist() if probs is not None else None
        rerank = ranking.rerank
        for j, (pid, score, record) in enumerate(zip(ranking.ids, ranking.scores.tolist(), records)):
            r = offset + 1 + j
            fields = {"id": pid, "text": record.get("contents", ""), "title": record.get("title") or "", "rank": r,
                      "score": score, "metadata": record.get("metadata") or {}}
            if method == "bm25":
                fields["bm25_score"], fields["bm25_rank"] = score, r
            elif method == "dense":
                fields["dense_score"], fields["dense_rank"] = score, r
            elif with_views:
                b, d, br, dr = next(views)
                fields.update(bm25_score=b, dense_score=d, bm25_rank=br or None, dense_rank=dr or None)
            if shown is not None:
                fields["p_relevant"] = float(shown[j])
            if rerank is not None and not np.isnan(rerank[j]):
                fields["rerank_score"] = float(rerank[j])
            passages.append(Passage(**fields))
        return passages

    def _records(self, ranking: Ranking) -> list[dict]:
        """The stored record of each ranked passage.  Over two indexes (Anserini style) the HNSW
        index usually stores no text: a passage found there is read from the BM25 index by id."""
        refs = ranking.refs
        if self.shared_index or self.bm25_index is None:
            return _records(refs)
        from_dense = [pid for pid, (index, _) in zip(ranking.ids, refs) if index is self.dense_index]
        in_bm25 = self.bm25_index.docnums(from_dense) if from_dense else {}
        where = [(self.bm25_index, in_bm25[pid]) if index is self.dense_index and pid in in_bm25 else (index, d)
                 for pid, (index, d) in zip(ranking.ids, refs)]
        return _records(where)

    def _no_passages(self, method: str) -> bool:
        """True for an index built with the encoder that holds no passage yet (it has no vector
        field until the first passage): dense and hybrid then find nothing, as BM25 does."""
        index = self.dense_index
        if self.dense is not None or index is None or index.size:
            return False
        empty_bm25 = method == "dense" or self.bm25_index is None or self.bm25_index.size == 0
        return empty_bm25 and index.manifest is not None and bool(index.manifest.dim)

    def _shown_calibrator(self) -> Calibrator | None:
        """The calibrator for showing probabilities with the filter off: a mismatched one is
        refused for filtering, and with the filter off the search goes on without probabilities."""
        try:
            return self.calibrator
        except CalibratorMismatch:
            return None

    def _require(self, searcher: S | None, name: str) -> S:
        if searcher is not None:
            if name == "bm25" and self._no_bm25 is not None:
                raise UnsupportedError(self._no_bm25)
            return searcher
        if name == "dense" and self.dense_index is not None:
            raise UnsupportedError(f"index {self.dense_index.path} has no dense vectors in field "
                                   f"'{self.dense_index.vector_field}' (built with --bm25-only?): use method 'bm25'")
        raise UnsupportedError(f"the configuration has no {name} index (set index.path or index.{name}_path)")

    def close(self) -> None:
        for index in self._indexes:
            index.close()
        self._indexes.clear()

    def __enter__(self) -> "Retriever":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _warn_if_not_unit(index: LuceneIndex) -> None:
    """Warn (:class:`~lucerag.errors.NonUnitVectorsWarning`) when an index lucerag did not write holds
    vectors whose length is not 1 (Anserini's HNSW indexer takes any vector; lucerag's writer
    normalises): fusion and the relevance filter read the dense score as a cosine."""
    found = norm_range(index)
    if found is not None and not (0.99 <= found[0] and found[1] <= 1.01):
        warnings.warn(f"index {index.path} holds vectors that are not of unit length (L2 norms "
                      f"{found[0]:.3g}-{found[1]:.3g} in a sample): they are ranked by inner product, but "
                      "hybrid fusion and the relevance filter read the dense score as a cosine; normalise "
                      "the vectors before indexing them", NonUnitVectorsWarning, stacklevel=3)


def _records(refs: list[tuple[LuceneIndex, int]]) -> list[dict]:
    """Stored records of ranked passages, one bridge call per index they are stored in."""
    out: list[dict | None] = [None] * len(refs)
    by_index: dict[int, tuple[LuceneIndex, list[int]]] = {}
    for i, (index, _) in enumerate(refs):
        by_index.setdefault(id(index), (index, []))[1].append(i)
    for index, where in by_index.values():
        for i, record in zip(where, index.records([refs[i][1] for i in where])):
            out[i] = record
    return [record if record is not None else {} for record in out]  # every slot is filled above

