"""LangChain retriever over lucerag (extra ``lucerag[langchain]``: ``langchain-core``).

```python
from lucerag.rag.api import RAG
from lucerag.adapters.langchain import LuceragRetriever

rag = RAG.from_index("indexes/docs")
retriever = LuceragRetriever(rag=rag, k=5)
docs = retriever.invoke("how do I rotate the keys?")   # list[langchain_core.documents.Document]
```

Each Document has the passage text as ``page_content``, the passage id as ``id`` and in
``metadata`` the source's own metadata untouched, ``source`` (the parent document id, unless the
source set one) and lucerag's evidence under ``lucerag_*`` names (``lucerag_score``, ``lucerag_rank``,
``lucerag_doc_id`` ...; :func:`retrieval_fields`).

Metadata filters (:mod:`lucerag.search.filters`): ``LuceragRetriever(rag=rag, where={"lang": "en"})``
for every call, or per call ``retriever.invoke(query, where={...})`` (a per-call ``where`` replaces
the retriever's own). ``relevance_filter`` switches the calibrated relevance filter; ``filter`` is its
old name (deprecated).
"""

from __future__ import annotations

from typing import Any, Literal

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("lucerag.adapters.langchain needs langchain-core: pip install 'lucerag[langchain]'") from exc

from pydantic import ConfigDict, Field, model_validator

from lucerag.adapters.fields import parent_id, retrieval_fields
from lucerag.passage import Passage


def to_document(p: Passage) -> Document:
    """A LangChain Document: ``page_content`` the passage text, ``id`` the passage id, ``metadata``
    the source's own metadata unchanged, plus ``title`` and ``source`` (the parent document id)
    where the source has none, plus :func:`retrieval_fields`."""
    meta = dict(p.metadata or {})
    if p.title:
        meta.setdefault("title", p.title)
    meta.setdefault("source", parent_id(p))
    for key, value in retrieval_fields(p).items():
        meta.setdefault(key, value)
    return Document(id=p.id, page_content=p.text, metadata=meta)


class LuceragRetriever(BaseRetriever):
    """A LangChain ``BaseRetriever`` calling :meth:`lucerag.rag.api.RAG.retrieve`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rag: Any = Field(description="a lucerag.rag.api.RAG")
    # Checked by RAG.retrieve (lucerag.search.request, the index's [limits]), like every surface's.
    k: int | None = None
    method: Literal["hybrid", "bm25", "dense"] = "hybrid"
    relevance_filter: bool | None = None   # None: [filter] enabled (Retriever.filter_applies decides)
    where: dict[str, Any] | None = Field(None, description="metadata filter (lucerag.search.filters)")
    filter: bool | None = Field(None, description="deprecated name of relevance_filter")

    @model_validator(mode="after")
    def _alias(self) -> "LuceragRetriever":
        from lucerag.search.request import relevance_option

        if self.filter is not None:
            self.relevance_filter, self.filter = relevance_option(None, self.filter), None
        return self

    def _options(self, where: dict[str, Any] | None, k: int | None) -> dict[str, Any]:
        # k=0 is the caller's (bad) k, refused by RAG.retrieve like on every surface; only None means "mine"
        return {"k": k if k is not None else self.k, "where": where if where is not None else self.where,
                "relevance_filter": self.relevance_filter, "method": self.method}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                where: dict[str, Any] | None = None, k: int | None = None) -> list[Document]:
        options = self._options(where, k)
        return [to_document(p) for p in self.rag.retrieve(query, options.pop("k"), **options)]

    async def _aget_relevant_documents(self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
                                       where: dict[str, Any] | None = None,
                                       k: int | None = None) -> list[Document]:
        options = self._options(where, k)
        passages = await self.rag.aretrieve(query, options.pop("k"), **options)
        return [to_document(p) for p in passages]
