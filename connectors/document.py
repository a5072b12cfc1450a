"""Core types: the Document a connector yields, a Rejected record, errors and read counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from lucerag.errors import ConnectorError, RecordError  # noqa: F401 - ConnectorError: lucerag.connectors re-exports it

# The keys a JSON record's id and text are read from, first match wins: BEIR's "_id"/"text", then
# Anserini's JsonCollection "id"/"contents" and its vector collections' "docid". The one list for
# documents (connectors.jsonl) and vectors (lucerag.ingest.vectors).
ID_KEYS = ("_id", "id", "docid")
TEXT_KEYS = ("text", "contents")


class Document(BaseModel):
    """One unit of text to index; ``id`` is unique within a source."""

    id: str
    title: str = ""
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class Rejected(BaseModel):
    """A record that could not become a Document, and why."""

    source: str
    location: str
    reason: str
    record: str | None = None

    def error(self) -> RecordError:
        return RecordError(self.source, self.location, self.reason)


class Record(NamedTuple):
    """A Document with the place it was read from (used for error messages)."""

    location: str
    doc: Document


@dataclass
class ReadStats:
    """Counts of one read: ``read == accepted + rejected`` at all times."""

    read: int = 0
    rejected: int = 0

    @property
    def accepted(self) -> int:
        return self.read - self.rejected


def make_record(
    source: str,
    location: str,
    doc_id: Any,
    text: Any,
    title: Any = None,
    metadata: dict[str, Any] | None = None,
    raw: str | None = None,
) -> Record | Rejected:
    """Validate raw field values into a Record, or explain the rejection."""

    def reject(reason: str) -> Rejected:
        return Rejected(source=source, location=location, reason=reason, record=raw)

    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if doc_id is None or doc_id == "":
        return reject("missing id")
    if not isinstance(doc_id, str):
        return reject(f"id must be a string or integer, got {type(doc_id).__name__}")
    if not doc_id.strip():
        return reject("id is blank")
    if text is None:
        return reject(f"missing text (id {doc_id!r})")
    if not isinstance(text, str):
        return reject(f"text must be a string, got {type(text).__name__} (id {doc_id!r})")
    if not text.strip():
        return reject(f"empty text (id {doc_id!r})")
    if title is None:
        title = ""
    elif not isinstance(title, str):
        title = str(title)
    return Record(location, Document(id=doc_id, title=title, text=text, metadata=metadata or {}))
