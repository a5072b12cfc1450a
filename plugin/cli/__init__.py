"""The ``lucerag`` command line: index, search, eval, demo, models export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from lucerag.config import Config, ConfigError
from lucerag.index.writer import HNSW_BEAM, HNSW_M

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hybrid BM25 + HNSW retrieval for RAG on Lucene/Anserini.")
models_app = typer.Typer(no_args_is_help=True, help="Export and inspect ONNX encoders.")
app.add_typer(models_app, name="models")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks on this machine (JSON with --json).")
app.add_typer(bench_app, name="bench")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _precision(value: Optional[str]) -> Optional[str]:
    if value is not None and value not in ("fp32", "int8"):
        _fail(f"--precision must be fp32 or int8, not {value!r}")
    return value


def _vector_format(value: Optional[str]) -> Optional[str]:
    from lucerag.index.writer import VECTOR_FORMATS

    if value is not None and value not in VECTOR_FORMATS:
        _fail(f"--vector-format must be one of {', '.join(VECTOR_FORMATS)}, not {value!r}")
    return value


def _retriever(index: Optional[Path], config: Optional[Path]):
    from lucerag.search.retriever import Retriever

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
    append: bool = typer.Option(False, help="Upsert into an existing index (by document id) instead of rebuilding it."),
    delete_missing: bool = typer.Option(False, "--delete-missing",
                                        help="With --append: delete documents that are no longer in the source."),
    bm25_only: bool = typer.Option(False, "--bm25-only", help="Skip the dense view (no encoder)."),
    model: Optional[str] = typer.Option(None, help="Exported model directory (default all-MiniLM-L6-v2)."),
    precision: Optional[str] = typer.Option(None, help="Passage encoder: int8 (the default, ~2.2x faster) or "
                                                         "fp32 (exact); dense nDCG@10 within 0.003 on DL19."),
    on_error: str = typer.Option("fail", help="fail: stop at the first bad record; skip: reject and go on."),
    rejects: Optional[Path] = typer.Option(None, help="With --on-error skip: write rejected records here (JSONL)."),
    query: Optional[str] = typer.Option(None, help="SQL query (sqlite/sql sources)."),
    batch_size: int = typer.Option(256, min=1, help="Passages per batch handed to the encoder and Lucene."),
    ram_buffer_mb: float = typer.Option(512, min=1, help="Lucene's indexing buffer; larger = fewer flushes."),
    hnsw_m: int = typer.Option(HNSW_M, min=2, max=512, help="HNSW neighbours per node (Lucene's M)."),
    hnsw_beam: int = typer.Option(HNSW_BEAM, min=1, max=3200, help="HNSW construction beam width."),
    vector_format: Optional[str] = typer.Option(
        None, help="HNSW vectors: float (default), int8 (scalar-quantised) or bbq (1-bit, rescored exactly "
                   "at search time); recorded in the index, appends keep the index's own."),
    progress: bool = typer.Option(True, help="Show a progress bar (stderr)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Ingest documents into a Lucene index with BM25 text and HNSW vectors.

    A new build replaces the index only when complete; --append commits once, at the end.
    Either way a failure or a kill leaves the previous index as it was."""
    from lucerag.connectors import ConnectorError, RejectsFile, read_documents
    from lucerag.ingest.pipeline import build_index, estimate_total

    if on_error not in ("fail", "skip"):
        _fail("--on-error must be 'fail' or 'skip'")
    if delete_missing and not append:
        _fail("--delete-missing needs --append (a new build holds only the source's documents anyway)")
    vector_format = _vector_format(vector_format)
    encoder = None
    if not bm25_only:
        from lucerag.models import load_encoder
        from lucerag.models.store import DEFAULT_PASSAGE_PRECISION

        encoder = load_encoder(model, precision=_precision(precision) or DEFAULT_PASSAGE_PRECISION)
    sink = RejectsFile(rejects) if rejects else None
    options = {"query": query} if query else {}
    try:
        stream = read_documents(input, format, on_error=on_error, rejects=sink, **options)
        report = build_index(stream, index_dir, encoder=encoder, dense=not bm25_only,
                             mode="append" if append else "create", batch_size=batch_size,
                             hnsw_m=hnsw_m, hnsw_beam=hnsw_beam, vector_format=vector_format,
                             stats=stream.stats, delete_missing=delete_missing, on_error=on_error,
                             on_reject=sink, ram_buffer_mb=ram_buffer_mb, progress=progress,
                             total=estimate_total(input, format))
    except ConnectorError as exc:
        _fail(f"{exc} (nothing was changed in {index_dir})")
    except RuntimeError as exc:
        _fail(f"{exc} (nothing was changed in {index_dir})")
    finally:
        if sink is not None:
            sink.close()
    for warning in report.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if json_out:
        print(json.dumps(report.as_dict()))
    else:
        typer.echo(f"indexed {report.indexed} documents as {report.passages} passages into {index_dir} "
                   f"in {report.seconds:.1f}s ({report.passages_per_s:.0f} passages/s); "
                   f"read {report.read}, skipped {report.skipped}, rejected {report.rejected}"
                   + (f", deleted {report.deleted}" if delete_missing else "")
                   + (f"; rejected records in {rejects}" if rejects and report.rejected else "")
                   + f"; the index holds {report.index_passages} passages")


@app.command()
def search(
    query: str = typer.Argument(..., help="The question or keywords."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="A lucerag index directory."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    k: int = typer.Option(10, min=1, max=1000),
    method: str = typer.Option("hybrid", help="bm25, dense or hybrid."),
    filter_: Optional[bool] = typer.Option(None, "--filter/--no-filter",
                                           help="Drop passages the calibrated filter finds irrelevant "
                                                "(default: on for hybrid when a calibrator fits)."),
    json_out: bool = typer.Option(False, "--json", help="Print passages as JSON lines."),
):
    """Search an index and print ranked passages with their scores."""
    with _retriever(index_dir, config) as retriever:
        passages = retriever.search(query, k=k, method=method, filter=filter_)
        filtered = filter_ is not False and method == "hybrid" and retriever.calibrator is not None
    if json_out:
        for p in passages:
            print(p.model_dump_json())
        return
    if not passages:
        typer.echo("no relevant passages: the relevance filter dropped every candidate"
                   if filtered else "no passages found")
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


def _query_set(beir, topics, qrels, index_dir, config, dense: bool = True):
    """Queries and judgments from a BEIR folder or TREC files (building a BEIR index if needed)."""
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries, read_trec_qrels, read_trec_topics

    if beir is not None:
        queries, judgments = read_beir_queries(beir), read_beir_qrels(beir)
        if index_dir is None and config is None:
            _fail("give --index DIR (built from the BEIR corpus when it does not exist)")
        if index_dir is not None and not index_dir.exists():
            _build_beir_index(beir, index_dir, dense=dense)
    elif topics is not None and qrels is not None:
        queries, judgments = read_trec_topics(topics), read_trec_qrels(qrels)
    else:
        _fail("give --beir FOLDER, or --topics FILE and --qrels FILE")
    queries = {q: t for q, t in queries.items() if q in judgments}
    if not queries:
        _fail("no query has relevance judgments")
    return queries, judgments


@app.command(name="eval")
def eval_(
    beir: Optional[Path] = typer.Option(None, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels."),
    topics: Optional[Path] = typer.Option(None, help="TREC topics file (qid<TAB>text)."),
    qrels: Optional[Path] = typer.Option(None, help="TREC qrels file (qid 0 docid rel)."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Index (built from --beir if missing)."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    methods: str = typer.Option("bm25,dense,hybrid",
                                help="Comma-separated methods: bm25, dense, hybrid, hybrid-rrf (RRF, k=60)."),
    depth: int = typer.Option(1000, min=10, help="Ranked list length per query (for R@100/R@1000)."),
    rel: Optional[int] = typer.Option(None, help="Lowest grade counted relevant by binary metrics."),
    run_dir: Optional[Path] = typer.Option(None, help="Write TREC run files here."),
    filter_: bool = typer.Option(False, "--filter", help="Also evaluate the relevance filter (5-fold CV)."),
    grade: int = typer.Option(1, help="--filter: lowest grade counted relevant."),
    negatives: list[Path] = typer.Option([], help="--filter: unanswerable queries added to every training fold."),
    ood: Optional[Path] = typer.Option(None, help="--filter: unanswerable queries; report how often nothing passes."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object with the metrics."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a markdown table (with significance marks)."),
    significance: bool = typer.Option(False, "--significance",
                                      help="Paired t-test and randomisation test of each method against "
                                           "--reference (added to --json as 'significance')."),
    reference: Optional[str] = typer.Option(None, help="Method the others are tested against (default: the first)."),
    per_query_out: Optional[Path] = typer.Option(None, "--per-query",
                                                 help="Write per-query scores here (JSON: method -> metric -> qid -> value)."),
    filter_curve: Optional[Path] = typer.Option(None, "--filter-curve",
                                                help="--filter: write the cross-validated precision/recall/F1 "
                                                     "per threshold here (JSON; a .png path plots it)."),
):
    """Evaluate methods on a BEIR folder or TREC topics + qrels."""
    from lucerag.eval.runs import compare_methods, markdown_table, mean_scores, per_query_scores, require_eval_extra, \
        run_queries, write_trec_run
    from lucerag.search.retriever import METHODS

    require_eval_extra()  # before any index is built

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    for m in chosen:
        if m not in METHODS + ("hybrid-rrf",):
            _fail(f"unknown method {m!r} in --methods: use {', '.join(METHODS + ('hybrid-rrf',))}")
    reference = reference or (chosen[0] if chosen else None)
    if (significance or markdown) and reference not in chosen:
        _fail(f"--reference {reference!r} is not one of --methods")
    queries, judgments = _query_set(beir, topics, qrels, index_dir, config,
                                    dense=filter_ or any(m != "bm25" for m in chosen))
    results, by_query = {}, {}
    with _retriever(index_dir, config) as retriever:
        for method in chosen:
            def rank(text: str, method=method):
                if method == "hybrid-rrf":
                    fusion = retriever.config.fusion
                    retriever.config.fusion = fusion.model_copy(update={"method": "rrf"})
                    try:
                        r = retriever.rank(text, "hybrid", depth)
                    finally:
                        retriever.config.fusion = fusion
                else:
                    r = retriever.rank(text, method, depth)
                return r.ids, r.scores

            run, latencies = run_queries(rank, queries, progress=not json_out)
            by_query[method] = per_query_scores(run, judgments, rel=rel)
            results[method] = mean_scores(by_query[method])
            if run_dir is not None:
                run_dir.mkdir(parents=True, exist_ok=True)
                write_trec_run(run, run_dir / f"run.{method}.txt", f"lucerag-{method}")
            if not json_out and not markdown:
                cells = "  ".join(f"{k} {v:.4f}" for k, v in results[method].items())
                typer.echo(f"{method:<8} {cells}  ({len(queries)} queries)")
        if filter_:
            results["filter"] = _evaluate_filter(retriever, queries, judgments, grade, negatives, ood,
                                                 curve=filter_curve)
            if not json_out and not markdown:
                typer.echo(f"filter   {json.dumps(results['filter'])}")
    tests = compare_methods(by_query, reference) if (significance or markdown) and len(chosen) > 1 else {}
    if per_query_out is not None:
        per_query_out.parent.mkdir(parents=True, exist_ok=True)
        per_query_out.write_text(json.dumps(by_query, indent=1))
    if markdown:
        typer.echo(markdown_table({m: results[m] for m in chosen}, tests, reference, queries=len(queries)))
        if filter_:
            typer.echo(_filter_markdown(results["filter"]))
    if json_out:
        if significance:
            results["significance"] = {"reference": reference, "tests": tests}
        print(json.dumps(results))


def _filter_markdown(report: dict) -> str:
    rows = [("calibrated filter", report)] + [(f"baseline: {n}", r) for n, r in report["baselines"].items()]
    lines = ["| cut-off | precision | recall | F1 |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} |" for name, r in rows]
    extra = [f"ECE {report['ece']:.4f}"]
    if "ood_empty_rate" in report:
        extra += [f"unanswerable queries answered with nothing {report['ood_empty_rate']:.2%}",
                  f"judged queries with a non-empty answer {report['in_domain_nonempty_rate']:.2%}"]
    return "\n".join(lines) + "\n\n" + "; ".join(extra) + f" ({report['queries']} queries, {report['folds']}-fold CV).\n"


def _evaluate_filter(retriever, queries, judgments, grade, negatives, ood, curve: Optional[Path] = None) -> dict:
    from lucerag.eval.filter import collect, cross_validate, empty_rate, fit_calibrator, read_query_lines

    labelled = collect(retriever, queries, judgments, grade=grade, depth=retriever.config.fusion.depth)
    extra = [q for path in negatives for q in collect(retriever, read_query_lines(path), {})]
    report = cross_validate(labelled, extra)
    if ood is not None:
        # Fitted on all judged queries (+ negatives); the unanswerable set is never trained on.
        cal = fit_calibrator(labelled + extra)
        report["ood_empty_rate"] = round(empty_rate(cal, collect(retriever, read_query_lines(ood), {})), 4)
        report["in_domain_nonempty_rate"] = round(1 - empty_rate(cal, labelled), 4)
    report["grade"] = grade
    if curve is not None:
        from lucerag.eval.runs import filter_threshold_curve

        data = filter_threshold_curve(labelled, extra)
        curve.parent.mkdir(parents=True, exist_ok=True)
        if curve.suffix.lower() == ".png":
            from lucerag.bench.scale import plot_filter_curve

            plot_filter_curve(data, curve)
            curve.with_suffix(".json").write_text(json.dumps(data, indent=1))
        else:
            curve.write_text(json.dumps(data, indent=1))
    return report


@app.command()
def tune(
    beir: Optional[Path] = typer.Option(None, help="BEIR folder: queries.jsonl and qrels."),
    topics: Optional[Path] = typer.Option(None, help="TREC topics file."),
    qrels: Optional[Path] = typer.Option(None, help="TREC qrels file."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="The index to tune on."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration (updated with --write)."),
    metric: str = typer.Option("nDCG@10", help="Metric to maximise."),
    folds: int = typer.Option(5, min=2),
    write: Optional[Path] = typer.Option(None, help="Write the configuration with the chosen fusion here."),
    json_out: bool = typer.Option(False, "--json"),
):
    """Choose fusion method and weight by cross-validation over queries."""
    from lucerag.eval.tune import tune as run_tune

    queries, judgments = _query_set(beir, topics, qrels, index_dir, config)
    with _retriever(index_dir, config) as retriever:
        report = run_tune(retriever, queries, judgments, metric, folds)
        cfg = retriever.config
    if write is not None:
        fusion = cfg.fusion.model_copy(update=report["best"])
        updated = cfg.model_copy(update={"fusion": fusion})
        write.write_text(updated.to_toml())
        report["written"] = str(write)
    if json_out:
        print(json.dumps(report))
        return
    typer.echo(f"{report['queries']} queries, {metric}: cross-validated {report['cv']:.4f} "
               f"(current setting {report['current_score']:.4f}; dense scores only "
               f"{report['dense_scores_only']:.4f}, BM25 scores only {report['bm25_scores_only']:.4f})")
    typer.echo(f"best setting on all queries: {report['best']} ({report['best_in_sample']:.4f})")
    if write is not None:
        typer.echo(f"configuration written to {write}")


@app.command()
def calibrate(
    beir: Optional[Path] = typer.Option(None, help="BEIR folder: queries.jsonl and qrels."),
    topics: Optional[Path] = typer.Option(None, help="TREC topics file."),
    qrels: Optional[Path] = typer.Option(None, help="TREC qrels file."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="The index to calibrate."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    grade: int = typer.Option(1, help="Lowest grade counted relevant."),
    negatives: list[Path] = typer.Option([], help="Files of unanswerable queries (one per line) used as negatives."),
    target_precision: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                                     help="Choose the threshold for this precision instead of best F1."),
    out: Optional[Path] = typer.Option(None, help="Where to write it (default: <index>/lucerag-calibrator.json)."),
):
    """Fit the relevance filter on judged queries and store it next to the index."""
    from lucerag.search.calibration import Calibrator
    from lucerag.eval.filter import collect, fit_calibrator, read_query_lines

    queries, judgments = _query_set(beir, topics, qrels, index_dir, config)
    with _retriever(index_dir, config) as retriever:
        f = retriever.config.fusion
        labelled = collect(retriever, queries, judgments, grade=grade, depth=f.depth)
        extra = [q for path in negatives for q in collect(retriever, read_query_lines(path), {})]
        cal = fit_calibrator(labelled + extra, target_precision, relevant_grade=grade,
                             encoder=retriever.encoder.manifest.name, fusion=f.model_dump(),
                             trained_on=str(beir or topics))
        target = out or (retriever.dense_index or retriever.bm25_index).path / Calibrator.FILENAME
    path = cal.save(target)
    typer.echo(f"calibrator fitted on {cal.queries} queries ({cal.candidates} candidates), "
               f"threshold {cal.threshold} ({cal.objective}); written to {path}")


def _build_beir_index(folder: Path, index_dir: Path, dense: bool) -> None:
    from lucerag.connectors import read_documents
    from lucerag.ingest.pipeline import build_index

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

    corpus = corpus or Path(__file__).resolve().parents[2] / "docs"
    if not corpus.is_dir():
        _fail(f"no demo corpus at {corpus}: pass --corpus FOLDER")
    index_dir = index_dir or cache_dir() / "indexes" / "demo"
    from lucerag.connectors import read_documents
    from lucerag.ingest.pipeline import build_index

    stream = read_documents(corpus, "folder")
    report = build_index(stream, index_dir, progress=False, stats=stream.stats)
    typer.echo(f"indexed {report.indexed} documents ({report.passages} passages) from {corpus} "
               f"into {index_dir} in {report.seconds:.1f}s\n")
    typer.secho(f"Q: {question}\n", bold=True)
    search(question, index_dir=index_dir, config=None, k=k, method="hybrid", filter_=None, json_out=False)


@app.command()
def info(
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Also show this index's build facts."),
    check: bool = typer.Option(False, "--check", help="Run the int8 self-check of the default model now "
                                                     "(exports and quantises it first if needed; cached)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """What lucerag runs with here: CPU int8 kernels, encoder precisions, int8 self-check verdicts, an index."""
    import onnxruntime

    from lucerag.models import selfcheck
    from lucerag.models.cpu import cpu_model, int8_isa, isa_signature, saturating_int8
    from lucerag.models.manifest import (DEFAULT_PASSAGE_PRECISION, DEFAULT_QUERY_PRECISION, EXPORT_RECIPE,
                                         ModelManifest)
    from lucerag.models.paths import cache_dir, default_model_dir

    out: dict = {
        "cpu": {"model": cpu_model(), "int8_kernels": int8_isa(), "flags": isa_signature(),
                "saturating_u8s8": saturating_int8()},
        "onnxruntime": onnxruntime.__version__,
        "cache": str(cache_dir()),
        "precision": {"passages": DEFAULT_PASSAGE_PRECISION, "queries": DEFAULT_QUERY_PRECISION,
                      "int8_recipe": EXPORT_RECIPE, "selfcheck_bound": selfcheck.MIN_COSINE},
    }
    if check:
        from lucerag.models import load_encoder

        out["precision"]["queries_loaded"] = load_encoder(None, threads=1, precision="int8").manifest.precision
    model_dir = default_model_dir()
    if (model_dir / "manifest.json").is_file():
        m = ModelManifest.load(model_dir)
        out["default_model"] = {"dir": str(model_dir), "name": m.name, "dim": m.dim, "recipe": m.recipe,
                                "precision": m.precision}
    else:
        out["default_model"] = {"dir": str(model_dir), "exported": False}
    verdicts = selfcheck.cached_verdicts()
    out["selfcheck"] = [v.__dict__ for v in verdicts]
    if index_dir is not None:
        from lucerag.index.manifest import IndexManifest

        manifest = IndexManifest.read(index_dir)
        if manifest is None:
            _fail(f"{index_dir} has no {IndexManifest.FILENAME}: not a lucerag index (or not built yet)")
        out["index"] = {"path": str(index_dir), **manifest.model_dump(exclude={"settings"})}
    if json_out:
        print(json.dumps(out, indent=2))
        return
    cpu = out["cpu"]
    typer.echo(f"cpu           {cpu['model']} ({cpu['int8_kernels']} int8 kernels"
               + ("; their u8 x s8 pair sums saturate at 16 bits, which 7-bit weights avoid"
                  if cpu["saturating_u8s8"] else "") + ")")
    typer.echo(f"onnxruntime   {out['onnxruntime']}; cache {out['cache']}")
    p = out["precision"]
    typer.echo(f"precision     passages {p['passages']}, queries {p['queries']} (int8 recipe {p['int8_recipe']}, "
               f"self-check bound: min cosine {p['selfcheck_bound']} to fp32)"
               + (f"; loaded for queries here: {p['queries_loaded']}" if "queries_loaded" in p else ""))
    dm = out["default_model"]
    typer.echo(f"default model {dm['dir']}" + (f" ({dm['name']}, {dm['dim']} dims, recipe {dm['recipe']})"
                                                if "name" in dm else " (not exported yet)"))
    for v in verdicts:
        typer.echo(f"self-check    {v.line()} [onnxruntime {v.onnxruntime}, recipe {v.recipe}]")
    if not out["selfcheck"]:
        typer.echo("self-check    none cached yet (runs on the first int8 load; `lucerag info --check`)")
    if "index" in out:
        i = out["index"]
        typer.echo(f"index         {i['path']}: {i['passages']} passages, encoder {i['encoder'] or 'none (BM25 only)'}"
                   f", {i['dim'] or '-'} dims; passages encoded {i.get('passage_precision') or 'unknown'}, "
                   f"queries configured {i.get('query_precision') or 'unknown'}; built {i['built_at']}")


@models_app.command("export")
def models_export(
    source: Optional[Path] = typer.Option(None, help="Hugging Face model folder (default: all-MiniLM-L6-v2)."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default: the lucerag model cache)."),
    pooling: Optional[str] = typer.Option(None, help="mean or cls (read from the model folder if absent)."),
    query_prefix: Optional[str] = typer.Option(None),
    passage_prefix: Optional[str] = typer.Option(None),
    int8: bool = typer.Option(False, help="Also write an int8 copy (dynamic quantisation) to OUT-int8."),
    optimize: bool = typer.Option(True, help="Fuse attention offline (onnxruntime transformer optimizer)."),
    overwrite: bool = typer.Option(False),
    backend: str = typer.Option("auto", help="numpy (BERT from safetensors, no torch), torch (the export extra), "
                                             "or auto: numpy when the model allows it."),
):
    """Export a bi-encoder to ONNX (pooling and normalisation inside the graph)."""
    from lucerag.models import default_model_dir, export_model
    from lucerag.models.export import quantize_model

    out = out or default_model_dir()
    kwargs = {k: v for k, v in dict(pooling=pooling, query_prefix=query_prefix,
                                    passage_prefix=passage_prefix).items() if v is not None}
    path = export_model(source, out, overwrite=overwrite, optimize=optimize, backend=backend, **kwargs)
    typer.echo(f"exported {path}")
    if int8:
        path = quantize_model(path, Path(str(out) + "-int8"), overwrite=overwrite)
        typer.echo(f"quantised {path}")


@bench_app.command("encoder", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_encoder(ctx: typer.Context):
    """Encoder latency, throughput and parity: ONNX fp32 and int8 vs PyTorch, in one run.

    Prints one JSON object; options as `python -m lucerag.bench.encoder --help` lists them.
    """
    from lucerag.bench.encoder import main as bench_main

    bench_main([a for a in ctx.args if a != "--json"])


@bench_app.command("precision")
def bench_precision(
    beir: Path = typer.Option(..., help="BEIR folder (e.g. ../shared/data/msmarco-dl19-5k)."),
    work: Path = typer.Option(..., help="Folder for the two indexes (fp32 and int8 passages; reused)."),
    methods: str = typer.Option("dense,hybrid"),
):
    """nDCG@10 for fp32 vs int8 passages x fp32 vs int8 queries, dense and hybrid, in one run (JSON)."""
    from lucerag.bench.precision import run_precision_bench

    chosen = tuple(m.strip() for m in methods.split(",") if m.strip())
    print(json.dumps(run_precision_bench(beir, work, chosen, progress=sys.stderr.isatty())))


@bench_app.command("isa", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_isa(ctx: typer.Context):
    """The same probe texts encoded natively and under qemu-user on an older x86-64 CPU (needs qemu-user).

    Prints one JSON object; options as `python -m lucerag.bench.isa --help` lists them.
    """
    from lucerag.bench.isa import main as isa_main

    isa_main([a for a in ctx.args if a != "--json"])


@bench_app.command("ops", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_ops(ctx: typer.Context):
    """Encoder micro-benchmarks: `kernels` (LayerNorm/GELU written three ways) or `windows` (query drift).

    Prints one JSON object; options as `python -m lucerag.bench.ops --help` lists them.
    """
    from lucerag.bench.ops import main as ops_main

    ops_main([a for a in ctx.args if a != "--json"])


@bench_app.command("ingest")
def bench_ingest(
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Input (default: the MS MARCO DL19-5K slice corpus)."),
    format: Optional[str] = typer.Option(None, help="Input format (guessed if absent)."),
    bm25_only: bool = typer.Option(False, "--bm25-only", help="Only the BM25-only ingest (no encoder)."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use the first N documents."),
    repeat: int = typer.Option(3, min=1, help="BM25-only runs (the first includes JIT warm-up)."),
    model: Optional[str] = typer.Option(None, help="Exported model directory (default all-MiniLM-L6-v2)."),
    threads: Optional[int] = typer.Option(None, help="onnxruntime threads (default: all cores)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Ingest throughput: reading, BM25-only ingest, encoder alone vs the full pipeline."""
    from lucerag.bench.ingest import run_ingest_bench

    result = run_ingest_bench(input, format, bm25_only=bm25_only, limit=limit, repeat=repeat, model=model,
                              encoder_threads=threads)
    if json_out:
        print(json.dumps(result))
        return
    typer.echo(json.dumps(result, indent=2))


def main() -> None:
    """Entry point that turns expected errors into one clear line (no stack traces)."""
    from lucerag.index.reader import IndexNotFoundError  # IndexTooNewError is one
    from lucerag.lucene.jvm import JavaNotFoundError  # AnseriniNotFoundError is one
    from lucerag.search.retriever import QueryError

    try:
        app()
    except (ConfigError, IndexNotFoundError, JavaNotFoundError, QueryError, FileNotFoundError,
            ValueError, ImportError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


# -- RAG service: serve, mcp, bench load (issue 6) ----------------------------------------------------

def _rag(index: Optional[Path], config: Optional[Path], workers: Optional[int], **options):
    from lucerag.rag.api import RAG

    if workers:
        options["workers"] = workers
    if config is not None:
        return RAG.from_config(config, **options)
    if index is not None:
        return RAG.from_index(index, **options)
    _fail("give --index DIR or --config FILE")


@app.command()
def serve(
    index_dir: Optional[Path] = typer.Option(None, "--index", help="A lucerag index directory."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: all; then set an API key)."),
    port: int = typer.Option(8000, min=0, max=65535),
    workers: Optional[int] = typer.Option(None, min=1, max=64, help="Search threads (default 4)."),
    max_queue: int = typer.Option(256, min=0, help="Searches allowed to wait for a thread; beyond: 503."),
    max_k: int = typer.Option(100, min=1, max=1000, help="Largest k a request may ask for."),
    max_body: int = typer.Option(16384, min=256, help="Largest request body (bytes); beyond: 413."),
    api_key_env: str = typer.Option("LUCERAG_API_KEY", help="Environment variable holding the API key "
                                    "(requests must send it when it is set)."),
    log_level: str = typer.Option("warning"),
):
    """Serve /v1/retrieve, /v1/context, /healthz, /metrics and /docs over HTTP (FastAPI + uvicorn)."""
    import os

    from lucerag.serve.http import ServerSettings, serve as run_server

    key = os.environ.get(api_key_env) or None
    settings = ServerSettings(api_key=key, max_k=max_k, max_body_bytes=max_body)
    rag = _rag(index_dir, config, workers, max_queue=max_queue)
    typer.echo(f"lucerag serving {rag.info()['index']} on http://{host}:{port} "
               f"({rag.workers} search threads, API key {'required' if key else 'off'})", err=True)
    run_server(rag, settings, host=host, port=port, log_level=log_level)


@app.command()
def mcp(
    index_dir: Optional[Path] = typer.Option(None, "--index", help="A lucerag index directory."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    transport: str = typer.Option("stdio", help="stdio (for desktop agents) or http."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8001, min=1, max=65535),
):
    """Serve search as MCP tools (search, context) for LLM agents."""
    from lucerag.adapters.mcp import run_mcp

    if transport not in ("stdio", "http"):
        _fail("--transport must be stdio or http")
    run_mcp(_rag(index_dir, config, None), transport=transport, host=host, port=port)


@bench_app.command("load")
def bench_load(
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Index to serve (a server is started on 127.0.0.1)."),
    config: Optional[Path] = typer.Option(None, help="Configuration to serve."),
    url: Optional[str] = typer.Option(None, help="Load an already running server instead (loopback only)."),
    queries: Optional[Path] = typer.Option(None, help="Queries: JSONL with 'text', TSV id<TAB>text, or lines."),
    clients: int = typer.Option(50, min=1, max=1000),
    duration: float = typer.Option(30.0, min=1, max=600),
    k: int = typer.Option(10, min=1, max=100),
    method: str = typer.Option("hybrid"),
    workers: Optional[int] = typer.Option(None, min=1, max=64, help="Server search threads."),
    max_requests: int = typer.Option(1_000_000, min=1),
    filter: Optional[bool] = typer.Option(None, "--filter/--no-filter", help="Relevance filter (default: on)."),
    json_out: bool = typer.Option(False, "--json"),
):
    """Bounded HTTP load test on loopback: N concurrent clients for D seconds; p50/p99, errors."""
    from lucerag.bench.load import bench, read_queries

    server_args: list[str] = []
    if url is None:
        if index_dir is not None:
            server_args += ["--index", str(index_dir)]
        elif config is not None:
            server_args += ["--config", str(config)]
        else:
            _fail("give --index DIR, --config FILE or --url URL")
        if workers:
            server_args += ["--workers", str(workers)]
    report = bench(server_args, read_queries(queries), clients, duration, k=k, method=method, url=url,
                   max_requests=max_requests, filter=filter)
    if json_out:
        print(report.model_dump_json())
    else:
        typer.echo(report.summary())
        if report.errors_by_kind:
            typer.echo(f"errors: {report.errors_by_kind}")
    if report.errors:
        raise typer.Exit(1)


# -- evaluation and benchmarks: import-vectors, bench query, bench scale (issue 7) ---------------------

@app.command("import-vectors")
def import_vectors_cmd(
    input: Path = typer.Option(..., "--input", "-i",
                               help="Vectors: JSONL, JSONL.gz or Parquet (Pyserini/Anserini JsonDenseVectorCollection), "
                                    "or a folder of them."),
    index_dir: Path = typer.Option(..., "--index", help="Index directory to build (or update with --append)."),
    corpus: Optional[Path] = typer.Option(None, help="Passage texts by id when the vectors carry no 'contents' "
                                                     "(collection.tsv, JSONL, BEIR corpus ...)."),
    corpus_format: Optional[str] = typer.Option(None, help="Format of --corpus (guessed if absent)."),
    model: Optional[str] = typer.Option(None, help="Exported query-encoder folder matching the vectors "
                                                   "('default': all-MiniLM-L6-v2); recorded in the index."),
    append: bool = typer.Option(False, help="Add to an existing index instead of building a new one."),
    on_missing: str = typer.Option("fail", help="fail or skip vectors whose text is nowhere."),
    batch_size: int = typer.Option(1024, min=1),
    limit: Optional[int] = typer.Option(None, min=1, help="Import only the first N vectors."),
    hnsw_m: int = typer.Option(HNSW_M, min=2, max=512, help="HNSW neighbours per node (Lucene's M)."),
    hnsw_beam: int = typer.Option(HNSW_BEAM, min=1, max=3200, help="HNSW construction beam width."),
    vector_format: Optional[str] = typer.Option(
        None, help="HNSW vectors: float (default), int8 (scalar-quantised) or bbq (1-bit, rescored exactly "
                   "at search time); recorded in the index, appends keep the index's own."),
    progress: bool = typer.Option(True, help="Show a progress bar (stderr)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Build an index from pre-encoded passage vectors (normalised to unit length) instead of encoding."""
    from lucerag.connectors import ConnectorError
    from lucerag.ingest.vectors import VectorFormatError, import_vectors

    vector_format = _vector_format(vector_format)
    try:
        report = import_vectors(input, index_dir, corpus=corpus, corpus_format=corpus_format, model=model,
                                append=append, batch_size=batch_size, on_missing=on_missing, limit=limit,
                                progress=progress and not json_out, hnsw_m=hnsw_m, hnsw_beam=hnsw_beam,
                                vector_format=vector_format)
    except (VectorFormatError, ConnectorError, RuntimeError) as exc:
        _fail(f"{exc} (nothing was changed in {index_dir})")
    for warning in report.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if json_out:
        print(json.dumps(report.as_dict()))
    else:
        typer.echo(f"imported {report.passages} passages ({report.dim} dimensions, {report.normalised} normalised) "
                   f"into {index_dir} in {report.seconds:.1f}s ({report.passages_per_s:.0f} passages/s)")


def _bench_summary(r: dict) -> str:
    lat = r["latency_1_thread"]
    lines = [f"{r.get('passages')} passages, {r['queries']} queries, k={r['k']}, depth={r['depth']}, "
             f"ef_search={r['ef_search']}, load {r['machine']['load_before']} -> {r['machine']['load_after']}"]
    for name, p in lat.items():
        lines.append(f"  lucerag  {name:<14} p50 {p['p50_ms']:8.2f}  p95 {p['p95_ms']:8.2f}  p99 {p['p99_ms']:8.2f} ms")
    if "baseline" in r:
        for name, p in r["baseline"]["latency_1_thread"].items():
            lines.append(f"  baseline {name:<14} p50 {p['p50_ms']:8.2f}  p95 {p['p95_ms']:8.2f}  p99 {p['p99_ms']:8.2f} ms")
        lines.append(f"  hybrid p50 speed-up {r['speedup_p50']}x; throughput {r['throughput']['qps']} vs "
                     f"{r['baseline']['throughput']['qps']} q/s ({r['throughput']['threads']} threads)")
    lines.append(f"  HNSW R@{r['hnsw_recall']['depth']} vs exact: {r['hnsw_recall']['recall']} "
                 f"(ef_search {r['hnsw_recall']['ef_search']})")
    return "\n".join(lines)


@bench_app.command("query")
def bench_query_cmd(
    index_dir: Path = typer.Option(..., "--index", help="A lucerag index (BM25 + HNSW in one directory)."),
    queries: Path = typer.Option(..., help="Queries: BEIR queries.jsonl, TREC topics (id<TAB>text) or lines."),
    limit: Optional[int] = typer.Option(None, min=1, help="Use the first N queries."),
    k: int = typer.Option(10, min=1, max=1000, help="Passages returned per query."),
    n_latency: int = typer.Option(200, min=10, help="Timed queries per stage (cycling through the set)."),
    threads: int = typer.Option(2, min=1, max=64, help="Concurrent threads for the throughput run."),
    n_throughput: int = typer.Option(200, min=1, help="Queries in the throughput run."),
    ef_search: Optional[int] = typer.Option(None, min=1, help="HNSW beam width (default: the configuration's)."),
    ef_sweep: str = typer.Option("", help="Also report HNSW recall and latency for these ef_search values "
                                          "(comma-separated)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline",
                                  help="Also measure rank-bm25 + numpy + PyTorch on the same passages."),
    ingest_sample: int = typer.Option(300, min=0, help="Passages ingested to measure ingest passages/s (0: skip)."),
    precision: Optional[str] = typer.Option(None, help="Query encoder: fp32 or int8 (default: the configuration's)."),
    latencies: Optional[Path] = typer.Option(None, help="Write every latency (ms) as JSON here."),
    plot: Optional[Path] = typer.Option(None, help="Write a latency CDF plot (PNG) here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Latency (p50/p95/p99, 1 thread), throughput (N threads), HNSW recall, ingest rate, index size and
    peak RSS of lucerag, side by side with the Python stack it replaces."""
    from lucerag.bench.query import read_queries, run_query_bench

    qs = read_queries(queries, limit)
    lat_file = latencies or (plot.with_suffix(".json") if plot else None)
    r = run_query_bench(index_dir, qs, k=k, n_latency=n_latency, threads=threads, n_throughput=n_throughput,
                        baseline=baseline, ingest_sample=ingest_sample, ef_search=ef_search,
                        latencies_out=lat_file, ef_sweep=[int(x) for x in ef_sweep.split(",") if x.strip()],
                        precision=_precision(precision))
    r["sizes"] = {str(r["passages"]): {key: r.get(key) for key in
                                       ("hybrid_p50_ms", "baseline_p50_ms", "speedup_p50", "index_bytes")}}
    if plot is not None:
        from lucerag.bench.scale import plot_latency_cdf

        plot_latency_cdf(json.loads(lat_file.read_text()), plot, f"{r['passages']:,} passages, 1 thread")
    if json_out:
        print(json.dumps(r))
    else:
        typer.echo(_bench_summary(r))


@bench_app.command("formats")
def bench_formats_cmd(
    sizes: str = typer.Option("5000,50000,200000", help="Corpus sizes (comma-separated)."),
    formats: str = typer.Option("float,int8,bbq", help="Vectors formats to compare."),
    work: Optional[Path] = typer.Option(None, help="Where indexes are built and reused (default <cache>/bench/formats)."),
    seed: int = typer.Option(7, help="Seed of the synthetic passages and vectors."),
    queries: int = typer.Option(200, min=10, help="Number of query vectors."),
    random: bool = typer.Option(False, "--random", help="Seeded random unit vectors instead of the DL19 slice "
                                                        "corpus (used anyway when the slice is absent)."),
    ef_search: Optional[int] = typer.Option(None, min=1, help="HNSW beam width (default: by index size)."),
    hnsw_m: int = typer.Option(HNSW_M, min=2, max=512, help="HNSW neighbours per node when building (Lucene's M)."),
    hnsw_beam: int = typer.Option(HNSW_BEAM, min=1, max=3200, help="HNSW construction beam width."),
    rebuild: bool = typer.Option(False, help="Rebuild the indexes even when they exist."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Vectors formats (float / int8 / BBQ + exact rescoring): recall vs exact search, latency, size."""
    from lucerag.bench.formats import run_formats_bench, table
    from lucerag.bench.scale import SLICE
    from lucerag.index.writer import VECTOR_FORMATS
    from lucerag.models import cache_dir

    chosen = sorted({int(s) for s in sizes.split(",") if s.strip()})
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    if not chosen or min(chosen) < 200:
        _fail("--sizes needs sizes of at least 200 passages")
    if not fmts or any(f not in VECTOR_FORMATS for f in fmts):
        _fail(f"--formats takes {', '.join(VECTOR_FORMATS)}")
    use_random = random or not SLICE.exists()
    r = run_formats_bench(chosen, work=work or cache_dir() / "bench" / "formats", formats=fmts, seed=seed,
                          n_queries=queries, use_random=use_random, ef_search=ef_search, hnsw_m=hnsw_m,
                          hnsw_beam=hnsw_beam, rebuild=rebuild,
                          progress=lambda m: typer.echo(f"[bench formats] {m}", err=True))
    if json_out:
        print(json.dumps(r))
        return
    typer.echo(table(r))


@bench_app.command("scale")
def bench_scale_cmd(
    sizes: str = typer.Option("5000,50000,200000", help="Corpus sizes (comma-separated)."),
    queries: Optional[Path] = typer.Option(None, help="Queries (default: the MS MARCO dev subset topics)."),
    limit: int = typer.Option(200, min=1, help="Use the first N queries."),
    work: Optional[Path] = typer.Option(None, help="Where corpora and indexes are built and reused "
                                                   "(default <cache>/bench/scale)."),
    seed: int = typer.Option(7, help="Seed of the synthetic passages and vectors."),
    noise: float = typer.Option(0.5, min=0.0, help="Noise added to synthesised vectors (x per-dimension spread)."),
    threads: int = typer.Option(2, min=1, max=64, help="Concurrent threads for the throughput runs."),
    n_latency: int = typer.Option(200, min=10),
    n_throughput: int = typer.Option(200, min=1),
    ingest_sample: int = typer.Option(300, min=0),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline"),
    rebuild: bool = typer.Option(False, help="Rebuild the indexes even when they exist."),
    ef_search: Optional[int] = typer.Option(None, min=1, help="HNSW beam width (default: the configuration's)."),
    ef_sweep: str = typer.Option("", help="Also report HNSW recall/latency for these ef_search values."),
    precision: Optional[str] = typer.Option(None, help="Query encoder: fp32 or int8 (default: the configuration's)."),
    hnsw_m: int = typer.Option(HNSW_M, min=2, max=512, help="HNSW neighbours per node when building (Lucene's M)."),
    hnsw_beam: int = typer.Option(HNSW_BEAM, min=1, max=3200, help="HNSW construction beam width."),
    plot_dir: Optional[Path] = typer.Option(None, help="Write latency CDFs and the scale curve (PNG) here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """The scale curve: both stacks at 5K, 50K and 200K passages (MS MARCO slice + synthetic passages)."""
    from lucerag.bench.query import read_queries
    from lucerag.bench.scale import DEV_TOPICS, run_scale_bench
    from lucerag.models import cache_dir

    chosen = sorted({int(s) for s in sizes.split(",") if s.strip()})
    if not chosen or min(chosen) < 100:
        _fail("--sizes needs sizes of at least 100 passages")
    qpath = queries or DEV_TOPICS.resolve()
    r = run_scale_bench(chosen, work=work or cache_dir() / "bench" / "scale", queries=read_queries(qpath, limit),
                        seed=seed, noise=noise, threads=threads, n_latency=n_latency, n_throughput=n_throughput,
                        ingest_sample=ingest_sample, baseline=baseline, rebuild=rebuild, plot_dir=plot_dir,
                        ef_search=ef_search, ef_sweep=ef_sweep, precision=_precision(precision),
                        hnsw_m=hnsw_m, hnsw_beam=hnsw_beam,
                        progress=lambda m: typer.echo(f"[bench scale] {m}", err=True))
    r["query_file"] = str(qpath)
    if json_out:
        print(json.dumps(r))
        return
    for size, entry in r["by_size"].items():
        typer.echo(f"== {size} passages (built at {entry['build']['passages_per_s']} passages/s)")
        typer.echo(_bench_summary(entry))
    typer.echo(json.dumps(r["targets"]))
