"""``lucerag search``: one query against an index, from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lucerag.cli.app import app, _retriever


@app.command()
def search(
    query: str = typer.Argument(..., help="The question or keywords."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="A lucerag index directory."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    k: Optional[int] = typer.Option(None, help="Passages wanted (default search.k; at most limits.max_k)."),
    method: str = typer.Option("hybrid", help="bm25, dense or hybrid."),
    filter_: Optional[bool] = typer.Option(None, "--filter/--no-filter",
                                           help="Drop passages the calibrated filter finds irrelevant "
                                                "(default: on for hybrid when a calibrator fits)."),
    where: Optional[str] = typer.Option(None, help="Metadata filter as JSON, e.g. "
                                                   "'{\"and\": [{\"term\": {\"lang\": \"en\"}}, "
                                                   "{\"range\": {\"year\": {\"gte\": 2020}}}]}'."),
    json_out: bool = typer.Option(False, "--json", help="Print passages as JSON lines."),
):
    """Search an index and print ranked passages with their scores."""
    import json

    from lucerag.cli.app import _fail

    try:
        where_ = json.loads(where) if where is not None else None
    except json.JSONDecodeError as exc:
        _fail(f"--where is not JSON: {exc}")
    with _retriever(index_dir, config) as retriever:
        passages = retriever.search(query, k=k, method=method, filter=filter_, where=where_)
        filtered = retriever.filter_applies(method, filter_)
    empty = ("no relevant passages: the relevance filter dropped every candidate (--no-filter shows them "
             "with their P(relevant))" if filtered else "no passages found")
    if json_out:
        for p in passages:
            print(p.model_dump_json())
        if not passages:  # zero JSON lines on stdout; say why on stderr
            typer.echo(empty, err=True)
        return
    if not passages:
        typer.echo(empty)
    for p in passages:
        views = []
        if p.bm25_score is not None:
            views.append(f"bm25 {p.bm25_score:.2f}" + (f" #{p.bm25_rank}" if p.bm25_rank else ""))
        if p.dense_score is not None:
            views.append(f"dense {p.dense_score:.3f}" + (f" #{p.dense_rank}" if p.dense_rank else ""))
        if p.p_relevant is not None:
            views.append(f"P(relevant) {p.p_relevant:.2f}")
        typer.secho(f"{p.rank:>3}. {p.id}  score {p.score:.4f}  ({', '.join(views)})", bold=True)
        text = " ".join(p.text.split())
        typer.echo(f"     {text[:300]}{'...' if len(text) > 300 else ''}")
