"""lucerag: retrieval-augmented generation on Lucene/Anserini (BM25 + HNSW in one index).

The public face, imported lazily so that ``import lucerag`` and ``lucerag --help`` stay fast::

    from lucerag import RAG, Retriever, Passage, Config, build_index, LuceragError
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "RAG": "lucerag.rag.api",
    "Retriever": "lucerag.search.retriever",
    "Passage": "lucerag.passage",
    "Config": "lucerag.config",
    "build_index": "lucerag.ingest.pipeline",
    "LuceragError": "lucerag.errors",
}

__all__ = ["RAG", "Retriever", "Passage", "Config", "build_index", "LuceragError"]

if TYPE_CHECKING:  # pragma: no cover
    from lucerag.config import Config
    from lucerag.errors import LuceragError
    from lucerag.ingest.pipeline import build_index
    from lucerag.passage import Passage
    from lucerag.rag.api import RAG
    from lucerag.search.retriever import Retriever


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
