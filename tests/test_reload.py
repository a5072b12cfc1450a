"""A served index is reopened when it changes on disk (``RAG(reload=True)``, on in ``lucerag serve``):
passages appended, or a rebuild of the same folder, are found over real HTTP without a restart."""

from __future__ import annotations

import time

import httpx

from conftest import mini_documents


def _ids(http: httpx.Client, query: str) -> list[str]:
    r = http.post("/v1/retrieve", json={"query": query, "k": 3, "method": "bm25"})
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["passages"]]


def _until(predicate, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_served_index_picks_up_an_append_and_a_rebuild(tmp_path, encoder):
    from lucerag.index.writer import IndexWriter
    from lucerag.ingest.pipeline import build_index
    from lucerag.rag.api import RAG
    from lucerag.serve.http import BackgroundServer, ServerSettings, create_app

    path = tmp_path / "served"
    build_index(mini_documents(), path, encoder=encoder, progress=False)
    rag = RAG.from_index(path, encoder=encoder, workers=2, reload=True, reload_grace=0.5)
    first = rag.retriever
    try:
        with BackgroundServer(create_app(rag, ServerSettings())) as server, \
                httpx.Client(base_url=server.url, timeout=30) as http:
            before = http.get("/healthz").json()["passages"]
            assert "z1" not in _ids(http, "zebrafish lantern")
            text = "zebrafish lantern festival on the river"
            with IndexWriter(path, mode="append") as w:
                w.add_batch(["z1"], [text], encoder.encode_passages([text]))
            assert _until(lambda: "z1" in _ids(http, "zebrafish lantern")), "the append was not picked up"
            assert http.get("/healthz").json()["passages"] == before + 1
            hybrid = http.post("/v1/retrieve", json={"query": "zebrafish lantern festival", "k": 1,
                                                     "relevance_filter": False}).json()["passages"]
            assert hybrid[0]["id"] == "z1" and hybrid[0]["dense_score"] > 0.5   # the new vector is searched

            page = {"query": "magma", "k": 1, "method": "bm25"}   # two BM25 matches (p03, p04): a next page
            cursor = http.post("/v1/retrieve", json=page).json()["next_cursor"]
            assert cursor
            docs = [d for d in mini_documents() if d.id != "p13"]              # a rebuild without p13
            build_index(docs, path, encoder=encoder, progress=False)
            assert _until(lambda: http.get("/healthz").json()["passages"] == len(docs)), "the rebuild was not picked up"
            assert "z1" not in _ids(http, "zebrafish lantern")
            # a cursor of the index before the rebuild is refused, not read against the new one
            stale = http.post("/v1/retrieve", json={**page, "cursor": cursor})
            assert stale.status_code == 422 and "changed" in stale.text, stale.text
            assert rag._watch is not None and rag._watch.reloads == 2
            # the first retriever was retired and closed after its grace period
            assert _until(lambda: (rag.retriever, not first._indexes)[1], timeout=10)
    finally:
        rag.close()


def test_reload_is_off_unless_asked(tmp_path, encoder):
    from lucerag.index.writer import IndexWriter
    from lucerag.ingest.pipeline import build_index
    from lucerag.rag.api import RAG

    path = tmp_path / "fixed"
    build_index(mini_documents(), path, encoder=encoder, progress=False)
    with RAG.from_index(path, encoder=encoder, workers=1) as rag:
        size = rag.info()["passages"]
        with IndexWriter(path, mode="append") as w:
            w.add_batch(["z2"], ["an added passage"], encoder.encode_passages(["an added passage"]))
        time.sleep(1.5)
        assert rag.info()["passages"] == size and rag._watch is None


def test_two_fresh_builds_have_different_commit_ids(tmp_path):
    """Cursors carry the commit's identity: two single-commit builds of the same passages (same
    segments file name and reader version) must not share it."""
    from lucerag.index.reader import LuceneIndex
    from lucerag.ingest.pipeline import build_index

    docs = mini_documents()[:5]
    a, b = tmp_path / "a", tmp_path / "b"
    build_index(docs, a, dense=False, progress=False)
    build_index(docs, b, dense=False, progress=False)
    ia, ib = LuceneIndex(a), LuceneIndex(b)
    try:
        assert int(ia.reader.getVersion()) == int(ib.reader.getVersion())
        assert ia.commit_id != ib.commit_id and ia.commit_id == LuceneIndex(a).commit_id
    finally:
        ia.close()
        ib.close()


def test_a_reloaded_index_without_the_tenant_key_is_refused(tmp_path, encoder):
    """A server with tenants refuses to start on an index without the tenant key; a rebuild into
    such an index while it serves is refused the same way, and the index opened before keeps serving."""
    from lucerag.ingest.pipeline import build_index
    from lucerag.rag.api import RAG
    from lucerag.serve.http import BackgroundServer, ServerSettings, create_app
    from lucerag.serve.tenants import Tenants

    docs = mini_documents()
    for d in docs:
        d.metadata = {"tenant": "acme"}
    path = tmp_path / "tenants"
    build_index(docs, path, encoder=encoder, progress=False)
    key = "key-of-tenant-acme-0001"
    settings = ServerSettings(tenants=Tenants(keys={"acme": key}))
    with RAG.from_index(path, encoder=encoder, workers=1, reload=True, reload_grace=0.5) as rag, \
            BackgroundServer(create_app(rag, settings)) as server, \
            httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        body = {"query": "plants", "k": 3, "method": "bm25"}
        assert http.post("/v1/retrieve", json=body).status_code == 200
        seen = rag._watch._state
        build_index(mini_documents()[:10], path, encoder=encoder, progress=False)   # no tenant key
        time.sleep(1.2)
        for _ in range(15):                       # requests trigger the check; the reopen is refused
            r = http.post("/v1/retrieve", json=body)
            assert r.status_code == 200, r.text
            rag._watch.wait()
            time.sleep(0.2)
        assert rag._watch._state != seen, "the rebuild was not noticed"   # noticed, and refused:
        assert http.get("/healthz").json()["passages"] == len(docs) and rag._watch.reloads == 0
