"""The one exception hierarchy of lucerag: every error lucerag raises on purpose is a ``LuceragError``.

```
LuceragError
├── InputError (ValueError)          what the caller gave is wrong; HTTP 422
│   ├── QueryError                   a query or query request (text, k, method, filter, budget)
│   ├── ConfigError                  a configuration file or value
│   ├── ConnectorError               a document source (file and line named)
│   │   └── RecordError              one bad record of it (``on_error="skip"`` rejects it and goes on)
│   ├── ExtractionError              one file's text cannot be extracted (PDF, HTML, ...)
│   ├── VectorFormatError            a vector file for ``lucerag import-vectors``
│   ├── UnsupportedError             the index or configuration cannot do what was asked
│   ├── UnknownRunIdError            a run id of no corpus document (``eval --strict``)
│   ├── IndexTargetError             an index path holds something lucerag did not create
│   ├── EmptyBuildError              a rebuild that added no passages would replace an index
│   └── DuplicateIdError             passage ids clash (file and line named)
├── LuceneIndexError                 an index on disk cannot be used as asked
│   ├── IndexNotFoundError (FileNotFoundError)
│   │   └── IndexTooNewError         written by a newer Lucene
│   └── IndexWriteError (RuntimeError)   Lucene refused a write
│       ├── IndexLockedError         another writer holds the index's write lock
│       └── DistributedIngestError   a Ray build failed after its retries; nothing was published
├── EncoderError                     the encoder model
│   ├── EncoderMismatchError (ValueError) the index was built with another encoder
│   └── UnsupportedModel (ValueError)     a checkpoint the ONNX builder cannot export
├── SetupError                       the installation lacks something (HTTP 500: the operator's to fix)
│   ├── JavaNotFoundError (RuntimeError)
│   │   └── AnseriniNotFoundError
│   ├── ExportDependencyError (ImportError)
│   └── RayNotInstalledError (ImportError)   ``lucerag index --ray`` without ``lucerag[ray]``
├── ServiceError (RuntimeError)      the service cannot take the request now; HTTP 503
│   ├── Overloaded
│   ├── ClosedError
│   └── SearchTimeoutError           HTTP 504
├── Unauthorized                     a missing or wrong API key; HTTP 401
└── LLMError (RuntimeError)          the generation endpoint failed; HTTP 502
    └── LLMTimeoutError
```

The classes are defined here, once; the modules that raise them re-export them under their old
import paths (``lucerag.search.retriever.QueryError``, ``lucerag.index.reader.IndexNotFoundError``,
...). Each keeps the built-in base it had before (``ValueError``, ``FileNotFoundError``,
``RuntimeError``, ``ImportError``), so ``except ValueError`` written against older releases still
catches what it caught. Java exceptions become these classes in one place:
:mod:`lucerag.lucene.errors`.
"""

from __future__ import annotations

import os

from pathlib import Path


class LuceragError(Exception):
    """Base of every error lucerag raises on purpose (bad input, a missing index, a broken encoder)."""


# -- the caller's input ----------------------------------------------------------------------------

class InputError(LuceragError, ValueError):
    """What the caller gave (a query, a file, a request, an option) is not acceptable."""


class QueryError(InputError):
    """A query request cannot be searched: empty text, an unpaired surrogate, too long, too many
    terms for Lucene, ``k`` out of range, an unknown method, a non-boolean filter.

    ``field`` names the request field at fault (``"query"``, ``"k"``, ``"method"``, ...)."""

    def __init__(self, message: str, field: str = "query"):
        super().__init__(message)
        self.field = field


class FilterError(QueryError):
    """A metadata filter (``where``) that cannot be applied: bad syntax, a value of the wrong type
    for its key, a key no passage has, or an index without filter fields. The message starts with
    the path of the offending node (``where.and[1].range.year: ...``)."""

    def __init__(self, message: str, field: str = "where"):
        super().__init__(message, field)


class CursorError(QueryError):
    """A pagination cursor that is malformed, belongs to another query, or outlived its index."""

    def __init__(self, message: str, field: str = "cursor"):
        super().__init__(message, field)


class RerankerError(InputError):
    """A re-ranker that cannot be loaded (missing model.onnx or tokenizer.json, wrong inputs) or
    returns the wrong number of scores."""


class ConfigError(InputError):
    """The configuration file is missing, not TOML, or fails validation."""


class ConnectorError(InputError):
    """A document source cannot be read; the message names the file (or database) and the line,
    row or path."""

    def __init__(self, source: str, location: str, reason: str) -> None:
        self.source, self.location, self.reason = source, location, reason
        where = f"{source}: {location}" if location else source
        super().__init__(f"{where}: {reason}")


class RecordError(ConnectorError):
    """One record of a source is bad (malformed, no id or text, an id too long); the others may be
    fine: ``on_error="skip"`` (CLI ``--on-error skip``) rejects it and goes on."""


class ExtractionError(InputError):
    """Text could not be extracted from one file (bad UTF-8, encrypted or image-only PDF, ...);
    the folder connector reports it as a :class:`ConnectorError` naming the file."""


class VectorFormatError(InputError):
    """A vector file for ``import-vectors`` is malformed; the message names the file and line."""


class UnsupportedError(InputError):
    """The index or configuration cannot do what was asked (no dense view, no calibrator, ...)."""


class UnknownRunIdError(InputError):
    """A run names an id that is neither a corpus id nor a chunk (``<corpus id>#<n>``) of one."""


class IndexTargetError(InputError):
    """The path given for an index holds something lucerag did not create: it is left untouched."""

    def __init__(self, path: "os.PathLike[str] | str", reason: str):
        self.path = path
        super().__init__(f"refusing to write an index at {path}: {reason}; nothing was changed. "
                         "Give a new path, an empty folder or an existing lucerag index.")


class EmptyBuildError(InputError):
    """A rebuild that added no passages (empty input, every record rejected) would replace an index
    that holds some: refused, the index is left as it was."""

    def __init__(self, path: "os.PathLike[str] | str", passages: int | None):
        self.path, self.passages = path, passages
        held = (f"{passages:,} passage{'' if passages == 1 else 's'}" if passages is not None
                else "unreadable, but an index")
        super().__init__(f"refusing to replace the index at {path} ({held}) with an empty "
                         "build: no passages were added (the input was empty or every record was rejected); "
                         "nothing was changed. To empty an index, delete its folder.")


class DuplicateIdError(InputError):
    """Passage ids clash: ``clashes`` lists ``(position in the batch, id, why)``."""

    def __init__(self, clashes: list[tuple[int, str, str]], where: str = "", what: str = ""):
        self.clashes, self.where = clashes, where
        pos, pid, why = clashes[0]
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        super().__init__(f"{where + ': ' if where else ''}passage id {pid!r}{' ' + what if what else ''} {why}"
                         f"{more}: ids must be unique in an index (nothing was written)")

    def located(self, where: str, what: str = "") -> "DuplicateIdError":
        """The same error, naming where the first clashing passage came from (file and line)."""
        return DuplicateIdError(self.clashes, where, what)


# -- indexes -----------------------------------------------------------------------------------------

class LuceneIndexError(LuceragError):
    """An index on disk cannot be used as asked."""


class IndexNotFoundError(LuceneIndexError, FileNotFoundError):
    """The configured path holds no (readable) Lucene index."""


class IndexTooNewError(IndexNotFoundError):
    """The index was written by a newer Lucene than the one lucerag runs on."""

    def __init__(self, path: Path, index_version: str, running_version: str, jar: str = "in use"):
        self.path, self.index_version, self.running_version = path, index_version, running_version
        super().__init__(
            f"{path} was written by Lucene {index_version}, newer than the Lucene {running_version} this "
            f"lucerag runs on (the Anserini jar {jar}). Rebuild the index with this lucerag or an "
            "Anserini of the same Lucene major version, or upgrade pyserini/Anserini.")


class IndexWriteError(LuceneIndexError, RuntimeError):
    """Lucene refused a write (disk full, a lock held by another writer, a corrupt segment, ...)."""


class IndexLockedError(IndexWriteError):
    """Another writer (this process or another) holds the index's write lock (``lucerag.index.lock``)."""


class DistributedIngestError(IndexWriteError):
    """A distributed (Ray) build failed: a worker kept failing after Ray's retries, or the cluster
    cannot be joined. Nothing was published: the previous index is as it was."""


# -- the encoder -------------------------------------------------------------------------------------

class EncoderError(LuceragError):
    """The encoder model cannot be used as asked."""


class EncoderMismatchError(EncoderError, ValueError):
    """The index was built with another encoder (name, weights or prefixes) than the one in use."""


class CalibratorMismatch(EncoderMismatchError):
    """The configured relevance calibrator was fitted on another encoder than the one in use."""


class CalibratorWarning(UserWarning):
    """The relevance calibrator was fitted under other fusion settings or encoder precision/recipe."""


class NoStoredTextWarning(UserWarning):
    """An index stores no passage text (an Anserini index built without -storeRaw / -storeContents):
    its passages come back with empty text."""


class NonUnitVectorsWarning(UserWarning):
    """An index lucerag did not write (Anserini's) holds vectors that are not of unit length: they are
    ranked by inner product, as Lucene ranks them, but fusion and the relevance filter read the dense
    score as a cosine."""


class UnsupportedModel(EncoderError, ValueError):
    """A checkpoint the numpy ONNX builder does not cover (the message says why)."""


# -- the installation --------------------------------------------------------------------------------

class SetupError(LuceragError):
    """The installation lacks something lucerag needs; the message says how to install it."""


class JavaNotFoundError(SetupError, RuntimeError):
    """No Java runtime >= 21 could be found."""


class AnseriniNotFoundError(JavaNotFoundError):
    """The Anserini 2.x fat jar (shipped inside pyserini >= 2.4) is missing or too old.

    pyserini is installed without its dependencies (they pull PyTorch and CUDA packages), so it is
    not a declared dependency of lucerag; the message says how to install it."""


class ExportDependencyError(SetupError, ImportError):
    """An optional dependency of the export (torch/transformers for ``backend='torch'``) is missing."""


class RayNotInstalledError(SetupError, ImportError):
    """A distributed build was asked for and ``ray`` is not installed (``pip install 'lucerag[ray]'``)."""


# -- the service -------------------------------------------------------------------------------------

class ServiceError(LuceragError, RuntimeError):
    """The service cannot take the request now (retry later)."""


class Overloaded(ServiceError):
    """More searches are waiting than the pool accepts (``max_queue``)."""


class ClosedError(ServiceError):
    """The RAG object (and its index readers) has been closed."""


class SearchTimeoutError(ServiceError):
    """A search waited longer than the service's ``search_timeout`` (HTTP 504)."""


class Unauthorized(LuceragError):
    """A request to the HTTP service lacks the API key or sends a wrong one (HTTP 401)."""


# -- generation --------------------------------------------------------------------------------------

class LLMError(LuceragError, RuntimeError):
    """The LLM endpoint failed: HTTP error after retries, bad JSON, or an unusable answer."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class LLMTimeoutError(LLMError):
    """The LLM endpoint did not answer within the configured timeout (after retries)."""
