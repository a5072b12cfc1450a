"""What the framework adapters add to a passage's own metadata: lucerag's evidence, under
``lucerag_*`` names, and the id of the document the passage was cut from."""

from __future__ import annotations

from typing import Any

from lucerag.passage import Passage


def retrieval_fields(p: Passage) -> dict[str, Any]:
    """lucerag's evidence for a passage, each under a ``lucerag_`` name that no source metadata
    uses: ``lucerag_id``, ``lucerag_doc_id`` (the parent document), ``lucerag_rank``, ``lucerag_score``,
    ``lucerag_bm25_score``/``_rank``, ``lucerag_dense_score``/``_rank``, ``lucerag_p_relevant``
    (None values left out)."""
    fields = p.model_dump(exclude={"text", "metadata", "title"}, exclude_none=True)
    out = {f"lucerag_{k}": v for k, v in fields.items()}
    out["lucerag_doc_id"] = parent_id(p)
    return out


def parent_id(p: Passage) -> str:
    """The id of the document a passage was cut from (the passage's own id when it is whole)."""
    parent = (p.metadata or {}).get("parent_id")
    return str(parent) if parent not in (None, "") else p.id
