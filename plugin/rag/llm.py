"""A small client for OpenAI-compatible chat completion endpoints (httpx; timeouts and retries).

Works with any server speaking ``POST {base_url}/chat/completions`` (OpenAI, vLLM, llama.cpp's
server, Ollama's ``/v1``, LM Studio, ...). Settings come from arguments, the ``[llm]`` section of a
lucerag configuration, or the environment:

==========================  =======================================  =========================
setting                     environment                              default
==========================  =======================================  =========================
``base_url``                ``LUCERAG_LLM_BASE_URL``, ``OPENAI_BASE_URL``  ``https://api.openai.com/v1``
``model``                   ``LUCERAG_LLM_MODEL``, ``OPENAI_MODEL``        ``gpt-4o-mini``
``api_key``                 ``LUCERAG_LLM_API_KEY``, ``OPENAI_API_KEY``    none (no Authorization header)
``timeout``                 ``LUCERAG_LLM_TIMEOUT`` (seconds)              60
``max_retries``             ``LUCERAG_LLM_MAX_RETRIES``                    2
==========================  =======================================  =========================

Retried: connection errors, timeouts, HTTP 408, 409, 429 and 5xx (exponential back-off, honouring a
short ``Retry-After``). Not retried: other 4xx (a wrong key or model stays wrong).

Streaming (``stream``/``astream``): the request carries ``"stream": true`` and the endpoint answers
server-sent events, ``data: {chat.completion.chunk}`` lines ending with ``data: [DONE]``, as OpenAI's
API does; each chunk's ``choices[0].delta.content`` is yielded as it arrives. Retries happen only
before the first event (a half-streamed answer is never silently restarted).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from typing import Any, AsyncIterator, Iterator, Sequence

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from lucerag.errors import LLMError, LLMTimeoutError
from lucerag.rag.context import ChatMessage, Citation, Context, cited_numbers

# lucerag.lucene.jvm sets this placeholder so that importing pyserini does not fail; it is not a key.
_PLACEHOLDER_KEYS = {"unused-by-lucerag", ""}
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = None
    timeout: float = Field(60.0, gt=0, le=3600)
    connect_timeout: float = Field(10.0, gt=0, le=600)
    max_retries: int = Field(2, ge=0, le=10)
    backoff: float = Field(0.5, ge=0, le=60)   # first retry delay (seconds); doubles each retry
    temperature: float | None = Field(0.0, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1)   # completion tokens; None: the server's default

    @classmethod
    def from_env(cls, **overrides: Any) -> "LLMConfig":
        """Settings from the environment, then ``overrides`` (None values are ignored)."""
        env = os.environ

        def first(*names: str) -> str | None:
            for n in names:
                v = env.get(n)
                if v and v not in _PLACEHOLDER_KEYS:
                    return v
            return None

        values: dict[str, Any] = {}
        for key, names in (("base_url", ("LUCERAG_LLM_BASE_URL", "OPENAI_BASE_URL")),
                           ("model", ("LUCERAG_LLM_MODEL", "OPENAI_MODEL")),
                           ("api_key", ("LUCERAG_LLM_API_KEY", "OPENAI_API_KEY")),
                           ("timeout", ("LUCERAG_LLM_TIMEOUT",)),
                           ("max_retries", ("LUCERAG_LLM_MAX_RETRIES",))):
            v = first(*names)
            if v is not None:
                values[key] = v
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.api_key is not None and self.api_key.get_secret_value():
            h["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        return h


class Completion(BaseModel):
    text: str
    model: str
    finish_reason: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)


class Answer(BaseModel):
    """A generated answer with the sources it cites."""

    query: str
    text: str
    model: str
    citations: list[Citation]          # the sources the answer cites ([n] in ``text``), in first-use order
    context: Context                   # the whole prompt and every source offered
    finish_reason: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)


def _payload(config: LLMConfig, messages: Sequence[ChatMessage | dict], **extra: Any) -> dict:
    body: dict[str, Any] = {
        "model": config.model,
        "messages": [m.model_dump() if isinstance(m, ChatMessage) else dict(m) for m in messages],
    }
    if config.temperature is not None:
        body["temperature"] = config.temperature
    if config.max_tokens is not None:
        body["max_tokens"] = config.max_tokens
    body.update(extra)
    return body


def _parse(response) -> Completion:
    try:
        data = response.json()
        choice = data["choices"][0]
        text = choice["message"]["content"]
        if not isinstance(text, str):
            raise TypeError("content is not a string")
    except Exception as exc:
        raise LLMError(f"the endpoint's answer is not a chat completion ({type(exc).__name__}: {exc}): "
                       f"{response.text[:200]!r}", response.status_code) from None
    return Completion(text=text, model=str(data.get("model") or ""), finish_reason=choice.get("finish_reason"),
                      usage=data.get("usage") or {})


def _error(response) -> LLMError:
    detail = response.text[:300]
    try:
        err = response.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            detail = err["message"]
        elif isinstance(err, str):
            detail = err
    except Exception:
        pass
    return LLMError(f"LLM endpoint answered HTTP {response.status_code}: {detail}", response.status_code)


def _delay(config: LLMConfig, attempt: int, response=None) -> float:
    if response is not None:
        after = response.headers.get("retry-after")
        try:
            if after is not None:
                return min(float(after), 30.0)
        except ValueError:
            pass
    return config.backoff * (2 ** attempt) * (0.8 + 0.4 * random.random())


class LLMClient:
    """Chat completions against one OpenAI-compatible endpoint; sync and async; reuse connections."""

    def __init__(self, config: LLMConfig | None = None, **overrides: Any):
        import httpx

        self.config = config or LLMConfig.from_env(**overrides)
        self._timeout = httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout)
        self._client: httpx.Client | None = None
        self._aclient: httpx.AsyncClient | None = None

    def _sync(self):
        import httpx

        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout, headers=self.config.headers())
        return self._client

    def _async(self):
        import httpx

        if self._aclient is None:
            self._aclient = httpx.AsyncClient(timeout=self._timeout, headers=self.config.headers())
        return self._aclient

    def stream(self, messages: Sequence[ChatMessage | dict], **extra: Any) -> Iterator[str]:
        """The completion's text as it is generated (deltas). See the module's notes on streaming."""
        return _stream(self, messages, StreamedCompletion(), **extra)

    def astream(self, messages: Sequence[ChatMessage | dict], **extra: Any) -> AsyncIterator[str]:
        return _astream(self, messages, StreamedCompletion(), **extra)

    def complete(self, messages: Sequence[ChatMessage | dict], **extra: Any) -> Completion:
        import httpx

        body = _payload(self.config, messages, **extra)
        last: Exception | None = None
        for attempt in range(self.config.max_retries + 1):
            response = None
            try:
                response = self._sync().post(self.config.url, json=body)
            except httpx.TimeoutException as exc:
                last = LLMTimeoutError(f"LLM endpoint {self.config.url} timed out after {self.config.timeout:g}s "
                                       f"({attempt + 1} attempt(s))")
                last.__cause__ = exc
            except httpx.HTTPError as exc:
                last = LLMError(f"cannot reach LLM endpoint {self.config.url}: {type(exc).__name__}: {exc}")
            else:
                if response.status_code < 300:
                    return _parse(response)
                last = _error(response)
                if response.status_code not in RETRY_STATUS:
                    raise last
            if attempt < self.config.max_retries:
                time.sleep(_delay(self.config, attempt, response))
        assert last is not None
        raise last

    async def acomplete(self, messages: Sequence[ChatMessage | dict], **extra: Any) -> Completion:
        import httpx

        client = self._async()
        body = _payload(self.config, messages, **extra)
        last: Exception | None = None
        for attempt in range(self.config.max_retries + 1):
            response = None
            try:
                response = await client.post(self.config.url, json=body)
            except httpx.TimeoutException:
                last = LLMTimeoutError(f"LLM endpoint {self.config.url} timed out after {self.config.timeout:g}s "
                                       f"({attempt + 1} attempt(s))")
            except httpx.HTTPError as exc:
                last = LLMError(f"cannot reach LLM endpoint {self.config.url}: {type(exc).__name__}: {exc}")
            else:
                if response.status_code < 300:
                    return _parse(response)
                last = _error(response)
                if response.status_code not in RETRY_STATUS:
                    raise last
            if attempt < self.config.max_retries:
                await asyncio.sleep(_delay(self.config, attempt, response))
        assert last is not None
        raise last

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    def __enter__(self) -> "LLMClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StreamedCompletion:
    """What a stream accumulated: the text so far, and once it ended the finish reason and usage."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.model = ""
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.done = False

    def feed(self, line: str) -> str | None:
        """One line of the event stream; returns the text delta it carries (None: none)."""
        if not line.startswith("data:"):
            return None  # blank separators, comments (":"), event names, ids
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return None
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise LLMError(f"the endpoint's stream holds an event that is not JSON: {data[:200]!r}") from None
        if not isinstance(chunk, dict):
            raise LLMError(f"the endpoint's stream holds an event that is not a completion chunk: {data[:200]!r}")
        if "error" in chunk:
            err = chunk["error"]
            raise LLMError(f"the endpoint failed mid-stream: {err.get('message') if isinstance(err, dict) else err}")
        self.model = str(chunk.get("model") or self.model)
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choices = chunk.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        delta = (choice.get("delta") or {}).get("content")
        if delta:
            self.parts.append(delta)
            return delta
        return None

    def completion(self) -> Completion:
        return Completion(text="".join(self.parts), model=self.model, finish_reason=self.finish_reason,
                          usage=self.usage)


def _stream_lines_error(status: int, body: bytes) -> LLMError:
    class _R:  # enough of an httpx.Response for _error
        status_code = status
        text = body.decode("utf-8", "replace")

        def json(self):
            return json.loads(self.text)

    return _error(_R())


def _stream(client: "LLMClient", messages, state: StreamedCompletion, **extra: Any) -> Iterator[str]:
    import httpx

    body = _payload(client.config, messages, stream=True, **extra)
    last: Exception | None = None
    for attempt in range(client.config.max_retries + 1):
        status = None
        try:
            with client._sync().stream("POST", client.config.url, json=body) as response:
                status = response.status_code
                if status >= 300:
                    last = _stream_lines_error(status, response.read())
                    if status not in RETRY_STATUS:
                        raise last
                else:
                    for line in response.iter_lines():
                        delta = state.feed(line)
                        if delta is not None:
                            yield delta
                        if state.done:
                            break
                    _check_complete(client, state)
                    return
        except httpx.HTTPError as exc:
            last = _stream_failure(client, state, exc, attempt)  # raises once text has been streamed
        if attempt < client.config.max_retries:
            time.sleep(_delay(client.config, attempt))
    assert last is not None
    raise last


def _check_complete(client: "LLMClient", state: StreamedCompletion) -> None:
    """Raises LLMError when the stream ended without a finish_reason or ``[DONE]``."""
    if not state.done and state.finish_reason is None:
        raise LLMError(f"LLM endpoint {client.config.url} ended the stream before the answer "
                       "was complete (no finish_reason, no [DONE])")


def _stream_failure(client: "LLMClient", state: StreamedCompletion, exc: Exception, attempt: int) -> Exception:
    """The error of a failed streaming attempt, to retry with; raised at once (no retry) when text was
    already streamed, since a retry would repeat it."""
    import httpx

    url, timeout = client.config.url, client.config.timeout
    if isinstance(exc, httpx.TimeoutException):
        if state.parts:
            raise LLMTimeoutError(f"LLM endpoint {url} stopped streaming for over {timeout:g}s") from exc
        return LLMTimeoutError(f"LLM endpoint {url} timed out after {timeout:g}s ({attempt + 1} attempt(s))")
    if state.parts:
        raise LLMError(f"LLM endpoint {url} broke off the stream: {exc}") from None
    return LLMError(f"cannot reach LLM endpoint {url}: {type(exc).__name__}: {exc}")


async def _astream(client: "LLMClient", messages, state: StreamedCompletion, **extra: Any) -> AsyncIterator[str]:
    import httpx

    body = _payload(client.config, messages, stream=True, **extra)
    last: Exception | None = None
    for attempt in range(client.config.max_retries + 1):
        try:
            async with client._async().stream("POST", client.config.url, json=body) as response:
                status = response.status_code
                if status >= 300:
                    last = _stream_lines_error(status, await response.aread())
                    if status not in RETRY_STATUS:
                        raise last
                else:
                    async for line in response.aiter_lines():
                        delta = state.feed(line)
                        if delta is not None:
                            yield delta
                        if state.done:
                            break
                    _check_complete(client, state)
                    return
        except httpx.HTTPError as exc:
            last = _stream_failure(client, state, exc, attempt)  # raises once text has been streamed
        if attempt < client.config.max_retries:
            await asyncio.sleep(_delay(client.config, attempt))
    assert last is not None
    raise last


class AnswerStream:
    """A streamed answer: iterate (or ``async for``) for the text as it arrives; then ``answer``
    holds the whole :class:`Answer` with the citations the text uses (resolved at the end, since a
    ``[n]`` may arrive split over two chunks). ``context`` (the prompt and every source offered) is
    there from the start. Iterate it once; raises :class:`LLMError`/:class:`LLMTimeoutError`."""

    def __init__(self, context: Context, client: "LLMClient", **completion: Any):
        self.context = context
        self._client, self._completion = client, completion
        self._state = StreamedCompletion()
        self._answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        yield from _stream(self._client, self.context.messages, self._state, **self._completion)
        self._answer = answer_from(self.context, self._state.completion())

    async def __aiter__(self) -> AsyncIterator[str]:
        async for delta in _astream(self._client, self.context.messages, self._state, **self._completion):
            yield delta
        self._answer = answer_from(self.context, self._state.completion())

    @property
    def answer(self) -> Answer:
        """The whole answer (after the stream ended; ``RuntimeError`` before)."""
        if self._answer is None:
            raise RuntimeError("the answer is complete only after the stream has been read to its end")
        return self._answer


def answer_from(context: Context, completion: Completion) -> Answer:
    """Attach the cited sources (valid ``[n]`` in the answer) to a completion."""
    by_number = {c.number: c for c in context.citations}
    cited = [by_number[n] for n in cited_numbers(completion.text) if n in by_number]
    return Answer(query=context.query, text=completion.text, model=completion.model, citations=cited,
                  context=context, finish_reason=completion.finish_reason, usage=completion.usage)
