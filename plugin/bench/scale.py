"""Scale curve: lucerag vs the baseline stack at 5K, 50K and 200K passages, built reproducibly.

The corpora (``build_corpus``):

* the first 5,000 passages are the MS MARCO DL19 slice (``../shared/data/msmarco-dl19-5k``),
  with real vectors: the default encoder (all-MiniLM-L6-v2, ONNX) encodes them once and the
  result is cached beside the scale indexes (``<work>/dl19-5k.<encoder hash>.npy``);
* every further passage ``syn-<n>`` is synthetic, made with ``numpy.random.default_rng(seed)``
  (seed 7 by default), so the same seed gives the same corpus on any machine: it draws 2-3
  source passages of the slice, takes 2-3 consecutive sentences of the first (the main subject)
  and one sentence of each other, and joins them in the drawn order (real MS MARCO wording, new
  combinations, similar length: BM25 sees a realistic vocabulary and document frequencies);
* its vector is synthesised, not encoded (encoding 200K passages on 2 cores takes over half an
  hour): the mean of its source passages' real vectors weighted by the squared number of
  characters each contributed (the main source dominates, as in the text), normalised, plus
  isotropic Gaussian noise (``noise`` x the mean per-dimension standard deviation of the real
  vectors, 0.5 by default, drawn from the same generator), normalised again.  Each synthetic
  vector thus sits near a real passage's vector, spread around it like paraphrases; HNSW's cost
  and recall depend on that distribution, which is why random vectors are not used.  (A first
  version used the plain mean of 2-4 unrelated passages: averaging unrelated vectors pulls them
  all toward the corpus centroid into one dense blob of near-duplicates, an even harder case for
  Lucene 9.9's HNSW; real embeddings are not distributed like that.)  ``synthetic_fidelity`` in
  the report encodes a sample of synthetic passages for real and gives the mean cosine between
  synthesised and real vectors.

Each corpus is written once into ``<work>/scale-<n>`` through :class:`lucerag.index.writer.IndexWriter`
(vectors given: the ``import-vectors`` path), timed, and reused by later runs with the same seed.
Both stacks then run :func:`lucerag.bench.query.run_query_bench` on the same passages, vectors
and queries.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from lucerag.bench.data import DL19_SLICE, data_path
from lucerag.bench.query import dir_size, load_avg
from lucerag.index.hnsw import HNSW_BEAM, HNSW_M

DEFAULT_SIZES = (5_000, 50_000, 200_000)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def _slice(slice_dir: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with open(slice_dir / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(str(r["_id"]))
            texts.append(((r.get("title") or "") + " " + r["text"]).strip())
    return ids, texts


def slice_vectors(texts: list[str], work: Path, encoder=None) -> np.ndarray:
    """Real vectors of the slice passages (encoded once per encoder and precision, cached under ``work``)."""
    from lucerag.models import load_encoder

    encoder = encoder or load_encoder(None)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    key = f"{encoder.manifest.weights_sha256[:12]}-{digest}"
    if encoder.manifest.precision != "fp32":  # an int8 copy shares its source's weights hash
        key += f"-{encoder.manifest.precision}"
    path = Path(work) / f"dl19-5k.{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = encoder.encode_passages(texts, batch_size=32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors


def synthesise(ids: list[str], texts: list[str], vectors: np.ndarray, n: int, seed: int = 7,
               noise: float = 0.5) -> tuple[list[str], list[str], np.ndarray, list[list[int]]]:
    """``n`` synthetic passages (ids, texts, unit vectors, source passage indices) from a base corpus."""
    rng = np.random.default_rng(seed)
    sentences = [[s for s in _SENTENCE.split(t) if s.strip()] or [t] for t in texts]
    scale = float(vectors.std(axis=0).mean())
    out_ids, out_texts, sources = [], [], []
    out_vecs = np.empty((n, vectors.shape[1]), np.float32)
    for j in range(n):
        m = int(rng.integers(2, 4))
        src = rng.choice(len(texts), size=m, replace=False)
        parts, weights = [], []
        for r, s in enumerate(src):
            sent = sentences[s]
            take = min(len(sent), int(rng.integers(2, 4))) if r == 0 else 1  # the main source, then asides
            start = int(rng.integers(0, max(1, len(sent) - take + 1)))
            piece = " ".join(sent[start:start + take])
            parts.append(piece)
            weights.append(len(piece))
        w = np.asarray(weights, np.float64) ** 2  # the vector follows the text's main subject
        v = (w[:, None] * vectors[src]).sum(0) / w.sum()
        v = v / np.linalg.norm(v) + rng.normal(0.0, noise * scale, size=v.shape)
        out_vecs[j] = v / np.linalg.norm(v)
        out_ids.append(f"syn-{j:07d}")
        out_texts.append(" ".join(parts))
        sources.append(src.tolist())
    return out_ids, out_texts, out_vecs, sources


def build_corpus(size: int, work: Path, seed: int = 7, noise: float = 0.5, slice_dir: Path | None = None,
                 encoder=None) -> tuple[list[str], list[str], np.ndarray]:
    """The reproducible ``size``-passage corpus (see the module docstring)."""
    ids, texts = _slice(Path(slice_dir) if slice_dir else data_path(DL19_SLICE))
    vectors = slice_vectors(texts, work, encoder)
    if size <= len(ids):
        return ids[:size], texts[:size], vectors[:size]
    s_ids, s_texts, s_vecs, _ = synthesise(ids, texts, vectors, size - len(ids), seed, noise)
    return ids + s_ids, texts + s_texts, np.vstack([vectors, s_vecs])


def synthetic_fidelity(work: Path, seed: int = 7, noise: float = 0.5, sample: int = 200, encoder=None,
                       slice_dir: Path | None = None) -> dict[str, float]:
    """Mean cosine between synthesised vectors and real encodings of the same synthetic texts,
    with the same statistic for two unrelated slice passages and for a passage and its own
    first sentences, as yardsticks."""
    from lucerag.models import load_encoder

    encoder = encoder or load_encoder(None)
    ids, texts = _slice(Path(slice_dir) if slice_dir else data_path(DL19_SLICE))
    vectors = slice_vectors(texts, work, encoder)
    _, s_texts, s_vecs, _ = synthesise(ids, texts, vectors, sample, seed, noise)
    real = encoder.encode_passages(s_texts, batch_size=32)
    rng = np.random.default_rng(0)
    a, b = rng.choice(len(texts), sample), rng.choice(len(texts), sample)
    return {"sample": sample, "synthesised_vs_real_cosine": round(float((real * s_vecs).sum(1).mean()), 4),
            "random_pair_cosine": round(float((vectors[a] * vectors[b]).sum(1).mean()), 4),
            "nearest_real_neighbour_cosine": round(float(np.sort(real @ vectors.T, axis=1)[:, -1].mean()), 4)}


def build_index(size: int, work: Path, corpus, seed: int, rebuild: bool = False,
                hnsw_m: int = HNSW_M, hnsw_beam: int = HNSW_BEAM) -> tuple[Path, dict]:
    """Write (or reuse) ``<work>/scale-<size>-s<seed>-m<M>-b<beam>``; returns its path and the build facts."""
    from lucerag.ingest.vectors import _EncoderInfo
    from lucerag.index.manifest import IndexManifest
    from lucerag.index.writer import IndexWriter

    path = Path(work) / f"scale-{size}-s{seed}-m{hnsw_m}-b{hnsw_beam}"
    facts_file = path.with_name(path.name + ".json")
    if path.is_dir() and facts_file.is_file() and not rebuild:
        return path, json.loads(facts_file.read_text())
    ids, texts, vectors = corpus
    manifest = IndexManifest.for_encoder(_EncoderInfo(None), scale_corpus={"size": size, "seed": seed})
    t = time.perf_counter()
    with IndexWriter(path, manifest=manifest, dim=vectors.shape[1], hnsw_m=hnsw_m, hnsw_beam=hnsw_beam) as writer:
        for s in range(0, len(ids), 2048):
            writer.add_batch(ids[s:s + 2048], texts[s:s + 2048], vectors[s:s + 2048])
    seconds = time.perf_counter() - t
    segments = sum(1 for p in path.iterdir() if p.suffix == ".si")
    facts = {"passages": len(ids), "hnsw_m": hnsw_m, "hnsw_beam": hnsw_beam, "seconds": round(seconds, 2),
             "passages_per_s": round(len(ids) / seconds, 1), "segments": segments, "index_bytes": dir_size(path),
             "load_during_build": load_avg()}
    facts_file.write_text(json.dumps(facts))
    return path, facts


def run_scale_bench(sizes=DEFAULT_SIZES, *, work: Path, queries: list[str], seed: int = 7, noise: float = 0.5,
                    threads: int = 2, n_latency: int = 200, n_throughput: int = 200, ingest_sample: int = 300,
                    baseline: bool = True, rebuild: bool = False, plot_dir: Path | None = None,
                    fidelity_sample: int = 200, ef_search: int | None = None, ef_sweep: str = "",
                    precision: str | None = None, hnsw_m: int = HNSW_M, hnsw_beam: int = HNSW_BEAM,
                    progress=None) -> dict[str, Any]:
    """Build each size, run both stacks on it; one JSON-able dict (``by_size`` per size)."""
    from lucerag.models import load_encoder

    say = progress or (lambda msg: None)
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder(None)
    result: dict[str, Any] = {"seed": seed, "noise": noise, "queries": len(queries), "threads": threads,
                              "work": str(work), "load_before": load_avg(), "by_size": {}}
    say("synthetic fidelity check")
    result["synthetic_fidelity"] = synthetic_fidelity(work, seed, noise, fidelity_sample, encoder)
    for size in sorted(sizes):
        say(f"{size}: corpus")
        corpus = build_corpus(size, work, seed, noise, encoder=encoder)
        say(f"{size}: index")
        path, facts = build_index(size, work, corpus, seed, rebuild, hnsw_m, hnsw_beam)
        del corpus
        say(f"{size}: benchmark (own process)")
        lat_file = (plot_dir / f"latencies-{size}.json") if plot_dir else None
        r = _bench_in_subprocess(path, queries, n_latency=n_latency, threads=threads, n_throughput=n_throughput,
                                 baseline=baseline, ingest_sample=ingest_sample, latencies=lat_file,
                                 ef_search=ef_search, ef_sweep=ef_sweep or None, precision=precision)
        r["label"] = str(size)
        r["ingest"]["import_passages_per_s"] = facts["passages_per_s"]
        r["build"] = facts
        result["by_size"][str(size)] = r
        if plot_dir is not None and lat_file is not None:
            plot_latency_cdf(json.loads(lat_file.read_text()), plot_dir / f"latency-cdf-{size}.png",
                             f"{size:,} passages, 1 thread")
    largest = result["by_size"][str(max(sizes))]
    smallest = result["by_size"][str(min(sizes))]
    result["hybrid_p50_ms"] = largest["hybrid_p50_ms"]
    result["baseline_p50_ms"] = largest.get("baseline_p50_ms")
    result["targets"] = {
        f"hybrid_p50_ms_at_{min(sizes)}": smallest["hybrid_p50_ms"],
        f"hybrid_p50_le_15ms_at_{min(sizes)}": smallest["hybrid_p50_ms"] <= 15,
        f"speedup_p50_at_{max(sizes)}": largest.get("speedup_p50"),
        f"speedup_ge_10x_at_{max(sizes)}": (largest.get("speedup_p50") or 0) >= 10,
        "hnsw_recall_min": min(r["hnsw_recall"]["recall"] for r in result["by_size"].values()),
        "hnsw_recall_ge_0.98": all(r["hnsw_recall"]["recall"] >= 0.98 for r in result["by_size"].values()),
    }
    result["load_after"] = load_avg()
    if plot_dir is not None:
        plot_scale(result, plot_dir / "scale-p50.png")
    return result


def _bench_in_subprocess(index: Path, queries: list[str], *, latencies: Path | None = None,
                         **options) -> dict[str, Any]:
    """``lucerag bench query --json`` in a fresh process: its peak RSS is lucerag's alone (the
    corpus this process built is not counted), and the baseline runs in a process of its own."""
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(q.replace("\n", " ") for q in queries) + "\n")
        qfile = f.name
    args = [sys.executable, "-m", "lucerag", "bench", "query", "--index", str(index), "--queries", qfile, "--json"]
    for key, value in options.items():
        if value is None:
            continue
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            args.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            args += [f"--{flag}", str(value)]
    if latencies is not None:
        args += ["--latencies", str(latencies)]
    try:
        out = subprocess.run(args, capture_output=True, text=True)
    finally:
        Path(qfile).unlink(missing_ok=True)
    if out.returncode != 0:
        raise RuntimeError(f"bench query failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- plots ------------------------------------------------------------------------------------

def _save(plt, fig, out: Path) -> Path:
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency_cdf(latencies: dict, out: Path, title: str = "") -> Path:
    """CDFs of per-query latency: lucerag's stages and end-to-end hybrid vs the baseline's."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    styles = {("lucerag", "hybrid"): ("tab:blue", "-"), ("lucerag", "hybrid_filter"): ("tab:cyan", "-"),
              ("lucerag", "encode"): ("tab:blue", ":"), ("lucerag", "bm25"): ("tab:green", ":"),
              ("lucerag", "hnsw"): ("tab:purple", ":"), ("baseline", "hybrid"): ("tab:red", "-"),
              ("baseline", "encode"): ("tab:red", ":"), ("baseline", "bm25"): ("tab:orange", ":"),
              ("baseline", "dense"): ("tab:brown", ":")}
    for (stack, stage), (color, ls) in styles.items():
        ms = latencies.get(stack, {}).get(stage)
        if not ms:
            continue
        x = np.sort(np.asarray(ms))
        ax.plot(x, np.arange(1, len(x) + 1) / len(x), color=color, ls=ls, lw=2 if ls == "-" else 1.3,
                label=f"{stack} {stage.replace('_', '+')} (p50 {np.percentile(x, 50):.1f} ms)")
    ax.set_xscale("log")
    ax.set_xlabel("latency per query (ms, log scale)")
    ax.set_ylabel("fraction of queries")
    ax.set_title(f"Query latency CDF — {title}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _save(plt, fig, out)


def plot_scale(result: dict, out: Path) -> Path:
    plt = _plt()
    sizes = sorted(int(s) for s in result["by_size"])
    rows = [result["by_size"][str(s)] for s in sizes]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [r["hybrid_p50_ms"] for r in rows], "o-", color="tab:blue", label="lucerag hybrid p50")
    ax.plot(sizes, [r["latency_1_thread"]["hybrid"]["p99_ms"] for r in rows], "o--", color="tab:blue",
            alpha=0.6, label="lucerag hybrid p99")
    if all("baseline" in r for r in rows):
        ax.plot(sizes, [r["baseline_p50_ms"] for r in rows], "s-", color="tab:red", label="baseline hybrid p50")
        ax.plot(sizes, [r["baseline"]["latency_1_thread"]["hybrid"]["p99_ms"] for r in rows], "s--",
                color="tab:red", alpha=0.6, label="baseline hybrid p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("passages")
    ax.set_ylabel("end-to-end hybrid latency (ms, 1 thread)")
    ax.set_title("Scale curve")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(plt, fig, out)


def plot_filter_curve(data: dict, out: Path) -> Path:
    """Precision, recall and F1 of the relevance filter against its threshold (cross-validated)."""
    plt = _plt()
    curve = data["curve"]
    t = [c["threshold"] for c in curve]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, color in (("precision", "tab:blue"), ("recall", "tab:green"), ("f1", "tab:red")):
        ax.plot(t, [c[key] for c in curve], color=color, label=key)
    for ft in data.get("fold_thresholds", []):
        ax.axvline(ft, color="grey", ls=":", lw=1)
    ax.set_xlabel("threshold on P(relevant)")
    ax.set_ylabel("mean per query")
    ax.set_title("Relevance filter vs threshold (5-fold CV)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax2.plot([c["recall"] for c in curve], [c["precision"] for c in curve], "o-", ms=3, color="tab:purple")
    ax2.set_xlabel("recall")
    ax2.set_ylabel("precision")
    ax2.set_title("Precision-recall over thresholds")
    ax2.grid(True, alpha=0.3)
    return _save(plt, fig, out)
