"""LangChain retriever over lucerag (extra ``lucerag[langchain]``: ``langchain-core``).

```python
from lucerag.rag.api import RAG
from lucerag.adapters.langchain import LuceragRetriever

rag = RAG.from_index("indexes/docs")
retriever = LuceragRetriever(rag=rag, k=5)
docs = retriever.invoke("how do I rotate the keys?")   # list[langchain_core.documents.Document]
```

Each Document has the passage text as ``page_content``, the passage id as ``id`` and the evidence
(rank, scores, title, the stored metadata) in ``metadata``.
"""

from __future__ import annotations

from typing import Any, Literal

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("lucerag.adapters.langchain needs langchain-core: pip install 'lucerag[langchain]'") from exc

from pydantic import ConfigDict, Field

from lucerag.passage import Passage


def to_document(p: Passage) -> Document:
    meta = {**p.metadata, **p.model_dump(exclude={"text", "metadata"}, exclude_none=True)}
    return Document(id=p.id, page_content=p.text, metadata=meta)


class LuceragRetriever(BaseRetriever):
    """A LangChain ``BaseRetriever`` calling :meth:`lucerag.rag.api.RAG.retrieve`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rag: Any = Field(description="a lucerag.rag.api.RAG")
    # Checked by RAG.retrieve (lucerag.search.request, the index's [limits]), like every surface's.
    k: int | None = None
    method: Literal["hybrid", "bm25", "dense"] = "hybrid"
    filter: bool | None = None   # None: [filter] enabled (Retriever.filter_applies decides)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(p) for p in self.rag.retrieve(query, self.k, filter=self.filter, method=self.method)]

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        passages = await self.rag.aretrieve(query, self.k, filter=self.filter, method=self.method)
        return [to_document(p) for p in passages]
