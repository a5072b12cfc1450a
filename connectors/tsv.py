"""Tab-separated text: MS MARCO ``collection.tsv`` (``pid<TAB>text``), optional title column."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from .document import ConnectorError, Record, Rejected, make_record
from .files import PathLike, decode_line, open_binary, utf8_error


def read_tsv(
    path: PathLike,
    *,
    columns: Sequence[str] = ("id", "text"),
    header: bool = False,
) -> Iterator[Record | Rejected]:
    """Yield one Record per line. ``columns`` names the fields in order: ``id`` and ``text`` are
    required, ``title`` optional, any other name goes to metadata. The last column takes the rest
    of the line, tabs included. With ``header=True`` the first line names the columns instead."""
    source = str(path)
    with open_binary(path) as f:
        cols = list(columns)
        if not header:
            _check_columns(source, cols)
        for lineno, raw in enumerate(f, 1):
            loc = f"line {lineno}"
            try:
                line = decode_line(raw, lineno == 1)
            except UnicodeDecodeError as e:
                if header and lineno == 1:
                    raise ConnectorError(source, loc, "header: " + utf8_error(raw, e)) from e
                yield Rejected(source=source, location=loc, reason=utf8_error(raw, e),
                               record=raw.decode("utf-8", "replace").rstrip("\r\n"))
                continue
            if header and lineno == 1:
                cols = [c.strip() for c in line.split("\t")]
                _check_columns(source, cols)
                continue
            if not line.strip():
                continue
            fields = line.split("\t", len(cols) - 1)
            if len(fields) < len(cols):
                yield Rejected(source=source, location=loc, record=line,
                               reason=f"expected {len(cols)} tab-separated fields ({', '.join(cols)}), "
                                      f"found {len(fields)}")
                continue
            row = dict(zip(cols, fields, strict=True))
            meta = {k: v for k, v in row.items() if k not in ("id", "text", "title")}
            yield make_record(source, loc, row["id"], row["text"], row.get("title"), meta, line)


def _check_columns(source: str, cols: list[str]) -> None:
    missing = [c for c in ("id", "text") if c not in cols]
    if missing:
        raise ConnectorError(source, "columns", f"missing column(s) {missing}; columns are {cols}")
