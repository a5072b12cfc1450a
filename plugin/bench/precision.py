"""nDCG@10 of dense and hybrid retrieval for every pair of passage and query precision (fp32, int8).

``lucerag bench precision --beir FOLDER --work DIR`` builds (or reuses) one index per passage precision
under DIR, then evaluates each with fp32 and with int8 queries: the side-by-side table of
docs/encoder.md. The int8 encoder is loaded with its self-check off, so int8 really is int8 here.
"""

from __future__ import annotations

from lucerag.search.request import Method

import time
from pathlib import Path

PRECISIONS = ("fp32", "int8")


def run_precision_bench(beir: Path, work: Path, methods: tuple[Method, ...] = ("dense", "hybrid"), depth: int = 100,
                        progress: bool = False) -> dict:
    """``{"passages-P/queries-Q": {method: nDCG@10}, ...}`` plus build times; ``beir`` is a BEIR folder
    (corpus.jsonl, queries.jsonl, qrels). Raises FileNotFoundError when it is not one."""
    from lucerag.config import Config
    from lucerag.connectors import read_documents
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries
    from lucerag.eval.runs import per_query_scores, run_queries
    from lucerag.ingest.pipeline import build_index
    from lucerag.models import load_encoder
    from lucerag.models.cpu import int8_isa
    from lucerag.search.retriever import Retriever

    beir, work = Path(beir), Path(work)
    if not (beir / "corpus.jsonl").is_file():
        raise FileNotFoundError(f"{beir} is not a BEIR folder (no corpus.jsonl)")
    queries, qrels = read_beir_queries(beir), read_beir_qrels(beir)
    queries = {q: t for q, t in queries.items() if q in qrels}
    encoders = {p: load_encoder(None, threads=1, precision=p, selfcheck=False) for p in PRECISIONS}
    result: dict = {"collection": str(beir), "queries": len(queries), "int8_kernels": int8_isa(),
                    "metric": "nDCG@10"}
    for pp in PRECISIONS:
        index = work / f"passages-{pp}"
        if not (index / "lucerag.json").is_file():
            t0 = time.perf_counter()
            stream = read_documents(beir / "corpus.jsonl", "jsonl")
            build_index(stream, index, encoder=encoders[pp], progress=progress, stats=stream.stats)
            result[f"build_s_passages-{pp}"] = round(time.perf_counter() - t0, 1)
        for qp in PRECISIONS:
            cell = {}
            with Retriever(Config.for_index(index), encoder=encoders[qp]) as r:
                for method in methods:
                    def rank(text: str, m: Method = method):
                        ranking = r.rank(text, m, depth)
                        return ranking.ids, ranking.scores

                    run, _ = run_queries(rank, queries)
                    scores = per_query_scores(run, qrels, ["nDCG@10"])["nDCG@10"]
                    cell[method] = round(sum(scores.values()) / len(scores), 4)
            result[f"passages-{pp}/queries-{qp}"] = cell
    return result
