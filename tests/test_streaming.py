"""Streaming generation against a stand-in for an OpenAI-compatible LLM provider.

``StreamingProvider`` is a real HTTP server on loopback, written here, that speaks the OpenAI
streaming protocol (``"stream": true`` -> ``text/event-stream`` of ``data: {chat.completion.chunk}``
events ending in ``data: [DONE]``): the allowed stand-in for an LLM provider. Its behaviour is
chosen by the model name (a request without ``"stream": true`` gets the same text as one chat
completion): ``ok`` streams an answer whose citation ``[1]`` is split over two chunks;
``flaky`` answers 503 once, then streams; ``denied`` answers 401; ``broken`` stops mid-stream.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lucerag.rag.api import RAG
from lucerag.rag.llm import AnswerStream, LLMClient, LLMConfig, LLMError

CHUNKS = ["Volcanoes erupt ", "when magma pressure ", "forces rock up [", "1]", ". Also [", "9]."]


class StreamingProvider:
    def __init__(self):
        self.requests: list[dict] = []
        self.flaky = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                model = body["model"]
                if model == "denied":
                    return self._json(401, {"error": {"message": "Incorrect API key provided"}})
                if model == "flaky" and outer.flaky < 1:
                    outer.flaky += 1
                    return self._json(503, {"error": {"message": "overloaded"}})
                if not body.get("stream"):  # a plain (non-streamed) chat completion of the same text
                    return self._json(200, {"object": "chat.completion", "model": model, "choices": [
                        {"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "".join(CHUNKS)}}]})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b": keep-alive comment\n\n")
                chunks = CHUNKS[:3] if model == "broken" else CHUNKS
                for i, text in enumerate(chunks):
                    event = {"id": "c1", "object": "chat.completion.chunk", "model": model,
                             "choices": [{"index": 0, "delta": {"content": text} if i else
                                          {"role": "assistant", "content": text}, "finish_reason": None}]}
                    self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                    self.wfile.flush()
                if model == "broken":
                    self.wfile.write(b"data: {\"choices\": [{\"delta\": {\"content\": \"cut")  # no end
                    self.wfile.flush()
                    self.close_connection = True
                    return
                final = {"id": "c1", "object": "chat.completion.chunk", "model": model,
                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                         "usage": {"prompt_tokens": 90, "completion_tokens": 6}}
                self.wfile.write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
                self.wfile.flush()

            def _json(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider():
    with StreamingProvider() as p:
        yield p


def _rag(retriever, provider, model="ok", **llm):
    return RAG(retriever, workers=1, warmup=False,
               llm=LLMConfig(base_url=provider.url, model=model, backoff=0, **llm))


def test_generate_streams_deltas_and_resolves_citations_at_the_end(retriever, provider):
    with _rag(retriever, provider) as rag:
        stream = rag.generate("why does a volcano erupt", k=3, relevance_filter=False, stream=True)
        assert isinstance(stream, AnswerStream)
        assert stream.context.citations[0].passage_id == "p03"   # sources known before any token
        with pytest.raises(RuntimeError, match="only after the stream"):
            stream.answer
        deltas = list(stream)
        assert deltas == CHUNKS
        answer = stream.answer
        assert answer.text == "".join(CHUNKS)
        assert [c.number for c in answer.citations] == [1]   # [1] arrived split; [9] is no source
        assert answer.citations[0].passage_id == "p03"
        assert answer.finish_reason == "stop" and answer.usage["completion_tokens"] == 6
        assert provider.requests[-1]["stream"] is True


def test_streamed_and_whole_answers_agree(retriever, provider):
    with _rag(retriever, provider) as rag:
        stream = rag.generate("why does a volcano erupt", k=3, relevance_filter=False, stream=True)
        for _ in stream:
            pass
        streamed = stream.answer
    whole = answer_from_chunks(streamed.context)
    assert streamed.citations == whole.citations and streamed.text == whole.text


def answer_from_chunks(context):
    from lucerag.rag.llm import Completion, answer_from

    return answer_from(context, Completion(text="".join(CHUNKS), model="ok"))


def test_async_stream(retriever, provider):
    async def go():
        with _rag(retriever, provider) as rag:
            stream = await rag.agenerate("why does a volcano erupt", k=3, relevance_filter=False, stream=True)
            deltas = [d async for d in stream]
            await rag.llm.aclose()
            return deltas, stream.answer

    deltas, answer = asyncio.run(go())
    assert deltas == CHUNKS and [c.passage_id for c in answer.citations] == ["p03"]


def test_stream_retries_before_the_first_event_only(provider):
    with LLMClient(LLMConfig(base_url=provider.url, model="flaky", backoff=0, max_retries=2)) as client:
        assert "".join(client.stream([{"role": "user", "content": "hi"}])) == "".join(CHUNKS)
    with LLMClient(LLMConfig(base_url=provider.url, model="denied", backoff=0, max_retries=2)) as client:
        n = len(provider.requests)
        with pytest.raises(LLMError, match="HTTP 401: Incorrect API key"):
            list(client.stream([{"role": "user", "content": "hi"}]))
        assert len(provider.requests) == n + 1   # a 401 is not retried


def test_a_stream_cut_short_is_an_error_not_a_short_answer(provider):
    with LLMClient(LLMConfig(base_url=provider.url, model="broken", backoff=0, max_retries=2)) as client:
        got = []
        with pytest.raises(LLMError):
            for delta in client.stream([{"role": "user", "content": "hi"}]):
                got.append(delta)
        assert got == CHUNKS[:3]
