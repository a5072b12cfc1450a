"""What a writer may replace: only what lucerag (or Lucene) created.

A rebuild publishes a finished index by swapping it with the target path and deleting what was
there before (:mod:`lucerag.index.writer`).  That is only safe when the target holds nothing
of the user's, so before any write the target must be one of

* absent, or an empty folder;
* a lucerag index folder (lucerag's ``lucerag.json`` manifest) holding only files Lucene or
  lucerag write there: ``segments_N``, ``segments.gen``, ``pending_segments_N``, ``write.lock``,
  per-segment files ``_<segment>...`` and ``lucerag*`` files (manifest, calibrator).

A Lucene index lucerag did not write (``segments_N`` and no manifest: an Anserini index, the one a
configuration's ``bm25_path`` / ``dense_path`` names) is the user's and is refused too.

Anything else (a regular file, a symlink, a folder of documents, an index with a user's file in
it) is refused with :class:`IndexTargetError` naming the path, before anything is created,
renamed or deleted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lucerag.errors import IndexTargetError

__all__ = ["IndexTargetError", "check_replaceable", "is_index_dir"]

MANIFEST = "lucerag.json"
_LUCENE_FILE = re.compile(r"^(segments_[0-9a-z]+|segments\.gen|pending_segments_[0-9a-z]+|write\.lock|_.+|lucerag.*)$")


def is_index_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder holding a Lucene commit (``segments_N``) or a lucerag manifest."""
    p = Path(path)
    if not p.is_dir() or p.is_symlink():
        return False
    with os.scandir(p) as entries:
        return any(e.name.startswith("segments_") or e.name == MANIFEST for e in entries)


def foreign_entries(path: str | Path) -> list[str]:
    """Names in index folder ``path`` that neither Lucene nor lucerag writes (sorted)."""
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries if not (e.is_file(follow_symlinks=False)
                                                      and _LUCENE_FILE.match(e.name)))


def check_replaceable(path: str | Path) -> None:
    """Raise :class:`IndexTargetError` unless ``path`` may be replaced by a new index.

    Allowed: a missing path, an empty folder, or a lucerag index folder (with its manifest) holding
    only Lucene's and lucerag's own files."""
    p = Path(path)
    if p.is_symlink():
        raise IndexTargetError(p, "it is a symbolic link (lucerag does not replace links)")
    if not p.exists():
        return
    if not p.is_dir():
        raise IndexTargetError(p, "it is a file, not an index folder")
    try:
        with os.scandir(p) as entries:
            names = sorted(e.name for e in entries)
    except OSError as exc:
        raise IndexTargetError(p, f"it cannot be listed ({exc.strerror})") from None
    if not names:
        return
    if not is_index_dir(p):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise IndexTargetError(p, f"it is a folder that is not a Lucene or lucerag index (it holds {shown})")
    if not (p / MANIFEST).is_file():
        raise IndexTargetError(p, f"it is a Lucene index lucerag did not write (no {MANIFEST}; an Anserini index?) "
                                  "and lucerag never replaces one: choose another --index, or remove it yourself")
    foreign = foreign_entries(p)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise IndexTargetError(p, f"the index folder also holds files lucerag did not write ({shown}); "
                                  "move them out first")
