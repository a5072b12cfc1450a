"""LlamaIndex retriever over lucerag (extra ``lucerag[llamaindex]``: ``llama-index-core``).

```python
from lucerag.rag.api import RAG
from lucerag.adapters.llamaindex import LuceragRetriever

rag = RAG.from_index("indexes/docs")
nodes = LuceragRetriever(rag, k=5).retrieve("how do I rotate the keys?")   # list[NodeWithScore]
```

Each ``NodeWithScore`` holds a ``TextNode`` (``id_`` = passage id, ``text``, the source's own
``metadata`` untouched plus lucerag's evidence under ``lucerag_*`` names, ``ref_doc_id`` = the parent
document) and the fused ``score``.

Metadata filters: ``where=`` (lucerag's filter language, :mod:`lucerag.search.filters`) or
``filters=`` (LlamaIndex's own ``MetadataFilters``: ==, !=, >, >=, <, <=, in, nin, and/or
conditions, nested), translated by :func:`where_from_llamaindex`. ``relevance_filter`` switches the
calibrated relevance filter; ``filter`` is its old name (deprecated).
"""

from __future__ import annotations

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("lucerag.adapters.llamaindex needs llama-index-core: pip install 'lucerag[llamaindex]'") from exc

from lucerag.adapters.fields import parent_id, retrieval_fields
from typing import Any

from lucerag.passage import Passage


def to_node(p: Passage) -> NodeWithScore:
    """A ``NodeWithScore``: ``score`` the passage's score; a ``TextNode`` with ``id_`` the passage id,
    the source's own metadata unchanged (plus ``title`` where it has none) and lucerag's evidence
    under ``lucerag_*`` names (kept out of embeddings and prompts), and the parent document as its
    SOURCE relationship, so ``node.ref_doc_id`` is the document the passage was cut from."""
    meta = dict(p.metadata or {})
    if p.title:
        meta.setdefault("title", p.title)
    evidence = retrieval_fields(p)
    for key, value in evidence.items():
        meta.setdefault(key, value)
    node = TextNode(id_=p.id, text=p.text, metadata=meta,
                    relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=parent_id(p))},
                    excluded_embed_metadata_keys=list(evidence), excluded_llm_metadata_keys=list(evidence))
    return NodeWithScore(node=node, score=p.score)


_OPERATORS = {"==": "term", ">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def where_from_llamaindex(filters) -> dict[str, Any]:
    """lucerag's filter for LlamaIndex ``MetadataFilters`` (``ValueError`` for an operator lucerag
    lacks, such as ``text_match``)."""
    parts = []
    for f in filters.filters:
        if hasattr(f, "filters"):  # nested MetadataFilters
            parts.append(where_from_llamaindex(f))
            continue
        op = str(getattr(f.operator, "value", f.operator))
        if op == "==":
            parts.append({"term": {f.key: f.value}})
        elif op == "!=":
            parts.append({"not": {"term": {f.key: f.value}}})
        elif op in (">", ">=", "<", "<="):
            parts.append({"range": {f.key: {_OPERATORS[op]: f.value}}})
        elif op in ("in", "nin"):  # one string is one value, never its characters
            terms = {"terms": {f.key: list(f.value) if isinstance(f.value, list) else [f.value]}}
            parts.append(terms if op == "in" else {"not": terms})
        elif op in ("any", "contains"):
            parts.append({"terms": {f.key: list(f.value) if isinstance(f.value, list) else [f.value]}})
        elif op == "all":
            values = list(f.value) if isinstance(f.value, list) else [f.value]
            each = [{"term": {f.key: v}} for v in values]
            parts.append(each[0] if len(each) == 1 else {"and": each})
        elif op == "is_empty":
            parts.append({"not": {"exists": f.key}})
        else:
            raise ValueError(f"filters: LlamaIndex operator {op!r} on {f.key!r} has no lucerag equivalent "
                             "(use ==, !=, >, >=, <, <=, in, nin, any, all, contains, is_empty)")
    condition = str(getattr(filters.condition, "value", filters.condition) or "and").lower()
    if condition == "not":  # LlamaIndex: a passage matches when none of the filters does
        return {"not": parts[0] if len(parts) == 1 else {"or": parts}}
    return parts[0] if len(parts) == 1 else {condition: parts}


class LuceragRetriever(BaseRetriever):
    """A LlamaIndex ``BaseRetriever`` calling :meth:`lucerag.rag.api.RAG.retrieve`."""

    def __init__(self, rag, k: int | None = None, method: str = "hybrid", relevance_filter: bool | None = None, *,
                 where: dict[str, Any] | None = None, filters=None, filter: bool | None = None, **kwargs):
        from lucerag.search.request import relevance_option

        super().__init__(**kwargs)
        if where is not None and filters is not None:
            raise ValueError("pass either where (lucerag's filter) or filters (LlamaIndex's), not both")
        self.rag, self.k, self.method = rag, k, method
        self.relevance_filter = relevance_option(relevance_filter if filter is None else None, filter)
        self.where = where if filters is None else where_from_llamaindex(filters)

    def _options(self) -> dict[str, Any]:
        return {"where": self.where, "relevance_filter": self.relevance_filter, "method": self.method}

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = self.rag.retrieve(query_bundle.query_str, self.k, **self._options())
        return [to_node(p) for p in passages]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = await self.rag.aretrieve(query_bundle.query_str, self.k, **self._options())
        return [to_node(p) for p in passages]
