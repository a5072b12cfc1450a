"""One write lock per index, shared by every writer (rebuild, append, import-vectors, delete).

Lucene's own ``write.lock`` lives inside the index folder, but a rebuild writes into a hidden
sibling folder and swaps it in at the end, so the two never meet: a rebuild could swap its index
in under a running append.  This lock lives beside the index instead, in a file the swap never
touches: ``<parent>/.<name>.lucerag.lock``.  It is an OS-level ``flock`` on that file, taken
before the first write and released on close, so it dies with its process (a SIGKILLed writer
never blocks the next one).  The holder removes the lock file before it lets go, and a writer
that wins the ``flock`` checks that the file it locked is still the one at the path (else it
locked a file the previous holder had just removed, and tries again), so no lock file is left
beside the index and no two writers can hold locks on different files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from lucerag.errors import IndexLockedError

__all__ = ["IndexLockedError", "WriteLock", "lock_path"]


def lock_path(index: str | Path) -> Path:
    """The lock file of index folder ``index``: ``.<name>.lucerag.lock`` in its parent folder."""
    p = Path(os.path.abspath(index))
    return p.with_name(f".{p.name}.lucerag.lock")


class WriteLock:
    """Exclusive, non-blocking write lock on an index path (``with WriteLock(path): ...``).

    Raises :class:`IndexLockedError` (naming the index and the holder's process id) when any
    writer holds it, in this process or another."""

    def __init__(self, index: str | Path):
        self.index = Path(index)
        self.path = lock_path(index)
        self._fd: int | None = None

    def acquire(self) -> "WriteLock":
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise IndexLockedError(f"{self.index} is being written by another process{holder}: "
                                       "wait for it to finish") from None
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the previous holder removed this file after we opened it: lock the new one
        else:  # pragma: no cover - would need 100 holders in a row to finish between open and flock
            raise IndexLockedError(f"{self.index}: could not take the write lock {self.path}")
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                if _same_file(fd, self.path):
                    os.unlink(self.path)  # removed while still held: a waiting opener sees it is stale
            os.close(fd)  # closing the descriptor drops the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "WriteLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # a writer dropped without close() must not keep the lock
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    """Whether descriptor ``fd`` is the file now at ``path`` (same device and inode)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip() or "0")
        if pid:
            return f" (process {pid})"
    return ""
