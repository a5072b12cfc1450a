"""Write passages into one Lucene index holding both views: BM25 text and HNSW vectors.

Per passage (the layout Anserini's own searchers read):
``id`` (StringField, stored, plus binary doc values), ``parent_id`` (StringField, indexed: the
document the passage was cut from), ``contents`` (TextField analysed with Anserini's
DefaultEnglishAnalyzer), ``raw`` (stored JSON: id, contents, title, metadata) and ``vector``
(KnnFloatVectorField, DOT_PRODUCT on unit vectors), and the metadata filter fields of
:mod:`lucerag.index.metadata` (``meta.<key>``, ``meta_num.<key>``, ``meta_exists``).  Both views are written by one IndexWriter
and become visible in one commit, so they always hold the same ids.  The Java side is
``lucerag.PassageWriter`` (plugin/java): it builds the Lucene documents, optionally on
background threads, so Python can prepare the next batch meanwhile.

Atomicity:

* ``mode="create"`` builds in a hidden sibling directory ``.<name>.building-<pid>-*`` and swaps it
  into place (an atomic ``renameat2(RENAME_EXCHANGE)`` on Linux) only after the final commit.
* ``mode="append"`` writes into the live index but commits exactly once, in ``close()``.  Lucene
  readers only ever see commits, so a crash or SIGKILL before that leaves the previous commit as
  it was; the next writer deletes the orphaned files.

Safety: every writer first takes the index's write lock (:mod:`lucerag.index.lock`, a file beside
the index), so a rebuild never swaps its index in under a running append; and a rebuild only
replaces a missing path, an empty folder or a Lucene/lucerag index holding nothing else
(:mod:`lucerag.index.ownership`): a folder of documents or a regular file is refused untouched.

Ids: passage ids are unique per index.  A batch whose id was already written in this session, or
(appending) whose id belongs to a passage of the index that the batch does not replace (e.g. a
document ``guide#1`` while ``guide`` is stored as chunks ``guide#0..#3``), raises
:class:`DuplicateIdError` naming the ids and their positions in the batch.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lucerag.connectors.dedupe import SeenIds
from lucerag.errors import DuplicateIdError, EmptyBuildError, IndexWriteError
from lucerag.index import metadata as meta_fields
from lucerag.index.hnsw import (DEFAULT_VECTOR_FORMAT, GRAPH_FROM, HNSW_BEAM, HNSW_M, VECTOR_FORMATS,
                                graph_threshold)
from lucerag.index.lock import WriteLock
from lucerag.index.manifest import IndexManifest
from lucerag.index.ownership import check_replaceable, is_index_dir
from lucerag.lucene.classes import VECTOR, java
from lucerag.progress import Heartbeat, stage

MAX_ID_BYTES = 32766  # Lucene's limit for one indexed term (the id field)
PARENT = "parent_id"  # indexed (not stored) id of the document a passage was cut from


__all__ = ["DEFAULT_VECTOR_FORMAT", "HNSW_BEAM", "HNSW_M", "VECTOR_FORMATS", "DuplicateIdError", "IndexWriter"]


def _passage_writer():
    from lucerag.lucene.jvm import jclass

    return jclass("lucerag.PassageWriter")


def _hnsw_codec(m: int, beam: int, vector_format: str = DEFAULT_VECTOR_FORMAT,
                graph_from: int | None = GRAPH_FROM, merge_workers: int = 1):
    """The codec writing ``vector_format`` vectors with an HNSW graph (``m`` / ``beam``) for segments
    from about ``graph_from`` vectors (None: no segment gets one), built by ``merge_workers`` threads
    when a merge makes it."""
    from lucerag.lucene.jvm import jclass

    bridge = jclass("lucerag.Bridge")
    threshold = bridge.NO_GRAPH if graph_from is None else graph_threshold(graph_from)
    return bridge.codec(vector_format, int(m), int(beam), int(threshold), max(1, int(merge_workers)))


def default_merge_workers() -> int:
    """Threads that build a merged HNSW graph together: the CPUs this process may run on, at most 16."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(16, cpus))


class IndexWriter:
    """Add, replace and delete passages; ``close()`` commits and publishes the index.

    ``mode="create"`` builds a fresh index (atomically replacing any existing one);
    ``mode="append"`` upserts into an existing index: each ``add_batch`` call replaces *all*
    passages of the parent documents it names (pass every chunk of a document in one call).
    ``graph_from``: a segment gets an HNSW graph (``hnsw_m`` / ``hnsw_beam``) only from about this many
    vectors; smaller ones are searched exhaustively (exact, and no graph-building time). 0: always.
    A fresh build (``mode="create"``) of at least ``graph_from`` passages with vectors is merged into
    one segment at ``close()``, and its one graph is built there by ``merge_workers`` threads together
    (Lucene's concurrent HNSW merge; default: every CPU this process may use, at most 16): a graph
    built while passages are added would use one thread. A build larger than :attr:`segment_max`
    passages (what the JVM heap holds one graph of) becomes several segments of at most that many.
    That merge needs up to twice the index's disk space while it runs. ``single_segment=False`` (a
    writer that only adds other indexes' segments, as the distributed build's driver does) skips it:
    segments then get their graphs as an append's do, in Lucene's own merges, on ``merge_workers``
    threads.
    ``threads`` > 0 indexes on that many background Java threads (``add_batch`` then returns
    before Lucene has analysed the batch; errors surface on a later call or in ``close()``).
    """

    def __init__(self, path: str | Path, *, mode: str = "create", dim: int | None = None,
                 manifest: IndexManifest | None = None, ram_buffer_mb: float = 512, threads: int = 0,
                 track_parents: bool = False, hnsw_m: int = HNSW_M, hnsw_beam: int = HNSW_BEAM,
                 vector_format: str | None = None, graph_from: int = GRAPH_FROM,
                 merge_workers: int | None = None, single_segment: bool = True, segment_max: int | None = None):
        if mode not in ("create", "append"):
            raise ValueError(f"mode must be 'create' or 'append', not {mode!r}")
        if not (2 <= hnsw_m <= 512 and 1 <= hnsw_beam <= 3200):
            raise ValueError(f"hnsw_m must be in 2..512 and hnsw_beam in 1..3200, not {hnsw_m} and {hnsw_beam}")
        if graph_from < 0:
            raise ValueError(f"graph_from must be >= 0 (0: every segment gets an HNSW graph), not {graph_from}")
        if vector_format is not None and vector_format not in VECTOR_FORMATS:
            raise ValueError(f"vector_format must be one of {', '.join(VECTOR_FORMATS)}, not {vector_format!r}")
        if merge_workers is not None and merge_workers < 1:
            raise ValueError(f"merge_workers must be >= 1, not {merge_workers}")
        self.merge_workers = default_merge_workers() if merge_workers is None else int(merge_workers)
        self._graph = (int(hnsw_m), int(hnsw_beam), int(graph_from))
        self._single_segment = bool(single_segment)
        if segment_max is not None and segment_max < 1:
            raise ValueError(f"segment_max must be >= 1, not {segment_max}")
        self._segment_max = segment_max
        self.path = Path(path)
        self.mode = mode
        self.dim = dim
        self.manifest = manifest or IndexManifest()
        self._closed = True  # until the Lucene writer is open
        self._folders: list[Path] = []  # the build folders this writer made
        # Rebuilds: files of the previous index kept in the new one (a fitted relevance calibrator).
        self.kept: list[str] = []
        self._check_target(mode)  # before the lock file is created: a refusal leaves nothing behind
        self._lock = WriteLock(self.path).acquire()
        try:
            self._open(mode, vector_format, manifest, ram_buffer_mb, threads, track_parents, hnsw_m, hnsw_beam,
                       graph_from)
        except BaseException:
            self._lock.release()
            raise

    def _check_target(self, mode: str) -> None:
        if mode == "create":
            check_replaceable(self.path)
        elif not self.path.is_dir() or not any(p.name.startswith("segments_") for p in self.path.iterdir()):
            raise FileNotFoundError(f"cannot append: no index at {self.path}")

    def _open(self, mode, vector_format, manifest, ram_buffer_mb, threads, track_parents, hnsw_m, hnsw_beam,
              graph_from):
        self._check_target(mode)  # again, now that no other writer can change it
        if mode == "append":
            # folders of killed builds of this index (a killed close-time merge leaves two, each about
            # the index's size): under the lock, no build of it is running
            recover(self.path)
            self._work = self.path
            existing = prior = IndexManifest.read(self.path)
            if self.dim is None and existing is not None and existing.dim:
                self.dim = existing.dim  # an index holds vectors for all passages or for none
            if manifest is None and existing is not None:
                self.manifest = existing
            # Appends keep the index's vectors format (segments of one index share one format).
            current = existing.vector_format if existing is not None else DEFAULT_VECTOR_FORMAT
            if vector_format is not None and vector_format != current:
                raise ValueError(f"cannot append {vector_format} vectors to {self.path}: it holds {current} "
                                 "vectors; rebuild it to change the format")
            vector_format = current
        else:
            prior = None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            recover(self.path)
            self._work = self._build_folder()
        self.vector_format = vector_format or DEFAULT_VECTOR_FORMAT
        self.manifest.vector_format = self.vector_format
        config = java.IndexWriterConfig(java.analyzer)
        config.setOpenMode(java.OpenMode.CREATE if mode == "create" else java.OpenMode.APPEND)
        config.setRAMBufferSizeMB(float(ram_buffer_mb))
        config.setCommitOnClose(False)
        # A fresh build writes its segments without HNSW graphs and builds one graph when it closes
        # (merge_graph), on merge_workers threads: a graph built while passages are added uses the
        # indexing thread alone. An append keeps the index's segments; Lucene's merges build its graphs.
        self._deferred = mode == "create" and self._single_segment
        config.setCodec(_hnsw_codec(hnsw_m, hnsw_beam, self.vector_format, None if self._deferred else graph_from,
                                    self.merge_workers))
        if self._deferred:
            # The merge at close leaves a segment above segment_max as it is (it cannot split one), so
            # the build's own flushes and merges must stay within it: a tiered merge of the flushed
            # segments made segments of any size (a graph larger than the heap was sized for).
            from lucerag.lucene.jvm import jclass

            cap = min(self.segment_max, 2**31 - 1)  # Lucene counts documents in an int
            policy = jclass("org.apache.lucene.index.LogDocMergePolicy")()
            policy.setMaxMergeDocs(cap)
            config.setMergePolicy(policy)
            config.setMaxBufferedDocs(max(2, cap))
        self._dir = java.FSDirectory.open(java.File(str(self._work)).toPath())
        try:
            self._writer = java.IndexWriter(self._dir, config)
        except Exception as exc:
            from lucerag.lucene.errors import LOCK_OBTAIN_FAILED, is_instance, java_error_message

            self._dir.close()
            if mode == "create":
                shutil.rmtree(self._work, ignore_errors=True)
            message = java_error_message(exc)
            if is_instance(exc, LOCK_OBTAIN_FAILED):
                raise IndexWriteError(f"{self.path} is being written by another process ({message})") from None
            raise IndexWriteError(f"cannot open {self._work} for writing: {message}") from None
        self._threads, self._track = int(threads), bool(track_parents)
        self._passages = _passage_writer()(self._writer, VECTOR, int(self.dim or 0), mode == "append",
                                           self._threads, 4, self._track)
        self._closed = False
        self.added = 0
        self._seen = SeenIds()       # ids written in this session
        self._pairs = SeenIds()      # appending: (id, parent) pairs written in this session
        self._deleted: set[str] = set()          # ids deleted in this session (may be written again)
        self._deleted_parents: set[str] = set()  # documents deleted in this session
        self._existing = None        # appending: a reader on the last commit, for id clashes
        # metadata key -> kinds indexed for filters; None when appending to an index whose
        # earlier passages were written without filter fields (filters would miss them)
        self._kinds: dict[str, set[str]] | None = {}
        if mode == "append":
            if prior is None or prior.metadata_fields is None:
                self._kinds = None
            else:
                self._kinds = {k: set(v) for k, v in prior.metadata_fields.items()}

    def add(self, id: str, text: str, vector: Sequence[float] | np.ndarray | None = None,
            title: str = "", metadata: dict[str, Any] | None = None) -> None:
        """Add (or, when appending, replace) one passage."""
        self.add_batch([id], [text], None if vector is None else np.asarray(vector)[None, :],
                       [title], [metadata])

    def add_batch(self, ids: Sequence[str], texts: Sequence[str], vectors: np.ndarray | None = None,
                  titles: Sequence[str] | None = None,
                  metadata: Sequence[dict[str, Any] | str | None] | None = None,
                  parents: Sequence[str | None] | None = None) -> None:
        """Add a batch of passages in one call into Java; ``vectors`` has shape (n, dim).

        ``parents[i]`` is the id of the document passage ``i`` was cut from (None: itself);
        ``metadata[i]`` a dict or an already serialised JSON object.
        """
        n = len(ids)
        titles = titles if titles is not None else [""] * n
        metadata = metadata if metadata is not None else [None] * n
        parents = parents if parents is not None else [None] * n
        if len(texts) != n or len(titles) != n or len(metadata) != n or len(parents) != n:
            raise ValueError("ids, texts, titles, metadata and parents must have the same length")
        for pid in ids:
            if not isinstance(pid, str) or not pid:
                raise ValueError(f"passage id must be a non-empty string, not {pid!r}")
            if len(pid) > MAX_ID_BYTES // 4 and len(pid.encode("utf-8")) > MAX_ID_BYTES:
                raise ValueError(f"passage id of {len(pid.encode('utf-8'))} bytes is longer than "
                                 f"Lucene's {MAX_ID_BYTES}-byte limit")
        self.check_ids(ids, parents)
        blob = b""
        if vectors is not None:
            vectors = np.ascontiguousarray(vectors, dtype="<f4")
            if self.dim is None:
                self.dim = int(vectors.shape[1])
                self._set_dim()
            if vectors.shape != (n, self.dim):
                raise ValueError(f"vectors have shape {vectors.shape}, expected ({n}, {self.dim}) "
                                 f"(the index holds {self.dim}-dimensional vectors)")
            blob = vectors.tobytes()
        elif self.dim is not None and n:
            raise ValueError(f"{self.path} holds {self.dim}-dimensional vectors: every passage needs one")
        metas = [m if isinstance(m, str) or m is None else _json(m) for m in metadata]
        kinds = self._kinds if self._kinds is not None else {}
        fields = [meta_fields.fields(m, kinds) for m in metadata]
        self._call(self._passages.submit, list(ids), list(parents), list(texts), list(titles), metas, blob,
                   fields)
        self.added += n

    def check_ids(self, ids: Sequence[str], parents: Sequence[str | None]) -> None:
        """Raise DuplicateIdError when an id of this batch is already taken (see the module doc);
        else note the ids as written.  ``add_batch`` calls it; a distributed build calls it on the
        driver for batches that shard writers will write."""
        clashes = []
        if self.mode == "append":
            clashes = self._clashes_with_index(ids, parents)
        if not clashes:
            clashes = self._clashes_in_session(ids, parents)
        if clashes:
            raise DuplicateIdError(clashes)

    def _clashes_in_session(self, ids: Sequence[str], parents: Sequence[str | None]) -> list:
        """Ids written before in this session and still there.  An id may come again after it was
        deleted, or (appending) in a later batch of the same document, which replaces the
        document's earlier passages; twice in one batch is always a clash."""
        ids = list(ids)
        owners = [p if p is not None else i for i, p in zip(ids, parents)]
        seen = self._seen.add_batch(ids)
        same_owner = (self._pairs.add_batch([f"{i}\x00{o}" for i, o in zip(ids, owners)])
                      if self.mode == "append" else np.zeros(len(ids), bool))
        if not seen.any():
            return []
        in_batch: set[str] = set()
        clashes = []
        for pos, pid in enumerate(ids):
            again = pid in in_batch
            in_batch.add(pid)
            if not seen[pos]:
                continue
            if not again and pid in self._deleted:
                self._deleted.discard(pid)
            elif not again and (owners[pos] in self._deleted_parents or same_owner[pos]):
                pass
            else:
                clashes.append((pos, pid, "appears twice (it was written before in this build)"))
        return clashes

    def _clashes_with_index(self, ids: Sequence[str], parents: Sequence[str | None]) -> list:
        """Ids of the batch held in the index by a passage the batch does not replace."""
        if self._existing is None:
            from lucerag.index.reader import LuceneIndex

            self._existing = LuceneIndex(self.path)
        replaced = {p if p is not None else i for i, p in zip(ids, parents)}
        found = self._existing.docnums(list(ids))
        clashes = []
        for pos, pid in enumerate(ids):
            docnum = found.get(pid)
            if docnum is None:
                continue
            if "#" not in pid:      # stored as its own document (chunk ids always hold '#')
                owner = pid
            else:
                meta = self._existing.record(docnum).get("metadata") or {}
                owner = str(meta.get("parent_id") or pid) if isinstance(meta, dict) else pid
            if owner not in replaced:
                clashes.append((pos, pid, f"is already in {self.path} as a passage of document {owner!r}, "
                                          "which this update does not replace"))
        return clashes

    def _set_dim(self) -> None:
        """The dimension became known with the first vectors."""
        if self.added:
            raise ValueError("passages without vectors were added before: an index holds vectors for "
                             "all passages or for none")
        self._call(self._passages.finish)
        self._passages = _passage_writer()(self._writer, VECTOR, int(self.dim or 0), self.mode == "append",
                                           self._threads, 4, self._track)

    def delete(self, ids: Sequence[str]) -> None:
        """Delete passages by id (both views at once)."""
        if ids:
            self._deleted.update(ids)
            self._call(self._passages.flush)  # earlier batches first
            java.Bridge.deleteIds(self._writer, list(ids))

    def delete_parents(self, parents: Sequence[str]) -> None:
        """Delete every passage (chunk) of the given documents."""
        if parents:
            self._deleted_parents.update(parents)
            self._call(self._passages.flush)
            java.Bridge.deleteParents(self._writer, list(parents))

    def add_indexes(self, paths: Sequence[str | Path],
                    metadata_fields: Sequence[dict[str, list[str]] | None] | None = None) -> None:
        """Add every passage of other Lucene indexes (shards) in one call, in the order given.

        Lucene's ``IndexWriter.addIndexes(Directory...)`` copies the shards' segments as they are
        (their BM25 postings, stored fields and HNSW graphs; nothing is re-analysed or re-encoded).
        The shards must have been written by an :class:`IndexWriter` with the same field layout,
        vector dimension and vectors format. Deletes issued before this call do not touch the added
        passages; deletes after it do. Nothing is visible before ``close()`` commits.
        ``metadata_fields``: the shards' manifests' ``metadata_fields`` (their filter fields), recorded
        in this index's manifest as if their passages had been added here.

        Raises:
            RuntimeError: Lucene refused a shard (other fields, dimension, or a broken shard).
        """
        if not paths:
            return
        for shard_fields in metadata_fields or ():
            if self._kinds is not None:
                for key, kinds in (shard_fields or {}).items():
                    self._kinds.setdefault(key, set()).update(kinds)
        self._call(self._passages.flush)
        from jnius import cast

        dirs = [java.FSDirectory.open(java.File(str(p)).toPath()) for p in paths]
        try:  # pyjnius takes varargs one by one, and matches Directory... only with elements cast to Directory
            self._call(self._writer.addIndexes, *[cast("org.apache.lucene.store.Directory", d) for d in dirs])
        finally:
            for d in dirs:
                with contextlib.suppress(Exception):
                    d.close()

    def delete_missing(self) -> int:
        """Delete documents not written in this session (needs ``track_parents``); returns how many."""
        self._call(self._passages.finish)
        return int(self._call(self._passages.deleteMissing))

    def _call(self, fn, *args):
        from lucerag.lucene.errors import java_errors

        with java_errors(lambda message: IndexWriteError(f"writing {self.path} failed: {message}")):
            return fn(*args)

    def close(self) -> None:
        """Commit once, write the manifest and publish the index directory."""
        try:
            if self._closed:
                return
            with contextlib.ExitStack() as publishing:  # from where the index changes to the end: stage "publish"
                self._close(publishing)
        except BaseException:
            # whatever step failed or was interrupted (a KeyboardInterrupt lands between any two
            # bytecodes): no build folder of this writer outlives it, and the lock is released
            self._discard()
            raise

    def _discard(self) -> None:
        """After a failed or interrupted ``close()``: roll back what is uncommitted, remove this
        writer's build folders (a fresh build's, the graph merge's; after the swap there are none),
        release the lock. Idempotent."""
        self._closed = True
        for step in (self._passages.abort, self._writer.rollback, self._dir.close):
            with contextlib.suppress(Exception):
                step()
        if self.mode == "create":
            for folder in self._folders:  # after the swap, none of them is left
                if folder.exists():
                    remove_build_folder(folder)
        self._release()

    def _close(self, publishing: contextlib.ExitStack) -> None:
        # Any exception or interrupt before the swap (a fresh build) or the commit (an append) leaves
        # the index as it was: close() discards the build and releases the lock.
        self._call(self._passages.finish)
        self.manifest.passages = int(self._writer.getDocStats().numDocs)
        if self.mode == "create" and self.manifest.passages == 0:
            held = _passages_held(self.path)
            if held != 0:  # an empty input must not wipe out an index (the user may have given the wrong file)
                raise EmptyBuildError(self.path, held)
        self.manifest.metadata_fields = (None if self._kinds is None else
                                         {k: sorted(v) for k, v in sorted(self._kinds.items())})
        if self.dim is not None:
            self.manifest.dim = self.dim
        # An append's commit publishes it: from there on a Ctrl-C must not claim the index unchanged,
        # and the commit, the manifest and the lock's release run to their end (signals held). A
        # build's "commit" stage lasts until its swap (closing the writer, the manifest, the carried-over
        # files; the graph merge names its own stage).
        publishing.enter_context(stage("publish", hold_signals=True) if self.mode == "append"
                                 else stage("commit"))
        self._call(self._passages.commit, ["lucerag.manifest"], [self.manifest.model_dump_json()])
        count = self._writer.getDocStats().numDocs
        self._writer.close()
        if self._deferred and self.dim and count >= self._graph[2]:
            with stage("graph merge"):
                self._merge_graph(int(count))
        self._dir.close()
        self.manifest.passages = int(count)
        self.manifest.write(self._work)
        if self.mode == "create":
            check_replaceable(self.path)  # again: the user may have put files there meanwhile
            self.kept = _carry_over(self.path, self._work)
            publishing.enter_context(stage("publish", hold_signals=True))
            _publish(self._work, self.path)
        self._closed = True
        self._release()

    def _build_folder(self) -> Path:
        """A new hidden folder beside the index for a build (named so that :func:`recover` finds it
        once its process is gone)."""
        folder = self.path.parent / f".{self.path.name}.building-{os.getpid()}-{secrets.token_hex(6)}"
        # noted before it exists: whatever line an interrupt hits, _discard knows every folder this
        # writer may have made (and only those: a Ray build keeps folders of its own beside the index)
        self._folders.append(folder)
        folder.mkdir(mode=0o700)  # fails if the name were taken, as mkdtemp's would
        # The published index keeps the mode of the folder it replaces, else the usual mode under the
        # umask (a server running as another user must still read it after a rebuild).
        os.chmod(folder, _folder_mode(self.path))
        return folder

    @property
    def segment_max(self) -> int:
        """The most passages the merge at ``close()`` puts in one segment: ``segment_max`` if given,
        else what the JVM's heap holds the HNSW graph of (Lucene builds a segment's graph on the heap,
        ~8 bytes per neighbour, 2 M neighbours per node on the base layer): a third of the maximum
        heap over 16 M + 64 bytes per passage (about 1M passages for M 48 and the default 2 GB heap),
        never below ``graph_from``."""
        if self._segment_max is not None:
            return self._segment_max
        m, _, graph_from = self._graph
        heap = int(java.Runtime.getRuntime().maxMemory())
        return max(graph_from, 1, heap // 3 // (16 * m + 64))

    def _merge_graph(self, passages: int) -> None:
        """Merge the committed build into one segment with an HNSW graph, built by ``merge_workers``
        threads (Lucene's concurrent HNSW merge), in a second build folder that then replaces the
        first; the commit's data (the manifest) carries over. Needs twice the index's disk space
        while it runs."""
        from lucerag.lucene.errors import java_error_message
        from lucerag.lucene.interruptible import run_interruptibly

        m, beam, graph_from = self._graph
        beat = Heartbeat(f"HNSW graph of {passages:,} passages (M {m}, beam {beam}) on {self.merge_workers} "
                         f"thread(s)", logging.getLogger("lucerag.index"))
        merged = self._build_folder()
        target = java.FSDirectory.open(java.File(str(merged)).toPath())
        try:
            with beat:
                # on a worker thread: Ctrl-C reaches this (main) thread within 0.1 s (-Xrs gives Python the signal)
                run_interruptibly(java.Bridge.mergeInto, self._dir, target,
                                  _hnsw_codec(m, beam, self.vector_format, graph_from, self.merge_workers),
                                  self.segment_max)
        except BaseException as exc:  # an interrupt too: the second folder goes, the first is dropped by close()
            target.close()
            # after an interrupt the merge may still be writing into it
            remove_build_folder(merged)
            if not isinstance(exc, Exception):
                raise
            raise IndexWriteError(f"cannot build the HNSW graph of {self._work}: {java_error_message(exc)}") from None
        target.close()
        self._dir.close()
        shutil.rmtree(self._work, ignore_errors=True)
        self._work = merged
        self._dir = java.FSDirectory.open(java.File(str(merged)).toPath())

    def _release(self) -> None:
        if self._existing is not None:
            with contextlib.suppress(Exception):
                self._existing.close()
            self._existing = None
        self._lock.release()

    def abort(self) -> None:
        """Drop an unfinished build or update; the index stays as it was at its last commit."""
        if self._closed:
            return
        self._discard()

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.close()
            else:
                self.abort()
        except BaseException:  # an interrupt between the with block and close(): nothing is left behind
            self._discard()
            raise


def _json(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, ensure_ascii=False, default=str) if metadata else ""


def _raw(pid: str, text: str, title: str, metadata: dict[str, Any] | None) -> str:
    """The stored record, JSON in the shape of Anserini's JsonCollection (plus title/metadata).

    (PassageWriter builds the same record in Java; kept for callers of ``Bridge.addPassages``.)"""
    record: dict[str, Any] = {"id": pid, "contents": text}
    if title:
        record["title"] = title
    if metadata:
        record["metadata"] = metadata
    return json.dumps(record, ensure_ascii=False, default=str)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_build_folder(folder: Path) -> None:
    """Remove a build folder that a Java call may still be writing into (one left running by an
    interrupt): renamed first, so no file can be created in it any more, then deleted. The new name
    keeps the build's prefix and process id, so :func:`recover` removes what a failure here leaves."""
    gone = folder.with_name(folder.name + "-removed")
    try:
        os.replace(folder, gone)
    except OSError:
        gone = folder
    shutil.rmtree(gone, ignore_errors=True)


def build_folders(target: Path, pid: int | None = None) -> list[Path]:
    """The hidden build folders of index ``target`` (of process ``pid`` only, when given)."""
    target = Path(target)
    prefix = f".{target.name}.building-" + (f"{pid}-" if pid is not None else "")
    if not target.parent.is_dir():
        return []
    return sorted(p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.is_dir()
                  and not p.is_symlink())


def recover(target: Path) -> None:
    """Clean up after a build that was killed: restore an index left aside mid-swap, and remove
    temporary directories whose process is gone."""
    target = Path(target)
    parent = target.parent
    if not parent.is_dir():
        return
    for entry in parent.iterdir():
        name = entry.name
        if entry.is_symlink() or not entry.is_dir():
            continue  # lucerag's temporary builds are folders: a file of that name is the user's
        for kind in ("building", "old"):
            prefix = f".{target.name}.{kind}-"
            if not name.startswith(prefix):
                continue
            pid = name[len(prefix):].split("-")[0]
            if pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid():
                continue
            if kind == "old" and not target.exists():
                os.replace(entry, target)  # killed between the two renames of the fallback swap
            else:
                shutil.rmtree(entry, ignore_errors=True)


_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False when unsupported."""
    global _libc
    try:
        _libc = _libc or ctypes.CDLL(None, use_errno=True)
        renameat2 = _libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _passages_held(path: Path) -> int | None:
    """Live passages of the index at ``path`` (its last commit): 0 when there is none, None when one is
    there but can't be read (still the user's: not to be replaced by nothing)."""
    try:
        if not is_index_dir(path):
            return 0
        directory = java.FSDirectory.open(java.File(str(path)).toPath())
        try:
            reader = java.DirectoryReader.open(directory)
            try:
                return int(reader.numDocs())
            finally:
                reader.close()
        finally:
            directory.close()
    except Exception:  # noqa: BLE001 - unreadable, yet an index the user may want back
        return None


def _publish(built: Path, target: Path) -> None:
    """Move a finished build into place; the old index is replaced in one atomic step."""
    if target.exists():
        if _exchange(built, target):  # target is now the new index, built the old one
            _fsync_dir(target.parent)
            shutil.rmtree(built, ignore_errors=True)
            return
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)       # a kill between these two renames is repaired by recover()
        os.replace(built, target)
        _fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(built, target)
        _fsync_dir(target.parent)


# Files of an index folder that are the user's work, not derived from the passages alone: a rebuild
# keeps them (lucerag calibrate's fitted filter may come from the user's own judgments).
CARRIED_OVER = ("lucerag-calibrator.json",)


def _carry_over(old: Path, new: Path) -> list[str]:
    """Copy :data:`CARRIED_OVER` files from the index being replaced into the new build; their names."""
    kept = []
    for name in CARRIED_OVER:
        source = old / name
        if source.is_file() and not (new / name).exists():
            shutil.copy2(source, new / name)
            kept.append(name)
    return kept


def _folder_mode(path: Path) -> int:
    """Permission bits for a new index folder at ``path``: those of the folder there now, else
    0777 less the process umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        pass
    try:  # Linux: read the umask without changing it (os.umask would, process-wide)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o777 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o755

