"""One place for each thing (issue 14): build_index option groups, one chunking module, one list of id
keys, the demo corpus as package data, benchmarks that take their data paths."""

import json

import pytest

from lucerag.errors import InputError


# -- build_index options ----------------------------------------------------------------------------

def test_option_groups_and_keywords_resolve_to_the_same_values():
    from lucerag.ingest.options import ChunkingOptions, HnswOptions, IngestOptions, resolve

    by_objects = resolve(ChunkingOptions(max_tokens=128, max_words=50), HnswOptions(m=16, vector_format="int8"),
                         IngestOptions(batch_size=64, on_error="skip"), {})
    by_keywords = resolve(None, None, None, dict(max_tokens=128, max_words=50, hnsw_m=16, vector_format="int8",
                                                 batch_size=64, on_error="skip"))
    assert by_objects == by_keywords
    chunking, hnsw, options = by_keywords
    assert (chunking.max_tokens, chunking.overlap, chunking.max_words) == (128, 32, 50)
    assert (hnsw.m, hnsw.beam, hnsw.vector_format) == (16, 400, "int8")
    assert (options.batch_size, options.on_error, options.ram_buffer_mb) == (64, "skip", 512)
    # a keyword overrides the same field of a given object
    assert resolve(ChunkingOptions(max_words=50), None, None, {"max_words": 70})[0].max_words == 70


def test_bad_options_are_input_errors_and_unknown_keywords_type_errors():
    from lucerag.ingest.options import HnswOptions, IngestOptions, resolve

    with pytest.raises(InputError, match="vector_format must be one of float, int8, bbq, not 'fp16'"):
        HnswOptions(vector_format="fp16")
    with pytest.raises(InputError, match="on_error must be 'fail' or 'skip'"):
        IngestOptions(on_error="ignore")
    with pytest.raises(TypeError, match="unexpected keyword argument.*: max_token"):
        resolve(None, None, None, {"max_token": 5})


def test_build_index_records_the_options_it_was_given(tmp_path):
    from conftest import mini_documents
    from lucerag.index.manifest import IndexManifest
    from lucerag.ingest.options import ChunkingOptions, IngestOptions
    from lucerag.ingest.pipeline import build_index

    report = build_index(mini_documents()[:5], tmp_path / "idx", dense=False, progress=False,
                         chunking=ChunkingOptions(max_words=40, overlap_words=8), options=IngestOptions(batch_size=7))
    settings = IndexManifest.read(tmp_path / "idx").settings
    assert report.indexed == 5
    assert (settings["chunker"], settings["max_words"], settings["overlap"], settings["batch_size"]) == \
        ("words", 40, 8, 7)


# -- one chunking module, one list of id keys --------------------------------------------------------

def test_one_chunking_module():
    from lucerag.ingest import chunking, pipeline

    assert pipeline.chunk_words is chunking.chunk_words
    assert not hasattr(pipeline, "_word_chunker") and not hasattr(pipeline, "DEFAULT_MAX_WORDS")


def test_documents_and_vectors_read_the_same_id_and_text_keys(tmp_path):
    from lucerag.connectors import read_documents
    from lucerag.connectors.document import ID_KEYS
    from lucerag.ingest import vectors

    assert vectors.ID_KEYS is ID_KEYS
    record = {"docid": "from-docid", "_id": "from-_id", "id": "from-id", "text": "t", "contents": "c",
              "vector": [1.0, 0.0]}
    (tmp_path / "d.jsonl").write_text(json.dumps(record) + "\n")
    doc = next(iter(read_documents(tmp_path / "d.jsonl")))
    vec = next(vectors.read_vectors(tmp_path / "d.jsonl"))
    assert doc.id == vec.id == "from-_id" and doc.text == vec.text == "t"


# -- no file read relative to the repository ------------------------------------------------------------

def test_the_demo_corpus_ships_with_the_package():
    from lucerag.resources import DEMO_CORPUS

    pages = sorted(p.name for p in DEMO_CORPUS.glob("*.md"))
    assert len(pages) >= 4 and "fusion.md" in pages
    assert "convex combination" in (DEMO_CORPUS / "fusion.md").read_text()
    assert DEMO_CORPUS.parent.parent.name in ("plugin", "lucerag")  # inside the package, not docs/


def test_benchmarks_take_their_data_path(monkeypatch, tmp_path):
    from lucerag.bench.data import DL19_SLICE, data_path
    from lucerag.bench.load import read_queries
    from lucerag.resources import DEMO_QUERIES

    monkeypatch.delenv("LUCERAG_DATA", raising=False)
    with pytest.raises(InputError, match="pass --data DIR or set LUCERAG_DATA"):
        data_path(DL19_SLICE)
    with pytest.raises(InputError, match="not found"):
        data_path(DL19_SLICE, tmp_path)
    (tmp_path / DL19_SLICE).mkdir()
    assert data_path(DL19_SLICE, tmp_path) == tmp_path / DL19_SLICE
    monkeypatch.setenv("LUCERAG_DATA", str(tmp_path))
    assert data_path(DL19_SLICE) == tmp_path / DL19_SLICE
    assert read_queries(None) == DEMO_QUERIES.read_text().split("\n")[:-1]
    (tmp_path / "q.tsv").write_text("1\tfirst\n2\tsecond\n")
    assert read_queries(tmp_path / "q.tsv", limit=1) == ["first"]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(InputError, match="no queries in"):
        read_queries(tmp_path / "empty.txt")


def test_no_product_module_names_a_repository_path():
    """No module of the package reads tests/, docs/ or ../shared relative to its own file."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(r"parents\[\d\][^\n]*(\"tests\"|\"docs\"|\"shared\"|'docs'|'tests')|\"\.\.\" / \"shared\"")
    found = [f"{p.relative_to(root)}:{i}" for folder in ("plugin", "connectors", "models")
             for p in (root / folder).rglob("*.py")
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert found == []


def test_demo_indexes_the_shipped_corpus_and_answers(tmp_path):
    """`lucerag demo` without --corpus needs no file of the repository (a wheel install has none)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "lucerag", "demo", "--index", str(tmp_path / "demo"), "--k", "2"],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "indexed 5 documents" in out.stdout and "lucerag/data/demo" in out.stdout.replace("plugin/", "lucerag/")
    first = next(line for line in out.stdout.splitlines() if line.lstrip().startswith("1. "))
    assert "fusion" in first  # "How does lucerag fuse BM25 and dense scores?" -> the fusion page
