"""Opening input files: existence checks and transparent gzip."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .document import ConnectorError

PathLike = str | os.PathLike[str]


def require_file(path: PathLike) -> Path:
    """Return ``path`` as a Path, or raise ConnectorError if it is not a readable file."""
    p = Path(path)
    if not p.exists():
        raise ConnectorError(str(p), "", "no such file")
    if not p.is_file():
        raise ConnectorError(str(p), "", "not a file")
    return p


def open_binary(path: PathLike) -> BinaryIO:
    """Open a file for binary line reading; gzip is detected from its magic bytes."""
    p = require_file(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(2)
        if magic == b"\x1f\x8b":
            return gzip.open(p, "rb")  # type: ignore[return-value]
        return open(p, "rb", buffering=1 << 20)
    except OSError as e:
        raise ConnectorError(str(p), "", f"cannot open: {e.strerror or e}") from e


def decode_line(raw: bytes, first: bool) -> str:
    """Decode one line as strict UTF-8 (dropping a leading BOM); raises UnicodeDecodeError."""
    line = raw.decode("utf-8")
    if first and line.startswith("\ufeff"):
        line = line[1:]
    return line.rstrip("\r\n")


def utf8_error(raw: bytes, e: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 at byte {e.start} of the line ({raw[e.start:e.start + 4]!r})"


def text_lines(path: PathLike) -> Iterator[tuple[int, str]]:
    """Non-blank decoded lines with their 1-based numbers; invalid UTF-8 is an error."""
    with open_binary(path) as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = decode_line(raw, lineno == 1)
            except UnicodeDecodeError as e:
                raise ConnectorError(str(path), f"line {lineno}", f"invalid UTF-8 at byte {e.start}") from e
            if line.strip():
                yield lineno, line
