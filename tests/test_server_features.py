"""The HTTP service's metadata filters, pages, streamed answers (SSE), metrics and offline docs:
a real uvicorn server on 127.0.0.1, called over real HTTP; the LLM is the streaming stand-in of
test_streaming (a local OpenAI-compatible server)."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from lucerag.rag.api import RAG
from lucerag.rag.llm import LLMConfig
from lucerag.serve.http import BackgroundServer, ServerSettings, create_app
from test_metadata_filters import META, matches, meta_index, meta_retriever  # noqa: F401 - fixtures
from test_streaming import CHUNKS, StreamingProvider

QUERY = "how do plants and animals get energy"
WHERE = {"and": [{"terms": {"lang": ["en", "fr"]}}, {"range": {"year": {"gte": 2004}}}]}


@pytest.fixture(scope="module")
def provider():
    with StreamingProvider() as p:
        yield p


@pytest.fixture(scope="module")
def rag(meta_retriever, provider):  # noqa: F811
    with RAG(meta_retriever, workers=2, llm=LLMConfig(base_url=provider.url, model="ok", backoff=0)) as r:
        yield r


@pytest.fixture(scope="module")
def http(rag):
    with BackgroundServer(create_app(rag, ServerSettings())) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client


def _ids(body):
    return [p["id"] for p in body["passages"]]


def test_retrieve_with_a_metadata_filter(http, rag):
    body = http.post("/v1/retrieve", json={"query": QUERY, "k": 5, "where": WHERE, "relevance_filter": False}).json()
    assert _ids(body) == [p.id for p in rag.retrieve(QUERY, 5, where=WHERE, relevance_filter=False)]
    assert body["passages"] and all(matches(WHERE, META[i]) for i in _ids(body))
    few = http.post("/v1/retrieve", json={"query": QUERY, "k": 10, "where": {"range": {"year": {"gte": 2022}}},
                                          "relevance_filter": False}).json()
    assert len(few["passages"]) == 3 and few["next_cursor"] is None
    none = http.post("/v1/retrieve", json={"query": QUERY, "where": {"term": {"lang": "xx"}}}).json()
    assert none["passages"] == []
    short = http.post("/v1/retrieve", json={"query": QUERY, "k": 3, "where": {"lang": "de"},  # shorthand
                                            "relevance_filter": False}).json()
    assert _ids(short) and all(META[i]["lang"] == "de" for i in _ids(short))


@pytest.mark.parametrize("where,field,message", [
    ({"range": {"year": {"gtee": 1}}}, "where", "where.range.year: unknown bound 'gtee'"),
    ({"term": {"lnag": "en"}}, "where", "no passage in"),
    ("lang=en", "where", "dict"),
])
def test_bad_filters_are_422_naming_the_field(http, where, field, message):
    r = http.post("/v1/retrieve", json={"query": QUERY, "where": where})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request" and message in err["message"]
    assert err["details"][0]["field"].startswith(field)


def test_the_old_filter_name_still_works(http):
    new = http.post("/v1/retrieve", json={"query": QUERY, "k": 4, "relevance_filter": False}).json()
    old = http.post("/v1/retrieve", json={"query": QUERY, "k": 4, "filter": False}).json()
    assert _ids(new) == _ids(old) and new["filtered"] is False and old["filtered"] is False
    clash = http.post("/v1/retrieve", json={"query": QUERY, "filter": False, "relevance_filter": True})
    assert clash.status_code == 422 and "disagree" in clash.json()["error"]["message"]


def test_cursor_pages_concatenate_to_the_whole_list(http, rag):
    whole = [p.id for p in rag.retrieve(QUERY, 25, where=WHERE, relevance_filter=False)]
    got, cursor, pages = [], None, 0
    while True:
        body = {"query": QUERY, "k": 4, "where": WHERE, "relevance_filter": False}
        if cursor:
            body["cursor"] = cursor
        page = http.post("/v1/retrieve", json=body).json()
        assert page["offset"] == len(got)
        got += _ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == whole and pages >= 3
    by_offset = http.post("/v1/retrieve", json={"query": QUERY, "k": 4, "offset": 4, "where": WHERE,
                                                "relevance_filter": False}).json()
    assert _ids(by_offset) == whole[4:8]
    stale = http.post("/v1/retrieve", json={"query": "another question", "k": 4, "relevance_filter": False,
                                            "cursor": _first_cursor(http)})
    assert stale.status_code == 422 and "another query" in stale.json()["error"]["message"]


def _first_cursor(http):
    return http.post("/v1/retrieve", json={"query": QUERY, "k": 4, "relevance_filter": False}).json()["next_cursor"]


def _events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        event = re.search(r"^event: (.+)$", block, re.M).group(1)
        data = json.loads(re.search(r"^data: (.+)$", block, re.M).group(1))
        out.append((event, data))
    return out


def test_generate_streams_server_sent_events(http, provider):
    body = {"query": "why does a volcano erupt", "k": 3, "relevance_filter": False, "stream": True}
    with http.stream("POST", "/v1/generate", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = _events(text)
    kinds = [e for e, _ in events]
    assert kinds[0] == "context" and kinds[-1] == "answer" and set(kinds[1:-1]) == {"delta"}
    assert [d["text"] for e, d in events if e == "delta"] == CHUNKS
    context, answer = events[0][1], events[-1][1]
    assert context["citations"][0]["passage_id"] == context["passages"][0]
    assert answer["text"] == "".join(CHUNKS) and [c["number"] for c in answer["citations"]] == [1]
    assert answer["citations"][0]["passage_id"] == context["citations"][0]["passage_id"]
    assert provider.requests[-1]["stream"] is True


def test_generate_without_streaming_and_llm_errors(http, rag, provider):
    r = http.post("/v1/generate", json={"query": "why does a volcano erupt", "k": 3, "relevance_filter": False})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["citations"] and body["passages"]
    bad = RAG(rag.retriever, workers=1, warmup=False,
              llm=LLMConfig(base_url=provider.url, model="denied", backoff=0, max_retries=0))
    with bad, BackgroundServer(create_app(bad, ServerSettings())) as server:
        r = httpx.post(server.url + "/v1/generate", json={"query": "volcano", "stream": True,
                                                          "relevance_filter": False}, timeout=30)
    assert r.status_code == 502 and r.json()["error"]["type"] == "llm_error"   # before any event: plain HTTP error


def test_metrics_are_prometheus_client_with_process_metrics(http):
    from prometheus_client.parser import text_string_to_metric_families

    http.post("/v1/retrieve", json={"query": QUERY, "relevance_filter": False})
    for i in range(80):  # unknown routes are one label value, not eighty
        http.get(f"/no-such-route-{i}")
    text = http.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert "process_resident_memory_bytes" in families and "process_cpu_seconds" in families
    routes = {s.labels["route"] for s in families["lucerag_http_requests"].samples}
    assert "/v1/retrieve" in routes and "other" in routes and len(routes) < 15
    om = http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")


def test_docs_render_from_local_assets(http):
    page = http.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert urls and not [u for u in urls if u.startswith("http")]   # nothing from a CDN
    for url in urls:
        asset = http.get(url)
        assert asset.status_code == 200 and len(asset.content) > 100, url
    assert "SwaggerUIBundle" in http.get(next(u for u in urls if u.endswith(".js"))).text
    redoc = http.get("/redoc")
    scripts = re.findall(r"""src=["']([^"']+)["']""", redoc.text)
    assert scripts and all(not s.startswith("http") for s in scripts)
    assert http.get(scripts[0]).status_code == 200
    assert "fonts.googleapis" not in redoc.text


def _browser() -> str | None:
    import shutil

    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no headless Chromium on this machine")
def test_docs_render_in_a_headless_browser(http):
    """Swagger UI builds the operation list in the browser: it appears only when its JavaScript
    loaded (from this server: the machine running the tests may have no network at all)."""
    import subprocess

    def dom(path: str) -> str:
        out = subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=8000",
                              "--dump-dom", f"{http.base_url}{path}"], capture_output=True, text=True, timeout=120)
        return out.stdout

    swagger = dom("/docs")
    for path in ("/v1/retrieve", "/v1/context", "/v1/generate", "/metrics"):
        assert f'data-path="{path}"' in swagger
    assert "Ranked passages for a query" in dom("/redoc")   # ReDoc renders the summaries
