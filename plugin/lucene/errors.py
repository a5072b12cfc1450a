"""Java exceptions raised through pyjnius, recognised by their Java class and turned into lucerag's own.

pyjnius raises every Java exception as one Python class, ``jnius.JavaException``, carrying the Java
class name (``classname``) and message (``innermessage``). This module is the one place that looks
at them: :func:`java_errors` wraps a block of Java calls and re-raises what it recognises as a
:class:`~lucerag.errors.LuceragError`; anything else keeps its Java class and message
(:func:`java_error_message`) but no Java stack trace.

Classes are compared with Java's own ``Class.isAssignableFrom``, so subclasses count
(``IndexSearcher$TooManyNestedClauses`` is a ``TooManyClauses``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

from lucerag.errors import LuceragError, QueryError

TOO_MANY_CLAUSES = "org.apache.lucene.search.IndexSearcher$TooManyClauses"
INDEX_FORMAT_TOO_NEW = "org.apache.lucene.index.IndexFormatTooNewException"
LOCK_OBTAIN_FAILED = "org.apache.lucene.store.LockObtainFailedException"


def is_java_exception(exc: BaseException) -> bool:
    """Whether ``exc`` is a Java exception raised through pyjnius."""
    if type(exc).__module__.split(".")[0] != "jnius":
        return False
    from jnius import JavaException

    return isinstance(exc, JavaException)


def java_class_name(exc: BaseException) -> str | None:
    """The Java class name of a pyjnius exception (``a.b.Outer$Inner``), else None."""
    return getattr(exc, "classname", None) if is_java_exception(exc) else None


@cache
def _class(name: str):
    from lucerag.lucene import jvm

    try:
        return jvm.jclass("java.lang.Class").forName(name)
    except Exception:  # noqa: BLE001 - a class this runtime lacks matches nothing
        return None


def is_instance(exc: BaseException, java_class: str) -> bool:
    """Whether the Java exception ``exc`` is an instance of ``java_class`` (or of a subclass)."""
    name = java_class_name(exc)
    if name is None:
        return False
    if name == java_class:
        return True
    parent, child = _class(java_class), _class(name)
    return parent is not None and child is not None and bool(parent.isAssignableFrom(child))


def java_error_message(exc: BaseException) -> str:
    """A one-line message for a Java exception raised through pyjnius (no stack trace)."""
    inner = getattr(exc, "innermessage", None) or str(exc)
    classname = getattr(exc, "classname", None)
    return f"{classname}: {inner}" if classname else inner


def max_clause_count() -> int:
    """Lucene's limit on the clauses of one query (``IndexSearcher.getMaxClauseCount()``, 1024)."""
    from lucerag.lucene import jvm

    return int(jvm.jclass("org.apache.lucene.search.IndexSearcher").getMaxClauseCount())


def too_many_clauses() -> QueryError:
    limit = max_clause_count()
    return QueryError(f"the query has more than {limit} distinct terms, Lucene's limit on the clauses of "
                      f"one BM25 query (IndexSearcher.maxClauseCount = {limit}); shorten it", "query")


def translate(exc: BaseException) -> LuceragError | None:
    """The lucerag error for a recognised Java exception, else None."""
    if is_instance(exc, TOO_MANY_CLAUSES):
        return too_many_clauses()
    return None


@contextmanager
def java_errors(fallback: Callable[[str], Exception] | None = None) -> Iterator[None]:
    """Re-raise Java exceptions from the block as lucerag errors.

    A recognised Java class becomes its :class:`~lucerag.errors.LuceragError` (see :func:`translate`);
    any other Java exception becomes ``fallback(message)`` when given (e.g. an ``IndexWriteError``
    naming the index), else propagates unchanged. Python exceptions always propagate unchanged."""
    try:
        yield
    except Exception as exc:
        if not is_java_exception(exc):
            raise
        mapped = translate(exc)
        if mapped is not None:
            raise mapped from None
        if fallback is not None:
            raise fallback(java_error_message(exc)) from None
        raise
