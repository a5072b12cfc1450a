"""Batched reads across the Java bridge on the query path (issue 18): ids from doc values, stored
records held in memory for small indexes, and BM25's top-k with the dense hits' scores in one call.

Each fast path is checked against the slower one it replaces, on indexes written the three ways an
index can carry its ids (lucerag's binary doc values, Anserini's sorted doc values, stored only),
over several segments and with deleted documents.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from conftest import mini_documents


def _write(path: Path, rows: list[tuple[str, str]], id_values: str, segments: int = 3, delete: str | None = None) -> Path:
    """A plain-Lucene index of (id, text) rows: ``id_values`` "binary", "sorted" or "none" (ids only
    stored); a commit every len(rows) / ``segments`` rows, so the reader has several segments; the
    row with id ``delete`` deleted at the end."""
    import json

    from lucerag.lucene import jvm
    from lucerag.lucene.classes import java

    sorted_field = jvm.jclass("org.apache.lucene.document.SortedDocValuesField")
    path.mkdir(parents=True)
    directory = java.FSDirectory.open(java.File(str(path)).toPath())
    config = java.IndexWriterConfig(java.analyzer)
    config.setMergePolicy(jvm.jclass("org.apache.lucene.index.NoMergePolicy").INSTANCE)
    writer = java.IndexWriter(directory, config)
    per_segment = max(1, len(rows) // segments)
    for i, (pid, text) in enumerate(rows):
        doc = java.Document()
        doc.add(java.StringField("id", pid, java.FieldStore.YES))
        if id_values == "binary":
            doc.add(java.BinaryDocValuesField("id", java.BytesRef(pid.encode("utf-8"))))
        elif id_values == "sorted":
            doc.add(sorted_field("id", java.BytesRef(pid.encode("utf-8"))))
        doc.add(java.TextField("contents", text, java.FieldStore.NO))
        doc.add(java.StoredField("raw", json.dumps({"id": pid, "contents": text, "metadata": {"n": i}})))
        writer.addDocument(doc)
        if (i + 1) % per_segment == 0:
            writer.commit()
    if delete is not None:
        java.Bridge.deleteIds(writer, [delete])
    writer.commit()
    writer.close()
    directory.close()
    return path


def _rows() -> list[tuple[str, str]]:
    # ids with non-ASCII characters: doc values and stored fields must decode them alike
    return [(f"{d.id}-é{i}", f"{d.title} {d.text}") for i, d in enumerate(mini_documents())]


@pytest.mark.parametrize("id_values", ["binary", "sorted", "none"])
def test_ids_from_doc_values_equal_the_stored_ids(tmp_path, id_values):
    from lucerag.index.reader import LuceneIndex
    from lucerag.lucene.classes import java

    rows = _rows()
    index = LuceneIndex(_write(tmp_path / id_values, rows, id_values))
    assert index.reader.leaves().size() >= 3
    n = int(index.reader.maxDoc())
    order = list(range(n)) * 2          # every doc twice, shuffled: any order, repeats allowed
    random.Random(1).shuffle(order)
    stored = [index.record(d)["id"] for d in range(n)]
    assert stored == [pid for pid, _ in rows]
    got = list(java.Bridge.ids(index.reader, np.asarray(order, "<i4").tobytes()))
    assert got == [stored[d] for d in order]
    index.close()


@pytest.mark.parametrize("id_values", ["binary", "none"])
def test_held_records_equal_the_records_read_one_by_one(tmp_path, id_values):
    """Records served from memory (small index) are the bridge's records, over several segments and a
    deleted document; with the limit at 0 nothing is held and the bridge is asked each time."""
    from lucerag.index.reader import LuceneIndex

    rows = _rows()
    path = _write(tmp_path / id_values, rows, id_values, delete=rows[4][0])
    index = LuceneIndex(path)
    assert index.held_records(below=0) is None
    n = int(index.reader.maxDoc())
    pages = [random.Random(s).sample(range(n), 5) for s in range(6)]
    by_bridge = [index.records(page) for page in pages]     # nothing held yet: one bridge call each
    held = index.held_records()
    assert held is not None and len(held) == n
    assert [index.records(page) for page in pages] == by_bridge
    assert by_bridge[0][0]["metadata"]["n"] == pages[0][0]   # the source JSON, parsed
    assert index.ids(range(n)) == [pid for pid, _ in rows]   # the id cache is filled from the held records
    index.close()


def test_bm25_search_and_score_in_one_call_equal_the_two_calls(retriever):
    """BM25's top-k and the exact scores of other documents (the dense hits) in one bridge call give
    what the search and the fill-in give separately, with and without a filter."""
    from lucerag.lucene.classes import java

    bm25 = retriever.bm25
    n = int(bm25.index.reader.maxDoc())
    every = random.Random(0).sample(range(n), n)
    only_p1 = java.Bridge.idsQuery(["p1", "p2", "p3"])
    for query in ["bees flowers honey", "why does a volcano erupt", "zzzz unknownword"]:
        for flt in (None, only_p1):
            hits, also, _ = bm25.search_and_score(query, 5, every, filter=flt)
            ref = bm25.search(query, 5, filter=flt)
            assert hits.docnums == ref.docnums and hits.ids == ref.ids
            assert np.array_equal(hits.scores, ref.scores)
            scored = bm25.score(query, every)
            assert also.tolist() == pytest.approx([scored.get(d, 0.0) for d in every], rel=1e-6)
            assert also.shape == (n,)


def test_lexical_evidence_of_the_bm25_call_equals_the_term_coverage_check(retriever):
    """The lexical evidence the BM25 bridge call reads from its top hits' postings is what
    TermCoverage's conjunction query says, for queries whose top passage holds every term, some,
    none, only stopwords, repeated terms, and under metadata filters that drop the top passage."""
    from lucerag.lucene.classes import java
    from lucerag.search.lexical import TermCoverage

    bm25 = retriever.bm25
    coverage = TermCoverage(bm25)
    n = int(bm25.index.reader.maxDoc())
    seen = {True: 0, False: 0}
    filters = [None, java.Bridge.idsQuery(["p1", "p2", "p3"]), java.Bridge.idsQuery(["p4", "p5", "p6", "p7"])]
    for query in ["bees flowers honey", "bees bees", "why does a volcano erupt", "volcano", "honey zzzz",
                  "the of and", "zzzz unknownword", "approximate nearest neighbour search graph", "tea",
                  "How do bees tell others where flowers are?"]:
        for flt in filters:
            hits, _, covered = bm25.search_and_score(query, 10, list(range(min(n, 5))), filter=flt)
            top = float(hits.scores[0]) if len(hits) else 0.0
            assert covered == coverage.covered(query, top, flt), (query, flt)
            seen[covered] += 1
    assert seen[True] >= 3 and seen[False] >= 3  # both answers were exercised


def test_one_index_merge_equals_the_general_merge(retriever):
    """The array merge used when one index holds both views gives the same candidates, in the same
    order, as the general merge (joins by id across two indexes), at depths below and above the
    corpus size."""
    for query in ["how do bees tell others where flowers are", "approximate nearest neighbour search graph",
                  "tea", "zzzz unknownword"]:
        for depth in (2, 5, 100):
            c, _ = retriever.candidates(query, depth)
            vector = retriever.query_vector(query)
            parsed = retriever.bm25.query(query)
            sparse = retriever.bm25.search(query, depth, parsed)
            dense = retriever.dense.search(vector, depth)
            ref = retriever._merge(query, vector, sparse, dense, parsed)
            assert c.ids == ref.ids
            for field in ("bm25", "dense", "bm25_rank", "dense_rank"):
                assert np.array_equal(getattr(c, field), getattr(ref, field)), (query, depth, field)


def test_records_over_the_byte_budget_are_not_held(tmp_path):
    """An index whose stored records exceed the byte budget (long documents) is not held in memory,
    and is not read whole again; its pages come from Lucene, the same records."""
    from lucerag.index.reader import LuceneIndex

    rows = _rows()
    index = LuceneIndex(_write(tmp_path / "long", rows, "binary"))
    n = int(index.reader.maxDoc())
    page = random.Random(3).sample(range(n), 5)
    reference = LuceneIndex(tmp_path / "long")
    assert reference.held_records() is not None
    assert index.held_records(max_bytes=1000) is None
    assert index._records_too_large and index.held_records() is None   # decided once
    assert index.records(page) == reference.records(page)
    index.close()
    reference.close()
