"""Shared fixtures: one real JVM, the real ONNX encoder, and small real Lucene indexes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
MINI_BEIR = DATA / "mini_beir"
SHARED = ROOT.parent / "shared" / "data"
DL19_SLICE = SHARED / "msmarco-dl19-5k"
if SHARED.is_dir():  # the benchmarks read evaluation data from a given path only (lucerag.bench.data)
    os.environ.setdefault("LUCERAG_DATA", str(SHARED))


def needs_shared(path: Path = DL19_SLICE):
    """Skip (with the reason) when the shared evaluation data is not beside the project."""
    return pytest.mark.skipif(not path.exists(), reason=f"shared data not found at {path}")


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


# Tests that run PyTorch itself (the baseline stack of the benchmarks is PyTorch + transformers by
# design): skipped in an install without the optional torch extra.
needs_torch = pytest.mark.skipif(not _has_torch(), reason="needs PyTorch (pip install 'lucerag[export]')")


def mini_documents():
    from lucerag.connectors import Document

    return [Document(id=o["_id"], title=o["title"], text=o["text"])
            for o in map(json.loads, (MINI_BEIR / "corpus.jsonl").read_text().splitlines())]


@pytest.fixture(scope="session")
def encoder():
    from lucerag.models import load_encoder

    return load_encoder(None, threads=1)


@pytest.fixture(scope="session")
def fp32(encoder):
    """The default encoder at fp32, 1 thread (the ``encoder`` fixture, under the name the encoder tests use)."""
    return encoder


@pytest.fixture(scope="session")
def int8(fp32):
    """The default int8 query encoder, 1 thread, loaded without its self-check (the tests check it);
    after ``fp32``, whose export it is quantised from."""
    from lucerag.models import load_encoder

    enc = load_encoder(None, threads=1, precision="int8", selfcheck=False)
    assert enc.manifest.precision == "int8"
    return enc


def isa() -> str:
    """This CPU and its int8 kernels, for assertion messages of the encoder tests."""
    from lucerag.models.cpu import cpu_model, int8_isa

    return f"{cpu_model()} / {int8_isa()} int8 kernels"


@pytest.fixture(scope="session")
def mini_index(tmp_path_factory, encoder) -> Path:
    """The mini corpus in one lucerag index (BM25 + HNSW)."""
    from lucerag.ingest.pipeline import build_index

    path = tmp_path_factory.mktemp("indexes") / "mini"
    build_index(mini_documents(), path, encoder=encoder, progress=False)
    return path


@pytest.fixture(scope="session")
def retriever(mini_index, encoder):
    from lucerag.search.retriever import Retriever

    with Retriever.from_index(mini_index, encoder=encoder) as r:
        yield r


@pytest.fixture(scope="session")
def dl19_index(tmp_path_factory, encoder) -> Path:
    """The MS MARCO DL19 slice in one lucerag index (built once per test session)."""
    if not DL19_SLICE.exists():
        pytest.skip(f"shared data not found at {DL19_SLICE}")
    from lucerag.connectors import read_documents
    from lucerag.ingest.pipeline import build_index

    path = tmp_path_factory.mktemp("dl19") / "index"
    stream = read_documents(DL19_SLICE / "corpus.jsonl")
    report = build_index(stream, path, encoder=encoder, progress=False, stats=stream.stats)
    assert report.read == report.indexed == 5000 and report.rejected == 0
    return path
