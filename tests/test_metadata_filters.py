"""Metadata filters (``where``) inside both views, and pagination, on a real index.

The expected results come from an independent evaluation of each filter over the documents'
metadata in Python (``matches`` below), not from lucerag's translation.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import numpy as np
import pytest

from conftest import mini_documents
from lucerag.index.metadata import fields, epoch_seconds
from lucerag.search.filters import FilterError, parse

LANGS = ["en", "de", "fr", "en", "en"]


def _metadata(i: int) -> dict:
    meta = {"lang": LANGS[i % 5], "year": 2000 + i, "score": round(0.1 * i, 1),
            "published": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", "tags": ["even" if i % 2 == 0 else "odd"],
            "source": {"kind": "wiki" if i % 3 == 0 else "book"}, "reviewed": i % 4 == 0}
    if i % 6 == 0:
        meta["author"] = f"author-{i}"
    return meta


def documents():
    docs = mini_documents()
    for i, d in enumerate(docs):
        d.metadata = _metadata(i)
    return docs


META = {d.id: d.metadata for d in documents()}


def _values(meta: dict, key: str) -> list:
    value = meta
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return []
        value = value[part]
    return value if isinstance(value, list) else [value]


def _as_number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            return None
    return None


def matches(f: dict, meta: dict) -> bool:
    """The reference semantics of a filter (independent of lucerag.search.filters)."""
    (op, arg), = f.items()
    if op == "and":
        return all(matches(c, meta) for c in arg)
    if op == "or":
        return any(matches(c, meta) for c in arg)
    if op == "not":
        return not matches(arg, meta)
    if op == "exists":
        return bool(_values(meta, arg))
    (key, value), = arg.items()
    have = _values(meta, key)
    if op in ("term", "terms"):
        wanted = value if op == "terms" else [value]
        return any(h == w and type(h) is type(w) or (isinstance(h, (int, float)) and not isinstance(h, bool)
                                                      and isinstance(w, (int, float)) and not isinstance(w, bool)
                                                      and float(h) == float(w)) for h in have for w in wanted)
    if op == "range":
        for h in have:
            x = _as_number(h)
            if x is None:
                continue
            ok = True
            for bound, b in value.items():
                b = _as_number(b)
                ok &= {"gt": x > b, "gte": x >= b, "lt": x < b, "lte": x <= b}[bound]
            if ok:
                return True
        return False
    raise AssertionError(op)


FILTERS = [
    {"term": {"lang": "en"}},
    {"terms": {"lang": ["de", "fr"]}},
    {"term": {"year": 2003}},
    {"range": {"year": {"gte": 2005, "lt": 2012}}},
    {"range": {"score": {"gt": 0.5, "lte": 1.5}}},
    {"range": {"published": {"gte": "2024-03-01", "lt": "2024-07-01T00:00:00Z"}}},
    {"exists": "author"},
    {"term": {"tags": "even"}},
    {"term": {"source.kind": "wiki"}},
    {"term": {"reviewed": True}},
    {"and": [{"term": {"lang": "en"}}, {"range": {"year": {"gte": 2010}}}]},
    {"or": [{"term": {"lang": "de"}}, {"exists": "author"}]},
    {"not": {"term": {"lang": "en"}}},
    {"and": [{"not": {"exists": "author"}}, {"or": [{"term": {"tags": "odd"}}, {"term": {"year": 2000}}]}]},
]


@pytest.fixture(scope="module")
def meta_index(tmp_path_factory, encoder):
    from lucerag.ingest.pipeline import build_index

    path = tmp_path_factory.mktemp("meta") / "index"
    build_index(documents(), path, encoder=encoder, progress=False)
    return path


@pytest.fixture(scope="module")
def meta_retriever(meta_index, encoder):
    from lucerag.search.retriever import Retriever

    with Retriever.from_index(meta_index, encoder=encoder) as r:
        yield r


# -- the language, without Lucene ---------------------------------------------------------------------

@pytest.mark.parametrize("where,message", [
    ({"term": {"lang": "en"}, "range": {"year": {"gte": 1}}}, "where: one operator per object"),
    ({"and": [{"term": {"lang": "en"}}, {"range": {"year": {"gtee": 1}}}]},
     r"where.and\[1\].range.year: unknown bound 'gtee'"),
    ({"range": {"year": {"gte": "last year"}}}, "neither a number nor an ISO 8601 date"),
    ({"term": {"lang": ["en"]}}, "where.term.lang: expected a string, number or boolean"),
    ({"terms": {"lang": "en"}}, "expected a non-empty list"),
    ({"and": []}, "where.and: expected a non-empty list"),
    ({"exists": 3}, "where.exists: expected a metadata key"),
    ([1, 2], "where: expected an object"),
    ({"term": {"year": math.nan}}, "not a finite number"),
    # other stores' syntax (Chroma/Mongo) and unknown operators are named as such, never as a 'term'
    ({"lang": {"$eq": "en"}}, r"where.lang: '\$eq' is not a lucerag operator .*lucerag's operators are term"),
    ({"year": {"$gte": 2020}}, r"where.year: '\$gte' is not a lucerag operator"),
    ({"$and": [{"lang": "en"}, {"year": 2020}]}, r"where: unknown operator '\$and'; lucerag's operators"),
    ({"match": {"lang": "en"}}, r"where: unknown operator 'match'; lucerag's operators"),
    ({"and": [{"lang": "en"}, {"year": {"gt": 2020}}]}, r"where.and\[1\].year: 'gt' is not a lucerag operator"),
])
def test_malformed_filters_name_the_node(where, message):
    with pytest.raises(FilterError, match=message):
        parse(where)


def test_shorthand_is_an_and_of_terms():
    node = parse({"lang": "en", "year": [2020, 2021]})
    assert node.op == "and" and [c.key for c in node.children] == ["lang", "year"]
    assert node.children[1].values == (2020.0, 2021.0)


def test_fields_encode_each_scalar_once_per_value():
    kinds: dict = {}
    spec = fields({"lang": "en", "year": 2020, "ok": True, "when": "2024-05-01", "tags": ["a", "b"],
                   "nested": {"k": "v"}, "none": None, "long": "x" * 5000}, kinds)
    entries = [e.split("\x1f") for e in spec.split("\x1e")]
    assert ["s", "lang", "en"] in entries and ["n", "year", "2020.0"] in entries
    assert ["s", "ok", "true"] in entries and ["s", "tags", "a"] in entries and ["s", "tags", "b"] in entries
    assert ["s", "nested.k", "v"] in entries
    assert ["n", "when", repr(epoch_seconds("2024-05-01"))] in entries
    assert not any(e[1] == "long" and e[0] == "s" for e in entries)   # too long for a keyword
    assert ["e", "none"] not in entries and ["e", "long"] in entries
    assert kinds["when"] == {"keyword", "date"} and kinds["year"] == {"number"}
    assert fields(json.dumps({"lang": "en"})) == fields({"lang": "en"})


# -- inside both views ----------------------------------------------------------------------------------

@pytest.mark.parametrize("where", FILTERS, ids=[json.dumps(f) for f in FILTERS])
@pytest.mark.parametrize("method", ["bm25", "dense", "hybrid"])
def test_filtered_results_are_the_matching_part_of_the_ranking(meta_retriever, where, method):
    """Every passage returned matches, and the list is the unfiltered full ranking restricted to the
    matches (the filter is applied before top-k, not after)."""
    query = "how do plants and animals get energy"
    allowed = {pid for pid, meta in META.items() if matches(where, meta)}
    assert 0 < len(allowed) < len(META)
    got = meta_retriever.rank(query, method, k=5, where=where)
    assert set(got.ids) <= allowed
    full = meta_retriever.rank(query, method, k=len(META))
    expected = [pid for pid in full.ids if pid in allowed]
    if method == "hybrid":  # fusion normalises over the (filtered) candidates: compare the sets
        assert set(got.ids) == set(expected[:5]) or len(got.ids) == min(5, len(expected))
        assert set(got.ids) <= set(expected)
    else:
        assert got.ids == expected[:5]


def test_hybrid_filtered_equals_fusion_over_the_matching_passages(meta_retriever):
    """With a depth covering the corpus, a filtered hybrid search ranks exactly the matching passages
    fused among themselves."""
    from lucerag.search.fusion import fuse

    where = {"terms": {"lang": ["en", "fr"]}}
    query = "volcano magma eruption"
    got = meta_retriever.rank(query, "hybrid", k=len(META), where=where)
    allowed = {pid for pid, m in META.items() if matches(where, m)}
    assert set(got.ids) == allowed  # dense view returns every match when the depth covers them
    candidates, _ = meta_retriever.candidates(query, len(META), where=where)
    f = meta_retriever.config.fusion
    fused = fuse(candidates, f.method, dense_weight=f.dense_weight, norm=f.norm, rrf_k=f.rrf_k)
    assert got.ids == [candidates.ids[i] for i in np.argsort(-fused, kind="stable")]


def test_a_filter_leaving_fewer_than_k(meta_retriever):
    where = {"range": {"year": {"gte": 2022}}}  # 3 of 25 passages
    allowed = {pid for pid, m in META.items() if matches(where, m)}
    assert len(allowed) == 3
    for method in ("dense", "hybrid"):
        passages = meta_retriever.search("energy from the sun", k=10, method=method, filter=False, where=where)
        assert {p.id for p in passages} == allowed and [p.rank for p in passages] == [1, 2, 3]
        assert all(p.metadata["year"] >= 2022 for p in passages)
    bm25 = meta_retriever.search("the", k=10, method="bm25", where=where)
    assert {p.id for p in bm25} <= allowed


def test_a_filter_leaving_none(meta_retriever):
    where = {"and": [{"term": {"lang": "en"}}, {"term": {"lang": "de"}}]}
    for method in ("bm25", "dense", "hybrid"):
        assert meta_retriever.search("volcano", k=5, method=method, filter=False, where=where) == []
    assert meta_retriever.search("volcano", k=5, method="hybrid", where={"range": {"year": {"gt": 3000}}}) == []


def test_exact_dense_search_honours_the_filter(meta_retriever, encoder):
    where = {"term": {"tags": "odd"}}
    query = encoder.encode_query("ocean tides and the moon")
    filt = meta_retriever.filter_query(where, meta_retriever.dense_index)
    exact = meta_retriever.dense.exact_search(query, 5, filt)
    allowed = {pid for pid, m in META.items() if matches(where, m)}
    every = meta_retriever.dense.exact_search(query, len(META))            # unfiltered exact ranking
    assert len(every) == len(META)
    stored = meta_retriever.dense_index.vectors(every.docnums) @ query
    assert np.allclose(every.scores, stored, atol=1e-6) and np.all(np.diff(every.scores) <= 0)
    expected = [pid for pid in every.ids if pid in allowed][:5]
    assert exact.ids == expected
    assert meta_retriever.dense.search(query, 5, filt).ids == expected


def test_filters_the_index_cannot_apply_are_refused(meta_retriever):
    with pytest.raises(FilterError, match="no passage in .* has metadata key 'lnag'"):
        meta_retriever.search("volcano", where={"term": {"lnag": "en"}})
    with pytest.raises(FilterError, match="'lang' holds keyword values, never numbers"):
        meta_retriever.search("volcano", where={"term": {"lang": 3}})
    with pytest.raises(FilterError, match="'lang' holds keyword values, not numbers or dates"):
        meta_retriever.search("volcano", where={"range": {"lang": {"gte": 3}}})


def test_an_index_without_filter_fields_says_so(tmp_path, retriever):
    """The mini index's manifest is rewritten as an older lucerag's (no metadata_fields)."""
    from lucerag.search.retriever import Retriever
    from lucerag.index.manifest import IndexManifest
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(retriever.bm25_index.path, copy)
    manifest = IndexManifest.read(copy)
    data = json.loads(manifest.model_dump_json())
    data.pop("metadata_fields")
    (copy / IndexManifest.FILENAME).write_text(json.dumps(data))
    with Retriever.from_index(copy, encoder=retriever.encoder) as old:
        with pytest.raises(FilterError, match="no metadata filter fields .* rebuild it"):
            old.search("volcano", method="bm25", where={"term": {"lang": "en"}})
        assert old.search("volcano", method="bm25", k=1)  # unfiltered searches still work


def test_appends_keep_and_extend_the_filter_fields(tmp_path, encoder):
    from lucerag.connectors import Document
    from lucerag.index.manifest import IndexManifest
    from lucerag.ingest.pipeline import build_index
    from lucerag.search.retriever import Retriever

    path = tmp_path / "idx"
    build_index(documents()[:5], path, encoder=encoder, progress=False)
    build_index([Document(id="new", title="", text="A brand new passage about glaciers and ice.",
                          metadata={"region": "arctic", "year": 2030})], path, encoder=encoder, mode="append",
                progress=False)
    fields_ = IndexManifest.read(path).metadata_fields
    assert fields_["region"] == ["keyword"] and fields_["lang"] == ["keyword"]
    with Retriever.from_index(path, encoder=encoder) as r:
        assert [p.id for p in r.search("glaciers", k=3, filter=False, where={"term": {"region": "arctic"}})] == ["new"]
        assert {p.id for p in r.search("glaciers", k=10, filter=False, where={"term": {"lang": "en"}})} == {
            d.id for d in documents()[:5] if d.metadata["lang"] == "en"}


def test_csv_number_columns_take_range_and_number_filters(tmp_path, encoder):
    """Every CSV cell is a string; a column of prices used to be indexed as keywords only, so
    {"range": {"price": {"lt": 20}}} on a CSV was refused ("holds keyword values"). A string that
    spells a decimal number is indexed as a number too (and stays a keyword)."""
    from lucerag.connectors import read_documents
    from lucerag.ingest.pipeline import build_index
    from lucerag.search.retriever import Retriever

    source = tmp_path / "products.csv"
    source.write_text("id,title,text,price,sku\n"
                      "p1,Red widget,A red steel widget for the workshop.,19.99,007\n"
                      "p2,Blue gadget,A blue gadget with a rechargeable battery.,49.5,v2\n"
                      "p3,Green gizmo,A green waterproof gizmo for the garden.,12,100\n", encoding="utf-8")
    path = tmp_path / "index"
    build_index(read_documents(source), path, encoder=encoder, progress=False)
    with Retriever.from_index(path, encoder=encoder) as r:
        def ids(where):
            return {p.id for p in r.search("gadget for the garden", k=10, method="dense", where=where)}

        assert ids({"range": {"price": {"lt": 20}}}) == {"p1", "p3"}
        assert ids({"term": {"price": 49.5}}) == {"p2"}
        assert ids({"term": {"price": "19.99"}}) == {"p1"}            # the keyword is kept
        assert ids({"term": {"sku": "007"}}) == {"p1"} and ids({"range": {"sku": {"gte": 7}}}) == {"p1", "p3"}
        assert r.search("gadget", k=1, method="dense", where={"term": {"price": 19.99}})[0].metadata["price"] == "19.99"
