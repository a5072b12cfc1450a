"""``lucerag bench ...``: benchmarks on this machine (JSON with --json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from lucerag.index.hnsw import HNSW_BEAM, HNSW_M
from lucerag.cli.app import bench_app, _fail, _precision


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

    from lucerag.search.request import check_method

    chosen = tuple(check_method(m.strip()) for m in methods.split(",") if m.strip())
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
    """Encoder micro-benchmarks: `kernels` (LayerNorm/GELU written three ways), `windows` (query drift) or
    `gemm` (one int8 GEMM per MiniLM weight shape, written the ways the int8 recipe could use).

    Prints one JSON object; options as `python -m lucerag.bench.ops --help` lists them.
    """
    from lucerag.bench.ops import main as ops_main

    ops_main([a for a in ctx.args if a != "--json"])


@bench_app.command("mixture-fit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_mixture_fit(ctx: typer.Context):
    """Per-query score-mixture fit against the plain EM it replaced: time, steps, how the fits differ.

    Prints one JSON object; options as `python -m lucerag.bench.mixture_fit --help` lists them."""
    from lucerag.bench.mixture_fit import main as mixture_main

    try:
        mixture_main([a for a in ctx.args if a != "--json"])
    except FileNotFoundError as exc:
        _fail(str(exc))


@bench_app.command("graph", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_graph(ctx: typer.Context):
    """HNSW settings: build CPU and R@100 against exact search per M / beam / format / Java runtime.

    Prints a Markdown table; options as `python -m lucerag.bench.graph --help` lists them.
    """
    from lucerag.bench.graph import main as graph_main

    graph_main(list(ctx.args))


@bench_app.command("ingest")
def bench_ingest(
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Input (default: "
                                         "$LUCERAG_DATA/msmarco-dl19-5k/corpus.jsonl)."),
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


@bench_app.command("distributed")
def bench_distributed(
    input: Optional[Path] = typer.Option(None, "--input", "-i", help="Input (default: the MS MARCO DL19-5K slice corpus)."),
    format: Optional[str] = typer.Option(None, help="Input format (guessed if absent)."),
    limit: Optional[int] = typer.Option(2000, min=1, help="Use the first N documents."),
    repeat: int = typer.Option(3, min=1, help="Interleaved runs per configuration (medians are reported)."),
    workers: str = typer.Option("1,2", help="Ray encoder-actor counts to measure, comma-separated."),
    cpus: Optional[int] = typer.Option(None, min=1, help="num_cpus of the local Ray cluster (default: all cores)."),
    object_store_mb: int = typer.Option(400, min=64, help="Object store of the local Ray cluster (MB)."),
    precision: Optional[str] = typer.Option(None, help="Passage encoder precision (default int8)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Ingest throughput: the single-process pipeline vs Ray with 1 and 2 encoder workers, interleaved."""
    try:
        from lucerag.bench.distributed import run_distributed_bench, table
    except ImportError as exc:  # pragma: no cover
        _fail(str(exc))
    try:
        counts = tuple(int(x) for x in workers.split(",") if x.strip())
    except ValueError:
        _fail(f"--workers must be comma-separated integers, not {workers!r}")
    try:
        result = run_distributed_bench(input, format, limit=limit, repeat=repeat, workers=counts, cpus=cpus,
                                       object_store_mb=object_store_mb, precision=_precision(precision))
    except ModuleNotFoundError as exc:
        _fail(f"{exc}: lucerag bench distributed needs Ray (pip install 'lucerag[ray]')")
    if json_out:
        print(json.dumps(result))
        return
    typer.echo(json.dumps(result, indent=2))
    typer.echo(table(result))


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
    k: int = typer.Option(10, min=1, help="Passages returned per query (at most limits.max_k)."),
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
    from lucerag.bench.load import read_queries
    from lucerag.bench.query import run_query_bench

    qs = read_queries(queries, limit)
    lat_file = latencies or (plot.with_suffix(".json") if plot else None)
    r = run_query_bench(index_dir, qs, k=k, n_latency=n_latency, threads=threads, n_throughput=n_throughput,
                        baseline=baseline, ingest_sample=ingest_sample, ef_search=ef_search,
                        latencies_out=lat_file, ef_sweep=[int(x) for x in ef_sweep.split(",") if x.strip()],
                        precision=_precision(precision))
    r["sizes"] = {str(r["passages"]): {key: r.get(key) for key in
                                       ("hybrid_p50_ms", "baseline_p50_ms", "speedup_p50", "index_bytes")}}
    if plot is not None and lat_file is not None:
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
                                                        "corpus (used anyway when $LUCERAG_DATA lacks it)."),
    ef_search: Optional[int] = typer.Option(None, min=1, help="HNSW beam width (default: by index size)."),
    hnsw_m: int = typer.Option(HNSW_M, min=2, max=512, help="HNSW neighbours per node when building (Lucene's M)."),
    hnsw_beam: int = typer.Option(HNSW_BEAM, min=1, max=3200, help="HNSW construction beam width."),
    rebuild: bool = typer.Option(False, help="Rebuild the indexes even when they exist."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Vectors formats (float / int8 / BBQ + exact rescoring): recall vs exact search, latency, size."""
    from lucerag.bench.formats import run_formats_bench, table
    from lucerag.bench.data import DL19_SLICE, has_data
    from lucerag.index.hnsw import VECTOR_FORMATS
    from lucerag.models import cache_dir

    chosen = sorted({int(s) for s in sizes.split(",") if s.strip()})
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    if not chosen or min(chosen) < 200:
        _fail("--sizes needs sizes of at least 200 passages")
    if not fmts or any(f not in VECTOR_FORMATS for f in fmts):
        _fail(f"--formats takes {', '.join(VECTOR_FORMATS)}")
    use_random = random or not has_data(DL19_SLICE)
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
    queries: Optional[Path] = typer.Option(None, help="Queries (default: the MS MARCO dev subset topics under "
                                                      "$LUCERAG_DATA/topics-and-qrels)."),
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
    from lucerag.bench.data import DEV_TOPICS, data_path
    from lucerag.bench.load import read_queries
    from lucerag.bench.scale import run_scale_bench
    from lucerag.models import cache_dir

    chosen = sorted({int(s) for s in sizes.split(",") if s.strip()})
    if not chosen or min(chosen) < 100:
        _fail("--sizes needs sizes of at least 100 passages")
    qpath = queries or data_path(DEV_TOPICS, option="--queries")
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


@bench_app.command("peers")
def bench_peers_cmd(
    sizes: str = typer.Option("5000,50000", help="Corpus sizes (comma-separated; as `bench scale` builds them)."),
    systems: str = typer.Option("lucerag,bm25s+numpy,txtai,lancedb,chroma,langchain",
                                help="Systems to run (also: lucerag-graph, lucerag on its HNSW graph at every size)."),
    modes: str = typer.Option("retrieval,lucerag-encoder,default-encoder",
                              help="Query encoders: retrieval (vectors given), lucerag-encoder, default-encoder."),
    queries: int = typer.Option(200, min=10, help="Distinct MS MARCO dev queries for latency, per system and mode."),
    rounds: int = typer.Option(10, min=1, help="Interleaved rounds (each system runs 1/rounds of the queries per round)."),
    warmup: int = typer.Option(200, min=0, help="Distinct untimed dev queries each system answers first (at most 30 s)."),
    work: Optional[Path] = typer.Option(None, help="Where corpora are built and cached (default <cache>/bench/scale)."),
    data: Optional[Path] = typer.Option(None, help="Folder holding msmarco-dl19-5k/ and topics-and-qrels/ "
                                                   "(default $LUCERAG_DATA, e.g. ../shared/data)."),
    hnsw_m: Optional[int] = typer.Option(None, min=2, max=512, help="lucerag's HNSW M (default: the writer's)."),
    hnsw_beam: Optional[int] = typer.Option(None, min=1, max=3200, help="lucerag's HNSW construction beam."),
    plot: Optional[Path] = typer.Option(None, help="Write the p50-against-size plot (PNG) here."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object per size."),
):
    """lucerag against bm25s+numpy, txtai, LanceDB, Chroma and LangChain: same vectors and queries,
    one process per size, interleaved rounds; a Markdown table (needs `make peers`: the peers extra,
    and txtai without its PyTorch)."""
    from lucerag.bench.peers import plot as plot_peers, run_sizes, table
    from lucerag.models import cache_dir

    chosen = sorted({int(s) for s in sizes.split(",") if s.strip()})
    if not chosen or min(chosen) < 100:
        _fail("--sizes needs sizes of at least 100 passages")
    try:
        results = run_sizes(chosen, work=work or cache_dir() / "bench" / "scale", systems=systems, modes=modes,
                            queries=queries, rounds=rounds, warmup=warmup, hnsw_m=hnsw_m, hnsw_beam=hnsw_beam,
                            data=data.resolve() if data else None)
    except RuntimeError as exc:
        _fail(str(exc))
    if plot is not None:
        plot_peers(results, plot)
    if json_out:
        for r in results:
            print(json.dumps(r))
        return
    typer.echo(table(results))


@bench_app.command("transfer")
def bench_transfer(
    data: Path = typer.Option(Path("../shared/data"), help="Shared data root (msmarco-dl19-5k, beir-scifact)."),
    work: Path = typer.Option(..., help="Folder for the indexes and cached candidates (reused; not the repo)."),
    collections: str = typer.Option("dl19,scifact", help="Comma-separated collections."),
    ood: Optional[Path] = typer.Option(None, help="Unanswerable questions (one per line) measured on every corpus."),
    negatives: Optional[Path] = typer.Option(None, help="Unanswerable questions used as negatives when fitting."),
    nonsense: Optional[Path] = typer.Option(None, help="Nonsense queries (emoji, other scripts, made-up words; "
                                                        "one per line): the share refused is reported."),
    depth: int = typer.Option(100, min=10, help="Candidates per view (fusion.depth)."),
    pseudo: int = typer.Option(200, min=0, help="Pseudo-queries drawn from each corpus (0: none)."),
    markdown: bool = typer.Option(False, "--markdown", help="Print markdown tables instead of JSON."),
    write_calibrator: Optional[Path] = typer.Option(None, help="Also fit on ALL collections and write the "
                                                               "calibrator here (what lucerag ships)."),
):
    """Leave-one-collection-out: fusion and relevance filter fitted on the other collections,
    measured on each one, side by side with the baselines (JSON, or --markdown)."""
    from lucerag.eval.transfer import leave_one_out, load_judged, markdown as as_markdown

    names = [n.strip() for n in collections.split(",") if n.strip()]
    if len(names) < 2:
        _fail("--collections needs at least two collections")
    judged = load_judged(names, data, work, depth, ood, negatives, pseudo, progress=sys.stderr.isatty(),
                         log=lambda m: typer.echo(m, err=True), nonsense=nonsense)
    report = leave_one_out(judged, depth)
    print(as_markdown(report) if markdown else json.dumps(report))
    if write_calibrator is not None:
        from lucerag.eval.transfer import fit_defaults
        from lucerag.models import load_encoder
        from lucerag.config import EncoderConfig

        # the query encoder a default Retriever loads: the calibrator is checked against it
        w, cal = fit_defaults(judged, load_encoder(None, precision=EncoderConfig().precision).manifest, depth)
        path = cal.save(write_calibrator)
        typer.echo(f"fitted on all collections: anchored fusion bm25_weight {w}; calibrator "
                   f"({cal.model}, threshold {cal.threshold}, gate {cal.gate}) written to {path}", err=True)


@bench_app.command("transfer-ablation")
def bench_transfer_ablation(
    data: Path = typer.Option(Path("../shared/data"), help="Shared data root (msmarco-dl19-5k, beir-scifact)."),
    work: Path = typer.Option(..., help="Folder for the indexes and cached candidates (the one of `bench transfer`)."),
    collections: str = typer.Option("dl19,scifact-2k", help="Comma-separated collections."),
    negatives: Path = typer.Option(Path("tests/data/ood_train.txt"),
                                   help="Unanswerable questions that set the mixture's gate on each corpus."),
    depth: int = typer.Option(100, min=10, help="Candidates per view (fusion.depth)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of markdown tables."),
):
    """Cut rules for the mixture filter and anchored-fusion variants that were tried and dropped, each
    fitted on one collection and measured on the other (docs/fusion-and-filter.md)."""
    from lucerag.eval.ablation import ablation, markdown as as_markdown
    from lucerag.eval.transfer import load_judged

    names = [n.strip() for n in collections.split(",") if n.strip()]
    if len(names) < 2:
        _fail("--collections needs at least two collections")
    judged = load_judged(names, data, work, depth, None, negatives, pseudo=0, progress=sys.stderr.isatty(),
                         log=lambda m: typer.echo(m, err=True))
    report = ablation(judged, depth)
    print(json.dumps(report) if json_out else as_markdown(report))


@bench_app.command("filters")
def bench_filters_cmd(
    work: Path = typer.Option(..., help="Folder for the benchmark indexes (built once, reused)."),
    sizes: str = typer.Option("5000", help="Corpus sizes (comma-separated), e.g. 5000,50000."),
    data: Optional[Path] = typer.Option(None, help="Folder holding msmarco-dl19-5k/ (default: $LUCERAG_DATA), "
                                                   "e.g. ../shared/data."),
    queries: Optional[Path] = typer.Option(None, help="Queries (default: the DL19 slice's queries.jsonl)."),
    repeat: int = typer.Option(3, min=1, help="Timed passes over the queries."),
    seed: int = typer.Option(7, help="Seed of the synthetic passages beyond the 5K slice."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a Markdown table."),
):
    """Filtered hybrid latency and recall@10 vs exact filtered search, at 1%/10%/50% selectivity."""
    from lucerag.bench.data import DL19_SLICE, data_path
    from lucerag.bench.filters import run_filter_bench, table
    from lucerag.bench.load import read_queries

    chosen = [int(s) for s in sizes.split(",") if s.strip()]
    slice_dir = data_path(DL19_SLICE, data)
    qs = read_queries(queries or slice_dir / "queries.jsonl")
    result = run_filter_bench(chosen, work=work, queries=qs, seed=seed, repeat=repeat, slice_dir=slice_dir)
    print(json.dumps(result) if json_out else table(result))
