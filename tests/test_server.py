"""The HTTP service: a real uvicorn server on 127.0.0.1 (ephemeral port), called over real HTTP."""

import threading

import httpx
import pytest

from lucerag.rag.api import RAG
from lucerag.bench.load import run_load
from lucerag.serve.http import BackgroundServer, ServerSettings, create_app

KEY = "test-key-123"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def rag(retriever):
    with RAG(retriever, workers=4, max_queue=64) as r:
        yield r


@pytest.fixture(scope="module")
def server(rag):
    app = create_app(rag, ServerSettings(api_key=KEY, max_k=50, max_body_bytes=4096))
    with BackgroundServer(app) as s:
        yield s


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_retrieve_returns_the_api_passages(http, rag):
    r = http.post("/v1/retrieve", json={"query": "why does a volcano erupt", "k": 3, "filter": False},
                  headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    expected = rag.retrieve("why does a volcano erupt", k=3, filter=False)
    assert [p["id"] for p in body["passages"]] == [p.id for p in expected] and expected[0].id == "p03"
    assert body["passages"][0]["text"] == expected[0].text
    assert body["passages"][0]["bm25_score"] is not None and body["method"] == "hybrid" and body["k"] == 3
    bm25 = http.post("/v1/retrieve", json={"query": "volcano magma", "k": 2, "method": "bm25", "filter": False},
                     headers={"X-API-Key": KEY}).json()
    assert [p["id"] for p in bm25["passages"]] == [p.id for p in rag.retrieve("volcano magma", 2, method="bm25",
                                                                                 filter=False)]


def test_context_returns_cited_messages(http):
    r = http.post("/v1/context", json={"query": "why does a volcano erupt", "k": 3, "max_tokens": 300, "filter": False},
                  headers=AUTH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["citations"][0] == {**body["citations"][0], "number": 1, "passage_id": "p03", "doc_id": "p03"}
    assert body["prompt_tokens"] <= 300 and body["messages"][0]["role"] == "system"
    assert "[1] Volcanoes (id: p03)" in body["messages"][1]["content"]


BAD = [
    ({"query": ""}, 422, "query"),
    ({"query": "   \n"}, 422, "query is empty"),
    ({"query": "volcano", "k": 0}, 422, "k"),
    ({"query": "volcano", "k": 51}, 422, "k must be between 1 and 50"),
    ({"query": "volcano", "k": 5000}, 422, "k"),
    ({"query": "volcano", "k": "ten"}, 422, "k"),
    ({"query": "volcano", "top_k": 3}, 422, "top_k: unknown field"),
    ({"query": "volcano", "method": "magic"}, 422, "method"),
    ({"query": "volcano", "filter": "maybe"}, 422, "filter"),
    ({"k": 3}, 422, "query"),
    ([1, 2], 422, "invalid_request"),
]


@pytest.mark.parametrize("body,status,message", BAD)
@pytest.mark.parametrize("route", ["/v1/retrieve", "/v1/context"])
def test_bad_requests_are_clear_4xx(http, route, body, status, message):
    r = http.post(route, json=body, headers=AUTH)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request" and message in r.text
    assert "Traceback" not in r.text


def test_context_budget_limits(http):
    for max_tokens in (10, 2_000_000):
        r = http.post("/v1/context", json={"query": "volcano", "max_tokens": max_tokens}, headers=AUTH)
        assert r.status_code == 422 and "max_tokens" in r.text


def test_malformed_and_oversized_bodies(http):
    r = http.post("/v1/retrieve", content=b'{"query": "volc', headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]["message"]
    big = {"query": "volcano " * 1000}
    r = http.post("/v1/retrieve", json=big, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"

    def chunks():  # no Content-Length: counted while streaming
        yield b'{"query": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    r = http.post("/v1/retrieve", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_api_key_is_required(http):
    body = {"query": "volcano"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": KEY}):
        r = http.post("/v1/retrieve", json=body, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"]["type"] == "unauthorized" and r.headers["WWW-Authenticate"] == "Bearer"
    assert http.get("/healthz").status_code == 200  # health needs no key


def test_unknown_routes_and_methods(http):
    assert http.get("/v1/nothing").json()["error"]["type"] == "not_found"
    r = http.get("/v1/retrieve")
    assert r.status_code == 405 and r.json()["error"]["type"] == "method_not_allowed"


def _samples(text: str) -> dict:
    """(name, sorted labels) -> value of every sample in a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_health_metrics_and_openapi(http):
    health = http.get("/healthz").json()
    assert health["status"] == "ok" and health["passages"] == 25 and health["views"] == ["bm25", "dense"]
    http.post("/v1/retrieve", json={"query": "volcano", "filter": False}, headers=AUTH)
    text = http.get("/metrics").text
    samples = _samples(text)
    assert samples[("lucerag_http_requests_total", (("method", "POST"), ("route", "/v1/retrieve"),
                                                     ("status", "200")))] >= 1
    assert samples[("lucerag_http_requests_total", (("method", "POST"), ("route", "/v1/retrieve"),
                                                     ("status", "401")))] >= 1
    assert samples[("lucerag_http_request_duration_seconds_bucket", (("le", "+Inf"), ("route", "/v1/retrieve")))] >= 1
    assert samples[("lucerag_search_duration_seconds_count", (("method", "hybrid"),))] >= 1
    schema = http.get("/openapi.json").json()
    assert {"/v1/retrieve", "/v1/context", "/healthz", "/metrics"} <= set(schema["paths"])
    request = schema["components"]["schemas"]["RetrieveRequest"]
    assert request["additionalProperties"] is False and "query" in request["required"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])


def test_concurrent_clients_smoke(server, rag):
    """A short version of the load test (the full one: `lucerag bench load`, docs/rag.md)."""
    report = run_load(server.url, ["why does a volcano erupt", "how do plants make sugar", "sourdough rise"],
                      clients=20, duration=2.0, k=5, api_key=KEY, filter=False)
    assert report.errors == 0, report.errors_by_kind
    assert report.ok > 20 and report.latency_ms["p99"] < 10_000


def test_overload_is_503_and_a_slow_search_is_504(retriever):
    gate = threading.Event()
    with RAG(retriever, workers=1, max_queue=0, warmup=False) as rag:
        app = create_app(rag, ServerSettings(search_timeout=0.3))
        with BackgroundServer(app) as s:
            blocker = rag.pool.submit(gate.wait, 10)   # the only worker is busy
            try:
                r = httpx.post(s.url + "/v1/retrieve", json={"query": "volcano"})
                assert r.status_code == 503 and r.headers["Retry-After"] == "1"
            finally:
                gate.set()
                blocker.result(10)
    gate.clear()
    with RAG(retriever, workers=1, max_queue=8, warmup=False) as rag:
        app = create_app(rag, ServerSettings(search_timeout=0.3))
        with BackgroundServer(app) as s:
            blocker = rag.pool.submit(gate.wait, 10)
            try:
                r = httpx.post(s.url + "/v1/retrieve", json={"query": "volcano"})
                assert r.status_code == 504 and r.json()["error"]["type"] == "timeout"
            finally:
                gate.set()
                blocker.result(10)


def test_loadtest_targets_loopback_only():
    with pytest.raises(ValueError, match="loopback"):
        run_load("http://example.com:8000", ["q"], clients=1, duration=1)
