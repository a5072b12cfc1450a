"""``lucerag.json``: what an index was built with, so a search can check it matches."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class IndexManifest(BaseModel):
    """Build facts of a lucerag index (stored beside Lucene's files; Lucene ignores it)."""

    model_config = ConfigDict(extra="allow")
    FILENAME: ClassVar[str] = "lucerag.json"

    format: int = 1
    encoder: str | None = None          # encoder name, e.g. "all-MiniLM-L6-v2"
    encoder_sha256: str | None = None   # hash of the encoder weights
    query_prefix: str = ""
    passage_prefix: str = ""
    dim: int | None = None
    similarity: str = "DOT_PRODUCT"
    passages: int = 0
    built_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    settings: dict = Field(default_factory=dict)

    def write(self, index_dir: Path) -> None:
        (Path(index_dir) / self.FILENAME).write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, index_dir: Path) -> "IndexManifest | None":
        """The manifest of ``index_dir``, or None for an index lucerag did not build."""
        path = Path(index_dir) / cls.FILENAME
        if not path.is_file():
            return None
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: unreadable index manifest: {exc}") from None
