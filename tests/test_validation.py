"""One request validator and one set of limits (lucerag.search.request, [limits]); one error hierarchy.

Pure Python: no JVM, no index. The surfaces that use the validator are tested in test_surfaces.py.
"""

import importlib
import re

import pytest

from lucerag.config import MAX_K, Config, ConfigError, LimitsConfig
from lucerag.errors import InputError, LuceragError, QueryError
from lucerag.search.request import check_request

LIMITS = LimitsConfig(max_k=50, max_query_chars=100, max_context_tokens=2000)


@pytest.mark.parametrize("args, field, message", [
    (dict(query=""), "query", "query is empty"),
    (dict(query=" \n\t "), "query", "query is empty"),
    (dict(query=None), "query", "query must be a string, not NoneType"),
    (dict(query="a \ud800"), "query", "unpaired surrogate (U+D800) at character 2"),
    (dict(query="x" * 101), "query", "query is 101 characters long; the limit is 100"),
    (dict(query="ok", k=0), "k", "k must be between 1 and 50"),
    (dict(query="ok", k=51), "k", "k must be between 1 and 50"),
    (dict(query="ok", k=True), "k", "k must be an integer, not bool"),
    (dict(query="ok", k="5"), "k", "k must be an integer, not str"),
    (dict(query="ok", k=5.0), "k", "k must be an integer, not float"),
    (dict(query="ok", method="magic"), "method", "unknown method 'magic'"),
    (dict(query="ok", filter=0), "filter", "filter must be true, false or null"),
    (dict(query="ok", filter="yes"), "filter", "filter must be true, false or null"),
    (dict(query="ok", max_tokens=-5), "max_tokens", "max_tokens must be between 64 and 2000"),
    (dict(query="ok", max_tokens=2001), "max_tokens", "max_tokens must be between 64 and 2000"),
])
def test_bad_requests_raise_query_error_naming_the_field(args, field, message):
    with pytest.raises(QueryError, match=re.escape(message)) as info:
        check_request(**args, limits=LIMITS)
    assert info.value.field == field
    assert isinstance(info.value, InputError) and isinstance(info.value, ValueError)


def test_a_good_request_is_stripped_and_kept():
    req = check_request("  volcano \n", 50, "bm25", False, 64, limits=LIMITS)
    assert (req.query, req.k, req.method, req.filter, req.max_tokens) == ("volcano", 50, "bm25", False, 64)
    assert check_request("x" * 100, limits=LIMITS).query == "x" * 100   # the limit itself is allowed
    assert check_request("ok").k is None                               # default limits


def test_the_k_bound_is_the_configurations():
    assert LimitsConfig().max_k == MAX_K == 1000
    assert check_request("ok", MAX_K).k == MAX_K
    with pytest.raises(QueryError, match=f"between 1 and {MAX_K}"):
        check_request("ok", MAX_K + 1)
    with pytest.raises(ValueError):
        LimitsConfig(max_k=MAX_K + 1)


def test_search_k_above_the_limit_is_a_config_error(tmp_path):
    path = tmp_path / "lucerag.toml"
    path.write_text('[index]\npath = "idx"\n[search]\nk = 60\n[limits]\nmax_k = 50\n')
    with pytest.raises(ConfigError, match=r"search.k \(60\) is above limits.max_k \(50\)"):
        Config.load(path)
    path.write_text('[index]\npath = "idx"\n[limits]\nmax_query_chars = 0\n')
    with pytest.raises(ConfigError, match="limits.max_query_chars"):
        Config.load(path)


# Every exception class lucerag defines, where it is imported from today; each must be a LuceragError.
EXCEPTIONS = [
    ("lucerag.config", "ConfigError"),
    ("lucerag.search.retriever", "QueryError"),
    ("lucerag.rag.api", "Overloaded"),
    ("lucerag.rag.api", "ClosedError"),
    ("lucerag.rag.llm", "LLMError"),
    ("lucerag.rag.llm", "LLMTimeoutError"),
    ("lucerag.index.reader", "IndexNotFoundError"),
    ("lucerag.index.reader", "IndexTooNewError"),
    ("lucerag.index.manifest", "EncoderMismatchError"),
    ("lucerag.ingest.vectors", "VectorFormatError"),
    ("lucerag.lucene.jvm", "JavaNotFoundError"),
    ("lucerag.lucene.jvm", "AnseriniNotFoundError"),
    ("lucerag.connectors.extract", "ExtractionError"),
    ("lucerag.connectors.document", "ConnectorError"),
    ("lucerag.connectors", "ConnectorError"),
    ("lucerag.models.bert_onnx", "UnsupportedModel"),
    ("lucerag.models.export", "ExportDependencyError"),
]


@pytest.mark.parametrize("module, name", EXCEPTIONS)
def test_every_exception_is_a_lucerag_error_importable_where_it_was(module, name):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, LuceragError)
    assert cls is getattr(importlib.import_module("lucerag.errors"), name)  # defined once


def test_old_builtin_bases_still_catch():
    from lucerag import errors

    assert issubclass(errors.IndexNotFoundError, FileNotFoundError)
    assert issubclass(errors.QueryError, ValueError) and issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.JavaNotFoundError, RuntimeError)
    assert issubclass(errors.ExportDependencyError, ImportError)


def test_no_exception_class_outside_errors_py():
    """The hierarchy is defined in one module: no other module of the product defines an exception
    (the benchmarks, which the product never imports, may signal their own conditions)."""
    import ast
    from pathlib import Path

    import lucerag

    roots = [Path(lucerag.__file__).parent]
    roots += [Path(importlib.import_module(m).__file__).parent for m in ("lucerag.connectors", "lucerag.models")]
    offenders = []
    for root in roots:
        for path in root.rglob("*.py"):
            if (path.name == "errors.py" and path.parent == roots[0]) or path.parent.name == "bench":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and any(
                        getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception"))
                        for b in node.bases):
                    offenders.append(f"{path}:{node.lineno} {node.name}")
    assert offenders == []


def test_queries_are_searched_in_nfc(tmp_path):
    """A query in NFD ("Schlu" + U+0308, as macOS input gives) missed BM25's NFC terms of the
    indexed text: the analyzer compares code points. check_query returns NFC, for every surface."""
    import unicodedata

    from lucerag.connectors import Document
    from lucerag.ingest.pipeline import build_index
    from lucerag.search.request import check_query
    from lucerag.search.retriever import Retriever

    nfc = "Schlüssel wechseln"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc and check_query(f"  {nfd} ") == nfc
    docs = [Document(id="de", title="", text="Um den Schlüssel zu wechseln, öffnen Sie die Konsole.", metadata={}),
            Document(id="en", title="", text="Rotate the keys in the admin console.", metadata={})]
    build_index(docs, tmp_path / "bm25", dense=False, progress=False)
    with Retriever.from_index(tmp_path / "bm25") as r:
        by_nfc = r.search(nfc, k=2, method="bm25")
        by_nfd = r.search(nfd, k=2, method="bm25")
    assert [p.id for p in by_nfd] == ["de"] and by_nfd[0].bm25_score == pytest.approx(by_nfc[0].bm25_score)
