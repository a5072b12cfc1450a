"""The ``lucerag`` command line: index, search, eval, demo, models export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from lucerag.config import Config, ConfigError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hybrid BM25 + HNSW retrieval for RAG on Lucene/Anserini.")
models_app = typer.Typer(no_args_is_help=True, help="Export and inspect ONNX encoders.")
app.add_typer(models_app, name="models")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _retriever(index: Optional[Path], config: Optional[Path]):
    from lucerag.retriever import Retriever

    if config is not None:
        cfg = Config.load(config)
    elif index is not None:
        cfg = Config.for_index(index)
    else:
        _fail("give --index DIR or --config FILE")
    return Retriever(cfg)


@app.command()
def index(
    input: Path = typer.Option(..., "--input", "-i", help="File or folder to ingest."),
    index_dir: Path = typer.Option(..., "--index", help="Index directory to build or update."),
    format: Optional[str] = typer.Option(None, help="jsonl, beir, tsv, csv, folder, sqlite (guessed if absent)."),
    append: bool = typer.Option(False, help="Upsert into an existing index instead of rebuilding it."),
    bm25_only: bool = typer.Option(False, "--bm25-only", help="Skip the dense view (no encoder)."),
    model: Optional[str] = typer.Option(None, help="Exported model directory (default all-MiniLM-L6-v2)."),
    on_error: str = typer.Option("fail", help="fail: stop at the first bad record; skip: reject and go on."),
    rejects: Optional[Path] = typer.Option(None, help="With --on-error skip: write rejected records here (JSONL)."),
    batch_size: int = typer.Option(256, min=1),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Ingest documents into a Lucene index with BM25 text and HNSW vectors."""
    from lucerag.connectors import ConnectorError, RejectsFile, read_documents
    from lucerag.ingest import build_index

    if on_error not in ("fail", "skip"):
        _fail("--on-error must be 'fail' or 'skip'")
    encoder = None
    if not bm25_only:
        from lucerag.models import load_encoder

        encoder = load_encoder(model)
    sink = RejectsFile(rejects) if rejects else None
    try:
        stream = read_documents(input, format, on_error=on_error, rejects=sink)
        report = build_index(stream, index_dir, encoder=encoder, dense=not bm25_only,
                             mode="append" if append else "create", batch_size=batch_size,
                             stats=stream.stats)
    except ConnectorError as exc:
        _fail(f"{exc} (nothing was changed in {index_dir})")
    finally:
        if sink is not None:
            sink.close()
    if json_out:
        print(json.dumps(report.as_dict()))
    else:
        typer.echo(f"indexed {report.indexed} documents as {report.passages} passages into {index_dir} "
                   f"in {report.seconds:.1f}s ({report.passages_per_s:.0f} passages/s); "
                   f"read {report.read}, skipped {report.skipped}, rejected {report.rejected}")


@app.command()
def search(
    query: str = typer.Argument(..., help="The question or keywords."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="A lucerag index directory."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    k: int = typer.Option(10, min=1, max=1000),
    method: str = typer.Option("hybrid", help="bm25, dense or hybrid."),
    json_out: bool = typer.Option(False, "--json", help="Print passages as JSON lines."),
):
    """Search an index and print ranked passages with their scores."""
    with _retriever(index_dir, config) as retriever:
        passages = retriever.search(query, k=k, method=method)
    if json_out:
        for p in passages:
            print(p.model_dump_json())
        return
    if not passages:
        typer.echo("no passages found")
    for p in passages:
        views = []
        if p.bm25_score is not None:
            views.append(f"bm25 {p.bm25_score:.2f}" + (f" #{p.bm25_rank}" if p.bm25_rank else ""))
        if p.dense_score is not None:
            views.append(f"dense {p.dense_score:.3f}" + (f" #{p.dense_rank}" if p.dense_rank else ""))
        typer.secho(f"{p.rank:>3}. {p.id}  score {p.score:.4f}  ({', '.join(views)})", bold=True)
        text = " ".join(p.text.split())
        typer.echo(f"     {text[:300]}{'...' if len(text) > 300 else ''}")


@app.command(name="eval")
def eval_(
    beir: Optional[Path] = typer.Option(None, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels."),
    topics: Optional[Path] = typer.Option(None, help="TREC topics file (qid<TAB>text)."),
    qrels: Optional[Path] = typer.Option(None, help="TREC qrels file (qid 0 docid rel)."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Index (built from --beir if missing)."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    methods: str = typer.Option("bm25,dense,hybrid", help="Comma-separated methods."),
    depth: int = typer.Option(1000, min=10, help="Ranked list length per query (for R@100/R@1000)."),
    rel: Optional[int] = typer.Option(None, help="Lowest grade counted relevant by binary metrics."),
    run_dir: Optional[Path] = typer.Option(None, help="Write TREC run files here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object with the metrics."),
):
    """Evaluate methods on a BEIR folder or TREC topics + qrels."""
    from lucerag.connectors import read_beir_qrels, read_beir_queries, read_trec_qrels, read_trec_topics
    from lucerag.evaluate import run_queries, score_run, write_trec_run
    from lucerag.retriever import METHODS

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    for m in chosen:
        if m not in METHODS:
            _fail(f"unknown method {m!r} in --methods: use {', '.join(METHODS)}")
    if beir is not None:
        queries, judgments = read_beir_queries(beir), read_beir_qrels(beir)
        if index_dir is None and config is None:
            _fail("give --index DIR (built from the BEIR corpus when it does not exist)")
        if index_dir is not None and not index_dir.exists():
            _build_beir_index(beir, index_dir, dense=any(m != "bm25" for m in chosen))
    elif topics is not None and qrels is not None:
        queries, judgments = read_trec_topics(topics), read_trec_qrels(qrels)
    else:
        _fail("give --beir FOLDER, or --topics FILE and --qrels FILE")
    queries = {q: t for q, t in queries.items() if q in judgments}
    if not queries:
        _fail("no query has relevance judgments")
    results = {}
    with _retriever(index_dir, config) as retriever:
        for method in chosen:
            def rank(text: str, method=method):
                r = retriever.rank(text, method, depth)
                return r.ids, r.scores

            run, latencies = run_queries(rank, queries, progress=not json_out)
            results[method] = score_run(run, judgments, rel=rel)
            if run_dir is not None:
                run_dir.mkdir(parents=True, exist_ok=True)
                write_trec_run(run, run_dir / f"run.{method}.txt", f"lucerag-{method}")
            if not json_out:
                cells = "  ".join(f"{k} {v:.4f}" for k, v in results[method].items())
                typer.echo(f"{method:<8} {cells}  ({len(queries)} queries)")
    if json_out:
        print(json.dumps(results))


def _build_beir_index(folder: Path, index_dir: Path, dense: bool) -> None:
    from lucerag.connectors import read_documents
    from lucerag.ingest import build_index

    typer.echo(f"building {index_dir} from {folder / 'corpus.jsonl'}", err=True)
    stream = read_documents(folder / "corpus.jsonl", "jsonl")
    report = build_index(stream, index_dir, dense=dense, progress=sys.stderr.isatty(), stats=stream.stats)
    typer.echo(f"indexed {report.passages} passages in {report.seconds:.1f}s", err=True)


@app.command()
def demo(
    corpus: Optional[Path] = typer.Option(None, help="Folder to ingest (default: lucerag's own docs/)."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Where to build the demo index."),
    question: str = typer.Option("How does lucerag fuse BM25 and dense scores?", "--question", "-q"),
    k: int = typer.Option(5, min=1, max=100),
):
    """Ingest the embedded default corpus and answer a sample question (no network needed)."""
    from lucerag.models import cache_dir

    corpus = corpus or Path(__file__).resolve().parent.parent / "docs"
    if not corpus.is_dir():
        _fail(f"no demo corpus at {corpus}: pass --corpus FOLDER")
    index_dir = index_dir or cache_dir() / "indexes" / "demo"
    from lucerag.connectors import read_documents
    from lucerag.ingest import build_index

    stream = read_documents(corpus, "folder")
    report = build_index(stream, index_dir, progress=False, stats=stream.stats)
    typer.echo(f"indexed {report.indexed} documents ({report.passages} passages) from {corpus} "
               f"into {index_dir} in {report.seconds:.1f}s\n")
    typer.secho(f"Q: {question}\n", bold=True)
    search(question, index_dir=index_dir, config=None, k=k, method="hybrid", json_out=False)


@models_app.command("export")
def models_export(
    source: Optional[Path] = typer.Option(None, help="Hugging Face model folder (default: all-MiniLM-L6-v2)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: the lucerag model cache)."),
    pooling: Optional[str] = typer.Option(None, help="mean or cls (read from the model folder if absent)."),
    query_prefix: Optional[str] = typer.Option(None),
    passage_prefix: Optional[str] = typer.Option(None),
    int8: bool = typer.Option(False, help="Also quantise to int8 (dynamic quantisation)."),
    overwrite: bool = typer.Option(False),
):
    """Export a bi-encoder to ONNX (pooling and normalisation inside the graph)."""
    from lucerag.models import default_model_dir, export_model

    out = out or default_model_dir()
    kwargs = {k: v for k, v in dict(pooling=pooling, query_prefix=query_prefix,
                                    passage_prefix=passage_prefix).items() if v is not None}
    path = export_model(source, out, overwrite=overwrite, **kwargs)
    typer.echo(f"exported {path}")
    if int8:
        path = export_model(source, Path(str(out) + "-int8"), precision="int8", overwrite=overwrite, **kwargs)
        typer.echo(f"exported {path}")


def main() -> None:
    """Entry point that turns expected errors into one clear line (no stack traces)."""
    from lucerag.index_reader import IndexNotFoundError
    from lucerag.jvm import JavaNotFoundError
    from lucerag.retriever import QueryError

    try:
        app()
    except (ConfigError, IndexNotFoundError, JavaNotFoundError, QueryError, FileNotFoundError,
            ValueError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
