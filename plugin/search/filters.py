"""Metadata filters (``where``): a small filter language translated to one Lucene query.

A filter is a JSON-like dict; each node has one operator:

* ``{"term": {"lang": "en"}}``: the key holds the value (string, number or boolean; for a list
  of values in the metadata, any element);
* ``{"terms": {"lang": ["en", "de"]}}``: the key holds any of the values;
* ``{"range": {"year": {"gte": 2020, "lt": 2024}}}``: bounds ``gt``, ``gte``, ``lt``, ``lte``,
  numbers or ISO 8601 dates/date-times (``"2024-05-01"``, ``"2024-05-01T12:00:00Z"``; a time
  without zone is UTC, a date is its midnight UTC);
* ``{"exists": "author"}``: the passage has the key;
* ``{"and": [f, ...]}``, ``{"or": [f, ...]}``, ``{"not": f}``.

Shorthand: a dict without operators, ``{"lang": "en", "year": [2020, 2021]}``, means the AND of
a ``term`` (scalar value) or ``terms`` (list) per key. Keys of nested metadata objects are
joined with dots (``source.lang``). The fields are those :mod:`lucerag.index.metadata` writes.

The translated query is used as a filter inside both views before their top-k: a FILTER clause
of the BM25 query and the filter of Lucene's ``KnnFloatVectorQuery`` (which scores the matching
passages exhaustively when the graph search would visit more than they are). Translations are
cached (by the filter's canonical JSON).

Errors: :class:`FilterError` (a :class:`~lucerag.errors.QueryError`) names the node, e.g.
``where.and[1].range.year: unknown bound 'gtee' (use gt, gte, lt, lte)``.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from lucerag.errors import FilterError
from lucerag.index.metadata import META, META_EXISTS, META_NUM, epoch_seconds

Where = Mapping[str, Any]
OPERATORS = ("term", "terms", "range", "exists", "and", "or", "not")
BOUNDS = ("gt", "gte", "lt", "lte")
MAX_NODES = 256     # a bound on the size of one filter (a request cannot build a huge query)
MAX_VALUES = 1024   # values in one ``terms`` node




# -- the parsed form ------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    op: str                  # term | range | exists | and | or | not
    key: str = ""
    values: tuple = ()       # term: the accepted values (str / float)
    lo: float = -math.inf    # range: inclusive bounds
    hi: float = math.inf
    children: tuple = ()
    path: str = "where"


def parse(where: Where, path: str = "where") -> Node:
    """Check a filter and return its parsed form; raises :class:`FilterError` naming the node."""
    count = [0]
    return _parse(where, path, count)


def _parse(node: Any, path: str, count: list[int]) -> Node:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise FilterError(f"{path}: the filter has more than {MAX_NODES} nodes")
    if not isinstance(node, Mapping) or not node:
        raise FilterError(f"{path}: expected an object such as {{\"term\": {{\"lang\": \"en\"}}}}, "
                          f"not {_show(node)}")
    ops = [k for k in node if k in OPERATORS]
    if not ops:  # shorthand: {"lang": "en", "year": [2020, 2021]}
        _check_shorthand(node, path)
        children = tuple(_parse({"terms" if isinstance(v, (list, tuple)) else "term": {k: v}},
                                path, count) for k, v in node.items())
        return children[0] if len(children) == 1 else Node("and", children=children, path=path)
    if len(node) != 1:
        raise FilterError(f"{path}: one operator per object, found {', '.join(map(repr, node))} "
                          "(combine them with \"and\")")
    op, arg = ops[0], node[ops[0]]
    here = f"{path}.{op}"
    if op in ("and", "or"):
        if not isinstance(arg, (list, tuple)) or not arg:
            raise FilterError(f"{here}: expected a non-empty list of filters, not {_show(arg)}")
        return Node(op, children=tuple(_parse(c, f"{here}[{i}]", count) for i, c in enumerate(arg)), path=here)
    if op == "not":
        return Node("not", children=(_parse(arg, here, count),), path=here)
    if op == "exists":
        key = arg.get("field") if isinstance(arg, Mapping) and len(arg) == 1 else arg
        if not isinstance(key, str) or not key:
            raise FilterError(f"{here}: expected a metadata key (a string), not {_show(arg)}")
        return Node("exists", key=key, path=here)
    if not isinstance(arg, Mapping) or len(arg) != 1:
        raise FilterError(f"{here}: expected one metadata key and its {'values' if op == 'terms' else 'value'}, "
                          f"e.g. {{\"{op}\": {{\"lang\": {'[\"en\", \"de\"]' if op == 'terms' else '\"en\"'}}}}}, "
                          f"not {_show(arg)}")
    key, value = next(iter(arg.items()))
    if not isinstance(key, str) or not key:
        raise FilterError(f"{here}: the metadata key must be a non-empty string")
    here = f"{here}.{key}"
    if op == "term":
        return Node("term", key=key, values=(_scalar(value, here),), path=here)
    if op == "terms":
        if not isinstance(value, (list, tuple)) or not value:
            raise FilterError(f"{here}: expected a non-empty list of values, not {_show(value)}")
        if len(value) > MAX_VALUES:
            raise FilterError(f"{here}: at most {MAX_VALUES} values, got {len(value)}")
        return Node("term", key=key, values=tuple(_scalar(v, f"{here}[{i}]") for i, v in enumerate(value)),
                    path=here)
    # range
    if not isinstance(value, Mapping) or not value:
        raise FilterError(f"{here}: expected bounds such as {{\"gte\": 2020, \"lt\": 2024}}, not {_show(value)}")
    lo, hi = -math.inf, math.inf
    for bound, v in value.items():
        if bound not in BOUNDS:
            raise FilterError(f"{here}: unknown bound {bound!r} (use {', '.join(BOUNDS)})")
        x = _number(v, f"{here}.{bound}")
        if bound == "gt":
            lo = max(lo, math.nextafter(x, math.inf))
        elif bound == "gte":
            lo = max(lo, x)
        elif bound == "lt":
            hi = min(hi, math.nextafter(x, -math.inf))
        else:
            hi = min(hi, x)
    return Node("range", key=key, lo=lo, hi=hi, path=here)


# Operators of other stores' filter languages (Chroma, MongoDB, Pinecone, LanceDB's SQL words), for the hint.
_FOREIGN = {"eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "match", "like", "equals", "exists",
            "and", "or", "not", "term", "terms", "range"}
_SYNTAX = ("lucerag's operators are term, terms, range, exists, and, or, not, e.g. "
           "{\"range\": {\"year\": {\"gte\": 2020}}} or {\"not\": {\"term\": {\"lang\": \"en\"}}}")


def _check_shorthand(node: Mapping, path: str) -> None:
    """A shorthand object holds metadata keys and plain values; an object as a value, or a key
    such as ``$and``, is another store's operator (Chroma's ``{"lang": {"$eq": "en"}}``), which
    would otherwise be reported as a bad ``term`` the caller never wrote."""
    for key, value in node.items():
        if isinstance(key, str) and key.lstrip("$").lower() in _FOREIGN and (
                key.startswith("$") or isinstance(value, Mapping)):
            raise FilterError(f"{path}: unknown operator {key!r}; {_SYNTAX}")
        if isinstance(value, Mapping):
            first = next(iter(value), None)
            what = (f"{first!r} is not a lucerag operator" if isinstance(first, str) and first.lstrip("$").lower()
                    in _FOREIGN else "an object is not a metadata value")
            raise FilterError(f"{path}.{key}: {what} ({_show(value)}): the shorthand {{\"key\": value}} takes a "
                              f"string, number, boolean or a list of them; {_SYNTAX}")


def _scalar(value: Any, path: str) -> str | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise FilterError(f"{path}: {value} is not a finite number")
        return float(value)
    if isinstance(value, str):
        return value
    raise FilterError(f"{path}: expected a string, number or boolean, not {_show(value)}")


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise FilterError(f"{path}: expected a number or an ISO 8601 date, not a boolean")
    if isinstance(value, (int, float)):
        if math.isnan(value):
            raise FilterError(f"{path}: NaN is not a bound")
        return float(value)
    if isinstance(value, str):
        seconds = epoch_seconds(value)
        if seconds is not None:
            return seconds
        raise FilterError(f"{path}: {value!r} is neither a number nor an ISO 8601 date "
                          "(e.g. 2024-05-01 or 2024-05-01T12:00:00Z)")
    raise FilterError(f"{path}: expected a number or an ISO 8601 date, not {_show(value)}")


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- checking against an index --------------------------------------------------------------------

def check(node: Node, fields: Mapping[str, list[str]] | None, index: str = "the index") -> None:
    """Raise :class:`FilterError` when ``node`` names a key no passage of the index has, or
    compares a key with a value of a kind it never holds (a filter that would silently match
    nothing). ``fields`` is the index manifest's ``metadata_fields`` (None: not indexed)."""
    if fields is None:
        raise FilterError(f"{index} has no metadata filter fields (it was built by Anserini or an "
                          "older lucerag, or appended to one): rebuild it with `lucerag index` to filter "
                          "on metadata")
    if node.op in ("and", "or", "not"):
        for child in node.children:
            check(child, fields, index)
        return
    kinds = fields.get(node.key)
    if kinds is None:
        known = ", ".join(sorted(fields)[:20]) or "none"
        raise FilterError(f"{node.path}: no passage in {index} has metadata key {node.key!r} "
                          f"(keys: {known})")
    if node.op == "range" and not {"number", "date"} & set(kinds):
        raise FilterError(f"{node.path}: {node.key!r} holds {'/'.join(kinds)} values, not numbers or "
                          "dates: a range cannot match it (use term/terms)")
    if node.op == "term":
        numbers = any(isinstance(v, float) for v in node.values)
        strings = any(isinstance(v, str) for v in node.values)
        if numbers and "number" not in kinds:
            raise FilterError(f"{node.path}: {node.key!r} holds {'/'.join(kinds)} values, never numbers: "
                              f"compare it with a string")
        if strings and "keyword" not in kinds:
            raise FilterError(f"{node.path}: {node.key!r} holds numbers, never strings or booleans: "
                              "compare it with a number")


# -- translation to Lucene ---------------------------------------------------------------------------

def to_query(node: Node):
    """The Lucene ``Query`` matching the passages ``node`` accepts (built through lucerag.Bridge)."""
    from lucerag.lucene.classes import java

    bridge = java.Bridge
    if node.op == "exists":
        return bridge.keywordQuery(META_EXISTS, [node.key])
    if node.op == "term":
        words = [v for v in node.values if isinstance(v, str)]
        numbers = [v for v in node.values if isinstance(v, float)]
        parts = []
        if words:
            parts.append(bridge.keywordQuery(META + node.key, words))
        if numbers:
            parts.append(bridge.numberSet(META_NUM + node.key, np.asarray(numbers, "<f8").tobytes()))
        return parts[0] if len(parts) == 1 else bridge.booleanQuery([], parts, [])
    if node.op == "range":
        if node.lo > node.hi:
            return bridge.matchNone()
        return bridge.numberRange(META_NUM + node.key, node.lo, node.hi)
    children = [to_query(c) for c in node.children]
    if node.op == "and":
        return bridge.booleanQuery(children, [], [])
    if node.op == "or":
        return bridge.booleanQuery([], children, [])
    return bridge.booleanQuery([], [], children)  # not


def canonical(where: Where) -> str:
    """A stable text of a filter (its cache key and part of a pagination cursor)."""
    try:
        return json.dumps(where, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise FilterError(f"where: not a JSON-like filter ({exc})") from None


class FilterCache:
    """Translated filters by canonical JSON (LRU, ``size`` entries): a repeated filter costs one
    dict lookup instead of a Java call per node."""

    def __init__(self, size: int = 256):
        self.size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def query(self, where: Where | None, fields: Mapping[str, list[str]] | None, index: str = "the index"):
        """The Lucene query of ``where`` for an index with ``fields`` (None when ``where`` is None)."""
        if where is None:
            return None
        key = canonical(where) + "\0" + index
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        node = parse(where)
        check(node, fields, index)
        query = to_query(node)
        with self._lock:
            self._items[key] = query
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return query
