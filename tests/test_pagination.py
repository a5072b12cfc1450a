"""Stable pagination: concatenated pages are the one big list, without repeats or gaps."""

from __future__ import annotations

import pytest

from lucerag.rag.api import RAG, CursorError


@pytest.fixture(scope="module")
def rag(retriever):
    with RAG(retriever, workers=2) as r:
        yield r


def _walk(rag, query, k, **options):
    pages, cursor = [], None
    while True:
        page = rag.page(query, k, cursor=cursor, **options)
        pages.append(page)
        cursor = page.next_cursor
        if cursor is None:
            return pages


@pytest.mark.parametrize("method", ["hybrid", "bm25", "dense"])
@pytest.mark.parametrize("k", [1, 3, 7])
def test_pages_concatenate_to_the_whole_list(rag, method, k):
    query = "how do living things get energy"
    whole = rag.retrieve(query, 25, method=method, relevance_filter=False)
    pages = _walk(rag, query, k, method=method, relevance_filter=False)
    joined = [p for page in pages for p in page.passages]
    assert [p.id for p in joined] == [p.id for p in whole]
    assert [p.rank for p in joined] == list(range(1, len(whole) + 1))
    assert [p.score for p in joined] == pytest.approx([p.score for p in whole])
    assert [page.offset for page in pages] == [i * k for i in range(len(pages))]
    assert all(len(page.passages) == k for page in pages[:-1]) and len(pages[-1].passages) <= k


@pytest.mark.parametrize("method", ["hybrid", "bm25", "dense"])
def test_the_last_page_has_no_next_cursor(rag, method):
    """A page that ends the list has no next_cursor, even when it is full: the cursor used to be
    given whenever a page held k passages, so a 'load more' after the last page came back empty."""
    for query, relevance in (("how do living things get energy", False), ("why does a volcano erupt", None)):
        whole = rag.retrieve(query, 1000, method=method, relevance_filter=relevance)
        n = len(whole)
        assert 0 < n < 1000
        page = rag.page(query, n, method=method, relevance_filter=relevance)
        assert [p.id for p in page.passages] == [p.id for p in whole] and page.next_cursor is None
        if n >= 2:
            half = rag.page(query, n - 1, method=method, relevance_filter=relevance)
            assert half.next_cursor is not None
            last = rag.page(query, n - 1, cursor=half.next_cursor, method=method, relevance_filter=relevance)
            assert [p.id for p in last.passages] == [whole[-1].id] and last.next_cursor is None
    pages = _walk(rag, "how do living things get energy", 3, method=method, relevance_filter=False)
    assert pages[-1].passages or len(pages) == 1


def test_offset_and_cursor_together_are_refused(rag):
    """page(q, k, cursor=c, offset=n) silently ignored the offset (HTTP answers 422 for the same)."""
    from lucerag.errors import QueryError

    first = rag.page("magma", 1, relevance_filter=False)
    with pytest.raises(QueryError, match="either offset or cursor") as err:
        rag.page("magma", 1, cursor=first.next_cursor, offset=5, relevance_filter=False)
    assert err.value.field == "cursor"
    assert rag.page("magma", 1, cursor=first.next_cursor, offset=0, relevance_filter=False).offset == 1


def test_offset_pages_match_the_cursor_pages(rag):
    query = "volcano magma"
    pages = _walk(rag, query, 4, relevance_filter=False)
    for i, page in enumerate(pages):
        by_offset = rag.retrieve(query, 4, offset=4 * i, relevance_filter=False)
        assert [p.id for p in by_offset] == [p.id for p in page.passages]


def test_pages_with_a_metadata_filter_and_the_relevance_filter(rag):
    query = "why does a volcano erupt"
    if rag.supports_filter:
        whole = rag.retrieve(query, 25, relevance_filter=True)
        joined = [p for page in _walk(rag, query, 2, relevance_filter=True) for p in page.passages]
        assert [p.id for p in joined] == [p.id for p in whole]
        assert all(p.p_relevant is not None for p in joined)


def test_a_cursor_belongs_to_its_query(rag):
    first = rag.page("volcano magma", 2, relevance_filter=False)
    assert first.next_cursor
    with pytest.raises(CursorError, match="another query"):
        rag.page("bees and flowers", 2, cursor=first.next_cursor, relevance_filter=False)
    with pytest.raises(CursorError, match="another query"):
        rag.page("volcano magma", 2, cursor=first.next_cursor, method="bm25", relevance_filter=False)
    with pytest.raises(CursorError, match="not a cursor"):
        rag.page("volcano magma", 2, cursor="garbage!", relevance_filter=False)


def test_offsets_past_the_window_are_empty(rag):
    window = rag.retriever.window(5)
    assert rag.retrieve("volcano", 5, offset=window, relevance_filter=False) == []
    with pytest.raises(ValueError, match="offset must be an integer >= 0"):
        rag.retrieve("volcano", 5, offset=-1)
