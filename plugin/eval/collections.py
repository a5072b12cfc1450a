"""Evaluation collections for transfer experiments: indexes built once, candidates cached.

A collection is a corpus with judged queries. For the transfer evaluation each one is indexed
once under a work directory (never in the repository) and every query's candidates (both views'
top ``depth`` with both exact scores, :class:`lucerag.search.fusion.Candidates`) are gathered once
and cached as ``.npz``: fusion and filter experiments then run on numpy arrays alone.

Collections known here (folders under the shared data root):

- ``dl19``: ``msmarco-dl19-5k`` (5,000 MS MARCO passages, 43 judged DL19 queries, grades 1-3);
- ``scifact``: ``beir-scifact`` (5,183 abstracts, 300 test claims). Each abstract is ONE passage
  (title + " " + text; the encoder truncates to its window), so the ranking is per document as
  the judgments require, with no chunk aggregation.

Unanswerable ("out-of-domain") query sets are made from these without writing any: the queries of
one collection searched against the other's corpus (nothing there can answer them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lucerag.search.fusion import Candidates

KNOWN = {"dl19": "msmarco-dl19-5k", "scifact": "beir-scifact", "scifact-2k": "beir-scifact"}
# A slice like the DL19 one: every document judged relevant for a test claim plus documents drawn
# at random (seed 0) up to this many, for repeated experiments: encoding all 5,183 abstracts (~4x the
# tokens of an MS MARCO passage each) took 9 minutes on a quiet 2-core machine (docs/fusion-and-filter.md,
# "Full SciFact").
SLICES = {"scifact-2k": 2000}


@dataclass
class Collection:
    """A judged collection: queries (judged ones only), qrels and the index that holds its corpus."""

    name: str
    folder: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    index: Path
    extra: dict = field(default_factory=dict)


def load_collection(name: str, data_root: str | Path, work_dir: str | Path) -> Collection:
    """The collection ``name`` (a key of KNOWN) read from ``data_root``; its index lives in
    ``work_dir/<name>`` (built by :func:`ensure_index`). Raises FileNotFoundError naming the folder."""
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries

    if name not in KNOWN:
        raise ValueError(f"unknown collection {name!r}: use one of {', '.join(KNOWN)}")
    folder = Path(data_root) / KNOWN[name]
    if not (folder / "corpus.jsonl").is_file():
        raise FileNotFoundError(f"collection {name}: no corpus.jsonl in {folder}")
    qrels = read_beir_qrels(folder)
    queries = {q: t for q, t in read_beir_queries(folder).items() if q in qrels}
    keep = None
    if name in SLICES:
        ids = [json.loads(line)["_id"] for line in open(folder / "corpus.jsonl", encoding="utf-8") if line.strip()]
        relevant = {d for judged in qrels.values() for d, g in judged.items() if g > 0}
        others = [d for d in ids if d not in relevant]
        drawn = np.random.default_rng(0).choice(len(others), SLICES[name] - len(relevant), replace=False)
        keep = relevant | {others[i] for i in drawn}
    return Collection(name, folder, queries, qrels, Path(work_dir) / name, {"keep": keep})


def documents(folder: Path, keep: set[str] | None = None):
    """The corpus as one passage per document: text = title + " " + text (BEIR's usual input);
    only the ids in ``keep`` when given."""
    from lucerag.connectors.document import Document

    with open(folder / "corpus.jsonl", encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                r = json.loads(line)
                if keep is not None and str(r["_id"]) not in keep:
                    continue
                title, text = (r.get("title") or "").strip(), (r.get("text") or "").strip()
                yield Document(id=str(r["_id"]), title=title, text=f"{title} {text}".strip() if title else text)


def ensure_index(c: Collection, progress: bool = False) -> Path:
    """Build ``c.index`` (BM25 + HNSW, default encoder, one passage per document) unless present."""
    from lucerag.ingest.pipeline import build_index

    if (c.index / "lucerag.json").is_file() or any(c.index.glob("segments_*")):
        return c.index
    c.index.parent.mkdir(parents=True, exist_ok=True)
    # max_tokens far above any abstract: no chunking, the encoder truncates to its own window.
    build_index(documents(c.folder, c.extra.get("keep")), c.index, max_tokens=100_000, progress=progress)
    return c.index


# -- candidate cache ------------------------------------------------------------------------

def _key(queries: dict[str, str], index: Path, depth: int, encoder: str = "") -> str:
    h = hashlib.sha1(json.dumps([sorted(queries.items()), str(index), depth, encoder]).encode()).hexdigest()
    return h[:12]


def _encoder_identity(retriever) -> str:
    """What the query vectors depend on: the query encoder's weights, precision and export recipe
    (a cache filled under another encoder recipe must not be reused)."""
    encoder = getattr(retriever, "encoder", None)
    m = getattr(encoder, "manifest", None)
    if m is None:
        return ""
    return f"{m.weights_sha256}:{m.precision}:{m.recipe}"


def save_candidates(path: Path, cands: dict[str, Candidates], texts: dict[str, str]) -> None:
    arrays = {}
    for i, (qid, c) in enumerate(cands.items()):
        arrays[f"{i}_bm25"], arrays[f"{i}_dense"] = c.bm25, c.dense
        arrays[f"{i}_bm25_rank"], arrays[f"{i}_dense_rank"] = c.bm25_rank, c.dense_rank
    meta = {"qids": list(cands), "texts": [texts[q] for q in cands], "ids": [c.ids for c in cands.values()]}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds badly


def load_candidates(path: Path) -> tuple[dict[str, Candidates], dict[str, str]]:
    data = np.load(path)
    meta = json.loads(data["meta"].tobytes())
    cands = {qid: Candidates(ids, data[f"{i}_bm25"], data[f"{i}_dense"], data[f"{i}_bm25_rank"],
                             data[f"{i}_dense_rank"])
             for i, (qid, ids) in enumerate(zip(meta["qids"], meta["ids"]))}
    return cands, dict(zip(meta["qids"], meta["texts"]))


def gather(retriever, queries: dict[str, str], depth: int, cache_dir: Path | None = None,
           tag: str = "") -> dict[str, Candidates]:
    """Candidates (top ``depth`` of each view, both exact scores) for every query, cached in
    ``cache_dir`` keyed by the queries, the index and the depth."""
    path = None
    if cache_dir is not None:
        index = (retriever.dense_index or retriever.bm25_index).path
        path = Path(cache_dir) / f"cands-{tag}-{_key(queries, index, depth, _encoder_identity(retriever))}.npz"
        if path.is_file():
            return load_candidates(path)[0]
    cands = {qid: retriever.candidates(text, depth)[0] for qid, text in queries.items()}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_candidates(path, cands, queries)
    return cands
