"""Write tests/data/lucene9/index: a lucerag index written by Lucene 9.9.1, and the results
Lucene 9.9.1 gives on it (expected.json), for tests/test_lucene_versions.py.

Run once with lucerag of Python 3.11 / pyserini 1.6.0 (Anserini 1.7.1, Lucene 9.9.1), e.g. from a
checkout of lucerag before the Lucene 10 move (commit 50ff879) with its venv:

    /work/main/.venv/bin/python tests/data/lucene9/make_fixture.py

The passages are tests/data/mini_beir's corpus; the vectors are seeded random unit vectors (32
dimensions, no encoder needed), so the fixture stays small and reproducible.
"""

import json
import shutil
from pathlib import Path

import numpy as np

from lucerag.index.manifest import IndexManifest
from lucerag.index.reader import LuceneIndex
from lucerag.index.writer import IndexWriter
from lucerag.lucene.jvm import jclass
from lucerag.search.searchers import BM25Searcher, DenseSearcher

HERE = Path(__file__).resolve().parent
DIM = 32
QUERIES = ["why does a volcano erupt", "sourdough bread", "how do vaccines work", "ocean tides moon"]


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def main() -> None:
    docs = [json.loads(line) for line in (HERE.parent / "mini_beir" / "corpus.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(9)
    vectors = unit(rng.standard_normal((len(docs), DIM)))
    queries = unit(rng.standard_normal((3, DIM)))
    index = HERE / "index"
    shutil.rmtree(index, ignore_errors=True)
    manifest = IndexManifest(dim=DIM, settings={"fixture": "Lucene 9.9.1, tests/data/lucene9/make_fixture.py"})
    with IndexWriter(index, manifest=manifest, dim=DIM, hnsw_m=8, hnsw_beam=32) as writer:
        writer.add_batch([d["_id"] for d in docs], [d["text"] for d in docs], vectors,
                         titles=[d["title"] for d in docs])
    opened = LuceneIndex(index)
    bm25, dense = BM25Searcher(opened), DenseSearcher(opened, ef_search=50)
    expected = {
        "lucene": str(jclass("org.apache.lucene.util.Version").LATEST.toString()),
        "bm25": {q: [[i, float(s)] for i, s in zip(h.ids, h.scores)] for q in QUERIES for h in [bm25.search(q, 5)]},
        "dense": [{"vector": v.tolist(), "hits": [[i, float(s)] for i, s in zip(h.ids, h.scores)]}
                  for v in queries for h in [dense.search(v, 5)]],
    }
    opened.close()
    (HERE / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print("wrote", index, "and expected.json")


if __name__ == "__main__":
    main()
