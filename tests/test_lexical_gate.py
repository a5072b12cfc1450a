"""The relevance filter's lexical evidence (lucerag.search.lexical): a query whose analysed terms all
occur in its top BM25 passage reaches the answerability gate; out-of-domain questions, made-up words and
nonsense stay refused; under a metadata filter the evidence is looked for within the filter only. Real JVM,
the mini corpus's real index (and one with metadata built here), the real ONNX encoder."""

import json
import re

import numpy as np
import pytest

from conftest import DATA, MINI_BEIR, mini_documents
from lucerag.eval.filter import read_query_lines
from lucerag.search.fusion import head
from lucerag.search.lexical import TermCoverage, analysed_terms

MADE_UP = ["blorftastic", "asdfgh qwerty", "xkcdq vrumple"]


def _title_words() -> list[str]:
    """Every word of the mini corpus's titles that the analyzer keeps (each one the corpus holds)."""
    titles = [json.loads(line)["title"] for line in (MINI_BEIR / "corpus.jsonl").read_text().splitlines()]
    return sorted({w for t in titles for w in re.findall(r"[A-Za-z0-9]+", t) if analysed_terms(w)})


def _decide(retriever, query, cal):
    """(kept candidate ids, best cosine) of the filter ``cal`` for ``query`` (what Retriever.filtered cuts)."""
    depth = retriever.config.fusion.depth
    c, _ = retriever.candidates(query, depth)
    fused = retriever.fuse(c)
    _, keep = cal.decide(c, fused, query, depth)
    return [c.ids[i] for i in np.flatnonzero(keep)], float(c.dense[head(c, depth)].max())


def test_term_coverage_asks_whether_the_top_bm25_passage_holds_every_term(retriever):
    coverage = TermCoverage(retriever.bm25)

    def covered(query):
        hits = retriever.bm25.search(query, 10)
        return coverage.covered(query, float(hits.scores[0]) if len(hits) else 0.0)

    assert covered("Volcanoes")                # stemmed like the index: "volcano"
    assert covered("magma volcano")            # both in p03, which BM25 ranks first
    assert not covered("magma espresso")       # each in the corpus, never in one passage
    assert not covered("blorftastic") and not covered("🍕")
    assert not covered("the of and")           # stopwords only: no term, no evidence
    # a passage holding every term but ranked below the top one is no evidence
    top = retriever.bm25.search("magma", 1)
    assert not coverage.covered("magma", float(top.scores[0]) * 1.01)


def test_one_word_queries_the_corpus_holds_are_answered(retriever):
    cal = retriever.calibrator
    assert cal is not None and cal.model == "mixture" and cal.lexical
    dense_only = cal.model_copy(update={"lexical": False})
    under_gate = []
    for word in _title_words():
        kept, best = _decide(retriever, word, cal)
        assert kept, f"{word!r} (in a title of the corpus) was refused; best cosine {best:.3f}, gate {cal.gate}"
        passages = retriever.search(word, k=5)
        assert passages, f"Retriever.search refused {word!r}"
        assert set(analysed_terms(word)) <= set(analysed_terms(f"{passages[0].title} {passages[0].text}")), \
            f"{word!r}: the first passage kept ({passages[0].id}) does not hold the word"
        if best < cal.gate:
            under_gate.append(word)
            assert _decide(retriever, word, dense_only)[0] == []  # the dense gate alone refuses it
    # the lexical evidence is what answers these: some title words are under the dense gate
    assert under_gate, "no title word was under the dense gate: this test no longer tests the lexical evidence"


def test_out_of_domain_questions_made_up_words_and_nonsense_stay_refused(retriever):
    cal = retriever.calibrator
    dense_only = cal.model_copy(update={"lexical": False})
    questions = list(read_query_lines(DATA / "ood_queries.txt").values())
    refused_before = {q for q in questions if not _decide(retriever, q, dense_only)[0]}
    refused_after = {q for q in questions if not _decide(retriever, q, cal)[0]}
    assert refused_after == refused_before and len(refused_after) >= 0.9 * len(questions)
    nonsense = list(read_query_lines(DATA / "nonsense_queries.txt").values())
    for query in MADE_UP + nonsense:
        assert retriever.search(query, k=5) == [], f"{query!r} was answered"


def test_keyword_queries_are_the_rarest_query_word_a_relevant_passage_holds(retriever):
    from lucerag.eval.keywords import keyword_queries
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries
    from lucerag.lucene.classes import CONTENTS, java

    queries, qrels = read_beir_queries(MINI_BEIR), read_beir_qrels(MINI_BEIR)
    index = retriever.bm25.index
    kw = keyword_queries(queries, qrels, index)
    assert kw and set(kw) <= set(queries)
    for qid, word in kw.items():
        assert word in re.findall(r"\w+", queries[qid])
        relevant = [d for d, g in qrels[qid].items() if g > 0]
        docs = index.docnums(relevant)
        held = set().union(*(analysed_terms(r.get("contents", "")) for r in index.records(list(docs.values()))))
        (term,) = analysed_terms(word)
        assert term in held

        def df(t):
            return int(index.reader.docFreq(java.Term(CONTENTS, t)))

        rivals = [w for w in re.findall(r"\w+", queries[qid]) if len(analysed_terms(w)) == 1
                  and analysed_terms(w)[0] in held]
        assert df(term) == min(df(analysed_terms(w)[0]) for w in rivals)


# -- the lexical evidence under a metadata filter (``where``) -------------------------------------------

KEYWORDS = "zephyr quartz"  # neither word is in the mini corpus: only the passages below hold them
EN, FR = {"term": {"lang": "en"}}, {"term": {"lang": "fr"}}
WITH_BOTH = {  # id -> (lang, text)
    "x-de": ("de", "Zephyr quartz: the zephyr quartz mines of the northern hills sell zephyr quartz crystals."),
    "x-en": ("en", "A zephyr is a soft west wind; the zephyr cooled the harbour town all summer."),  # no quartz
    "x-fr": ("fr", "An old poem names a zephyr over the sea and a grain of quartz in the sand, once each."),
}


@pytest.fixture(scope="module")
def where_retriever(tmp_path_factory, encoder):
    """The mini corpus (lang "en") and the three passages above in one real index, searched with a
    mixture calibrator (the shipped one) whose gate no query reaches (0.99): only the lexical evidence
    can answer a query, so what the filter keeps shows what the evidence said."""
    from lucerag.connectors import Document
    from lucerag.ingest.pipeline import build_index
    from lucerag.search.calibration import Calibrator
    from lucerag.search.retriever import Retriever

    docs = [d.model_copy(update={"metadata": {"lang": "en"}}) for d in mini_documents()]
    docs += [Document(id=pid, text=text, metadata={"lang": lang}) for pid, (lang, text) in WITH_BOTH.items()]
    path = tmp_path_factory.mktemp("lexical-where") / "index"
    build_index(docs, path, encoder=encoder, progress=False)
    cal = Calibrator.default().model_copy(update={"gate": 0.99, "gate_from": "",  # of this encoder, as used here
                                                  "encoder_precision": encoder.manifest.precision,
                                                  "encoder_recipe": encoder.manifest.recipe})
    assert cal.model == "mixture" and cal.lexical
    cal.save(path)
    with Retriever.from_index(path, encoder=encoder) as r:
        yield r


def _filtered_evidence(r, query, where):
    """(the lexical evidence within ``where``, without restricting the conjunction, the top BM25 hit
    within ``where``): the first is what the relevance filter must use, the second what it used to."""
    bm25 = r.bm25
    top = bm25.search(query, 1, filter=r.filter_query(where, bm25.index))
    coverage = TermCoverage(bm25)
    score = float(top.scores[0])
    return coverage.covered(query, score, r.filter_query(where, bm25.index)), coverage.covered(query, score), top


def test_a_passage_outside_the_filter_is_no_lexical_evidence(where_retriever):
    r = where_retriever
    within, whole_index, top = _filtered_evidence(r, KEYWORDS, EN)
    assert top.ids == ["x-en"] and "quartz" not in analysed_terms(WITH_BOTH["x-en"][1])
    # x-de (outside the filter) holds both words and outscores x-en: over the whole index it opens the gate
    assert whole_index, "the fixture no longer has a passage outside the filter that outscores the filtered top one"
    assert not within
    # the calibrator, as the retriever calls it, and every way in (Retriever.filtered/search, RAG)
    cal = r.calibrator
    depth = r.config.fusion.depth
    c, _ = r.candidates(KEYWORDS, depth, where=EN)
    best = float(c.dense[head(c, depth)].max())
    assert best < cal.gate
    assert cal.covered(KEYWORDS, float(c.bm25.max()), r.filter_query(EN, r.bm25.index)) is False
    assert not cal.decide(c, r.fuse(c), KEYWORDS, depth, filter=r.filter_query(EN, r.bm25.index))[1].any()
    assert r.filtered(KEYWORDS, 5, where=EN)[0].ids == []
    assert r.search(KEYWORDS, 5, where=EN) == []
    from lucerag.rag.api import RAG

    with RAG(r, workers=1, warmup=False) as rag:
        assert rag.retrieve(KEYWORDS, 5, where=EN) == []
        assert [p.id for p in rag.retrieve(KEYWORDS, 5)][:1] == ["x-de"]
    # without the filter the same query is answered, by the passage holding both words
    assert TermCoverage(r.bm25).covered(KEYWORDS, float(r.bm25.search(KEYWORDS, 1).scores[0]))
    assert r.filtered(KEYWORDS, 5)[0].ids[:1] == ["x-de"]


def test_a_filtered_top_passage_holding_every_term_still_opens_the_gate(where_retriever):
    r = where_retriever
    within, _, top = _filtered_evidence(r, KEYWORDS, FR)
    assert top.ids == ["x-fr"] and within
    # the evidence is x-fr's own score, below x-de's: the filtered top score, not the index's, is compared
    assert float(top.scores[0]) < float(r.bm25.search(KEYWORDS, 1).scores[0])
    assert r.filtered(KEYWORDS, 5, where=FR)[0].ids == ["x-fr"]
    assert [p.id for p in r.search(KEYWORDS, 5, where=FR)] == ["x-fr"]
