"""Pack retrieved passages into an LLM prompt with numbered citations.

``ContextBuilder.build(query, passages)`` returns a :class:`Context`: chat messages for an
OpenAI-compatible API and the citations ``[n] -> passage id, document id, title``. It

- counts tokens with a real tokenizer (the encoder's ``tokenizer.json`` by default, or any
  ``tokenizers.Tokenizer``, tiktoken encoding or callable) and keeps the whole prompt within
  ``max_tokens``;
- drops near-duplicate passages (word-shingle Jaccard similarity >= ``dedupe_threshold``), keeping
  the better-ranked one;
- keeps rank order, numbers citations 1..n in prompt order, and truncates the last passage by
  tokens when only part of it fits (at a word boundary where the script has spaces, at a character
  otherwise: a Chinese passage is cut like an English one, not dropped);
- says plainly that no relevant passage was found when there is none, and tells the model not to
  answer from memory, instead of inventing context.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from pydantic import BaseModel, Field

from lucerag.passage import Passage

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources in the user's message. "
    "Cite the sources you use with their numbers in square brackets, e.g. [1] or [2][3]. "
    "If the sources do not contain the answer, say that you do not know; do not make one up."
)
NO_CONTEXT_NOTE = ("No relevant passage was found for this question in the search index. "
                   "Say that the indexed documents do not answer it; do not answer from memory.")
USER_TEMPLATE = "Sources:\n\n{sources}\n\nQuestion: {query}"
# Chat formats add a few tokens per message (role markers); counted as a fixed allowance.
PER_MESSAGE_TOKENS = 4
# A cut inside a word moves back to the previous space when it is at most this many characters away.
WORD_SNAP = 40

TokenCounter = Callable[[str], int]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class Citation(BaseModel):
    """What ``[number]`` in the prompt (and in the model's answer) refers to."""

    number: int = Field(ge=1)
    passage_id: str
    doc_id: str                        # the source document (a chunk's parent), else the passage id
    title: str = ""
    rank: int
    score: float
    p_relevant: float | None = None
    truncated: bool = False            # only part of the passage fitted the budget
    metadata: dict[str, Any] = Field(default_factory=dict)


class Context(BaseModel):
    """A prompt ready for an OpenAI-compatible chat API, and how it was made."""

    query: str
    messages: list[ChatMessage]
    citations: list[Citation]
    prompt_tokens: int                 # tokens of all messages, by the builder's tokenizer
    max_tokens: int
    empty: bool                        # no passage made it into the prompt
    duplicates: list[str] = Field(default_factory=list)   # passage ids dropped as near-duplicates
    dropped: list[str] = Field(default_factory=list)      # passage ids that did not fit the budget

    def citation(self, number: int) -> Citation:
        for c in self.citations:
            if c.number == number:
                return c
        raise KeyError(number)


# -- token counting ---------------------------------------------------------------------------------

def token_counter(tokenizer: Any = None) -> TokenCounter:
    """A function counting tokens of a text.

    ``tokenizer`` may be None (the default encoder's ``tokenizer.json``, offline), a path to a
    ``tokenizer.json`` (e.g. your LLM's), a ``tokenizers.Tokenizer``, a tiktoken ``Encoding`` (anything
    with ``encode(str) -> list``), or a callable ``str -> int``.
    """
    if tokenizer is None:
        return _default_counter()
    if isinstance(tokenizer, (str, os.PathLike)):
        return _hf_counter(_load_hf(str(tokenizer)))
    from tokenizers import Tokenizer  # a core dependency

    if isinstance(tokenizer, Tokenizer):
        return _hf_counter(_untruncated(tokenizer))
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        return lambda text: len(encode(text))
    if callable(tokenizer):
        return tokenizer
    raise TypeError(f"cannot count tokens with {type(tokenizer).__name__}: give a tokenizer.json path, "
                    "a tokenizers.Tokenizer, a tiktoken encoding or a callable")


def _untruncated(tok):
    from tokenizers import Tokenizer

    if tok.truncation is None and tok.padding is None:
        return tok
    copy = Tokenizer.from_str(tok.to_str())
    copy.no_truncation()
    copy.no_padding()
    return copy


@lru_cache(maxsize=8)
def _load_hf(path: str):
    from tokenizers import Tokenizer

    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    return _untruncated(Tokenizer.from_file(str(p)))


def _hf_counter(tok) -> TokenCounter:
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


@lru_cache(maxsize=1)
def _default_counter() -> TokenCounter:
    from lucerag.models import default_model_dir

    path = Path(default_model_dir()) / "tokenizer.json"
    if not path.is_file():  # the default model is exported on first use
        from lucerag.models import load_encoder

        return _hf_counter(_untruncated(load_encoder(None).tokenizer))
    return _hf_counter(_load_hf(str(path)))


# -- near-duplicates ------------------------------------------------------------------------------

_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, n: int = 3) -> frozenset:
    words = _WORD.findall(text.lower())
    if len(words) < n:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def similarity(a: frozenset, b: frozenset) -> float:
    """Jaccard similarity of two shingle sets (1.0 for two empty texts)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


# -- the builder ----------------------------------------------------------------------------------

class ContextBuilder:
    """Turns ranked passages into chat messages within a token budget."""

    def __init__(self, max_tokens: int = 3000, *, tokenizer: Any = None, dedupe_threshold: float | None = 0.8,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT, min_passage_tokens: int = 32,
                 max_passages: int | None = None):
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        if dedupe_threshold is not None and not 0 < dedupe_threshold <= 1:
            raise ValueError("dedupe_threshold must be in (0, 1] or None")
        self.max_tokens = max_tokens
        self.count = token_counter(tokenizer)
        self.dedupe_threshold = dedupe_threshold
        self.system_prompt = system_prompt
        self.min_passage_tokens = min_passage_tokens
        self.max_passages = max_passages

    @staticmethod
    def format_source(number: int, passage: Passage, text: str | None = None) -> str:
        head = f"[{number}]"
        if passage.title:
            head += f" {passage.title}"
        return f"{head} (id: {passage.id})\n{(passage.text if text is None else text).strip()}"

    def build(self, query: str, passages: Sequence[Passage], *, max_tokens: int | None = None,
              system_prompt: str | None = None) -> Context:
        budget = self.max_tokens if max_tokens is None else max_tokens
        system = self.system_prompt if system_prompt is None else system_prompt
        kept, duplicates = self._dedupe(passages)
        fixed = (self.count(system) + self.count(USER_TEMPLATE.format(sources="", query=query))
                 + 2 * PER_MESSAGE_TOKENS)
        remaining = budget - fixed
        sources: list[str] = []
        citations: list[Citation] = []
        dropped: list[str] = []
        separator = self.count("\n\n")
        for p in kept:
            if self.max_passages is not None and len(citations) >= self.max_passages:
                dropped.append(p.id)
                continue
            number = len(citations) + 1
            block = self.format_source(number, p)
            cost = self.count(block) + (separator if sources else 0)
            truncated = False
            if cost > remaining:
                cut = self._truncate(number, p, remaining - (separator if sources else 0))
                if cut is None:
                    dropped.append(p.id)
                    remaining = -1  # nothing later goes in either: keep rank order
                    continue
                block, cost, truncated = cut, self.count(cut) + (separator if sources else 0), True
            sources.append(block)
            remaining -= cost
            citations.append(_citation(number, p, truncated))
        if sources:
            user = USER_TEMPLATE.format(sources="\n\n".join(sources), query=query)
        else:
            user = USER_TEMPLATE.format(sources=NO_CONTEXT_NOTE, query=query)
        messages = [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]
        prompt_tokens = sum(self.count(m.content) + PER_MESSAGE_TOKENS for m in messages)
        return Context(query=query, messages=messages, citations=citations, prompt_tokens=prompt_tokens,
                       max_tokens=budget, empty=not citations, duplicates=duplicates, dropped=dropped)

    def _dedupe(self, passages: Sequence[Passage]) -> tuple[list[Passage], list[str]]:
        ordered = sorted(passages, key=lambda p: p.rank)
        if self.dedupe_threshold is None:
            return list(ordered), []
        kept: list[Passage] = []
        seen: list[frozenset] = []
        duplicates: list[str] = []
        ids: set[str] = set()
        for p in ordered:
            if p.id in ids:
                duplicates.append(p.id)
                continue
            sh = shingles(p.text)
            if any(similarity(sh, s) >= self.dedupe_threshold for s in seen):
                duplicates.append(p.id)
                continue
            kept.append(p)
            seen.append(sh)
            ids.add(p.id)
        return kept, duplicates

    def _truncate(self, number: int, p: Passage, room: int) -> str | None:
        """The passage cut so that its block fits ``room`` tokens, or None when under
        ``min_passage_tokens`` would fit.

        Cuts by characters (binary search on the longest prefix whose block fits), so text written
        without spaces (Chinese, Japanese, Thai ...) is cut as finely as any; the cut then moves back
        to the last space when one lies within ``WORD_SNAP`` characters, so words stay whole."""
        if room < self.min_passage_tokens:
            return None
        text = p.text.strip()

        def block(n: int) -> str:
            return self.format_source(number, p, text[:n].rstrip() + " ...")

        lo, hi, best = 1, len(text) - 1, 0
        while lo <= hi:  # binary search on the number of characters kept
            mid = (lo + hi) // 2
            if self.count(block(mid)) <= room:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if not best:
            return None
        if not text[best].isspace():  # cut inside a word: back to the space before it, if near
            space = max(text.rfind(" ", 0, best), text.rfind("\n", 0, best), text.rfind("\t", 0, best))
            if space > 0 and best - space <= WORD_SNAP:
                best = space
        return block(best)


def _citation(number: int, p: Passage, truncated: bool) -> Citation:
    meta = p.metadata or {}
    doc_id = str(meta.get("parent_id") or meta.get("doc_id") or p.id)
    return Citation(number=number, passage_id=p.id, doc_id=doc_id, title=p.title, rank=p.rank, score=p.score,
                    p_relevant=getattr(p, "p_relevant", None), truncated=truncated,
                    metadata={k: v for k, v in meta.items() if k in ("url", "source", "path", "chunk_index")})


_CITE = re.compile(r"\[(\d{1,3})\]")


def cited_numbers(text: str) -> list[int]:
    """Citation numbers used in a model's answer, in first-use order."""
    return list(dict.fromkeys(int(m) for m in _CITE.findall(text)))
