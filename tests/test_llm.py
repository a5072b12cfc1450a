"""generate() against a stand-in for an OpenAI-compatible provider: a tiny local HTTP server.

The stand-in (``FakeProvider``) speaks ``POST /v1/chat/completions``. Its behaviour is chosen by
the requested model name: ``ok`` answers citing [1], ``slow`` sleeps past the client timeout,
``flaky`` fails twice with 503 then answers, ``denied`` answers 401, ``garbage`` answers non-JSON.
"""

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lucerag.rag.api import RAG
from lucerag.rag.llm import LLMClient, LLMConfig, LLMError, LLMTimeoutError


class FakeProvider:
    """Stand-in for the LLM provider (loopback only)."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.flaky_failures = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "no such route"}})
                model = body["model"]
                if model == "slow":
                    time.sleep(1.0)
                if model == "flaky" and outer.flaky_failures < 2:
                    outer.flaky_failures += 1
                    return self._send(503, {"error": {"message": "overloaded"}}, {"Retry-After": "0"})
                if model == "denied":
                    return self._send(401, {"error": {"message": "Incorrect API key provided"}})
                if model == "garbage":
                    return self._send(200, None, raw=b"<html>gateway</html>")
                answer = "Volcanoes erupt when magma pressure forces rock upward [1]. Unrelated [9]."
                self._send(200, {"id": "x", "object": "chat.completion", "model": model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": answer}}],
                                 "usage": {"prompt_tokens": 100, "completion_tokens": 12}})

            def _send(self, status, obj, headers=None, raw=None):
                data = raw if raw is not None else json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def provider():
    p = FakeProvider()
    yield p
    p.close()


@pytest.fixture(scope="module")
def rag(retriever):
    with RAG(retriever, workers=2) as r:
        yield r


def cfg(provider, model, **kw):
    return LLMConfig(base_url=provider.base_url, model=model, api_key="sk-test", backoff=0.01, **kw)


def test_generate_answers_with_the_cited_passages(rag, provider):
    with LLMClient(cfg(provider, "ok")) as llm:
        rag_llm = RAG(rag.retriever, llm=llm, warmup=False)
        answer = rag_llm.generate("why does a volcano erupt", k=3, filter=False)
        rag_llm.close()
    assert answer.text.startswith("Volcanoes erupt") and answer.model == "ok"
    assert [c.passage_id for c in answer.citations] == ["p03"]       # [9] cites nothing offered: left out
    assert answer.context.citations[0].passage_id == "p03" and answer.usage["completion_tokens"] == 12
    sent = provider.requests[-1]
    assert sent["model"] == "ok" and sent["temperature"] == 0.0
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]
    assert "[1] Volcanoes (id: p03)" in sent["messages"][1]["content"]
    assert provider.headers[-1]["Authorization"] == "Bearer sk-test"


def test_async_generate(rag, provider):
    async def go():
        llm = LLMClient(cfg(provider, "ok"))
        r = RAG(rag.retriever, llm=llm, warmup=False)
        try:
            return await r.agenerate("why does a volcano erupt", k=2, filter=False)
        finally:
            await llm.aclose()
            r.close()

    assert asyncio.run(go()).citations[0].passage_id == "p03"


def test_timeout_is_reported_after_retries(provider):
    n = len(provider.requests)
    with LLMClient(cfg(provider, "slow", timeout=0.2, max_retries=1)) as llm:
        t = time.perf_counter()
        with pytest.raises(LLMTimeoutError, match="timed out after 0.2s"):
            llm.complete([{"role": "user", "content": "hi"}])
        assert time.perf_counter() - t < 3
    time.sleep(1.0)  # let the stand-in finish its sleeping handlers
    assert len(provider.requests) - n == 2  # the first try and one retry


def test_server_errors_are_retried_then_succeed(provider):
    provider.flaky_failures = 0
    with LLMClient(cfg(provider, "flaky", max_retries=2)) as llm:
        assert llm.complete([{"role": "user", "content": "hi"}]).text.startswith("Volcanoes")
    assert provider.flaky_failures == 2
    provider.flaky_failures = 0
    with LLMClient(cfg(provider, "flaky", max_retries=1)) as llm:
        with pytest.raises(LLMError, match="HTTP 503: overloaded") as err:
            llm.complete([{"role": "user", "content": "hi"}])
    assert err.value.status == 503


def test_client_errors_are_not_retried(provider):
    n = len(provider.requests)
    with LLMClient(cfg(provider, "denied", max_retries=3)) as llm:
        with pytest.raises(LLMError, match="HTTP 401: Incorrect API key") as err:
            llm.complete([{"role": "user", "content": "hi"}])
    assert err.value.status == 401 and len(provider.requests) - n == 1


def test_a_reply_that_is_not_a_completion_is_an_error(provider):
    with LLMClient(cfg(provider, "garbage")) as llm:
        with pytest.raises(LLMError, match="not a chat completion"):
            llm.complete([{"role": "user", "content": "hi"}])


def test_unreachable_endpoint(provider):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with LLMClient(LLMConfig(base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)) as llm:
        with pytest.raises(LLMError, match="cannot reach"):
            llm.complete([{"role": "user", "content": "hi"}])


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("LUCERAG_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LUCERAG_LLM_MODEL", "local-model")
    monkeypatch.setenv("OPENAI_API_KEY", "unused-by-lucerag")   # lucerag.lucene.jvm's placeholder is no key
    monkeypatch.delenv("LUCERAG_LLM_API_KEY", raising=False)
    c = LLMConfig.from_env(timeout=5)
    assert (c.base_url, c.model, c.api_key, c.timeout) == ("http://127.0.0.1:9/v1", "local-model", None, 5)
    assert "Authorization" not in c.headers()
    monkeypatch.setenv("LUCERAG_LLM_API_KEY", "sk-real")
    assert LLMConfig.from_env().headers()["Authorization"] == "Bearer sk-real"
    assert "sk-real" not in repr(LLMConfig.from_env())
