"""One evaluation as the published tables run it: which queries count, document runs, warnings.

- :func:`query_set`: the queries evaluated (those with text and judgments) and the count of those
  judged, evaluated and skipped, with the reason for each skip (:class:`QuerySet`).
- :func:`corpus_ids`: the document ids of a BEIR corpus (``corpus.jsonl``), to map passage ids to
  documents and to expose run ids that belong to no document.
- :func:`document_run`: a passage run as a document run (:func:`lucerag.eval.aggregate.aggregate_run`),
  warning about (or, ``strict``, raising :class:`~lucerag.eval.aggregate.UnknownRunIdError` for) ids
  that are neither a corpus id nor a chunk of one.

The BEIR protocol (Thakur et al., NeurIPS 2021 datasets track; Anserini's BEIR regressions) scores
one ranked list of corpus documents per test query against ``qrels/test.tsv``; queries without
judgments are not evaluated, and unjudged documents count as not relevant.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from lucerag.errors import UnknownRunIdError
from lucerag.eval.aggregate import aggregate_run

log = logging.getLogger("lucerag.eval")

SKIP_NO_JUDGMENTS = "no judgments"
SKIP_NO_TEXT = "judged but absent from the queries/topics"


@dataclass
class QuerySet:
    """Queries to evaluate and the judgments restricted to them, with counts.

    ``counts``: ``queries`` (read), ``judged`` (queries with at least one judgment), ``evaluated``,
    ``skipped`` and ``skipped_reasons`` (``{reason: count}``), ``without_relevant`` (evaluated
    queries none of whose judgments reaches the relevance grade: they score 0 on every measure).
    """

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    counts: dict = field(default_factory=dict)

    def summary(self) -> str:
        """One line, e.g. ``300 queries evaluated (300 judged; 809 skipped: no judgments)``."""
        c = self.counts
        reasons = ", ".join(f"{n} {why}" for why, n in c["skipped_reasons"].items() if n)
        text = f"{c['evaluated']} queries evaluated ({c['judged']} judged"
        text += f"; {c['skipped']} skipped: {reasons})" if c["skipped"] else "; none skipped)"
        if c.get("without_relevant"):
            text += f"; {c['without_relevant']} have no relevant judgment"
        return text


def query_set(queries: dict[str, str], qrels: dict[str, dict[str, int]], rel: int | None = None) -> QuerySet:
    """The evaluable queries (text and at least one judgment) and why the others are skipped."""
    judged = {q for q, docs in qrels.items() if docs}
    evaluated = {q: t for q, t in queries.items() if q in judged}
    no_judgments = sum(1 for q in queries if q not in judged)
    no_text = sum(1 for q in judged if q not in queries)
    threshold = 1 if rel is None else rel
    without_relevant = sum(1 for q in evaluated if not any(g >= threshold for g in qrels[q].values()))
    counts = {"queries": len(queries), "judged": len(judged), "evaluated": len(evaluated),
              "skipped": no_judgments + no_text,
              "skipped_reasons": {SKIP_NO_JUDGMENTS: no_judgments, SKIP_NO_TEXT: no_text},
              "without_relevant": without_relevant}
    return QuerySet(evaluated, {q: qrels[q] for q in evaluated}, counts)


def corpus_ids(folder: str | Path) -> set[str]:
    """The ``_id`` of every record of a BEIR folder's ``corpus.jsonl`` (or ``.jsonl.gz``).

    Raises ConnectorError naming the file and line of a record without an ``_id``."""
    from lucerag.connectors.beir import find_file
    from lucerag.connectors.document import ConnectorError
    from lucerag.connectors.files import text_lines

    path = find_file(folder, "corpus.jsonl", "corpus.jsonl.gz")
    ids: set[str] = set()
    for lineno, line in text_lines(path):
        try:
            ids.add(str(json.loads(line)["_id"]))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConnectorError(str(path), f"line {lineno}", f"expected a record with an \"_id\": {e}") from e
    return ids


def document_run(run: dict[str, dict[str, float]], how: str = "maxp", corpus: set[str] | None = None,
                 strict: bool = False, method: str = "run") -> tuple[dict[str, dict[str, float]], list[str]]:
    """``(document run, warnings)`` from a passage run (see the module docstring).

    Ids that are neither corpus ids nor chunks of one are dropped from the run and reported in one
    warning (also logged), or raise UnknownRunIdError when ``strict``."""
    unknown: list[tuple[str, str]] = []
    docs = aggregate_run(run, how, corpus, unknown)
    warnings = []
    if unknown:
        total = sum(len(s) for s in run.values())
        sample = ", ".join(sorted({pid for _, pid in unknown})[:5])
        msg = (f"{method}: {len(unknown)} of {total} run ids are neither corpus ids nor chunks of one "
               f"(e.g. {sample}); the index was not built from this corpus?")
        if strict:
            raise UnknownRunIdError(msg)
        log.warning(msg)
        warnings.append(msg)
    return docs, warnings
