"""A folder of .txt/.md/.html/.htm/.pdf files, read recursively (a single file works too).

Ids are paths relative to the folder (POSIX separators); metadata holds ``path``, ``format`` and
``modified`` (ISO 8601, UTC). Hidden files and folders (``.name``) are skipped."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from .document import ConnectorError, Record, Rejected, make_record
from .extract import EXTRACTORS, ExtractionError
from .files import PathLike


def _walk(folder: Path, extensions: set[str]) -> Iterator[Path]:
    """Matching files in sorted path order (symlinked folders are not followed)."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), extensions)
        elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in extensions:
            yield Path(entry.path)


def read_folder(path: PathLike, *, extensions: Iterable[str] = tuple(EXTRACTORS)) -> Iterator[Record | Rejected]:
    """Yield one Record (or Rejected) per matching file, in sorted path order."""
    root = Path(path)
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    unknown = exts - set(EXTRACTORS)
    if unknown:
        raise ConnectorError(str(root), "", f"no extractor for {sorted(unknown)}; known: {sorted(EXTRACTORS)}")
    if root.is_file():
        if root.suffix.lower() not in exts:
            raise ConnectorError(str(root), "", f"not a {'/'.join(sorted(exts))} file")
        files: Iterable[Path] = [root]
        base = root.parent
    elif root.is_dir():
        files, base = _walk(root, exts), root
    else:
        raise ConnectorError(str(root), "", "no such file or folder")
    source = str(root)
    for file in files:
        rel = file.relative_to(base).as_posix()
        loc = f"path {rel}"
        ext = file.suffix.lower()
        try:
            modified = datetime.fromtimestamp(file.stat().st_mtime, tz=UTC)
            extracted = EXTRACTORS[ext](file)
        except (ExtractionError, OSError) as e:
            yield Rejected(source=source, location=loc, reason=str(e))
            continue
        # the file's own metadata (Markdown front matter, PDF properties), then the connector's
        # provenance keys, which a file cannot override
        metadata = {**extracted.metadata, "path": rel, "format": ext[1:],
                    "modified": modified.isoformat(timespec="seconds")}
        yield make_record(source, loc, rel, extracted.text, extracted.title, metadata)
