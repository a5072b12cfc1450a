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
"""

from __future__ import annotations

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("lucerag.adapters.llamaindex needs llama-index-core: pip install 'lucerag[llamaindex]'") from exc

from lucerag.adapters.fields import parent_id, retrieval_fields
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


class LuceragRetriever(BaseRetriever):
    """A LlamaIndex ``BaseRetriever`` calling :meth:`lucerag.rag.api.RAG.retrieve`."""

    def __init__(self, rag, k: int | None = None, method: str = "hybrid", filter: bool | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rag, self.k, self.method, self.filter = rag, k, method, filter

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = self.rag.retrieve(query_bundle.query_str, self.k, filter=self.filter, method=self.method)
        return [to_node(p) for p in passages]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        passages = await self.rag.aretrieve(query_bundle.query_str, self.k, filter=self.filter, method=self.method)
        return [to_node(p) for p in passages]
