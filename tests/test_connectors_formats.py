"""JSONL / TSV / CSV connectors, format guessing, error policy and read counts."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pytest
from lucerag.connectors import (
    ConnectorError,
    Document,
    Rejected,
    RejectsFile,
    guess_format,
    read_documents,
)
from lucerag.connectors.dedupe import SeenIds


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n" for ln in lines))
    return path


def jl(**obj: object) -> str:
    return json.dumps(obj)


# --- JSONL -----------------------------------------------------------------------------------

def test_jsonl_beir_and_anserini_lines_detected_per_line(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "c.jsonl", [
        jl(_id="d1", title="T1", text="first text", metadata={"url": "u1"}),
        "",
        jl(id="d2", contents="second text", lang="en"),
        jl(id=3, contents="integer id"),
    ])
    stream = read_documents(p)
    docs = list(stream)
    assert [d.id for d in docs] == ["d1", "d2", "3"]
    assert docs[0] == Document(id="d1", title="T1", text="first text", metadata={"url": "u1"})
    assert docs[1].title == "" and docs[1].text == "second text" and docs[1].metadata == {"lang": "en"}
    assert (stream.stats.read, stream.stats.rejected, stream.stats.accepted) == (3, 0, 3)


def test_jsonl_gz_and_bom(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl.gz"
    with gzip.open(p, "wb") as f:
        f.write(("\ufeff" + jl(_id="a", text="alpha") + "\n" + jl(_id="b", text="beta") + "\n").encode())
    assert guess_format(p) == "jsonl.gz"
    assert [d.text for d in read_documents(p)] == ["alpha", "beta"]


def test_jsonl_custom_fields(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "c.jsonl", [jl(pid="x", body="hello", name="N")])
    [doc] = read_documents(p, id_field="pid", text_field="body", title_field="name")
    assert (doc.id, doc.text, doc.title, doc.metadata) == ("x", "hello", "N", {})


@pytest.mark.parametrize(("line", "reason"), [
    (b'{"_id": "x", "text": "unterminated', "malformed JSON: Unterminated string starting at column 22"),
    (b'{"_id": "x" "text": "t"}', "malformed JSON: Expecting ',' delimiter at column 13"),
    (jl(title="no id", text="t").encode(), "missing id"),
    (jl(_id="x", title="no text").encode(), "missing text"),
    (jl(_id="x", text="   \n ").encode(), "empty text"),
    (b'{"_id": "x", "text": "caf\xe9"}', "invalid UTF-8"),
    (b'["not", "an", "object"]', "expected a JSON object"),
    (jl(_id=["x"], text="t").encode(), "id must be a string"),
])
def test_jsonl_bad_line_fails_naming_file_and_line(tmp_path: Path, line: bytes, reason: str) -> None:
    p = write_lines(tmp_path / "bad.jsonl", [jl(_id="ok1", text="fine"), line, jl(_id="ok2", text="fine")])
    stream = read_documents(p)
    assert next(stream).id == "ok1"  # records before the bad one are delivered
    with pytest.raises(ConnectorError) as exc:
        next(stream)
    msg = str(exc.value)
    assert str(p) in msg and "line 2" in msg and reason in msg
    assert " at at " not in msg
    assert exc.value.location == "line 2"


def test_duplicate_ids_fail_and_skip(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "dup.jsonl", [jl(_id="a", text="1"), jl(_id="b", text="2"), jl(_id="a", text="3")])
    with pytest.raises(ConnectorError, match=r"dup\.jsonl: line 3: duplicate id 'a'"):
        list(read_documents(p))
    rejects: list[Rejected] = []
    stream = read_documents(p, on_error="skip", rejects=rejects)
    assert [d.text for d in stream] == ["1", "2"]
    assert [(r.location, r.reason) for r in rejects] == [("line 3", "duplicate id 'a'")]
    assert json.loads(rejects[0].record or "")["text"] == "3"
    assert list(read_documents(p, check_duplicates=False))[2].text == "3"


def test_skip_mode_reconciles_counts_and_writes_rejects_file(tmp_path: Path) -> None:
    good = [jl(_id=f"d{i}", text=f"text {i}") for i in range(3000)]
    bad = [b"{oops", jl(_id="d5", text="again").encode(), jl(_id="e", text="").encode(), b'{"_id":"f","text":"\xff"}']
    lines: list[str | bytes] = good[:1000] + bad[:2] + good[1000:2500] + bad[2:] + good[2500:]
    p = write_lines(tmp_path / "mixed.jsonl", lines)
    out = tmp_path / "rejects.jsonl"
    with RejectsFile(out) as sink:
        stream = read_documents(p, on_error="skip", rejects=sink)
        ids = [d.id for d in stream]
    assert ids == [f"d{i}" for i in range(3000)]
    assert stream.stats.read == 3004 and stream.stats.rejected == 4
    assert stream.stats.read == len(ids) + stream.stats.rejected
    written = [Rejected.model_validate_json(ln) for ln in out.read_text().splitlines()]
    assert sink.count == 4
    assert [r.location for r in written] == ["line 1001", "line 1002", "line 2503", "line 2504"]
    assert [r.reason.split(" ")[0] for r in written] == ["malformed", "duplicate", "empty", "invalid"]


def test_callable_rejects_and_bad_on_error(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "c.jsonl", [jl(_id="a", text=""), jl(_id="b", text="ok")])
    seen: list[str] = []
    assert [d.id for d in read_documents(p, on_error="skip", rejects=lambda r: seen.append(r.reason))] == ["b"]
    assert seen == ["empty text (id 'a')"]
    with pytest.raises(ValueError, match="on_error"):
        read_documents(p, on_error="ignore")  # type: ignore[arg-type]


def test_streaming_is_lazy_and_constant_memory(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    n = 30_000
    with open(p, "w") as f:
        for i in range(n):
            f.write(jl(_id=str(i), text=f"word{i} " * 120) + "\n")
        f.write("{broken\n")
    stream = read_documents(p)
    assert next(stream).id == "0"  # the broken last line is not read yet
    tracemalloc.start()
    count = 1
    with pytest.raises(ConnectorError, match=f"line {n + 1}"):
        for _ in stream:
            count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == n
    assert p.stat().st_size > 30_000_000
    assert peak < 10_000_000, peak  # one batch of records and the id hashes, not the file


def test_seen_ids_many_batches() -> None:
    seen = SeenIds()
    for start in range(0, 50_000, 1000):
        assert not seen.add_batch([str(i) for i in range(start, start + 1000)]).any()
    assert len(seen) == 50_000
    dup = seen.add_batch(["49999", "new", "new", "0", "other"])
    assert dup.tolist() == [True, False, True, True, False]
    assert len(seen) == 50_002


# --- TSV ------------------------------------------------------------------------------------

def test_tsv_msmarco_collection(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "collection.tsv", ["0\tThe presence of communication", "1\tsecond\twith a tab", ""])
    docs = list(read_documents(p))
    assert [(d.id, d.text) for d in docs] == [("0", "The presence of communication"), ("1", "second\twith a tab")]


def test_tsv_title_column_and_header(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "t.tsv", ["7\tMy title\tbody text"])
    [d] = read_documents(p, columns=("id", "title", "text"))
    assert (d.id, d.title, d.text) == ("7", "My title", "body text")
    h = write_lines(tmp_path / "h.tsv", ["text\tid\tsource", "hello\tx1\tweb"])
    [d] = read_documents(h, header=True)
    assert (d.id, d.text, d.metadata) == ("x1", "hello", {"source": "web"})


def test_tsv_errors(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "c.tsv", ["1\tok", "no-tab-here", b"3\t\xc3(", "4\t ", "1\tdup"])
    rejects: list[Rejected] = []
    assert [d.id for d in read_documents(p, on_error="skip", rejects=rejects)] == ["1"]
    assert [(r.location, r.reason.split(" ")[0]) for r in rejects] == [
        ("line 2", "expected"), ("line 3", "invalid"), ("line 4", "empty"), ("line 5", "duplicate")]
    with pytest.raises(ConnectorError, match=r"c\.tsv: line 2: expected 2 tab-separated fields"):
        list(read_documents(p))
    with pytest.raises(ConnectorError, match="missing column"):
        list(read_documents(p, columns=("id", "title")))


# --- CSV ------------------------------------------------------------------------------------

def test_csv_columns_and_metadata(tmp_path: Path) -> None:
    p = tmp_path / "docs.csv"
    p.write_text('doc,headline,body,author\nA1,"Hello, world","multi\nline ""quoted"" body",ann\nA2,,plain,bob\n')
    docs = list(read_documents(p, id_column="doc", text_column="body", title_column="headline"))
    assert docs[0] == Document(id="A1", title="Hello, world", text='multi\nline "quoted" body',
                               metadata={"author": "ann"})
    assert (docs[1].id, docs[1].title, docs[1].metadata) == ("A2", "", {"author": "bob"})
    d = next(read_documents(p, id_column="doc", text_column="body", metadata_columns=[]))
    assert d.metadata == {} and d.title == ""


def test_csv_errors_name_row(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_bytes(b"id,text\n1,fine\n2\n3,caf\xe9\n4,\n1,again\n5,\"big " + b"x" * 300_000 + b'"\n')
    rejects: list[Rejected] = []
    docs = list(read_documents(p, on_error="skip", rejects=rejects))
    assert [d.id for d in docs] == ["1", "5"] and len(docs[1].text) == 300_004
    assert [r.location for r in rejects] == ["row 2 (line 3)", "row 3 (line 4)", "row 4 (line 5)", "row 5 (line 6)"]
    assert [r.reason.split(" ")[0] for r in rejects] == ["expected", "invalid", "empty", "duplicate"]
    assert "café" not in (rejects[1].record or "") and "caf\ufffd" in (rejects[1].record or "")
    with pytest.raises(ConnectorError, match=r"bad\.csv: line 1: missing column\(s\) \['body'\]"):
        list(read_documents(p, text_column="body"))


# --- format guessing and entry point --------------------------------------------------------

def test_guess_format(tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text(jl(_id="a", text="x") + "\n")
    (tmp_path / "plain").mkdir()
    cases = {"a.jsonl": "jsonl", "A.JSONL.GZ": "jsonl.gz", "c.tsv": "tsv", "c.tsv.gz": "tsv", "d.csv": "csv",
             "e.db": "sqlite", "e.sqlite3": "sqlite", "f.pdf": "folder", "g.md": "folder"}
    for name, fmt in cases.items():
        assert guess_format(tmp_path / name) == fmt, name
    assert guess_format(beir) == "beir"
    assert guess_format(tmp_path / "plain") == "folder"
    assert guess_format("postgresql://u@h/db") == "sql"
    (tmp_path / "x.bin").write_bytes(b"\0")
    with pytest.raises(ConnectorError, match="cannot guess"):
        guess_format(tmp_path / "x.bin")
    assert [d.id for d in read_documents(beir)] == ["a"]


def test_entry_point_errors(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match="no such file"):
        read_documents(tmp_path / "missing.jsonl")
    p = write_lines(tmp_path / "c.jsonl", [jl(_id="a", text="x")])
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        read_documents(p, format="xml")
    with pytest.raises(TypeError):
        list(read_documents(p, no_such_option=1))
    with pytest.raises(ConnectorError, match="needs a query"):
        read_documents(p, format="sqlite")


def test_close_stops_the_stream(tmp_path: Path) -> None:
    p = write_lines(tmp_path / "c.jsonl", [jl(_id=str(i), text="x") for i in range(5000)])
    stream = read_documents(p)
    assert next(stream).id == "0"
    stream.close()
    with pytest.raises(StopIteration):
        next(stream)
    assert stream.stats.read == 1  # counts records handed on, not the batch read ahead
