"""The Python API: retrieve, batch, async, threads, lifetime, configuration sections."""

import asyncio
import inspect
import json
import threading

import pytest

from conftest import MINI_BEIR
from lucerag.rag.api import RAG, ClosedError, Overloaded, SearchPool, load_config
from lucerag.config import ConfigError
from lucerag.search.retriever import QueryError

NOF = {}  # set below: filter=False for Retriever.search when it has the relevance filter
if "filter" in inspect.signature(__import__("lucerag.search.retriever").search.retriever.Retriever.search).parameters:
    NOF["filter"] = False
QUERIES = [json.loads(line)["text"] for line in (MINI_BEIR / "queries.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def rag(retriever):
    with RAG(retriever, workers=4) as r:
        yield r


def key(passages):
    return [(p.id, p.rank, round(p.score, 6), p.text) for p in passages]


def test_retrieve_is_the_retriever_search(rag, retriever):
    for method in ("hybrid", "bm25", "dense"):
        got = rag.retrieve("why does a volcano erupt", k=3, method=method, filter=False)
        assert key(got) == key(retriever.search("why does a volcano erupt", k=3, method=method, **NOF))
    assert rag.retrieve("why does a volcano erupt", k=3, filter=False)[0].id == "p03"
    assert len(rag.retrieve("volcano", filter=False)) == retriever.config.search.k


def test_bad_arguments_are_clear_errors(rag):
    with pytest.raises(QueryError, match="empty"):
        rag.retrieve("   ")
    for k in (0, 1001, 2.5, True):
        with pytest.raises(ValueError, match="k must"):
            rag.retrieve("volcano", k=k)
    with pytest.raises(ValueError, match="unknown method"):
        rag.retrieve("volcano", method="magic")
    with pytest.raises(QueryError):
        rag.retrieve_batch(["volcano", ""])


def test_a_batch_of_one_string_is_refused(rag):
    """retrieve_batch("magma") searched each character ('m', 'a', 'g', ...) and returned five
    lists; with a space in the string it failed with 'query is empty'. A string is not a batch."""
    for call in (lambda q: rag.retrieve_batch(q, k=2), lambda q: asyncio.run(rag.aretrieve_batch(q, k=2))):
        for q in ("magma", "volcano magma", b"magma"):
            with pytest.raises(QueryError, match="queries must be a list of strings") as err:
                call(q)
            assert err.value.field == "queries"
    assert len(rag.retrieve_batch(("magma",), k=2)) == 1


def test_batch_and_async_match_sequential(rag):
    expected = [key(rag.retrieve(q, k=5, filter=False)) for q in QUERIES]
    assert [key(r) for r in rag.retrieve_batch(QUERIES, k=5, filter=False)] == expected
    assert [key(r) for r in asyncio.run(rag.aretrieve_batch(QUERIES, k=5, filter=False))] == expected
    assert key(asyncio.run(rag.aretrieve(QUERIES[0], k=5, filter=False))) == expected[0]


def test_concurrent_searches_give_the_sequential_results(rag):
    """Many threads at once (pool and plain threads) must return exactly what one thread does:
    this catches shared, single-threaded Lucene objects (StoredFields) on the query path."""
    expected = {q: key(rag.retrieve(q, k=10, filter=False)) for q in QUERIES}
    results, errors = [], []

    def worker():
        try:
            for q in QUERIES * 3:
                results.append((q, key(rag.retrieve(q, k=10, filter=False))))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    batch = rag.retrieve_batch(QUERIES * 6, k=10, filter=False)
    for t in threads:
        t.join()
    assert not errors
    assert all(got == expected[q] for q, got in results)
    assert [key(r) for r in batch] == [expected[q] for q in QUERIES * 6]


def test_filter_is_passed_only_when_the_retriever_has_it(rag, retriever):
    assert rag.supports_filter == ("filter" in inspect.signature(retriever.search).parameters)
    if not rag.supports_filter:
        pytest.skip("this Retriever has no relevance filter")
    unfiltered = rag.retrieve("why does a volcano erupt", k=10, filter=False)
    try:
        filtered = rag.retrieve("why does a volcano erupt", k=10, filter=True)
    except (ValueError, FileNotFoundError) as exc:
        pytest.skip(f"no calibrator fits the test index: {exc}")
    assert [p.id for p in filtered] == [p.id for p in unfiltered[:len(filtered)]]
    assert all(getattr(p, "p_relevant", None) is not None for p in filtered)
    # bm25 and dense lists are never filtered
    assert len(rag.retrieve("volcano", k=10, method="bm25", filter=True)) == \
        len(rag.retrieve("volcano", k=10, method="bm25", filter=False))


def test_context_and_empty_results(rag):
    ctx = rag.context("why does a volcano erupt", k=3, max_tokens=400, filter=False)
    assert ctx.citations[0].passage_id == "p03" and ctx.prompt_tokens <= 400
    empty = rag.build_context("anything", [])
    assert empty.empty and "No relevant passage" in empty.messages[-1].content


def test_lifetime_closes_the_pool_and_the_index(mini_index, encoder):
    with RAG.from_index(mini_index, encoder=encoder, workers=2) as rag:
        assert rag.retrieve_batch(["volcano"], k=1, filter=False)[0][0].id in {"p03", "p04"}
        pool = rag.pool
    assert rag.closed and pool._shutdown and not any(t.is_alive() for t in pool._threads)
    with pytest.raises(ClosedError):
        rag.retrieve("volcano")

    async def async_lifetime():
        async with RAG.from_index(mini_index, encoder=encoder) as r:
            return await r.aretrieve("volcano", k=1, filter=False), r
    passages, r = asyncio.run(async_lifetime())
    assert passages and r.closed


def test_the_pool_refuses_work_beyond_its_queue():
    gate = threading.Event()
    pool = SearchPool(workers=1, max_queue=1)
    try:
        running = pool.submit(gate.wait, 5)
        waiting = pool.submit(lambda: 42)
        with pytest.raises(Overloaded):
            pool.submit(lambda: 0)
        gate.set()
        assert running.result(5) is True and waiting.result(5) == 42
        assert pool.submit(lambda: 7).result(5) == 7
    finally:
        gate.set()
        pool.shutdown()


def test_config_file_with_llm_and_context_sections(tmp_path, mini_index, encoder):
    path = tmp_path / "lucerag.toml"
    path.write_text(f'[index]\npath = "{mini_index}"\n\n[llm]\nbase_url = "http://127.0.0.1:9/v1"\n'
                    'model = "m"\n\n[context]\nmax_tokens = 500\n')
    config, extra = load_config(path)
    assert config.index.path == mini_index and extra["llm"]["model"] == "m"
    with RAG.from_config(path, encoder=encoder) as rag:
        assert rag.builder.max_tokens == 500 and rag.llm.config.model == "m"
        assert rag.retrieve("volcano", k=1, filter=False)
    path.write_text(f'[index]\npath = "{mini_index}"\n[llm]\nmodle = "m"\n')
    with pytest.raises(ConfigError, match="unknown key 'llm.modle'"):
        load_config(path)
