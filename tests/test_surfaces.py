"""One validation on every surface (Python API, HTTP, MCP, CLI), the same error for the same fault.

Real parts: the JVM and a real index (conftest), a real uvicorn server on loopback, fastmcp's
in-memory client, and the CLI in a subprocess.
"""

import asyncio
import logging
import os
import subprocess
import sys

import httpx
import pytest

from lucerag.config import Config
from lucerag.errors import InputError, QueryError
from lucerag.rag.api import RAG
from lucerag.search.retriever import Retriever
from lucerag.serve.http import BackgroundServer, ServerSettings, create_app, require_key_off_loopback

CJK = "".join(chr(0x4E00 + i) for i in range(1100))   # 1,100 distinct terms for Lucene's analyzer
SURROGATE = "a \ud800"


@pytest.fixture(scope="module")
def rag(retriever):
    with RAG(retriever, workers=2, max_queue=16) as r:
        yield r


@pytest.fixture(scope="module")
def server(rag):
    with BackgroundServer(create_app(rag, ServerSettings())) as s:
        yield s


def _message(fn) -> str:
    with pytest.raises(QueryError) as info:
        fn()
    return str(info.value)


# -- issue 15 item 6: more terms than Lucene's clause limit -------------------------------------------

@pytest.mark.parametrize("method", ["bm25", "hybrid"])
def test_too_many_terms_is_a_query_error_naming_the_limit(rag, method):
    message = _message(lambda: rag.retrieve(CJK, k=3, method=method, filter=False))
    assert "1024" in message and "distinct terms" in message
    # the dense view has no clause limit: it still answers
    assert len(rag.retrieve(CJK, k=3, method="dense")) == 3


def test_too_many_terms_over_http_is_the_same_422(rag, server):
    expected = _message(lambda: rag.retrieve(CJK, k=3, method="bm25"))
    r = httpx.post(server.url + "/v1/retrieve", json={"query": CJK, "k": 3, "method": "bm25"})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == {**r.json()["error"], "type": "invalid_request", "message": expected}


# -- issue 15 item 7: an unpaired surrogate -------------------------------------------------------------

def test_unpaired_surrogate_is_the_same_query_error_on_every_method_and_over_http(rag, retriever, server):
    messages = {_message(lambda m=m: rag.retrieve(SURROGATE, method=m)) for m in ("bm25", "dense", "hybrid")}
    messages |= {_message(lambda m=m: retriever.search(SURROGATE, method=m)) for m in ("bm25", "dense", "hybrid")}
    assert len(messages) == 1 and "unpaired surrogate (U+D800)" in messages.pop()
    expected = _message(lambda: rag.retrieve(SURROGATE))
    r = httpx.post(server.url + "/v1/retrieve", content=b'{"query": "a \\ud800"}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["message"] == expected
    assert r.json()["error"]["details"] == [{"field": "query", "message": expected}]


# -- issue 15 item 8: one validation, the same limits -----------------------------------------------------

def test_openapi_k_bound_is_the_enforced_bound(rag, server):
    schema = httpx.get(server.url + "/openapi.json").json()["components"]["schemas"]
    limits = rag.retriever.config.limits
    for name in ("RetrieveRequest", "ContextRequest"):
        k = schema[name]["properties"]["k"]["anyOf"][0]
        assert (k["minimum"], k["maximum"]) == (1, limits.max_k)
        assert schema[name]["properties"]["query"]["maxLength"] == limits.max_query_chars
    assert httpx.post(server.url + "/v1/retrieve", json={"query": "volcano", "k": limits.max_k,
                                                         "filter": False}).status_code == 200
    r = httpx.post(server.url + "/v1/retrieve", json={"query": "volcano", "k": limits.max_k + 1})
    assert r.status_code == 422 and f"between 1 and {limits.max_k}" in r.json()["error"]["message"]
    # a server that lowers the bound publishes the lower bound
    with BackgroundServer(create_app(rag, ServerSettings(max_k=7))) as low:
        k = httpx.get(low.url + "/openapi.json").json()["components"]["schemas"]["RetrieveRequest"]
        assert k["properties"]["k"]["anyOf"][0]["maximum"] == 7
        assert httpx.post(low.url + "/v1/retrieve", json={"query": "volcano", "k": 8}).status_code == 422


def test_a_server_cannot_raise_the_configured_limits():
    from lucerag.config import LimitsConfig
    from lucerag.errors import ConfigError

    configured = LimitsConfig(max_k=100, max_body_bytes=4096)
    assert ServerSettings(max_k=50).limits(configured).max_k == 50
    assert ServerSettings().limits(configured) == configured
    with pytest.raises(ConfigError, match=r"max_k 500 is above the configuration's limits.max_k \(100\)"):
        ServerSettings(max_k=500).limits(configured)


@pytest.mark.parametrize("body, field", [
    ({"query": "volcano", "filter": 0}, "filter"),
    ({"query": "volcano", "filter": "yes"}, "filter"),
    ({"query": "volcano", "k": "5"}, "k"),
    ({"query": "volcano", "k": True}, "k"),
    ({"query": " "}, "query"),
])
def test_http_types_are_strict(server, body, field):
    r = httpx.post(server.url + "/v1/retrieve", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["type"] == "invalid_request" and field in r.json()["error"]["message"]


def test_python_api_rejects_what_http_rejects(rag):
    assert _message(lambda: rag.retrieve("volcano", filter="yes")).startswith("filter must be true, false")
    assert _message(lambda: rag.retrieve("volcano", filter=0)).startswith("filter must be true, false")
    assert _message(lambda: rag.context("volcano", max_tokens=-5)).startswith("max_tokens must be between")
    assert _message(lambda: rag.retrieve("volcano", k=1001)).startswith("k must be between 1 and 1000")
    assert _message(lambda: rag.retrieve_batch(["volcano", ""])) == "query is empty"


@pytest.mark.parametrize("content, headers, message", [
    (b'{"query": "volcano"}', {}, "Content-Type: application/json (no Content-Type)"),
    (b'{"query": "volcano"}', {"Content-Type": "text/plain"}, "Content-Type 'text/plain'"),
    (b'{"query": "volc\xff"}', {"Content-Type": "application/json"}, "not valid UTF-8 (byte 15)"),
    (b'{"query": "v", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", {"Content-Type": "application/json"},
     "nested deeper than 32 levels"),
    (b'{"query": "volc', {"Content-Type": "application/json"}, "not valid JSON"),
])
def test_bodies_that_are_not_json_get_a_documented_422(server, content, headers, message):
    r = httpx.post(server.url + "/v1/retrieve", content=content, headers=headers)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request" and message in error["message"], error
    assert error["details"][0]["field"] == "body"


def test_only_lucerag_errors_are_4xx_anything_else_is_a_500_without_internals(retriever, caplog):
    class Broken(RAG):   # a RAG whose retrieve has a bug: it raises a plain ValueError
        def retrieve(self, *args, **kwargs):
            raise ValueError("secret internal detail at 0xdeadbeef")

    with Broken(retriever, workers=1, warmup=False) as broken, \
            BackgroundServer(create_app(broken, ServerSettings())) as s, \
            caplog.at_level(logging.ERROR, logger="lucerag.serve"):
        r = httpx.post(s.url + "/v1/retrieve", json={"query": "volcano"})
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["type"] == "internal_error" and len(error["request_id"]) == 12
    assert "secret" not in r.text and "ValueError" not in r.text
    assert any(error["request_id"] in rec.getMessage() and rec.exc_info for rec in caplog.records)


def test_filtered_is_reported_only_when_the_filter_ran(mini_index, encoder):
    """[filter] enabled = false: /v1/retrieve never says "filtered": true for an unfiltered list."""
    config = Config.for_index(mini_index, filter={"enabled": False})
    with Retriever(config, encoder) as retriever, RAG(retriever, workers=1) as rag, \
            BackgroundServer(create_app(rag, ServerSettings())) as s:
        assert not rag.filter_applies("hybrid", None)
        body = httpx.post(s.url + "/v1/retrieve", json={"query": "why does a volcano erupt", "k": 5}).json()
        assert body["filtered"] is False and len(body["passages"]) == 5
        # nothing dropped, but P(relevant) is shown whenever a calibrator fits (issue 17)
        assert all((p["p_relevant"] is not None) == rag.supports_filter for p in body["passages"])
        if rag.supports_filter:   # an explicit true still filters, and says so
            body = httpx.post(s.url + "/v1/retrieve", json={"query": "why does a volcano erupt", "k": 5,
                                                           "filter": True}).json()
            assert body["filtered"] is True and all(p["p_relevant"] is not None for p in body["passages"])
        body = httpx.post(s.url + "/v1/retrieve", json={"query": "volcano", "method": "bm25", "filter": True}).json()
        assert body["filtered"] is False


# -- MCP: the same validation, tool errors without a traceback ---------------------------------------

def test_mcp_bad_requests_are_tool_errors_without_traceback(rag, capfd):
    pytest.importorskip("fastmcp")
    from fastmcp import Client

    from lucerag.adapters.mcp import create_mcp

    server = create_mcp(rag)

    async def go():
        async with Client(server) as client:
            out = {}
            for name, args in {"empty": {"query": "   "}, "k": {"query": "volcano", "k": 5000},
                               "surrogate": {"query": SURROGATE}, "clauses": {"query": CJK, "method": "bm25"},
                               "budget": {"query": "volcano", "max_tokens": -5}}.items():
                tool = "context" if name == "budget" else "search"
                result = await client.call_tool(tool, args, raise_on_error=False)
                out[name] = (result.is_error, result.content[0].text)
            return out

    out = asyncio.run(go())
    assert out["empty"] == (True, "query is empty")
    assert out["k"][0] and "k must be between 1 and 1000" in out["k"][1]
    assert out["surrogate"] == (True, _message(lambda: rag.retrieve(SURROGATE)))
    assert out["clauses"][0] and "1024" in out["clauses"][1]
    assert out["budget"][0] and out["budget"][1].startswith("max_tokens must be between")
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out


# -- issue 15 item 9: exposure and metrics label values ------------------------------------------------

def test_serving_beyond_loopback_needs_a_key_or_insecure():
    for host in ("127.0.0.1", "::1", "localhost"):
        require_key_off_loopback(host, None)
    with pytest.raises(InputError, match="refusing to serve on 0.0.0.0 without an API key.*--insecure"):
        require_key_off_loopback("0.0.0.0", None)
    require_key_off_loopback("0.0.0.0", "k")
    require_key_off_loopback("0.0.0.0", None, insecure=True)


def test_cli_serve_refuses_0000_without_a_key(mini_index):
    env = {k: v for k, v in os.environ.items() if k != "LUCERAG_API_KEY"}
    out = subprocess.run([sys.executable, "-m", "lucerag", "serve", "--index", str(mini_index), "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and "refusing to serve on 0.0.0.0 without an API key" in out.stderr
    assert "Traceback" not in out.stderr


def test_metrics_labels_are_bounded(server):
    for method in ("BREW", "PROPFIND", "X-" + "A" * 40):
        httpx.request(method, server.url + "/v1/retrieve")
    httpx.get(server.url + "/no/such/route/42")
    text = httpx.get(server.url + "/metrics").text
    series = [line for line in text.splitlines() if line.startswith("lucerag_http_requests_total{")]
    assert any('method="OTHER"' in line for line in series)
    assert not any(name in text for name in ("BREW", "PROPFIND", "X-AAAA", "/no/such"))


def test_cli_search_reports_query_errors_in_one_line(mini_index):
    for query, message in ((CJK, "1024"), (" ", "query is empty")):
        out = subprocess.run([sys.executable, "-m", "lucerag", "search", "--index", str(mini_index), query,
                              "--method", "bm25"], capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_cli_serve_on_a_busy_port_fails_before_announcing_itself(mini_index):
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        out = subprocess.run([sys.executable, "-m", "lucerag", "serve", "--index", str(mini_index), "--port", str(port)],
                             capture_output=True, text=True, timeout=120)
    finally:
        busy.close()
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "serving" not in out.stderr and "Traceback" not in out.stderr
