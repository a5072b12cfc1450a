"""``lucerag index`` column and query flags, run as a user runs them (a real process, real files)."""

import csv
import json
import sqlite3

import pytest

from test_cli import run


@pytest.fixture(scope="module")
def tickets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tickets")
    rows = [("T-1", "Printer jams", "The office printer jams on every second page of a long job.", "en"),
            ("T-2", "VPN drops", "The VPN connection drops whenever the laptop goes to sleep.", "en"),
            ("T-3", "Badge reader", "Der Ausweisleser am Eingang reagiert nicht auf neue Karten.", "de")]
    path = folder / "tickets.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ticket", "subject", "body", "lang"])
        w.writerows(rows)
    db = folder / "tickets.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (ticket TEXT, subject TEXT, body TEXT, lang TEXT)")
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", rows)
    return path, db


def test_csv_columns_are_named_by_flags(tmp_path, tickets):
    path, _ = tickets
    index = tmp_path / "idx"
    failed = run("index", "--input", path, "--index", index, "--bm25-only", check=False)
    assert failed.returncode != 0 and "--id-column/--text-column" in failed.stderr
    assert "missing column(s) ['id', 'text']" in failed.stderr
    out = run("index", "--input", path, "--index", index, "--bm25-only", "--id-column", "ticket",
              "--text-column", "body", "--title-column", "subject", "--json")
    assert json.loads(out.stdout.strip().splitlines()[-1])["indexed"] == 3
    found = run("search", "--index", index, "printer jams pages", "--k", "1", "--method", "bm25")
    assert "T-1" in found.stdout

    hits = run("search", "--index", index, "VPN printer badge", "--method", "bm25", "--json",
               "--where", '{"term": {"lang": "de"}}').stdout.splitlines()
    assert [json.loads(h)["id"] for h in hits] == ["T-3"]
    bad = run("search", "--index", index, "vpn", "--method", "bm25", "--where", '{"range": {"lang": {"gte": 1}}}', check=False)
    assert bad.returncode == 2 and "where.range.lang: 'lang' holds keyword values" in bad.stderr

    from lucerag.rag.api import RAG

    with RAG.from_index(index) as rag:
        hits = rag.retrieve("VPN printer badge", 5, method="bm25", where={"term": {"lang": "de"}})
        assert [p.id for p in hits] == ["T-3"] and hits[0].title == "Badge reader"


def test_sql_sources_need_the_query_flag(tmp_path, tickets):
    _, db = tickets
    index = tmp_path / "idx"
    failed = run("index", "--input", db, "--index", index, "--bm25-only", check=False)
    assert failed.returncode != 0 and "--query 'SELECT id, text FROM docs'" in failed.stderr
    assert "query='" not in failed.stderr
    run("index", "--input", db, "--index", index, "--bm25-only", "--query", "SELECT * FROM t",
        "--id-column", "ticket", "--text-column", "body", "--title-column", "subject")
    assert "T-2" in run("search", "--index", index, "vpn sleep", "--k", "1", "--method", "bm25").stdout


def test_flags_that_do_not_fit_the_format_are_refused(tmp_path, tickets):
    path, _ = tickets
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("some text")
    out = run("index", "--input", folder, "--index", tmp_path / "i", "--bm25-only", "--id-column", "x", check=False)
    assert out.returncode != 0 and "--id-column applies to csv, jsonl and sql sources, not folder" in out.stderr
    out = run("index", "--input", path, "--index", tmp_path / "i", "--bm25-only", "--query", "SELECT 1", check=False)
    assert out.returncode != 0 and "--query applies to sqlite/sql sources, not csv" in out.stderr


def test_help_texts_tell_the_truth():
    assert "sql" in run("index", "--help").stdout.split("--format", 1)[1].split("--", 1)[0]
    models = run("models", "--help").stdout
    assert "Export ONNX encoders" in models and "inspect" not in models
