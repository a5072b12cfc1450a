"""``lucerag eval``, ``tune`` and ``calibrate``: runs and metrics, fusion tuning, fitting the relevance filter."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from lucerag.cli.app import app, _fail, _retriever


def _query_set(beir, topics, qrels, index_dir, config, dense: bool = True, rel=None, chunk: bool = False,
               dense_text=None, progress_every: float = 10.0):
    """The QuerySet (queries with judgments, counts) from a BEIR folder or TREC files, building a
    BEIR index when ``index_dir`` does not exist (one passage per document unless ``chunk``)."""
    from lucerag.eval.protocol import query_set
    from lucerag.eval.topics import read_beir_qrels, read_beir_queries, read_trec_qrels, read_trec_topics

    if beir is not None:
        queries, judgments = read_beir_queries(beir), read_beir_qrels(beir)
        if index_dir is None and config is None:
            _fail("give --index DIR (built from the BEIR corpus when it does not exist)")
        if index_dir is not None and not index_dir.exists():
            _build_beir_index(beir, index_dir, dense=dense, chunk=chunk, dense_text=dense_text,
                              progress_every=progress_every)
    elif topics is not None and qrels is not None:
        queries, judgments = read_trec_topics(topics), read_trec_qrels(qrels)
    else:
        _fail("give --beir FOLDER, or --topics FILE and --qrels FILE")
    qs = query_set(queries, judgments, rel)
    if not qs.queries:
        _fail("no query has relevance judgments")
    return qs


def _index_protocol(index_dir: Optional[Path], config: Optional[Path]) -> dict:
    """How the evaluated index was built: chunker (``none``: one passage per document), dense text."""
    from lucerag.index.manifest import IndexManifest

    if index_dir is None:
        return {}
    try:
        m = IndexManifest.read(index_dir)
    except ValueError:
        m = None
    if m is None:
        return {"index": str(index_dir)}
    out = {"index": str(index_dir), "chunker": m.settings.get("chunker", "unknown")}
    if m.encoder:
        out["dense_text"] = m.dense_text
        out["encoder_max_length"] = m.encoder_max_length
    return out


def _run_methods(retriever, chosen, qs, depth, rel, aggregate, corpus, strict, run_dir, tag, show, label=""):
    """Document runs and metrics of each method; returns (results, per-query scores, warnings)."""
    from lucerag.errors import UnknownRunIdError
    from lucerag.eval.protocol import document_run
    from lucerag.eval.runs import (in_listed_order, mean_scores, metrics_for_depth, per_query_scores, run_queries,
                                   write_trec_run)

    results, by_query, warnings = {}, {}, []
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

        passages, _ = run_queries(rank, qs.queries, progress=show and sys.stderr.isatty())
        try:
            run, warned = document_run(passages, aggregate, corpus, strict, method=f"{label}{method}")
        except UnknownRunIdError as exc:
            _fail(f"{exc} (--strict)")
        warnings += warned
        run = in_listed_order(run)  # scored (and written) in the order it was ranked, ties included
        by_query[method] = per_query_scores(run, qs.qrels, metrics_for_depth(depth), rel=rel)
        results[method] = mean_scores(by_query[method])
        if run_dir is not None:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_trec_run(run, run_dir / f"run.{tag}{method}.txt", f"lucerag-{tag}{method}")
        if show:
            cells = "  ".join(f"{k} {v:.4f}" for k, v in results[method].items())
            typer.echo(f"{label + method:<16} {cells}")
    return results, by_query, warnings


@app.command(name="eval")
def eval_(
    beir: Optional[Path] = typer.Option(None, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels."),
    topics: Optional[Path] = typer.Option(None, help="TREC topics file (qid<TAB>text)."),
    qrels: Optional[Path] = typer.Option(None, help="TREC qrels file (qid 0 docid rel)."),
    index_dir: Optional[Path] = typer.Option(None, "--index",
                                             help="Index (built from --beir if missing: one passage per "
                                                  "document, the published BEIR protocol)."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    methods: str = typer.Option("bm25,dense,hybrid",
                                help="Comma-separated methods: bm25, dense, hybrid, hybrid-rrf (RRF, k=60)."),
    depth: int = typer.Option(1000, min=10, help="Ranked list length per query (for R@100/R@1000)."),
    rel: Optional[int] = typer.Option(None, help="Lowest grade counted relevant by binary metrics."),
    run_dir: Optional[Path] = typer.Option(None, help="Write TREC document runs here."),
    chunked: bool = typer.Option(False, "--chunked",
                                 help="--beir: also evaluate a chunked index (what a RAG deployment serves), "
                                      "passage scores aggregated to documents (--aggregate); reported beside."),
    chunked_index: Optional[Path] = typer.Option(None, "--chunked-index",
                                                 help="--chunked: the chunked index (built if missing; "
                                                      "default: <index>-chunked)."),
    aggregate: str = typer.Option("maxp", help="Passage -> document scores: maxp, firstp or sum."),
    strict: bool = typer.Option(False, "--strict",
                                help="Fail when a run id is neither a corpus id nor a chunk of one (else warn)."),
    dense_text: Optional[str] = typer.Option(None, "--dense-text",
                                             help="Index builds: encode passages from title+text (default, as "
                                                  "BEIR/MTEB) or text."),
    progress_every: float = typer.Option(10.0, min=0.0,
                                         help="Index builds without a terminal: seconds between progress lines."),
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
    """Evaluate methods on a BEIR folder or TREC topics + qrels, as document runs.

    Passage ids are mapped to their document (``<docid>#<n>`` -> ``<docid>``, scores combined by
    --aggregate) before scoring against the qrels; the report counts the queries judged, evaluated
    and skipped. JSON: ``{method: {metric: value}, "queries": counts, "protocol": {...}}`` plus
    ``"chunked"`` (same shape) with --chunked and ``"warnings"`` when any."""
    from lucerag.eval.aggregate import AGGREGATIONS
    from lucerag.eval.runs import compare_methods, markdown_table, require_eval_extra
    from lucerag.ingest.pipeline import DENSE_TEXTS
    from lucerag.search.retriever import METHODS

    require_eval_extra()  # before any index is built

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    for m in chosen:
        if m not in METHODS + ("hybrid-rrf",):
            _fail(f"unknown method {m!r} in --methods: use {', '.join(METHODS + ('hybrid-rrf',))}")
    if aggregate not in AGGREGATIONS:
        _fail(f"--aggregate must be one of {', '.join(AGGREGATIONS)}, not {aggregate!r}")
    if dense_text is not None and dense_text not in DENSE_TEXTS:
        _fail(f"--dense-text must be one of {', '.join(DENSE_TEXTS)}, not {dense_text!r}")
    if chunked and (beir is None or index_dir is None):
        _fail("--chunked needs --beir FOLDER and --index DIR")
    if not chosen:
        _fail("--methods names no method")
    reference = reference or chosen[0]
    if (significance or markdown) and reference not in chosen:
        _fail(f"--reference {reference!r} is not one of --methods")
    dense = filter_ or any(m != "bm25" for m in chosen)
    qs = _query_set(beir, topics, qrels, index_dir, config, dense=dense, rel=rel, dense_text=dense_text,
                    progress_every=progress_every)
    corpus = None
    if beir is not None:
        from lucerag.eval.protocol import corpus_ids

        corpus = corpus_ids(beir)
    show = not json_out and not markdown
    if show:
        typer.echo(qs.summary())
    protocol = {**_index_protocol(index_dir, config), "aggregate": aggregate, "depth": depth}
    with _retriever(index_dir, config) as retriever:
        results, by_query, warnings = _run_methods(retriever, chosen, qs, depth, rel, aggregate, corpus, strict,
                                                   run_dir, "", show)
        if filter_:
            results["filter"] = _evaluate_filter(retriever, qs.queries, qs.qrels, grade, negatives, ood,
                                                 curve=filter_curve)
            if show:
                typer.echo(f"filter   {json.dumps(results['filter'])}")
    extra = {}
    if chunked and beir is not None and index_dir is not None:  # both checked above
        chunked_index = chunked_index or index_dir.with_name(index_dir.name + "-chunked")
        if not chunked_index.exists():
            _build_beir_index(beir, chunked_index, dense=dense, chunk=True, dense_text=dense_text,
                              progress_every=progress_every)
        with _retriever(chunked_index, None) as retriever:
            got, _, warned = _run_methods(retriever, chosen, qs, depth, rel, aggregate, corpus, strict,
                                          run_dir, "chunked.", show, label=f"chunked/{aggregate} ")
        warnings += warned
        extra["chunked"] = {**got, "protocol": {**_index_protocol(chunked_index, None), "aggregate": aggregate,
                                                "depth": depth}}
    tests = compare_methods(by_query, reference) if (significance or markdown) and len(chosen) > 1 else {}
    if per_query_out is not None:
        per_query_out.parent.mkdir(parents=True, exist_ok=True)
        per_query_out.write_text(json.dumps(by_query, indent=1))
    if markdown:
        rows = {m: results[m] for m in chosen}
        if "chunked" in extra:
            rows |= {f"chunked/{aggregate} {m}": extra["chunked"][m] for m in chosen}
        typer.echo(markdown_table(rows, tests, reference, queries=len(qs.queries)))
        typer.echo(qs.summary() + ".")
        if filter_:
            typer.echo(_filter_markdown(results["filter"]))
    if json_out:
        if significance:
            results["significance"] = {"reference": reference, "tests": tests}
        results |= {"queries": qs.counts, "protocol": protocol, **extra}
        if warnings:
            results["warnings"] = warnings
        print(json.dumps(results))
    elif warnings:
        for w in warnings:
            typer.secho(f"warning: {w}", fg=typer.colors.YELLOW, err=True)


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
    from lucerag.eval.filter import collect, cross_validate_filter, empty_rate, fit_calibrator, read_query_lines

    labelled = collect(retriever, queries, judgments, grade=grade, depth=retriever.config.fusion.depth)
    extra = [q for path in negatives for q in collect(retriever, read_query_lines(path), {})]
    report = cross_validate_filter(labelled, extra)
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

    qs = _query_set(beir, topics, qrels, index_dir, config)
    queries, judgments = qs.queries, qs.qrels
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
    pseudo: int = typer.Option(0, min=0, help="Also fit on this many pseudo-queries drawn from the index itself "
                                              "(a sentence or title as query, its passage relevant): "
                                              "calibrates on a corpus without judgments."),
    target_precision: Optional[float] = typer.Option(None, min=0.0, max=1.0,
                                                     help="Choose the threshold for this precision instead of best F1."),
    out: Optional[Path] = typer.Option(None, help="Where to write it (default: <index>/lucerag-calibrator.json)."),
    model: str = typer.Option("logistic", help="logistic: fitted on judged queries and/or pseudo-queries; "
                                               "mixture: per-query score-distribution model, no judgments, "
                                               "its answerability gate set from --negatives (default: lucerag's "
                                               "own unanswerable questions) searched on the index."),
):
    """Fit the relevance filter on judged queries and/or pseudo-queries (or, with --model mixture, set
    its answerability gate from unanswerable questions) and store it next to the index."""
    if model not in ("logistic", "mixture"):
        _fail(f"--model {model!r}: use logistic or mixture")
    if model == "mixture":
        _calibrate_mixture(index_dir, config, negatives, out)
        return
    from lucerag.eval.filter import collect, fit_calibrator, read_query_lines

    if beir is None and topics is None and not pseudo:
        _fail("give --beir FOLDER or --topics/--qrels (judged queries), or --pseudo N (no judgments needed)")
    if beir is None and topics is None:
        queries, judgments = {}, {}
    else:
        qs = _query_set(beir, topics, qrels, index_dir, config)
        queries, judgments = qs.queries, qs.qrels
    with _retriever(index_dir, config) as retriever:
        target = _calibrator_target(retriever, out)
        f = retriever.config.fusion
        labelled = collect(retriever, queries, judgments, grade=grade, depth=f.depth)
        sources = [str(beir or topics)] if queries else []
        if pseudo:
            from lucerag.eval.pseudo import pseudo_queries

            pq, pqrels = pseudo_queries(retriever.dense_index or retriever.bm25_index, pseudo)
            labelled += collect(retriever, pq, pqrels, grade=1, depth=f.depth)
            sources.append(f"{len(pq)} pseudo-queries from the index")
        extra = [q for path in negatives for q in collect(retriever, read_query_lines(path), {})]
        m = retriever.encoder.manifest
        try:
            cal = fit_calibrator(labelled + extra, target_precision, relevant_grade=grade,
                                 encoder=m.name, encoder_precision=m.precision, encoder_recipe=m.recipe,
                                 fusion=f.model_dump(), trained_on=" + ".join(sources))
        except ValueError as exc:
            _fail(str(exc))
    path = cal.save(target)
    typer.echo(f"calibrator fitted on {cal.queries} queries ({cal.candidates} candidates), "
               f"threshold {cal.threshold} ({cal.objective}); written to {path}")


def _calibrator_target(retriever, out: Optional[Path]) -> Path:
    """Where the calibrator goes: ``--out``, else beside the index's passages, but only in an index
    lucerag wrote (it has a manifest). An Anserini index is the user's: lucerag writes nothing into it
    (it may be a read-only or checksummed prebuilt index)."""
    from lucerag.index.manifest import IndexManifest
    from lucerag.search.calibration import Calibrator

    if out is not None:
        return out
    index = retriever.dense_index or retriever.bm25_index
    if index.manifest is None:
        _fail(f"{index.path} is not a lucerag index (no {IndexManifest.FILENAME}; an Anserini index?) and lucerag "
              "writes nothing into it: give --out FILE, then set [filter] calibrator = \"FILE\" in the configuration")
    return index.path / Calibrator.FILENAME


def _calibrate_mixture(index_dir: Optional[Path], config: Optional[Path], negatives: list[Path],
                       out: Optional[Path]) -> None:
    from lucerag.eval.filter import collect, read_query_lines
    from lucerag.search.calibration import FEATURES, gate_from_negatives, mixture_calibrator

    if not negatives:  # lucerag's own list of questions no ordinary corpus answers
        from lucerag.resources import UNANSWERABLE

        negatives = [UNANSWERABLE]
    with _retriever(index_dir, config) as retriever:
        target = _calibrator_target(retriever, out)
        f = retriever.config.fusion
        extra = [q for path in negatives for q in collect(retriever, read_query_lines(path), {}, depth=f.depth)]
        extra = [q for q in extra if len(q.x)]
        if not extra:
            _fail("--negatives: no question found any candidate on this index")
        m = retriever.encoder.manifest
        cal = mixture_calibrator(gate_from_negatives(q.x[0, FEATURES.index("dense_top")] for q in extra),
                                 encoder=m.name, encoder_precision=m.precision, encoder_recipe=m.recipe,
                                 fusion=f.model_dump(), queries=len(extra),
                                 trained_on=f"gate from {len(extra)} unanswerable questions on this index")
    path = cal.save(target)
    typer.echo(f"mixture calibrator: answerability gate cosine {cal.gate} (from {len(extra)} unanswerable "
               f"questions), threshold {cal.threshold}; written to {path}")


def _build_beir_index(folder: Path, index_dir: Path, dense: bool, chunk: bool = False,
                      dense_text: Optional[str] = None, progress_every: float = 10.0) -> None:
    """Build ``index_dir`` from a BEIR corpus: one passage per document (the published protocol:
    BM25 over title + text, the encoder truncating at its max length) unless ``chunk``."""
    import logging

    from lucerag.connectors import read_documents
    from lucerag.ingest.pipeline import build_index, estimate_total

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("lucerag.ingest.progress").setLevel(logging.INFO)
    corpus = folder / "corpus.jsonl"
    layout = "chunked" if chunk else "one passage per document"
    typer.echo(f"building {index_dir} from {corpus} ({layout})", err=True)
    stream = read_documents(corpus, "jsonl")
    from lucerag.cli.interrupt import reporting_interrupts

    with reporting_interrupts(index_dir, append=False, work="ingest"):  # a long build: Ctrl-C says what it left
        report = build_index(stream, index_dir, dense=dense, progress=True, stats=stream.stats, chunk=chunk,
                             dense_text=dense_text, progress_every=progress_every, total=estimate_total(corpus))
    typer.echo(f"indexed {report.indexed} documents as {report.passages} passages in {report.seconds:.1f}s", err=True)
