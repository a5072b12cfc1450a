"""What restricting the lexical evidence to a metadata filter costs (lucerag.search.lexical).

Times ``TermCoverage.covered`` per query without a filter and under filters of several
selectivities, on one BM25 index, each query's ``top_bm25`` taken from the BM25 view's own top hit
under the same filter (as ``Retriever.filtered`` does). The index is only read. Filters are Lucene
queries of the shapes ``lucerag.search.filters`` builds: a ``not`` on a key no passage has (every
passage), and ``terms`` over passage ids (a ``TermInSetQuery``) accepting every 2nd / every 10th
passage. For scale it also times the filtered BM25 search of the same queries.

Queries: each query of a BEIR folder and each of their distinct words as a one-word query (the
keyword queries the evidence exists for). Three passes over every (query, filter) pair, the
filters interleaved per query; the last pass is reported (median and p90, milliseconds).

Run from the repository root, e.g. on the DL19 slice's 5K index:

    .venv/bin/python scripts/lexical_filter_cost.py --index /work/prof5k/sys/lucerag/lucerag \\
        --queries ../shared/data/msmarco-dl19-5k
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

from lucerag.eval.topics import read_beir_queries
from lucerag.index.reader import LuceneIndex
from lucerag.lucene import jvm
from lucerag.search.filters import parse, to_query
from lucerag.search.lexical import TermCoverage
from lucerag.search.searchers import BM25Searcher


def _ms(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return 1000 * (time.perf_counter() - start), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True, help="a lucerag (or Anserini) index with a BM25 view")
    ap.add_argument("--queries", required=True, help="a BEIR folder with queries.jsonl")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    jvm.start()
    from lucerag.lucene.classes import java

    index = LuceneIndex(args.index)
    try:
        bm25 = BM25Searcher(index)
        coverage = TermCoverage(bm25)
        n = int(index.reader.maxDoc())
        ids = index.ids(range(n))
        filters = {
            "none": None,
            "every passage (not exists)": to_query(parse({"not": {"exists": "no-such-key"}})),
            "1/2 of passages (terms)": java.Bridge.idsQuery(ids[::2]),
            "1/10 of passages (terms)": java.Bridge.idsQuery(ids[::10]),
        }
        texts = list(read_beir_queries(args.queries).values())
        words = sorted({w.lower() for t in texts for w in re.findall(r"\w+", t)})
        queries = texts + words
        check: dict[str, list[float]] = {}
        search: dict[str, list[float]] = {}
        opened: dict[str, int] = {}
        for _ in range(args.passes):
            check = {name: [] for name in filters}
            search = {name: [] for name in filters}
            opened = {name: 0 for name in filters}
            for q in queries:
                for name, f in filters.items():
                    took, hits = _ms(lambda: bm25.search(q, 1, filter=f))
                    search[name].append(took)
                    top = float(hits.scores[0]) if len(hits) else 0.0
                    took, ok = _ms(lambda: coverage.covered(q, top, f))
                    check[name].append(took)
                    opened[name] += bool(ok)
        print(f"{args.index}: {n} passages; {len(texts)} queries + {len(words)} one-word queries; "
              f"last of {args.passes} passes, ms")
        print("| filter | check median | check p90 | BM25 top-1 search median | evidence true |")
        print("| --- | --- | --- | --- | --- |")
        for name in filters:
            c, s = np.asarray(check[name]), np.asarray(search[name])
            print(f"| {name} | {np.median(c):.3f} | {np.percentile(c, 90):.3f} | {np.median(s):.3f} | "
                  f"{opened[name]}/{len(queries)} |")
    finally:
        index.close()


if __name__ == "__main__":
    main()
