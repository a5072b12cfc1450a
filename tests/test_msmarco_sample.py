"""The MS MARCO full-collection workflow, run on a real sample: the DL19 slice written as an MS MARCO
``collection.tsv`` (``pid<TAB>text``), streamed into an index with `lucerag index --format tsv
--no-chunk` (no terminal: progress lines), then evaluated with the official DL19 topics and qrels.
The figures must equal those of the same passages indexed from the BEIR corpus file."""

from __future__ import annotations

import json
import subprocess
import sys


from conftest import DL19_SLICE, SHARED, needs_shared

TOPICS = SHARED / "topics-and-qrels"


def _lucerag(*args) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "lucerag", *map(str, args)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@needs_shared(TOPICS)
@needs_shared(DL19_SLICE)
def test_collection_tsv_streams_in_and_dl19_scores_match_the_beir_build(tmp_path):
    tsv = tmp_path / "collection.tsv"
    with tsv.open("w") as out:
        for line in (DL19_SLICE / "corpus.jsonl").open():
            rec = json.loads(line)
            out.write(f"{rec['_id']}\t{' '.join(rec['text'].split())}\n")
    built = _lucerag("index", "--input", tsv, "--format", "tsv", "--index", tmp_path / "tsv-idx", "--bm25-only",
                     "--no-chunk", "--json", "--progress-every", "0")
    report = json.loads(built.stdout.strip().splitlines()[-1])
    assert report["indexed"] == report["passages"] == 5000 and report["rejected"] == 0
    assert "ingest: 5,000/5,000 documents, 5,000 passages" in built.stderr and "done in" in built.stderr
    scores = {}
    for name, args in (("tsv", ["--index", tmp_path / "tsv-idx"]),
                       ("beir", ["--beir", DL19_SLICE, "--index", tmp_path / "beir-idx"])):
        if name == "beir":  # the BEIR build of the same passages (one passage each)
            _lucerag("eval", *args, "--methods", "bm25", "--json")
            args = ["--index", tmp_path / "beir-idx"]
        out = _lucerag("eval", "--topics", TOPICS / "topics.dl19-passage.txt", "--qrels",
                       TOPICS / "qrels.dl19-passage.txt", "--rel", "2", *args, "--methods", "bm25", "--json")
        scores[name] = json.loads(out.stdout.strip().splitlines()[-1])
    assert scores["tsv"]["bm25"] == scores["beir"]["bm25"]
    assert scores["tsv"]["queries"]["evaluated"] == 43 and scores["tsv"]["queries"]["skipped"] == 0
    assert scores["tsv"]["bm25"]["nDCG@10"] > 0.6
