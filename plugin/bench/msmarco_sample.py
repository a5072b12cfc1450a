"""A ``collection.tsv``-shaped sample for sizing a full MS MARCO passage ingest (time and disk).

``python -m lucerag.bench.msmarco_sample --size 100000 --out /tmp/sample.tsv`` writes ``pid<TAB>text``
lines: the 5,000 real passages of the DL19 slice (their official ids), then ``size - 5000`` passages
recombined from their sentences by :func:`lucerag.bench.scale.synthesise` (same seed, same texts;
the vectors it also makes are not used). The texts are real MS MARCO sentences, so tokens per
passage and BM25 postings grow as on the real collection; docs/evaluation.md gives the measured
rates and sizes and scales them to 8.8M passages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lucerag.bench.data import DL19_SLICE, data_path
from lucerag.bench.scale import synthesise


def write_sample(size: int, out: Path, slice_dir: Path | None = None, seed: int = 7) -> dict:
    """Write ``size`` passages to ``out`` (TSV); returns ``{"passages", "bytes", "real"}``."""
    ids, texts = [], []
    with open(Path(slice_dir or data_path(DL19_SLICE, option="--slice")) / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(str(r["_id"]))
            texts.append(" ".join(r["text"].split()))
    real = min(size, len(ids))
    extra = size - real
    if extra > 0:
        dummy = np.random.default_rng(seed).normal(size=(len(ids), 8)).astype(np.float32)
        _, s_texts, _, _ = synthesise(ids, texts, dummy, extra, seed)
        # Synthetic ids continue above the largest real MS MARCO pid (8,841,822), so never clash.
        ids = ids[:real] + [str(9_000_000 + j) for j in range(extra)]
        texts = texts[:real] + [" ".join(t.split()) for t in s_texts]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for pid, text in zip(ids[:size], texts[:size]):
            f.write(f"{pid}\t{text}\n")
    return {"passages": size, "bytes": out.stat().st_size, "real": real}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--slice", type=Path, default=None, help="DL19 slice folder (default: the shared data)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(write_sample(args.size, args.out, args.slice, args.seed)))


if __name__ == "__main__":
    main()
