"""BEIR folders, TREC topics/qrels: small files made here, plus the shared real data when present."""

from __future__ import annotations

from pathlib import Path

import pytest
from lucerag.connectors import ConnectorError, guess_format, read_documents
from lucerag.eval.topics import read_beir_qrels, read_beir_queries, read_trec_qrels, read_trec_topics

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SLICE = SHARED / "msmarco-dl19-5k"
TOPICS = SHARED / "topics-and-qrels"
needs_slice = pytest.mark.skipif(not (SLICE / "corpus.jsonl").is_file(), reason=f"shared data absent: {SLICE}")
needs_topics = pytest.mark.skipif(not TOPICS.is_dir(), reason=f"shared data absent: {TOPICS}")


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        '{"_id": "d1", "title": "T", "text": "one", "metadata": {}}\n{"_id": "d2", "title": "", "text": "two"}\n')
    (tmp_path / "queries.jsonl").write_text(
        '{"_id": "q1", "text": "first query", "metadata": {}}\n{"_id": 2, "text": "q2"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n2\td2\t1\n")
    (tmp_path / "qrels.tsv").write_text("q1\td1\t1\n")
    return tmp_path


def test_beir_folder(beir: Path) -> None:
    assert guess_format(beir) == "beir"
    assert [(d.id, d.title, d.text) for d in read_documents(beir)] == [("d1", "T", "one"), ("d2", "", "two")]
    assert read_beir_queries(beir) == {"q1": "first query", "2": "q2"}
    assert read_beir_qrels(beir) == {"q1": {"d1": 2, "d2": 0}, "2": {"d2": 1}}
    assert read_beir_qrels(beir, split="dev") == {"q1": {"d1": 1}}  # no qrels/dev.tsv: falls back to qrels.tsv


def test_beir_errors(beir: Path, tmp_path: Path) -> None:
    (beir / "qrels" / "test.tsv").write_text("q1\td1\t2\nq1\td2\thigh\n")
    with pytest.raises(ConnectorError, match=r"test\.tsv: line 2: expected 'query-id"):
        read_beir_qrels(beir)
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "ok"}\n{"id": "q2"}\n')
    with pytest.raises(ConnectorError, match=r"queries\.jsonl: line 2"):
        read_beir_queries(beir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConnectorError, match="no corpus.jsonl"):
        list(read_documents(empty, format="beir"))


def test_trec_topics_and_qrels(tmp_path: Path) -> None:
    topics = tmp_path / "topics.txt"
    topics.write_text("101\twhat is lucene\n2\t Androgen receptor define\n\n")
    assert read_trec_topics(topics) == {"101": "what is lucene", "2": "Androgen receptor define"}
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("101 0 d1 2\n101 Q0 d2 0\n102 0 d9 1\n")
    assert read_trec_qrels(qrels) == {"101": {"d1": 2, "d2": 0}, "102": {"d9": 1}}
    qrels.write_text("101 0 d1 2\n101 0 d2\n")
    with pytest.raises(ConnectorError, match=r"qrels\.txt: line 2: expected 'qid 0 docid grade'"):
        read_trec_qrels(qrels)
    topics.write_text("101\n")
    with pytest.raises(ConnectorError, match=r"topics\.txt: line 1"):
        read_trec_topics(topics)


@needs_slice
def test_shared_msmarco_slice() -> None:
    stream = read_documents(SLICE / "corpus.jsonl")
    docs = list(stream)
    assert len(docs) == 5000 and stream.stats.read == 5000 and stream.stats.rejected == 0
    assert len({d.id for d in docs}) == 5000 and all(d.id.isdigit() and d.text.strip() for d in docs)
    queries = read_beir_queries(SLICE)
    qrels = read_beir_qrels(SLICE)
    assert len(queries) == 50 and len(qrels) == 43 and set(qrels) <= set(queries)
    assert sum(len(v) for v in qrels.values()) in (4101, 4102)
    assert all(1 <= g <= 3 for v in qrels.values() for g in v.values())
    ids = {d.id for d in docs}
    assert all(doc in ids for v in qrels.values() for doc in v)  # every judged passage is in the slice


@needs_topics
def test_shared_trec_files() -> None:
    dev = read_trec_topics(TOPICS / "topics.msmarco-passage.dev-subset.txt")
    assert len(dev) == 6980 and dev["2"] == "Androgen receptor define"
    dl19 = read_trec_topics(TOPICS / "topics.dl19-passage.txt")
    dl19_qrels = read_trec_qrels(TOPICS / "qrels.dl19-passage.txt")
    assert len(dl19) == 43 and set(dl19_qrels) == set(dl19)
    assert sum(len(v) for v in dl19_qrels.values()) == 9260
    assert {g for v in dl19_qrels.values() for g in v.values()} == {0, 1, 2, 3}
    dev_qrels = read_trec_qrels(TOPICS / "qrels.msmarco-passage.dev-subset.txt")
    assert set(dev_qrels) <= set(dev) and len(dev_qrels) == 6980


# -- issue 15 item 5: repeated ids, conflicting judgments and misplaced spaces are errors ----------

def test_repeated_query_ids_are_errors_naming_file_and_line(tmp_path: Path, beir: Path) -> None:
    topics = tmp_path / "topics.tsv"
    topics.write_text("1\tfirst question\n2\tsecond\n1\tfirst question again\n")
    with pytest.raises(ConnectorError, match=r"topics\.tsv: line 3: query id '1' is repeated \(first on line 1\)"):
        read_trec_topics(topics)
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n{"_id": "q2", "text": "b"}\n'
                                        '{"_id": "q2", "text": "c"}\n')
    with pytest.raises(ConnectorError, match=r"queries\.jsonl: line 3: query id 'q2' is repeated"):
        read_beir_queries(beir)


def test_a_pair_judged_twice_with_different_grades_is_an_error(tmp_path: Path, beir: Path) -> None:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("1 0 d1 2\n1 0 d2 0\n1 0 d1 2\n")   # the same grade twice: accepted
    assert read_trec_qrels(qrels) == {"1": {"d1": 2, "d2": 0}}
    qrels.write_text("1 0 d1 2\n1 0 d2 0\n1 0 d1 0\n")
    with pytest.raises(ConnectorError, match=r"qrels\.txt: line 3: query '1' judges document 'd1' 0, "
                                             r"but line 1 judged it 2"):
        read_trec_qrels(qrels)
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td1\t0\n")
    with pytest.raises(ConnectorError, match=r"test\.tsv: line 3: query 'q1' judges document 'd1' 0"):
        read_beir_qrels(beir)


def test_a_space_where_a_tab_belongs_is_an_error_not_zero_metrics(beir: Path) -> None:
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n1\t 0 31715818\t1\n")
    with pytest.raises(ConnectorError, match=r"test\.tsv: line 3: corpus-id ' 0 31715818' holds whitespace"):
        read_beir_qrels(beir)
    (beir / "qrels" / "test.tsv").write_text("q1\td1 \t1\n")
    with pytest.raises(ConnectorError, match=r"test\.tsv: line 1: corpus-id 'd1 ' holds whitespace"):
        read_beir_qrels(beir)


@needs_topics
def test_the_shared_topics_and_qrels_pass_the_stricter_readers() -> None:
    """The real files hold no repeated query, no conflicting judgment and no misplaced space."""
    for path in sorted(TOPICS.glob("qrels.*.txt")):
        assert len(read_trec_qrels(path)) > 40
    for path in sorted(TOPICS.glob("topics.*.txt")):
        assert len(read_trec_topics(path)) > 40
    scifact = SHARED / "beir-scifact"
    if (scifact / "queries.jsonl").is_file():
        assert len(read_beir_queries(scifact)) > 100 and len(read_beir_qrels(scifact)) > 100
