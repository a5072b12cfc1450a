"""The context builder: token budget with a real tokenizer, near-duplicates, citations, no-passage case."""

import pytest

from lucerag.rag.context import NO_CONTEXT_NOTE, ContextBuilder, cited_numbers, shingles, similarity, token_counter
from lucerag.passage import Passage


def passage(pid, text, rank, title="", **meta):
    return Passage(id=pid, text=text, title=title, rank=rank, score=1.0 / rank, metadata=meta)


TEXTS = [
    "Lucene stores an inverted index: for each term the list of documents that contain it.",
    "HNSW builds a layered proximity graph; search descends the layers greedily towards the query vector.",
    "Reciprocal rank fusion adds one over sixty plus the rank of each list a document appears in.",
    "BM25 saturates term frequency with k1 and normalises document length with b.",
]


def test_citations_number_passages_and_map_back_to_documents():
    ps = [passage("doc1#0", TEXTS[0], 1, "Lucene", parent_id="doc1", chunk_index=0),
          passage("doc2", TEXTS[1], 2, "HNSW")]
    ctx = ContextBuilder(max_tokens=1000).build("what is an inverted index?", ps)
    assert [c.number for c in ctx.citations] == [1, 2]
    assert [(c.passage_id, c.doc_id) for c in ctx.citations] == [("doc1#0", "doc1"), ("doc2", "doc2")]
    user = ctx.messages[-1].content
    assert ctx.messages[0].role == "system" and ctx.messages[1].role == "user"
    assert "[1] Lucene (id: doc1#0)\n" + TEXTS[0] in user and "[2] HNSW (id: doc2)" in user
    assert user.index("[1]") < user.index("[2]") and user.rstrip().endswith("Question: what is an inverted index?")
    assert not ctx.empty and ctx.citation(2).title == "HNSW"


def test_prompt_stays_within_the_token_budget_with_the_real_tokenizer():
    count = token_counter()
    ps = [passage(f"p{i}", " ".join(TEXTS) + f" extra words number {i}", i + 1) for i in range(10)]
    for budget in (150, 300, 600):
        ctx = ContextBuilder(max_tokens=budget, dedupe_threshold=None).build("how does search work?", ps)
        measured = sum(count(m.content) + 4 for m in ctx.messages)
        assert measured == ctx.prompt_tokens <= budget
        assert ctx.citations and ctx.dropped  # something fitted, the rest did not
        assert len(ctx.citations) + len(ctx.dropped) == 10
    wide = ContextBuilder(max_tokens=600, dedupe_threshold=None).build("q", ps)
    narrow = ContextBuilder(max_tokens=300, dedupe_threshold=None).build("q", ps)
    assert len(wide.citations) > len(narrow.citations)


def test_a_long_passage_is_cut_at_a_word_boundary_to_fit():
    long_text = " ".join(TEXTS * 20)
    ctx = ContextBuilder(max_tokens=200).build("q", [passage("big", long_text, 1)])
    assert ctx.prompt_tokens <= 200 and ctx.citations[0].truncated
    body = ctx.messages[-1].content
    assert body.count(" ...") == 1 and long_text not in body


def test_near_duplicates_are_dropped_keeping_the_better_rank():
    near = TEXTS[0].replace("Lucene", "Apache Lucene")
    ps = [passage("a", TEXTS[0], 1), passage("b", TEXTS[1], 2), passage("c", near, 3), passage("a", TEXTS[0], 4)]
    ctx = ContextBuilder(max_tokens=2000).build("q", ps)
    assert [c.passage_id for c in ctx.citations] == ["a", "b"]
    assert ctx.duplicates == ["c", "a"]
    assert similarity(shingles(TEXTS[0]), shingles(near)) >= 0.8 > similarity(shingles(TEXTS[0]), shingles(TEXTS[1]))
    kept = ContextBuilder(max_tokens=2000, dedupe_threshold=None).build("q", ps[:3])
    assert len(kept.citations) == 3


def test_no_relevant_passage_says_so_instead_of_inventing():
    ctx = ContextBuilder().build("who won the 1904 chess olympiad?", [])
    assert ctx.empty and ctx.citations == []
    assert NO_CONTEXT_NOTE in ctx.messages[-1].content
    assert "do not answer from memory" in ctx.messages[-1].content


def test_tokenizer_choices():
    assert token_counter(lambda s: 7)("anything") == 7

    class Tiktokenish:
        def encode(self, text):
            return text.split()

    assert token_counter(Tiktokenish())("a b c") == 3
    assert token_counter()("tokenization") >= 1
    with pytest.raises(TypeError):
        token_counter(42)
    with pytest.raises(ValueError):
        ContextBuilder(max_tokens=0)


def test_cited_numbers():
    assert cited_numbers("Lucene [2] uses HNSW [1][2]; see also [10].") == [2, 1, 10]


CHINESE = "搜索引擎先把文档切成段落，再用关键词和向量一起给段落排序，最后把最相关的段落交给模型回答问题。"


@pytest.mark.parametrize("script", ["chinese", "english"])
def test_a_passage_of_any_script_is_truncated_to_the_budget_not_dropped(script):
    """Issue 15 item 10: a ~400-token passage with max_tokens=300 is cut to fit, whatever the script."""
    count = token_counter()
    unit = {"chinese": CHINESE, "english": TEXTS[0] + " " + TEXTS[3] + " "}[script]
    text = unit
    while count(text + unit) <= 400:
        text += unit
    assert 360 <= count(text) <= 400
    ctx = ContextBuilder(max_tokens=300).build("how are passages ranked?", [passage("p", text, 1, "Search")])
    assert not ctx.empty and ctx.citations[0].truncated and ctx.dropped == []
    assert 295 <= ctx.prompt_tokens <= 300
    assert sum(count(m.content) + 4 for m in ctx.messages) == ctx.prompt_tokens
    kept = ctx.messages[-1].content.split("(id: p)\n", 1)[1].split(" ...", 1)[0]
    assert len(kept) > len(text) // 2 and text.startswith(kept)


def test_text_without_spaces_is_cut_by_any_token_counter():
    """Thai is written without spaces; here a counter of one token per character stands in for an
    LLM tokenizer (the default encoder's maps a whole Thai run to one unknown token)."""
    text = "เครื่องมือค้นหาแบ่งเอกสารเป็นย่อหน้าแล้วจัดอันดับด้วยคำสำคัญและเวกเตอร์" * 12
    ctx = ContextBuilder(max_tokens=800, tokenizer=len).build("q", [passage("p", text, 1)])
    assert ctx.citations[0].truncated and ctx.prompt_tokens == 800 and len(text) > 800
