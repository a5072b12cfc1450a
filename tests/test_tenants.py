"""Multi-tenancy (issue 19): one API key, one tenant, enforced by the server as a metadata filter.

A real index whose passages belong to two tenants (and some to none), a real uvicorn server on
127.0.0.1, real HTTP. The expected passages come from the documents' own tenant labels."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from conftest import mini_documents
from lucerag.errors import ConfigError
from lucerag.rag.api import RAG
from lucerag.serve.http import BackgroundServer, ServerSettings, create_app, require_key_off_loopback
from lucerag.serve.tenants import Tenants

KEY_A = "key-of-tenant-acme-0001"
KEY_B = "key-of-tenant-globex-02"
QUERIES = ["how do plants and animals get energy", "what is the speed of light", "history of the printing press"]


def _tenant(i: int) -> str | None:
    return ("acme", "globex", None)[i % 3]


def _documents():
    docs = mini_documents()
    for i, d in enumerate(docs):
        t = _tenant(i)
        d.metadata = {"lang": "en"} if t is None else {"tenant": t, "lang": "en"}
    return docs


OWNER = {d.id: d.metadata.get("tenant") for d in _documents()}


@pytest.fixture(scope="module")
def tenant_rag(tmp_path_factory, encoder):
    from lucerag.ingest.pipeline import build_index

    path = tmp_path_factory.mktemp("tenants") / "index"
    build_index(_documents(), path, encoder=encoder, progress=False)
    with RAG.from_index(path, encoder=encoder, workers=2) as rag:
        yield rag


@pytest.fixture(scope="module")
def tenants():
    # globex's entry is the SHA-256 of its key: a tenants file need not hold the secret itself
    return Tenants(keys={"acme": KEY_A, "globex": "sha256:" + hashlib.sha256(KEY_B.encode()).hexdigest()})


@pytest.fixture(scope="module")
def server(tenant_rag, tenants):
    with BackgroundServer(create_app(tenant_rag, ServerSettings(tenants=tenants))) as s:
        yield s


def _post(server, key: str | None, path: str = "/v1/retrieve", **body):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + path, json={"relevance_filter": False, **body}, headers=headers, timeout=60)


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["passages"]]


@pytest.mark.parametrize("key,tenant", [(KEY_A, "acme"), (KEY_B, "globex")])
def test_each_key_searches_only_its_tenants_passages(server, tenant_rag, key, tenant):
    owned = sum(1 for t in OWNER.values() if t == tenant)
    others = [d.title for i, d in enumerate(_documents()) if _tenant(i) != tenant][:2]  # other tenants' titles
    for query in QUERIES + others:
        for method in ("hybrid", "bm25", "dense"):
            ids = _ids(_post(server, key, query=query, k=10, method=method))
            assert {OWNER[i] for i in ids} == {tenant} or (method == "bm25" and not ids), (query, method)
            # the same ranking as the tenant's own filter through the Python API: nothing else is dropped
            assert ids == [p.id for p in tenant_rag.retrieve(query, 10, method=method, relevance_filter=False,
                                                             where={"term": {"tenant": tenant}})]
        everything = _ids(_post(server, key, query=query, k=100))
        assert len(everything) == owned     # all of its passages are reachable, no other
    ctx = _post(server, key, "/v1/context", query=QUERIES[0], k=5)
    assert ctx.status_code == 200 and {OWNER[p["id"]] for p in ctx.json()["passages"]} == {tenant}


@pytest.mark.parametrize("where", [
    {"term": {"tenant": "globex"}},
    {"not": {"term": {"tenant": "acme"}}},
    {"or": [{"term": {"tenant": "globex"}}, {"exists": "lang"}]},
    {"tenant": ["acme", "globex"]},
])
def test_a_request_filter_narrows_its_tenant_never_widens_it(server, where):
    ids = _ids(_post(server, KEY_A, query=QUERIES[0], k=50, where=where))
    assert all(OWNER[i] == "acme" for i in ids)


def test_missing_or_wrong_keys_are_401(server):
    for key in (None, "no-such-key-000000000", KEY_A + "x", "sha256:" + hashlib.sha256(KEY_B.encode()).hexdigest()):
        r = _post(server, key, query=QUERIES[0])
        assert r.status_code == 401, (key, r.text)
        assert r.json()["error"]["type"] == "unauthorized"
    x = httpx.post(server.url + "/v1/retrieve", json={"query": QUERIES[0]}, headers={"X-API-Key": KEY_B}, timeout=60)
    assert x.status_code == 200 and {OWNER[p["id"]] for p in x.json()["passages"]} <= {"globex"}


def test_a_cursor_issued_to_one_tenant_is_refused_for_another(server):
    first = _post(server, KEY_A, query=QUERIES[0], k=2)
    cursor = first.json()["next_cursor"]
    assert cursor
    again = _post(server, KEY_A, query=QUERIES[0], k=2, cursor=cursor)
    assert again.status_code == 200 and not set(_ids(again)) & set(_ids(first))
    other = _post(server, KEY_B, query=QUERIES[0], k=2, cursor=cursor)
    assert other.status_code == 422 and "cursor" in other.json()["error"]["message"]


def test_the_server_refuses_an_index_without_the_tenant_key(retriever, tenants):
    with RAG(retriever, workers=1) as rag:
        with pytest.raises(ConfigError, match="has no metadata filter fields|no passage with a string metadata key"):
            create_app(rag, ServerSettings(tenants=tenants))


@pytest.mark.parametrize("text,message", [
    ('[keys]\nacme = "short"\n', "keys: .*at least 16 characters"),
    (f'[keys]\nacme = "{KEY_A}"\nglobex = "{KEY_A}"\n', "the same key as tenant 'acme'"),
    ('[keys]\n', "no tenant"),
    ('[keys]\nacme = "sha256:1234"\n', "64 hex digits"),
    (f'field = "tenant"\nextra = 1\n[keys]\nacme = "{KEY_A}"\n', "extra: Extra inputs are not permitted"),
    ('[keys\n', "not a TOML tenants file"),
])
def test_tenants_file_errors_name_the_file_and_entry(tmp_path, text, message):
    path = tmp_path / "tenants.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        Tenants.load(path)
    assert str(path) in str(info.value)
    assert KEY_A not in str(info.value)      # a key is never echoed back
    with pytest.raises(ConfigError, match="tenants file not found"):
        Tenants.load(tmp_path / "missing.toml")


def test_a_tenants_file_counts_as_keys_and_excludes_a_single_key(tenants):
    require_key_off_loopback("0.0.0.0", ServerSettings(tenants=tenants).secured)
    with pytest.raises(ValueError, match="either an API key or a tenants file"):
        ServerSettings(api_key=KEY_A, tenants=tenants)
    field = Tenants(field="org", keys={"acme": KEY_A})
    assert field.scope("acme", None) == {"term": {"org": "acme"}}
    assert field.scope("acme", {"lang": "en"}) == {"and": [{"term": {"org": "acme"}}, {"lang": "en"}]}
