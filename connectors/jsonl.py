"""JSON Lines: BEIR corpus ``{"_id","title","text","metadata"}`` and Anserini JsonCollection
``{"id","contents"}``, detected per line; gzip-compressed files are read transparently."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .document import ID_KEYS, TEXT_KEYS, Record, Rejected, make_record
from .files import PathLike, decode_line, open_binary, utf8_error


def _pick(obj: dict[str, Any], chosen: str | None, keys: tuple[str, ...]) -> str | None:
    if chosen is not None:
        return chosen
    return next((k for k in keys if k in obj), None)


def read_jsonl(
    path: PathLike,
    *,
    id_field: str | None = None,
    text_field: str | None = None,
    title_field: str = "title",
) -> Iterator[Record | Rejected]:
    """Yield one Record (or Rejected) per non-blank line; other fields go to metadata."""
    source = str(path)
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            loc = f"line {lineno}"
            try:
                line = decode_line(raw, lineno == 1)
            except UnicodeDecodeError as e:
                yield Rejected(source=source, location=loc, reason=utf8_error(raw, e),
                               record=raw.decode("utf-8", "replace").rstrip("\r\n"))
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                yield Rejected(source=source, location=loc,
                               reason=f"malformed JSON: {e.msg.removesuffix(' at')} at column {e.colno}", record=line)
                continue
            if not isinstance(obj, dict):
                yield Rejected(source=source, location=loc,
                               reason=f"expected a JSON object, got {type(obj).__name__}", record=line)
                continue
            id_key = _pick(obj, id_field, ID_KEYS)
            text_key = _pick(obj, text_field, TEXT_KEYS)
            meta = obj.get("metadata")
            metadata = dict(meta) if isinstance(meta, dict) else {}
            for k, v in obj.items():
                if k not in (id_key, text_key, title_field) and not (k == "metadata" and isinstance(meta, dict)):
                    metadata[k] = v
            yield make_record(source, loc, obj.get(id_key) if id_key else None,
                              obj.get(text_key) if text_key else None,
                              obj.get(title_field), metadata, line)
