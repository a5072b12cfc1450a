"""CSV with a header row: chosen id/text/title columns, the others go to metadata."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence

from .document import ConnectorError, Record, Rejected, make_record
from .files import PathLike, require_file

_BAD_BYTES = re.compile("[\udc80-\udcff]")  # undecodable bytes under surrogateescape


def read_csv(
    path: PathLike,
    *,
    id_column: str = "id",
    text_column: str = "text",
    title_column: str | None = "title",
    metadata_columns: Sequence[str] | None = None,
    delimiter: str = ",",
) -> Iterator[Record | Rejected]:
    """Yield one Record per CSV row (quoted fields may span lines). ``title_column`` is used if
    present; ``metadata_columns`` (default: all other columns) go to metadata."""
    p = require_file(path)
    source = str(p)
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # allow multi-MB text cells
    with open(p, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise ConnectorError(source, "line 1", f"malformed CSV header: {e}") from e
        missing = [c for c in (id_column, text_column) if c not in header]
        if missing:
            raise ConnectorError(source, "line 1", f"missing column(s) {missing}; header is {header}: name the "
                                 "id and text columns (lucerag index --id-column/--text-column; "
                                 "read_csv(id_column=, text_column=))")
        index = {name: i for i, name in enumerate(header)}
        title = title_column if title_column in index else None
        meta_cols = [c for c in (metadata_columns if metadata_columns is not None else header)
                     if c in index and c not in (id_column, text_column, title)]
        rownum = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                rownum += 1
                yield Rejected(source=source, location=f"row {rownum} (line {reader.line_num})",
                               reason=f"malformed CSV: {e}")
                continue
            rownum += 1
            if not row:
                continue
            loc = f"row {rownum} (line {reader.line_num})"
            raw = delimiter.join(row)
            if len(row) != len(header):
                yield Rejected(source=source, location=loc, record=_printable(raw),
                               reason=f"expected {len(header)} fields, found {len(row)}")
                continue
            bad = _BAD_BYTES.search(raw)
            if bad:
                yield Rejected(source=source, location=loc, record=_printable(raw),
                               reason=f"invalid UTF-8 (byte 0x{ord(bad.group()) - 0xDC00:02x})")
                continue
            yield make_record(source, loc, row[index[id_column]], row[index[text_column]],
                              row[index[title]] if title else None,
                              {c: row[index[c]] for c in meta_cols}, raw)


def _printable(s: str) -> str:
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
