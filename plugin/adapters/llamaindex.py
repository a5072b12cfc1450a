"""LlamaIndex retriever over lucerag (extra ``lucerag[llamaindex]``: ``llama-index-core``).

```python
from lucerag.rag.api import RAG
from lucerag.adapters.llamaindex import LuceragRetriever

rag = RAG.from_index("indexes/docs")
nodes = LuceragRetriever(rag, k=5).retrieve("how do I rotate the keys?")   # list[NodeWithScore]
```

Each ``NodeWithScore`` holds a ``TextNode`` (``id_`` = passage id, ``text``, ``metadata`` with the
evidence) and the fused ``score``.
"""

from __future__ import annotations

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("lucerag.adapters.llamaindex needs llama-index-core: pip install 'lucerag[llamaindex]'") from exc

from lucerag.passage import Passage


def to_node(p: Passage) -> NodeWithScore:
    meta = {**p.metadata, **p.model_dump(exclude={"text", "metadata", "score"}, exclude_none=True)}
    node = TextNode(id_=p.id, text=p.text, metadata=meta,
                    excluded_embed_metadata_keys=list(meta), excluded_llm_metadata_keys=[
                        key for key in meta if key not in ("title", "id")])
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
