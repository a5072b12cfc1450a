"""Rows of a SQL query: SQLite through the standard library, other databases through a
SQLAlchemy URL (``postgresql://...``; needs SQLAlchemy installed). Rows are streamed."""

from __future__ import annotations

import sqlite3
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .document import ConnectorError, Record, Rejected, make_record
from .files import PathLike, require_file


def read_sql(
    database: PathLike,
    *,
    query: str,
    id_column: str = "id",
    text_column: str = "text",
    title_column: str | None = "title",
    fetch_size: int = 1000,
) -> Iterator[Record | Rejected]:
    """Yield one Record per row of ``query``; columns other than id/text/title go to metadata.
    ``database`` is a SQLite file (opened read-only) or a SQLAlchemy URL (contains ``://``)."""
    source = str(database)
    if "://" in source:
        rows = _sqlalchemy_rows(source, query, fetch_size)
    else:
        rows = _sqlite_rows(require_file(database), query, fetch_size)
    columns = next(rows)
    missing = [c for c in (id_column, text_column) if c not in columns]
    if missing:
        rows.close()
        raise ConnectorError(source, "query", f"missing column(s) {missing}; the query returns {list(columns)}: "
                             "name the id and text columns (lucerag index --id-column/--text-column, or "
                             "rename them in the query: SELECT key AS id, body AS text ...)")
    index = {c: i for i, c in enumerate(columns)}
    title = title_column if title_column in index else None
    meta_cols = [c for c in columns if c not in (id_column, text_column, title)]
    for rownum, row in enumerate(rows, 1):
        loc = f"row {rownum}"
        text = row[index[text_column]]
        if isinstance(text, (bytes, memoryview)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as e:
                yield Rejected(source=source, location=loc,
                               reason=f"invalid UTF-8 in column {text_column!r} at byte {e.start}")
                continue
        meta = {c: _plain(row[index[c]]) for c in meta_cols}
        yield make_record(source, loc, row[index[id_column]], text,
                          row[index[title]] if title else None, meta, None)


def _plain(v: Any) -> Any:
    if isinstance(v, (bytes, memoryview)):
        return bytes(v).decode("utf-8", "replace")
    return v


def _text(b: bytes) -> str | bytes:
    """SQLite TEXT values: str, or the raw bytes when they are not valid UTF-8 (then rejected)."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b


def _sqlite_rows(path: Path, query: str, fetch_size: int) -> Generator[Sequence[Any], None, None]:
    """First yields the column names, then the rows."""
    source = str(path)
    try:
        con = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise ConnectorError(source, "", f"cannot open database: {e}") from e
    con.text_factory = _text
    try:
        try:
            cur = con.execute(query)
        except sqlite3.Error as e:
            raise ConnectorError(source, "query", f"{type(e).__name__}: {e}") from e
        if cur.description is None:
            raise ConnectorError(source, "query", "the query returns no rows (not a SELECT?)")
        yield [d[0] for d in cur.description]
        yield from _batches(cur.fetchmany, fetch_size, source)
    finally:
        con.close()


def _sqlalchemy_rows(url: str, query: str, fetch_size: int) -> Generator[Sequence[Any], None, None]:
    try:
        import sqlalchemy as sa
    except ImportError as e:
        raise ConnectorError(url, "", "SQLAlchemy is needed for database URLs: pip install sqlalchemy") from e
    try:
        engine = sa.create_engine(url)
    except Exception as e:
        raise ConnectorError(url, "", f"bad database URL: {e}") from e
    try:
        with engine.connect() as con:
            try:
                result = con.execution_options(stream_results=True).execute(sa.text(query))
            except sa.exc.SQLAlchemyError as e:
                raise ConnectorError(url, "query", str(e).splitlines()[0]) from e
            yield list(result.keys())
            yield from _batches(result.fetchmany, fetch_size, url)
    finally:
        engine.dispose()


def _batches(fetch: Any, size: int, source: str) -> Iterable[Sequence[Any]]:
    while True:
        try:
            batch = fetch(size)
        except Exception as e:
            raise ConnectorError(source, "query", f"{type(e).__name__}: {e}") from e
        if not batch:
            return
        yield from batch
