"""Encoder benchmark: ONNX fp32 / int8 vs the PyTorch reference, on the same texts, in one run.

``python -m lucerag.bench.encoder`` prints one JSON object (see :func:`run_encoder_bench`).
torch is imported only for the reference side, and only when ``torch_reference`` is true.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from lucerag.models.cpu import cpu_model, int8_isa, isa_signature
from lucerag.models.encoder import PASSAGE_BATCH, OnnxEncoder
from lucerag.bench.data import DL19_SLICE, data_path, data_root
from lucerag.config import EncoderConfig
from lucerag.errors import InputError
from lucerag.models.manifest import ModelManifest
from lucerag.models.probe import PROBE_TEXTS
from lucerag.models.store import DEFAULT_PASSAGE_PRECISION, int8_variant
from lucerag.resources import DEMO_CORPUS



def _jsonl(path: Path, limit: int | None = None) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(limit if limit is not None else 1 << 62))]


def load_texts(data_dir: Path | None = None, n_passages: int = 1000) -> tuple[list[str], list[str], str]:
    """(queries, passages, source): the BEIR folder ``data_dir`` (default ``$LUCERAG_DATA/msmarco-dl19-5k``)
    when it holds queries.jsonl and corpus.jsonl, else sentences of the demo corpus shipped with lucerag."""
    data = Path(data_dir) if data_dir else (data_root() or Path("/nonexistent")) / DL19_SLICE
    if (data / "queries.jsonl").is_file() and (data / "corpus.jsonl").is_file():
        queries = [r["text"] for r in _jsonl(data / "queries.jsonl")]
        passages = [r["text"] for r in _jsonl(data / "corpus.jsonl", n_passages)]
        return queries, passages, str(data.resolve())
    if data_dir:
        raise InputError(f"{data}: needs queries.jsonl and corpus.jsonl (a BEIR folder)")
    # Said on stderr, not only in the JSON's "source": the demo sentences are about twice as long as
    # MS MARCO queries (tokens p50 ~18 vs 9), so their timings are not comparable with the docs' tables.
    print(f"lucerag bench: no MS MARCO DL19 slice at {data} (set LUCERAG_DATA to the shared data folder): "
          "timing the demo corpus's sentences instead", file=sys.stderr)
    sentences = [
        s.strip() for p in sorted(DEMO_CORPUS.glob("*.md")) for s in p.read_text(encoding="utf-8").split(".")
        if len(s.strip()) > 3
    ]
    short = [s for s in sentences if len(s.split()) <= 16] or sentences
    return (short, [" ".join(sentences[i : i + 4]) for i in range(0, len(sentences), 4)][:n_passages],
            "lucerag/data/demo/*.md")


def _cycle(items: list[str], n: int) -> list[str]:
    return [items[i % len(items)] for i in range(n)]


def _interleaved_latencies_ms(fns: dict, texts: list[str], warmup: int = 10,
                              cpu: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per-call latency of each encoder on every text; the encoders take turns text by text (in a
    rotating order) so that a slow minute of the machine costs all of them alike. ``cpu``, when given,
    is filled with the calling thread's CPU time per call (ms)."""
    names = list(fns)
    for t in texts[:warmup]:
        for name in names:
            fns[name](t)
    out = {name: np.empty(len(texts)) for name in names}
    if cpu is not None:
        cpu.update({name: np.empty(len(texts)) for name in names})
    for i, t in enumerate(texts):
        for name in names[i % len(names):] + names[: i % len(names)]:
            c0, t0 = time.thread_time(), time.perf_counter()
            fns[name](t)
            out[name][i] = (time.perf_counter() - t0) * 1e3
            if cpu is not None:
                cpu[name][i] = (time.thread_time() - c0) * 1e3
    return out


def _interleaved_throughput(encoders: dict, passages: list[str], batch_size: int, rounds: int) -> dict[str, list[float]]:
    """Passages/s of each encoder over ``rounds`` full passes, the encoders alternating pass by pass."""
    names = list(encoders)
    for name in names:
        encoders[name].encode_passages(passages[: 2 * batch_size], batch_size=batch_size)  # warm up
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            encoders[name].encode_passages(passages, batch_size=batch_size)
            out[name].append(len(passages) / (time.perf_counter() - t0))
    return out


def ndcg_at_10(scores: np.ndarray, qids: list[str], doc_ids: list[str], qrels: dict[str, dict[str, int]]) -> float:
    """Mean nDCG@10 (linear gains, trec_eval style) over the queries that have judgments."""
    vals = []
    for qi, qid in enumerate(qids):
        rels = qrels.get(qid)
        if not rels:
            continue
        top = np.argsort(-scores[qi], kind="stable")[:10]
        dcg = sum(rels.get(doc_ids[d], 0) / np.log2(r + 2) for r, d in enumerate(top))
        ideal = sorted(rels.values(), reverse=True)[:10]
        vals.append(dcg / sum(g / np.log2(r + 2) for r, g in enumerate(ideal)))
    return float(np.mean(vals))


def _dense_ndcg(fp32: OnnxEncoder, int8: OnnxEncoder, data: Path, batch_size: int,
                baseline: OnnxEncoder | None = None) -> dict:
    corpus = _jsonl(data / "corpus.jsonl")
    queries = _jsonl(data / "queries.jsonl")
    qrels: dict[str, dict[str, int]] = {}
    with open(data / "qrels.tsv", encoding="utf-8") as f:
        next(f)
        for line in f:
            q, d, s = line.split()
            qrels.setdefault(q, {})[d] = int(s)
    texts = [(r.get("title", "") + " " + r["text"]).strip() for r in corpus]
    ids, qids = [r["_id"] for r in corpus], [r["_id"] for r in queries]
    out = {}
    encoders = (("fp32", fp32), ("int8", int8)) + ((("baseline_int8", baseline),) if baseline else ())
    for label, enc in encoders:
        docs = enc.encode_passages(texts, batch_size=batch_size)
        qvecs = enc.encode_queries([r["text"] for r in queries])
        out[f"ndcg10_{label}"] = round(ndcg_at_10(qvecs @ docs.T, qids, ids, qrels), 4)
    return out


def profile_query_ops(model_dir: Path, texts: list[str], threads: int = 1) -> dict:
    """Where one query's time goes: onnxruntime's profiler over ``texts`` (each encoded alone, after 10
    warm-up queries), summed per op type and divided by the number of queries.

    Returns {"tokenize_us": tokeniser + id array per query, "run_ms": median ``session.run`` as the
    profiler saw it, "kernels_ms": the sum of the node kernels per query, "nodes": nodes per query,
    "ops": {op type: {"ms": per query, "nodes": per query}}} (largest first). Profiling adds its own
    overhead to every node, so the shares matter more than the sums.
    """
    import collections
    import tempfile

    from lucerag.models.manifest import MODEL_FILE
    from lucerag.models.optimize import KEEP_UNFUSED

    enc = OnnxEncoder(model_dir, threads=threads)
    tok, prefix = enc.tokenizer, enc.manifest.query_prefix
    t0 = time.perf_counter()
    ids = [np.array(tok.encode(prefix + t).ids, dtype=np.int64)[None, :] for t in texts]
    tokenize_us = (time.perf_counter() - t0) / len(texts) * 1e6
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(Path(model_dir) / MODEL_FILE), opts, providers=["CPUExecutionProvider"],
                                       disabled_optimizers=list(KEEP_UNFUSED))
        names = {i.name for i in session.get_inputs()}

        def run(x: np.ndarray) -> None:
            feeds = {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)}
            session.run(["embedding"], {k: v for k, v in feeds.items() if k in names})

        for x in ids[:10]:
            run(x)
        for x in ids:
            run(x)
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    per_op: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    runs = []
    warm = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    cut = warm[10] if len(warm) > 10 else 0  # skip the warm-up runs
    for e in events:
        if e.get("ts", 0) < cut:
            continue
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]][0] += e["dur"]
            per_op[e["args"]["op_name"]][1] += 1
        elif e.get("cat") == "Session" and e["name"] == "model_run":
            runs.append(e["dur"])
    n = len(texts)
    ops = {k: {"ms": round(v[0] / n / 1e3, 4), "nodes": round(v[1] / n, 1)}
           for k, v in sorted(per_op.items(), key=lambda kv: -kv[1][0])}
    return {"tokenize_us": round(tokenize_us, 1), "run_ms": round(float(np.median(runs)) / 1e3, 3) if runs else None,
            "kernels_ms": round(sum(v[0] for v in per_op.values()) / n / 1e3, 3),
            "nodes": round(sum(v[1] for v in per_op.values()) / n, 1), "ops": ops}


def batch_independence(enc: OnnxEncoder, texts=PROBE_TEXTS, batch_sizes=(7, 32, 64)) -> float:
    """Min cosine between each text encoded alone and the same text in batches of ``batch_sizes``."""
    texts = list(texts)
    alone = np.stack([enc.encode_passages([t])[0] for t in texts])
    return min(float((enc.encode_passages(texts, batch_size=b) * alone).sum(1).min()) for b in batch_sizes)


def _torch_reference(manifest: ModelManifest, tokenizer, threads: int):
    """Single-text PyTorch encoder (default attention implementation, as sentence-transformers loads it)."""
    import torch

    from lucerag.models.export import build_pooled_module

    module = build_pooled_module(Path(manifest.source), manifest.pooling, manifest.normalize, attn_implementation=None)
    takes_types = "token_type_ids" in manifest.inputs

    def encode(text: str) -> np.ndarray:
        ids = torch.tensor([tokenizer.encode(text).ids])
        args = (ids, torch.ones_like(ids)) + ((torch.zeros_like(ids),) if takes_types else ())
        with torch.inference_mode():
            return module(*args)[0].numpy()

    def set_threads(n: int) -> None:
        torch.set_num_threads(n)

    set_threads(threads)
    return encode, set_threads


def run_encoder_bench(
    model_dir: str | Path | None = None,
    int8_dir: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    n_queries: int = 200,
    n_passages: int = 1000,
    n_parity: int = 256,
    batch_size: int = PASSAGE_BATCH,
    query_threads: int = 1,
    passage_threads: int | None = None,
    torch_reference: bool = True,
    ndcg: bool = False,
    rounds: int = 3,
    baseline_int8_dir: str | Path | None = None,
    profile: bool = False,
    verbose: bool = True,
) -> dict:
    """Measure latency, throughput and parity; print (when verbose) and return one JSON-able dict.

    ``model_dir``: an exported fp32 folder (default: the cached default model, exported if needed).
    ``int8_dir``: its int8 twin (default: quantised into the cache on first use, see ``int8_variant``).
    Query latency: ``n_queries`` single unpadded queries, ``query_threads`` threads (ONNX and torch),
    the encoders taking turns query by query. Throughput: ``n_passages`` passages, ``passage_threads``
    (None: all cores), length-bucketed batches; the median of ``rounds`` passes per encoder, fp32 and
    int8 alternating pass by pass.
    Parity: minimum cosine over ``n_parity`` texts between ONNX (padded, mixed-length batches) and
    PyTorch (one unpadded text at a time). ``ndcg``: exact dense nDCG@10 on DL19-5K for fp32 and int8.
    ``baseline_int8_dir``: another int8 folder (e.g. one exported by an older recipe) timed in the same
    interleaved query loop (``baseline_int8_p50_ms``) and checked on the probe texts, for before/after
    comparisons in one run. ``profile``: per-op-type time of one query (:func:`profile_query_ops`) for the
    int8 folder and the baseline, over the first 100 benchmark queries, and ``gemm_floor``: the int8
    encoder against its GEMMs alone over the benchmark queries, interleaved
    (:func:`lucerag.bench.gemm.floor_vs_encoder`). ``query_p50_ms`` is the p50 of the
    encoder the retriever uses by default (``[encoder] precision``), at ``query_threads`` (the retriever's
    default is ``[encoder] threads`` = 1).
    """
    if model_dir is None:
        from lucerag.models.store import ensure_default_model

        model_dir = ensure_default_model()
    model_dir = Path(model_dir)
    int8_dir = Path(int8_dir) if int8_dir else int8_variant(model_dir)
    queries, passages, source = load_texts(Path(data_dir) if data_dir else None, n_passages)
    qtexts = _cycle(queries, n_queries)

    fp32_q = OnnxEncoder(model_dir, threads=query_threads)
    int8_q = OnnxEncoder(int8_dir, threads=query_threads)
    m = fp32_q.manifest
    query_fns: dict[str, Callable[[str], Any]] = {"onnx": fp32_q.encode_query, "int8": int8_q.encode_query}
    baseline_q = OnnxEncoder(baseline_int8_dir, threads=query_threads) if baseline_int8_dir else None
    if baseline_q is not None:
        query_fns["baseline_int8"] = baseline_q.encode_query
    if torch_reference:
        ref, set_threads = _torch_reference(m, fp32_q.tokenizer, query_threads)
        query_fns["torch"] = lambda t: ref(m.query_prefix + t)
    cpu_ms: dict[str, np.ndarray] = {}
    latency = _interleaved_latencies_ms(query_fns, qtexts, cpu=cpu_ms)
    fp32_p = OnnxEncoder(model_dir, threads=passage_threads)
    int8_p = OnnxEncoder(int8_dir, threads=passage_threads)
    rates = _interleaved_throughput({"fp32": fp32_p, "int8": int8_p}, passages, batch_size, rounds)
    rate = {k: round(float(np.median(v)), 1) for k, v in rates.items()}
    result: dict = {
        "model": m.name,
        "texts": source,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # other work on the machine skews every timing
        "onnxruntime": ort.__version__,
        "cpu": cpu_model(),
        "int8_kernels": int8_isa(),
        "cpu_flags": isa_signature(),
        "providers": fp32_p.providers,
        "query_threads": query_threads,
        "passage_threads": passage_threads,
        "n_queries": len(qtexts),
    }
    for name, ms in latency.items():
        result[f"{name}_p50_ms"] = round(float(np.percentile(ms, 50)), 3)
        result[f"{name}_p99_ms"] = round(float(np.percentile(ms, 99)), 3)
    if query_threads == 1:  # onnxruntime then runs the query on the calling thread: its CPU time, which other
        # processes on a shared machine inflate less than the wall time (they still share caches and cores)
        for name, ms in cpu_ms.items():
            result[f"{name}_cpu_p50_ms"] = round(float(np.percentile(ms, 50)), 3)
    # the query path as the retriever runs it: [encoder] precision (int8 unless configured) and threads
    query_precision = EncoderConfig().precision
    result.update({
        "query_path": {"precision": query_precision, "threads": query_threads,
                       "retriever_default_threads": EncoderConfig().threads,
                       "int8_recipe": int8_q.manifest.recipe},
        "query_p50_ms": result["int8_p50_ms" if query_precision == "int8" else "onnx_p50_ms"],
    })
    if baseline_q is not None:
        result["baseline_int8_dir"] = str(baseline_int8_dir)
        result["baseline_int8_recipe"] = baseline_q.manifest.recipe
    result.update({
        "n_passages": len(passages),
        "batch_size": batch_size,
        "throughput_rounds": rounds,
        "passage_precision": DEFAULT_PASSAGE_PRECISION,
        "passages_per_s": rate[DEFAULT_PASSAGE_PRECISION],  # the encoder `lucerag index` uses by default
        "fp32_passages_per_s": rate["fp32"],
        "int8_passages_per_s": rate["int8"],
        "passages_per_s_rounds": {k: [round(x, 1) for x in v] for k, v in rates.items()},
    })
    # the issue-12 checks: int8 vs fp32 on the 64 probe texts (one at a time), and each probe text
    # alone vs in batches of 7, 32 and 64 (lucerag.models.probe)
    probe_fp32 = np.stack([fp32_q.encode_query(t) for t in PROBE_TEXTS])
    probe_int8 = np.stack([int8_q.encode_query(t) for t in PROBE_TEXTS])
    result["probe_cos_min_int8_vs_fp32"] = round(float((probe_fp32 * probe_int8).sum(1).min()), 6)
    result["probe_cos_mean_int8_vs_fp32"] = round(float((probe_fp32 * probe_int8).sum(1).mean()), 6)
    if baseline_q is not None:
        probe_base = np.stack([baseline_q.encode_query(t) for t in PROBE_TEXTS])
        result["probe_cos_min_baseline_int8_vs_fp32"] = round(float((probe_fp32 * probe_base).sum(1).min()), 6)
        result["probe_cos_mean_baseline_int8_vs_fp32"] = round(float((probe_fp32 * probe_base).sum(1).mean()), 6)
    result["batch_independence_fp32"] = round(batch_independence(fp32_p), 6)
    result["batch_independence_int8"] = round(batch_independence(int8_p), 6)
    if torch_reference:
        result["speedup_vs_torch"] = round(result["torch_p50_ms"] / result["onnx_p50_ms"], 2)
        result["int8_speedup_vs_torch"] = round(result["torch_p50_ms"] / result["int8_p50_ms"], 2)
        set_threads(passage_threads or os.cpu_count() or 1)
        par_q = queries[: max(1, n_parity // 5)]
        par_p = _cycle(passages, n_parity - len(par_q)) if passages else []
        want = np.stack([ref(m.query_prefix + t) for t in par_q] + [ref(m.passage_prefix + t) for t in par_p])
        for label, enc in (("fp32", fp32_p), ("int8", int8_p)):
            got = np.concatenate([enc.encode_queries(par_q, batch_size=8), enc.encode_passages(par_p, batch_size=batch_size)])
            result[f"cos_min_{label}"] = round(float((got * want).sum(1).min()), 6)
        result["n_parity"] = len(want)
    else:
        result.update(torch_p50_ms=None, cos_min_fp32=None, cos_min_int8=None)
    if profile:
        from lucerag.bench.gemm import floor_vs_encoder

        result["profile_int8"] = profile_query_ops(int8_dir, qtexts[:100], query_threads)
        # the int8 GEMMs alone against the whole encoder, query by query: what no other rewrite can remove
        result["gemm_floor"] = floor_vs_encoder(int8_dir, qtexts, query_threads)
        if baseline_int8_dir:
            result["profile_baseline_int8"] = profile_query_ops(Path(baseline_int8_dir), qtexts[:100], query_threads)
    if ndcg:
        data = Path(data_dir) if data_dir else data_path(DL19_SLICE)
        if (data / "qrels.tsv").is_file():
            baseline_p = OnnxEncoder(baseline_int8_dir, threads=passage_threads) if baseline_int8_dir else None
            result.update(_dense_ndcg(fp32_p, int8_p, data, batch_size, baseline_p))
    if verbose:
        print(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m lucerag.bench.encoder", description=__doc__)
    ap.add_argument("--model", type=Path, default=None, help="exported fp32 model folder")
    ap.add_argument("--int8-model", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=None, help="folder with queries.jsonl/corpus.jsonl[/qrels.tsv]")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--passages", type=int, default=1000)
    ap.add_argument("--parity", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=PASSAGE_BATCH)
    ap.add_argument("--query-threads", type=int, default=1)
    ap.add_argument("--passage-threads", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3, help="throughput passes per encoder (median reported)")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    ap.add_argument("--ndcg", action="store_true", help="also exact dense nDCG@10 on DL19-5K, fp32 and int8")
    ap.add_argument("--baseline-int8", type=Path, default=None,
                    help="another int8 model folder (e.g. an older recipe's) timed in the same interleaved query loop")
    ap.add_argument("--profile", action="store_true",
                    help="also onnxruntime's per-op-type profile of one query (int8 and the baseline) and the int8 "
                         "encoder against its GEMMs alone (gemm_floor)")
    a = ap.parse_args(argv)
    return run_encoder_bench(
        a.model, a.int8_model, data_dir=a.data, n_queries=a.queries, n_passages=a.passages, n_parity=a.parity,
        batch_size=a.batch_size, query_threads=a.query_threads, passage_threads=a.passage_threads,
        torch_reference=not a.no_torch, ndcg=a.ndcg, rounds=a.rounds, baseline_int8_dir=a.baseline_int8,
        profile=a.profile,
    )


if __name__ == "__main__":
    main()
