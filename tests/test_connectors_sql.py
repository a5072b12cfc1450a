"""SQL connector against a real SQLite file (and through SQLAlchemy when installed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from lucerag.connectors import ConnectorError, Document, Rejected, guess_format, read_documents

QUERY = "SELECT id, title, body AS text, author, year FROM articles ORDER BY id"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "kb.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE articles (id INTEGER PRIMARY KEY, title TEXT, body TEXT, author TEXT, year INTEGER)")
    con.executemany("INSERT INTO articles VALUES (?, ?, ?, ?, ?)", [
        (1, "Lucene", "Lucene is a search library.", "ann", 1999),
        (2, None, "Anserini builds on Lucene.", "bob", 2017),
        (3, "Empty", "   ", "cy", 2020),
        (4, "Null", None, "dee", 2021),
    ])
    con.commit()
    con.close()
    return path


def test_sqlite_rows_become_documents(db: Path) -> None:
    assert guess_format(db) == "sqlite"
    rejects: list[Rejected] = []
    stream = read_documents(db, query=QUERY, on_error="skip", rejects=rejects)
    docs = list(stream)
    assert docs == [
        Document(id="1", title="Lucene", text="Lucene is a search library.", metadata={"author": "ann", "year": 1999}),
        Document(id="2", title="", text="Anserini builds on Lucene.", metadata={"author": "bob", "year": 2017}),
    ]
    assert [(r.location, r.reason) for r in rejects] == [
        ("row 3", "empty text (id '3')"), ("row 4", "missing text (id '4')")]
    assert stream.stats.read == 4 and stream.stats.rejected == 2
    assert all(r.source == str(db) for r in rejects)


def test_sqlite_fail_mode_names_row(db: Path) -> None:
    with pytest.raises(ConnectorError, match=r"kb\.sqlite: row 3: empty text"):
        list(read_documents(db, query=QUERY))


def test_sqlite_custom_columns_duplicates_and_bad_utf8(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notes (key TEXT, content BLOB, tag TEXT)")
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", [
        ("n1", b"note one", "a"), ("n1", b"dup", "b"), ("n2", b"bad \xff bytes", "c")])
    con.execute("INSERT INTO notes VALUES ('n3', CAST(X'6361FF' AS TEXT), 'd')")  # invalid UTF-8 in a TEXT value
    con.commit()
    con.close()
    rejects: list[Rejected] = []
    docs = list(read_documents(db, query="SELECT * FROM notes", id_column="key", text_column="content",
                               on_error="skip", rejects=rejects))
    assert docs == [Document(id="n1", text="note one", metadata={"tag": "a"})]
    assert [(r.location, r.reason.split(" ")[0]) for r in rejects] == [
        ("row 2", "duplicate"), ("row 3", "invalid"), ("row 4", "invalid")]


def test_sqlite_errors(db: Path, tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r"kb\.sqlite: query: OperationalError: no such table: nope"):
        list(read_documents(db, query="SELECT * FROM nope"))
    with pytest.raises(ConnectorError, match=r"missing column\(s\) \['text'\]"):
        list(read_documents(db, query="SELECT id, body FROM articles"))
    with pytest.raises(ConnectorError, match="needs a query"):
        read_documents(db)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConnectorError, match=r"junk\.db: query: DatabaseError"):
        list(read_documents(junk, query="SELECT id, text FROM docs"))


def test_sqlite_is_opened_read_only(db: Path) -> None:
    with pytest.raises(ConnectorError, match="readonly"):
        list(read_documents(db, query="INSERT INTO articles (id, body) VALUES (9, 'x') RETURNING id, body AS text"))
    assert sqlite3.connect(db).execute("SELECT count(*) FROM articles").fetchone() == (4,)


def test_sqlalchemy_url(db: Path) -> None:
    pytest.importorskip("sqlalchemy", reason="SQLAlchemy is optional (database URLs)")
    url = f"sqlite:///{db}"
    assert guess_format(url) == "sql"
    docs = list(read_documents(url, query="SELECT id, body AS text FROM articles WHERE id <= 2"))
    assert [(d.id, d.text) for d in docs] == [("1", "Lucene is a search library."), ("2", "Anserini builds on Lucene.")]
    with pytest.raises(ConnectorError, match="no such table"):
        list(read_documents(url, query="SELECT * FROM nope"))
