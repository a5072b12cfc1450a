"""Metadata filter fields: which Lucene fields a passage's metadata becomes at ingest.

Each scalar metadata value is indexed (not stored; the stored ``raw`` record keeps the metadata as
it was) under a field named for its key:

=====================  ===========================  =================================================
field                  Lucene type                  values
=====================  ===========================  =================================================
``meta.<key>``         ``StringField`` (keyword)    strings (up to :data:`MAX_KEYWORD_BYTES` UTF-8
                                                    bytes) and booleans (``"true"`` / ``"false"``)
``meta_num.<key>``     ``DoublePoint``              ints and floats, strings that spell a decimal
                                                    number (CSV cells: ``"19.99"``, also kept as
                                                    keywords); ISO 8601 dates and date-times
                                                    (as seconds since 1970-01-01 UTC)
``meta_exists``        ``StringField``              every key the passage has (``exists`` filters)
=====================  ===========================  =================================================

Nested objects are flattened with dots (``{"source": {"lang": "en"}}`` -> key ``source.lang``);
a list of scalars indexes each element (a term filter matches any of them). Numbers are doubles,
exact for integers up to 2**53. ``None`` values and lists of objects are not indexed.

Strings and numbers live in different fields because Lucene requires one schema per field name
(a field cannot hold postings in one document and points in another).
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, timezone
from typing import Any, Iterable

META = "meta."            # keyword field prefix
META_NUM = "meta_num."    # numeric (DoublePoint) field prefix
META_EXISTS = "meta_exists"
MAX_KEYWORD_BYTES = 1024  # longer strings are not indexed as keywords (a filter on them is not useful)
MAX_DEPTH = 4             # nested objects deeper than this are not indexed

_RS, _US = "\x1e", "\x1f"  # record and unit separators of the encoding PassageWriter reads
# ISO 8601 dates and date-times (what datetime.fromisoformat reads): 2024-05-01, 2024-05-01T10:00:00Z, ...
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def epoch_seconds(value: str) -> float | None:
    """Seconds since 1970-01-01 UTC of an ISO 8601 date or date-time string (naive times are
    UTC); None when ``value`` is not one."""
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def decimal_number(value: str) -> float | None:
    """The number a string spells in decimal (``"19.99"``, ``"-3"``, ``"1e5"``; what a CSV cell or
    a SQL text column holds), None otherwise (``"v2"``, ``"1,000"``, ``"nan"``, ``" 7"``)."""
    if not isinstance(value, str) or len(value) > 64 or not _DECIMAL.match(value):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def flatten(metadata: dict[str, Any], prefix: str = "", depth: int = 0) -> Iterable[tuple[str, Any]]:
    """(key, scalar value) pairs of ``metadata``, nested objects joined with dots, lists expanded."""
    for key, value in metadata.items():
        key = f"{prefix}{key}"
        if isinstance(value, dict):
            if depth < MAX_DEPTH:
                yield from flatten(value, key + ".", depth + 1)
        elif isinstance(value, (list, tuple)):
            for item in value:
                if not isinstance(item, (dict, list, tuple)) and item is not None:
                    yield key, item
        elif value is not None:
            yield key, value


def fields(metadata: dict[str, Any] | str | None, kinds: dict[str, set[str]] | None = None) -> str:
    """The filter fields of one passage's metadata, encoded for ``PassageWriter.submit``.

    ``metadata`` is a dict or its JSON text. ``kinds`` (optional) collects, per key, the kinds
    indexed (``"keyword"``, ``"number"``): the index manifest records them.
    """
    if not metadata:
        return ""
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except json.JSONDecodeError:
            return ""
        if not isinstance(metadata, dict):
            return ""
    out: list[str] = []
    seen: set[str] = set()
    for key, value in flatten(metadata):
        if not key or _RS in key or _US in key:
            continue
        if key not in seen:
            seen.add(key)
            out.append(f"e{_US}{key}")
        kind = None
        if isinstance(value, bool):
            out.append(f"s{_US}{key}{_US}{'true' if value else 'false'}")
            kind = "keyword"
        elif isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                continue
            out.append(f"n{_US}{key}{_US}{float(value)!r}")
            kind = "number"
        elif isinstance(value, (datetime, date)):  # (dicts from Python callers; JSON holds strings)
            value = value.isoformat()
        if isinstance(value, str):
            if len(value) <= MAX_KEYWORD_BYTES // 4 or len(value.encode("utf-8")) <= MAX_KEYWORD_BYTES:
                if _RS not in value:
                    out.append(f"s{_US}{key}{_US}{value}")
                    kind = "keyword"
            seconds = epoch_seconds(value)
            if seconds is not None:
                out.append(f"n{_US}{key}{_US}{seconds!r}")
                if kinds is not None:
                    kinds.setdefault(key, set()).add("date")
            number = decimal_number(value)
            if number is not None:  # CSV cells and SQL text columns are strings: "19.99" ranges as a price
                out.append(f"n{_US}{key}{_US}{number!r}")
                if kinds is not None:
                    kinds.setdefault(key, set()).add("number")
        if kind is not None and kinds is not None:
            kinds.setdefault(key, set()).add(kind)
    return _RS.join(out)
