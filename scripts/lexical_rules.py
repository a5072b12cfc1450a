"""Which lexical evidence should open the relevance filter's answerability gate? Measured held out.

For each collection B (the rule's one parameter, if any, chosen on the other collection A) and each
query set on B's corpus, the share of queries the mixture filter refuses (best cosine under the gate
set from the written negatives on B, and the rule does not open it). Rules:

- ``dense gate only``: before the lexical evidence;
- ``top BM25 passage holds every term``: what lucerag ships (lucerag.search.lexical.TermCoverage);
- ``some passage holds every term``: the same conjunction, any passage;
- ``BM25 ratio >= r``: the top BM25 score over the query's largest possible one (the sum of its terms'
  idf, Lucene's BM25 without the (k1 + 1) factor: each term's part tends to idf as tf grows), r = the
  highest ratio among A's unanswerable queries under A's gate (the lowest value that opens none on A).

It also times the shipped check (TermCoverage.covered, warm: the last of three passes over every
query) next to the BM25 search of the same queries, and the filter's whole decision
(Calibrator.decide) without and with it on the judged and keyword queries, interleaved.

Run from the repository root on the cache of ``lucerag bench transfer`` (docs/fusion-and-filter.md):

    .venv/bin/python scripts/lexical_rules.py --data ../shared/data --work /work/transfer-work5
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter

import numpy as np

from lucerag.eval.transfer import load_judged
from lucerag.lucene.classes import CONTENTS, java
from lucerag.search.calibration import gate_from_negatives
from lucerag.search.fusion import head
from lucerag.search.lexical import TermCoverage, analysed_terms
from lucerag.search.retriever import Retriever

SETS = ("judged (answerable)", "keyword", "other collection", "written questions", "negatives", "nonsense")


def _took(fn) -> float:
    start = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--collections", default="dl19,scifact-2k")
    ap.add_argument("--ood", default="tests/data/ood_queries.txt")
    ap.add_argument("--negatives", default="tests/data/ood_train.txt")
    ap.add_argument("--nonsense", default="tests/data/nonsense_queries.txt")
    args = ap.parse_args()
    names = args.collections.split(",")
    judged = load_judged(names, args.data, args.work, 100, args.ood, args.negatives, 0, log=lambda m: None,
                         nonsense=args.nonsense)
    rows = {}  # collection -> set -> [(best cosine, top-passage covered, any-passage covered, ratio)]
    gates = {}
    for name, j in judged.items():
        sets = {"judged (answerable)": (j.cands, j.texts), "negatives": j.negatives,
                "keyword": j.probes["keyword"], "nonsense": j.probes["nonsense"],
                "written questions": j.unanswerable["ood"],
                "other collection": next(v for k, v in j.unanswerable.items() if k != "ood")}
        with Retriever.from_index(f"{args.work}/{name}") as r:
            reader, n = r.bm25.index.reader, int(r.bm25.index.reader.getDocCount(CONTENTS))
            coverage, builder = TermCoverage(r.bm25), java.QueryBuilder(java.analyzer)
            df: dict[str, int] = {}

            def idf(t: str) -> float:
                if t not in df:
                    df[t] = int(reader.docFreq(java.Term(CONTENTS, t)))
                return math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))

            def anywhere(text: str) -> bool:
                q = builder.createBooleanQuery(CONTENTS, text, java.BooleanClauseOccur.MUST)
                return q is not None and r.bm25.searcher.count(q) > 0

            rows[name] = {}
            for sname, (cands, texts) in sets.items():
                out = []
                for qid, c in cands.items():
                    text, top = texts[qid], float(c.bm25.max()) if len(c) else 0.0
                    most = sum(k * idf(t) for t, k in Counter(analysed_terms(text)).items())
                    out.append((float(c.dense[head(c, 100)].max()), coverage.covered(text, top),
                                top > 0 and anywhere(text), top / most if most > 0 else 0.0))
                rows[name][sname] = out
            queries = [(texts[q], float(c.bm25.max()) if len(c) else 0.0)
                       for cands, texts in sets.values() for q, c in cands.items()]
            for _ in range(3):
                check = [_took(lambda: coverage.covered(text, top)) for text, top in queries]
            search = [_took(lambda: r.bm25.search(text, 100)) for text, _ in queries]
            print(f"{name}: lexical evidence {np.median(check):.3f} ms median, {np.percentile(check, 90):.3f} ms p90 "
                  f"per query ({len(check)} queries); their BM25 search {np.median(search):.3f} ms median")
            # the filter's whole decision (Calibrator.decide) with and without the lexical evidence,
            # interleaved on the same candidates: the shipped calibrator as a retriever binds it
            after = r.calibrator
            before = after.model_copy(update={"lexical": False})
            for sname in ("judged (answerable)", "keyword"):
                cands, texts = sets[sname]
                fused = {q: r.fuse(c) for q, c in cands.items()}
                took = {False: [], True: []}
                for _ in range(3):
                    took = {False: [], True: []}
                    for q, c in cands.items():
                        for lexical, cal in ((False, before), (True, after)):
                            took[lexical].append(_took(lambda: cal.decide(c, fused[q], texts[q], 100)))
                print(f"{name}: filter decision on {sname} queries: {np.median(took[False]):.3f} ms median "
                      f"without the lexical evidence, {np.median(took[True]):.3f} ms with it")
        gates[name] = gate_from_negatives(q[0] for q in rows[name]["negatives"])
    print("| measured on (rule fitted on) | rule | " + " | ".join(f"{s} refused" for s in SETS) + " |")
    print("| --- | --- |" + " --- |" * len(SETS))
    for b in names:
        a = next(x for x in names if x != b)
        r0 = max(q[3] for s in ("other collection", "written questions", "negatives") for q in rows[a][s]
                 if q[0] < gates[a])
        rules = {"dense gate only": lambda q: False, "top BM25 passage holds every term": lambda q: q[1],
                 "some passage holds every term": lambda q: q[2], f"BM25 ratio >= {r0:.3f}": lambda q: q[3] >= r0}
        for rule, opens in rules.items():
            shares = [np.mean([q[0] < gates[b] and not opens(q) for q in rows[b][s]]) for s in SETS]
            print(f"| {b} ({a}) | {rule} | " + " | ".join(f"{v:.2%}" for v in shares) + " |")


if __name__ == "__main__":
    main()
