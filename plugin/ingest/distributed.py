"""Distributed ingest on Ray: encoder actors, Lucene shards written in parallel, one published index.

::

    driver        : read documents (connector) -> check -> chunk -> batches of whole documents
                    -> ray.put(batch)                                   (bounded: back-pressure)
    encoder actors: one onnxruntime session each (CPU, or CUDA on a GPU worker) -> vectors
    shard tasks   : every ``shard_passages`` passages (consecutive batches) -> one Lucene index,
                    written by a Ray worker process with its own JVM into its own attempt folder
    driver        : IndexWriter.addIndexes(shards, in stream order) -> one commit -> atomic publish

The result is one ordinary lucerag index: the same fields, ids, manifest, vectors and BM25
statistics as :func:`lucerag.ingest.pipeline.build_index` in one process (tests/test_distributed.py),
its passages in the same order. HNSW graphs: a shard of ``HnswOptions.graph_from`` passages or more
builds its own (in parallel on the workers; each becomes a segment with its graph, docs/scale.md). With
smaller shards (the default 50,000 under ``graph_from`` = 100,000) a new index of ``graph_from``
passages or more ends as a single-process build does: one segment whose graph the driver's writer
builds when it closes, on every CPU of the driver (Lucene's concurrent HNSW merge).

Failures (Ray's own mechanisms): an encoder actor that dies is restarted (``max_restarts``) and its
unfinished calls re-run (``max_task_retries``); encoding is a pure function of the batch, so a
re-run cannot duplicate anything.  A shard task that dies is re-run (``max_retries``) into a fresh
attempt folder; the driver merges only the folder a finished attempt returned, so a half-written
attempt is never merged.  When retries run out the build stops with :class:`DistributedIngestError`
and nothing is published (a new build leaves the previous index as it was; an append commits
nothing).

Back-pressure: at most ``in_flight`` encoder calls per actor and ``shards_in_flight`` shard tasks are
outstanding; the driver stops reading until one finishes, so the object store holds a bounded
number of batches whatever the corpus size.  Progress: a log line (logger
``lucerag.ingest.distributed``, every ``progress_every_s`` seconds) with passages/s and, when the
number of documents is known, the ETA; plus a tqdm bar when ``progress``.

Shard folders live in a hidden work folder beside the index: on a cluster of several machines the
index's parent folder must be on a filesystem all of them mount (NFS, Lustre, ...), and the encoder's
model folder must exist at the same path on every worker (docs/scale.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from lucerag.errors import (DistributedIngestError, DuplicateIdError, InputError, RayNotInstalledError,
                            UnsupportedError)
from lucerag.index.manifest import IndexManifest
from lucerag.index.writer import IndexWriter, recover
from lucerag.ingest.options import ChunkingOptions, HnswOptions, IngestOptions
from lucerag.ingest.pipeline import (IngestReport, _batches, _checked, _Counts, _in_thread, _inputs, _prepare, dense_texts,
                                     located)

__all__ = ["DistributedIngestError", "RayIngestReport", "RayNotInstalledError", "RayOptions", "build_index_ray",
           "jvm_safe_ray"]

log = logging.getLogger("lucerag.ingest.distributed")
RAY_INSTALL = "pip install 'lucerag[ray]'"
# Ray's C++ crash handler (absl's failure signal handler) takes SIGSEGV before the JVM does. The JVM
# raises SIGSEGV on purpose (implicit null checks, safepoint polls in compiled code) and handles it;
# re-raised by absl it kills the process (seen here in Lucene's HNSW builder). Ray documents this
# variable for processes that host a JVM; it is read when a Ray process starts.
JVM_SAFE_ENV = {"RAY_DISABLE_FAILURE_SIGNAL_HANDLER": "1"}


@dataclass
class RayOptions:
    """How a build uses the Ray cluster.

    ``address``: None or "local" starts a local cluster (``num_cpus``, ``object_store_mb``), "auto"
    joins the cluster this machine belongs to, "ray://host:10001" a remote one; an already
    initialised Ray session is used as it is.  ``encoders``: encoder actors (default: the cluster's
    CPUs // ``encoder_cpus``, or its GPUs when ``encoder_gpus`` > 0).  ``encoder_threads``:
    onnxruntime threads per actor (default ``encoder_cpus``).  ``shard_passages``: passages per
    shard (one Lucene index written by one task).  ``writer_cpus``: CPUs Ray reserves per shard task
    (0: shard tasks are bounded by ``shards_in_flight`` only, so they never wait behind encoder
    actors that hold every CPU).  ``jvm_heap``: ``-Xmx`` of each shard writer's JVM.
    """

    address: str | None = None
    encoders: int | None = None
    encoder_cpus: float = 1.0
    encoder_gpus: float = 0.0
    encoder_threads: int | None = None
    shard_passages: int = 50_000
    writer_cpus: float = 0.0
    shards_in_flight: int = 2
    in_flight: int = 2
    max_retries: int = 3
    jvm_heap: str = "1g"
    num_cpus: int | None = None
    object_store_mb: int | None = None
    progress_every_s: float = 10.0
    # Fault injection for the tests: {"encode" | "write": marker file}; the first worker to reach the
    # stage while the marker is absent creates it and exits the process (os._exit), like a kill -9.
    crash_once: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("shard_passages", "shards_in_flight", "in_flight"):
            if getattr(self, name) < 1:
                raise InputError(f"ray option {name} must be >= 1, not {getattr(self, name)}")
        if self.encoders is not None and self.encoders < 1:
            raise InputError(f"ray option encoders must be >= 1, not {self.encoders}")
        if self.max_retries < 0:
            raise InputError(f"ray option max_retries must be >= 0, not {self.max_retries}")
        if self.encoder_cpus <= 0 and self.encoder_gpus <= 0:
            raise InputError("ray options encoder_cpus and encoder_gpus cannot both be 0")


@dataclass
class RayIngestReport(IngestReport):
    """An :class:`IngestReport` plus what the cluster did."""

    encoders: int = 0
    shards: int = 0
    shard_attempts: int = 0        # shard tasks started (more than ``shards`` after a retry)
    encoder_restarts: int = 0      # encoder actors that were restarted after dying
    providers: list[str] = field(default_factory=list)
    write_seconds: float = 0.0     # shard tasks' time writing Lucene (summed over shards)
    # CPU time (user + system, all threads) of the driver, the encoder actors and the shard tasks: on a
    # machine shared with other work, passages per CPU-second says more than passages per second.
    driver_cpu_seconds: float = 0.0
    encoder_cpu_seconds: float = 0.0
    writer_cpu_seconds: float = 0.0
    merge_seconds: float = 0.0     # addIndexes + commit on the driver


def _import_ray():
    for key, value in JVM_SAFE_ENV.items():
        os.environ.setdefault(key, value)  # read by `import ray` (this driver) and by the processes it starts
    try:
        import ray
    except ImportError:
        raise RayNotInstalledError(f"a distributed build needs Ray: {RAY_INSTALL}") from None
    return ray


def jvm_safe_ray():
    """Import Ray so that this process (and the local cluster it starts) can also host a JVM.

    Call it before ``ray.init`` in a process that runs Lucene (lucerag starts its JVM in the same
    process): it sets ``RAY_DISABLE_FAILURE_SIGNAL_HANDLER=1`` (see ``JVM_SAFE_ENV``), also when ray
    was imported already. Returns the ``ray`` module. Raises RayNotInstalledError."""
    import faulthandler

    import jnius_config

    ray = _import_ray()
    from ray._private import ray_constants

    ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    if not jnius_config.vm_running and not faulthandler.is_enabled():
        # ray.init enables Python's faulthandler unless it is on: on before the JVM starts, the JVM's
        # handler stays on top of it (faulthandler re-raises a SIGSEGV, which the JVM then takes for a crash).
        faulthandler.enable()
    return ray


@contextlib.contextmanager
def _keep_jvm_signal_handlers():
    """During ``ray.init`` in a process whose JVM already runs: keep ray from enabling faulthandler
    over the JVM's SIGSEGV handler (see :func:`jvm_safe_ray`)."""
    import faulthandler

    import jnius_config

    if not jnius_config.vm_running or faulthandler.is_enabled():
        yield
        return
    real = faulthandler.is_enabled
    faulthandler.is_enabled = lambda: True
    try:
        yield
    finally:
        faulthandler.is_enabled = real


def _crash_if_first(options: RayOptions, stage: str) -> None:
    marker = options.crash_once.get(stage)
    if marker is None:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(17)


class _Encoder:
    """A Ray actor: one onnxruntime session for the life of the actor (restarted if it dies)."""

    def __init__(self, model_dir: str, threads: int | None, gpu: bool, options: RayOptions):
        from lucerag.models.encoder import OnnxEncoder

        providers = ["CPUExecutionProvider"]
        if gpu:
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise DistributedIngestError(
                    "an encoder actor was given a GPU but onnxruntime has no CUDA provider there "
                    "(install onnxruntime-gpu on the GPU workers)")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if not Path(model_dir).is_dir():
            raise DistributedIngestError(f"encoder model folder {model_dir} is missing on this worker")
        self.encoder = OnnxEncoder(model_dir, threads=threads, providers=providers)
        self.options = options

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "providers": self.encoder.providers, "cpu": time.process_time()}

    def encode(self, batch: dict, batch_size: int):
        _crash_if_first(self.options, "encode")
        return self.encoder.encode_passages(batch["encode"], batch_size=batch_size)


def _write_shard(work: str, shard: int, settings: dict, options: RayOptions, *parts) -> dict[str, Any]:
    """A Ray task: write batches (and their vectors) into a fresh Lucene index; returns its folder.

    ``parts`` are batch dicts, each followed by its vectors when ``settings["dense"]``.  Every attempt
    writes its own folder (``shard-<n>-<attempt>``), published only once committed."""
    from lucerag.lucene import jvm

    t0, c0 = time.perf_counter(), time.process_time()
    jvm.start(options.jvm_heap)
    folder = Path(work) / f"shard-{shard:06d}-{uuid.uuid4().hex[:8]}"
    step = 2 if settings["dense"] else 1
    passages = 0
    writer = IndexWriter(folder, mode="create", dim=settings["dim"], manifest=IndexManifest(),
                         ram_buffer_mb=settings["ram_buffer_mb"], threads=1, hnsw_m=settings["hnsw_m"],
                         hnsw_beam=settings["hnsw_beam"], vector_format=settings["vector_format"],
                         graph_from=settings["graph_from"],  # a shard that reaches it builds its own graph
                         merge_workers=max(1, int(options.writer_cpus)))  # the CPUs Ray reserved for it
    with writer:
        for i in range(0, len(parts), step):
            b = parts[i]
            vectors = parts[i + 1] if step == 2 else None
            writer.add_batch(b["ids"], b["texts"], vectors, b["titles"], b["metas"], b["parents"])
            passages += len(b["ids"])
            if i == 0 and len(parts) > step:
                _crash_if_first(options, "write")  # a shard half written: the attempt is lost
    return {"shard": shard, "path": str(folder), "passages": passages, "pid": os.getpid(),
            "metadata_fields": writer.manifest.metadata_fields,
            "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}


def _connect(ray, options: RayOptions) -> bool:
    """Join or start a cluster; True when this call started it (and should shut it down)."""
    if ray.is_initialized():
        if os.environ.get("RAY_DISABLE_FAILURE_SIGNAL_HANDLER") not in ("1", "true", "True"):
            log.warning("Ray was initialised without RAY_DISABLE_FAILURE_SIGNAL_HANDLER=1: its crash handler "
                        "can kill this process's JVM (call lucerag.ingest.distributed.jvm_safe_ray() before ray.init)")
        return False
    jvm_safe_ray()
    kwargs_env = {"env_vars": dict(JVM_SAFE_ENV)}
    address = options.address
    kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING,
                              "log_to_driver": True, "runtime_env": kwargs_env}
    if address in (None, "", "local"):
        if options.num_cpus is not None:
            kwargs["num_cpus"] = options.num_cpus
        if options.object_store_mb is not None:
            kwargs["object_store_memory"] = int(options.object_store_mb) << 20
        with _keep_jvm_signal_handlers():
            ray.init(**kwargs)
    else:
        try:
            with _keep_jvm_signal_handlers():
                ray.init(address=address, **kwargs)
        except Exception as exc:  # ConnectionError, ValueError, ... from Ray's client
            raise DistributedIngestError(f"cannot join the Ray cluster at {address}: {exc}") from None
    return True


class _Progress:
    """passages/s and ETA as log lines (no terminal needed) and, optionally, a tqdm bar."""

    def __init__(self, total: int | None, every_s: float, bar: bool):
        from tqdm import tqdm

        self.total, self.every_s = total, every_s
        self.start = self.last = time.perf_counter()
        self.passages = self.docs = 0
        self.bar = tqdm(total=total, unit="doc", disable=not bar, dynamic_ncols=True, desc="ingest (ray)")

    def encoded(self, passages: int, docs_pulled: int) -> None:
        self.passages += passages
        if docs_pulled > self.docs:
            self.bar.update(docs_pulled - self.docs)
            self.docs = docs_pulled
        now = time.perf_counter()
        rate = self.passages / max(now - self.start, 1e-9)
        self.bar.set_postfix_str(f"{rate:.0f} passages/s", refresh=False)
        if now - self.last >= self.every_s:
            self.last = now
            log.info("%s", self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.perf_counter()) - self.start
        rate = self.passages / max(elapsed, 1e-9)
        text = f"ray ingest: {self.passages} passages encoded, {self.docs} documents, {rate:.1f} passages/s"
        if self.total and self.docs:
            remaining = max(0.0, elapsed * (self.total - self.docs) / self.docs)
            text += f", {100 * self.docs / self.total:.1f}% of {self.total} documents, ETA {_hms(remaining)}"
        return text

    def close(self) -> None:
        self.bar.close()


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def build_index_ray(documents: Iterable, index_dir: str | Path, *, options: RayOptions, encoder=None,
                    dense: bool = True, mode: str = "create", chunking: ChunkingOptions | None = None,
                    hnsw: HnswOptions | None = None, ingest: IngestOptions | None = None,
                    total: int | None = None, progress: bool = True, stats=None,
                    on_reject: Callable | None = None, source: str | None = None) -> RayIngestReport:
    """:func:`lucerag.ingest.pipeline.build_index` on a Ray cluster (see the module docstring).

    Same arguments and result as the single-process build (``chunking``, ``hnsw`` and ``ingest`` are
    its option groups: the same chunker, ``dense_text``, ``chunk=False``, metadata filter fields and
    manifest), plus ``options``; ``encoder`` is used on the driver for chunking and the manifest, and
    its model folder (``encoder.model_dir``) is loaded by every encoder actor.  The driver checks
    every passage id with the writer's own checker before dispatching, so an id that comes twice
    (in any two shards) fails like the single-process build, naming file and line.
    ``ingest.progress_every`` (when not the default) sets the log interval, else ``options.progress_every_s``.

    Raises:
        RayNotInstalledError: ray is not installed.
        DistributedIngestError: a worker failed more often than the retries allow, or the cluster
            cannot be joined; nothing was published.
        DuplicateIdError: a passage id comes twice, or clashes with the index appended to; nothing
            was published.
        UnsupportedError: ``delete_missing`` (not supported by a distributed build yet).
        InputError: bad ``mode``, or a ``dense_text`` other than the appended index's.
    """
    ray = _import_ray()
    chunking, hnsw, ingest = chunking or ChunkingOptions(), hnsw or HnswOptions(), ingest or IngestOptions()
    batch_size, ram_buffer_mb = ingest.batch_size, ingest.ram_buffer_mb
    hnsw_m, hnsw_beam, vector_format = hnsw.m, hnsw.beam, hnsw.vector_format
    if ingest.delete_missing:
        raise UnsupportedError("delete_missing is not supported by a distributed (Ray) build yet; "
                               "run that append without ray")
    encoder, stats, source = _inputs(documents, mode, dense, encoder, stats, source)
    index_dir = Path(index_dir)
    chunk, manifest, dense_text = _prepare(index_dir, mode, encoder, chunking, {
        "batch_size": batch_size, "index_threads": 1, "ram_buffer_mb": ram_buffer_mb})
    if ingest.progress_every != IngestOptions.progress_every:
        options = replace(options, progress_every_s=ingest.progress_every)

    started = _connect(ray, options)
    report = RayIngestReport()
    counts = _Counts()
    t_start, c_start = time.perf_counter(), time.process_time()
    actors: list = []
    work: Path | None = None
    writer: IndexWriter | None = None
    try:
        dim = encoder.dim if encoder is not None else None
        # Shards below graph_from bring no graph: a new index of graph_from passages or more is then merged
        # into one segment whose graph this writer builds when it closes (as a single-process build does).
        # Larger shards bring their own graphs, built in parallel: their segments are kept as they are.
        writer = IndexWriter(index_dir, mode=mode, manifest=manifest, dim=dim, threads=0,
                             ram_buffer_mb=64, hnsw_m=hnsw_m, hnsw_beam=hnsw_beam, vector_format=vector_format,
                             graph_from=hnsw.graph_from, single_segment=options.shard_passages < hnsw.graph_from)
        if mode == "append":
            recover(index_dir)  # work folders of killed earlier builds
        work = index_dir.parent / f".{index_dir.name}.building-{os.getpid()}-ray-{uuid.uuid4().hex[:8]}"
        work.mkdir()
        shard_settings = {"dense": encoder is not None, "dim": dim, "ram_buffer_mb": min(ram_buffer_mb, 256),
                          "hnsw_m": hnsw_m, "hnsw_beam": hnsw_beam, "vector_format": writer.vector_format,
                          "graph_from": hnsw.graph_from}
        if encoder is not None:
            actors = _start_encoders(ray, encoder, options)
            infos = ray.get([a.info.remote() for a in actors])
            report.providers = sorted({p for i in infos for p in i["providers"]})
            first_pids = [i["pid"] for i in infos]
            first_cpu = [i["cpu"] for i in infos]
        report.encoders = len(actors)
        bar = _Progress(total, options.progress_every_s, progress)
        log.info("ray ingest: %d encoder actor(s) %s, shards of %d passages, %s", len(actors),
                 report.providers, options.shard_passages, ray.cluster_resources())
        shards = _run(ray, documents, chunk, counts, ingest, on_reject, source, dense_text, writer,
                      actors, options, shard_settings, work, bar, report)
        bar.close()
        log.info("%s", bar.line())
        if actors:
            infos = ray.get([a.info.remote() for a in actors])
            report.encoder_restarts = sum(i["pid"] != p for i, p in zip(infos, first_pids))
            report.encoder_cpu_seconds = round(sum(i["cpu"] - (c if i["pid"] == p else 0.0)
                                                   for i, p, c in zip(infos, first_pids, first_cpu)), 3)
        t_merge = time.perf_counter()
        if mode == "append":
            for result, parents in shards:  # later shards replace earlier ones: stream order
                writer.delete_parents(sorted(parents))
                writer.add_indexes([result["path"]], [result["metadata_fields"]])
        else:
            writer.add_indexes([result["path"] for result, _ in shards],
                               [result["metadata_fields"] for result, _ in shards])
        manifest.settings["ray"] = {"encoders": len(actors), "shards": len(shards),
                                    "shard_passages": options.shard_passages}
        writer.close()
        report.merge_seconds = time.perf_counter() - t_merge
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        if isinstance(exc, ray.exceptions.RayError):
            raise DistributedIngestError(
                f"distributed build of {index_dir} failed after Ray's retries "
                f"(max_retries={options.max_retries}): {type(exc).__name__}: {str(exc).strip()[:600]} "
                f"(nothing was published)") from None
        raise
    finally:
        for actor in actors:
            ray.kill(actor, no_restart=True)
        if work is not None:
            # one attempt = one shard-<n>-<attempt> name, whatever files it left (folder, building dir, lock)
            report.shard_attempts = len({m.group(0) for p in work.iterdir()
                                         if (m := re.search(r"shard-\d{6}-[0-9a-f]{8}", p.name))})
            shutil.rmtree(work, ignore_errors=True)
        if started:
            ray.shutdown()
    report.shards = len(shards)
    report.write_seconds = round(sum(result["seconds"] for result, _ in shards), 3)
    report.writer_cpu_seconds = round(sum(result["cpu"] for result, _ in shards), 3)
    report.driver_cpu_seconds = round(time.process_time() - c_start, 3)
    report.indexed = counts.pulled - counts.skipped - counts.rejected
    report.skipped = counts.skipped
    report.rejected = counts.rejected + (getattr(stats, "rejected", 0) if stats is not None else 0)
    report.read = getattr(stats, "read", counts.pulled) if stats is not None else counts.pulled
    report.index_passages = writer.manifest.passages
    report.warnings += [f"kept {name} from the index this build replaced (fitted on its passages: refit it with "
                        "`lucerag calibrate` if they changed)" for name in writer.kept]
    report.seconds = time.perf_counter() - t_start
    if report.read != report.indexed + report.skipped + report.rejected:  # pragma: no cover - a bug
        raise AssertionError(f"ingest counts do not reconcile: {report}")
    return report


def _start_encoders(ray, encoder, options: RayOptions) -> list:
    resources = ray.cluster_resources()
    gpu = options.encoder_gpus > 0
    n = options.encoders
    if n is None:
        if gpu:
            n = max(1, int(resources.get("GPU", 0) // options.encoder_gpus))
        else:
            n = max(1, int(resources.get("CPU", 1) // options.encoder_cpus))
    threads = options.encoder_threads or max(1, int(options.encoder_cpus))
    cls = ray.remote(_Encoder).options(num_cpus=options.encoder_cpus, num_gpus=options.encoder_gpus,
                                        max_restarts=options.max_retries,
                                        max_task_retries=options.max_retries)
    return [cls.remote(str(encoder.model_dir), threads, gpu, options) for _ in range(n)]


def _run(ray, documents, chunk, counts, ingest: IngestOptions, on_reject, source, dense_text, writer,
         actors, options, shard_settings, work, bar, report) -> list[tuple[dict, set]]:
    """Stream batches through the encoders into shard tasks; returns the finished shards in order.
    Every batch's ids are checked on the driver (``writer.check_ids``, as ``add_batch`` checks them)
    before it is dispatched."""
    append = writer.mode == "append"
    write = ray.remote(_write_shard).options(num_cpus=options.writer_cpus, max_retries=options.max_retries,
                                             runtime_env={"env_vars": dict(JVM_SAFE_ENV)})
    docs = _checked(documents, counts, ingest.on_error, on_reject, source)
    batches = _in_thread(_batches(chunk(docs), ingest.batch_size, counts))
    encoding: dict = {}            # vectors ref -> (actor index, passages, documents pulled)
    load = [0] * len(actors)       # unfinished calls per actor
    writing: dict = {}             # shard task ref -> (shard number, parents)
    done: dict[int, tuple[dict, set]] = {}
    parts: list = []
    parents: set[str] = set()
    shard_size = 0
    shard_no = 0

    def drain_encoding(limit: int) -> None:
        while len(encoding) > limit:
            ready, _ = ray.wait(list(encoding), num_returns=1)
            for ref in ready:
                a, n, pulled = encoding.pop(ref)
                load[a] -= 1
                bar.encoded(n, pulled)

    def drain_writing(limit: int) -> None:
        while len(writing) > limit:
            ready, _ = ray.wait(list(writing), num_returns=1)
            for ref in ready:
                number, shard_parents = writing.pop(ref)
                done[number] = (ray.get(ref), shard_parents)  # raises once retries are exhausted

    def submit_shard() -> None:
        nonlocal parts, parents, shard_size, shard_no
        drain_writing(options.shards_in_flight - 1)
        writing[write.remote(str(work), shard_no, shard_settings, options, *parts)] = (shard_no, parents)
        shard_no += 1
        parts, parents, shard_size = [], set(), 0

    try:
        t0 = time.perf_counter()
        for batch, pulled, where in batches:
            report.wait_seconds += time.perf_counter() - t0
            ids, batch_parents, titles, texts, metas = map(list, zip(*batch))
            try:
                writer.check_ids(ids, batch_parents)
            except DuplicateIdError as exc:
                raise located(exc, batch_parents, where, source) from None
            if append and not parents.isdisjoint(batch_parents) and parts:
                submit_shard()  # a document seen again replaces its earlier copy: keep them in separate shards
            ref = ray.put({"ids": ids, "parents": batch_parents, "titles": titles, "texts": texts, "metas": metas,
                           "encode": dense_texts(titles, texts, dense_text) if actors else None})
            parts.append(ref)
            if actors:
                a = min(range(len(actors)), key=load.__getitem__)
                vectors = actors[a].encode.remote(ref, ingest.encode_batch_size)
                load[a] += 1
                encoding[vectors] = (a, len(ids), pulled)
                parts.append(vectors)
                drain_encoding(options.in_flight * len(actors))
            else:
                bar.encoded(len(ids), pulled)
            if append:
                parents.update(batch_parents)
            report.passages += len(ids)
            shard_size += len(ids)
            if shard_size >= options.shard_passages:
                submit_shard()
            t0 = time.perf_counter()
        if parts:
            submit_shard()
        drain_encoding(0)
        drain_writing(0)
        return [done[k] for k in sorted(done)]
    except BaseException:
        # shard tasks still running would write into the work folder after the driver removed it
        if writing:
            ray.wait(list(writing), num_returns=len(writing), timeout=120)
        raise
