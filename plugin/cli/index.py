"""``lucerag index`` and ``lucerag import-vectors``: documents or precomputed vectors into an index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from lucerag.index.hnsw import HNSW_BEAM, HNSW_M
from lucerag.cli.app import app, _fail, _precision, _vector_format
from lucerag.cli.interrupt import reports_interrupts


# Which reader option each column flag sets, per format.
_COLUMN_OPTIONS = {
    "csv": ("id_column", "text_column", "title_column"),
    "sqlite": ("id_column", "text_column", "title_column"),
    "sql": ("id_column", "text_column", "title_column"),
    "jsonl": ("id_field", "text_field", "title_field"),
    "jsonl.gz": ("id_field", "text_field", "title_field"),
}


def source_options(input: Path, format: Optional[str], *, query: Optional[str] = None,
                   id_column: Optional[str] = None, text_column: Optional[str] = None,
                   title_column: Optional[str] = None) -> dict:
    """The reader options of ``lucerag index``'s source flags; raises ConnectorError (naming the
    flag to use) when a flag does not fit the source's format or a SQL source lacks --query."""
    from lucerag.connectors import ConnectorError
    from lucerag.connectors.formats import guess_format

    fmt = format or guess_format(input)
    options: dict = {}
    if fmt in ("sqlite", "sql"):
        if not query:
            raise ConnectorError(str(input), "", "a SQL source needs a query: pass --query "
                                 "'SELECT id, text FROM docs' (other column names: --id-column/--text-column)")
        options["query"] = query
    elif query:
        raise ConnectorError(str(input), "", f"--query applies to sqlite/sql sources, not {fmt}")
    given = {"id": id_column, "text": text_column, "title": title_column}
    if any(v is not None for v in given.values()):
        names = _COLUMN_OPTIONS.get(fmt)
        if names is None:
            flags = ", ".join(f"--{k}-column" for k, v in given.items() if v is not None)
            raise ConnectorError(str(input), "", f"{flags} applies to csv, jsonl and sql sources, not {fmt}")
        for name, value in zip(names, given.values()):
            if value is not None:
                options[name] = value
    return options


@app.command()
@reports_interrupts("ingest")
def index(
    input: Path = typer.Option(..., "--input", "-i", help="File or folder to ingest."),
    index_dir: Path = typer.Option(..., "--index", help="Index directory to build or update."),
    format: Optional[str] = typer.Option(None, help="jsonl, jsonl.gz, beir, tsv, csv, folder, sqlite or sql (a "
                                                     "database URL); guessed from the path if absent."),
    append: bool = typer.Option(False, help="Upsert into an existing index (by document id) instead of rebuilding it."),
    delete_missing: bool = typer.Option(False, "--delete-missing",
                                        help="With --append: delete documents that are no longer in the source."),
    bm25_only: bool = typer.Option(False, "--bm25-only", help="Skip the dense view (no encoder)."),
    model: Optional[str] = typer.Option(None, help="Exported model directory (default all-MiniLM-L6-v2)."),
    precision: Optional[str] = typer.Option(None, help="Passage encoder: int8 (the default, ~2.2x faster) or "
                                                         "fp32 (exact); dense nDCG@10 within 0.003 on DL19."),
    on_error: str = typer.Option("fail", help="fail: stop at the first bad record; skip: reject and go on."),
    rejects: Optional[Path] = typer.Option(None, help="With --on-error skip: write rejected records here (JSONL)."),
    query: Optional[str] = typer.Option(None, help="SQL query of sqlite/sql sources, e.g. "
                                                    "'SELECT id, body AS text FROM tickets'."),
    id_column: Optional[str] = typer.Option(None, "--id-column",
                                            help="Column (csv, sql) or field (jsonl) holding the document id "
                                                 "(default: id)."),
    text_column: Optional[str] = typer.Option(None, "--text-column",
                                              help="Column (csv, sql) or field (jsonl) holding the text "
                                                   "(default: text)."),
    title_column: Optional[str] = typer.Option(None, "--title-column",
                                               help="Column (csv, sql) or field (jsonl) holding the title "
                                                    "(default: title, when present). Other columns go to metadata."),
    batch_size: int = typer.Option(256, min=1, help="Passages per batch handed to the encoder and Lucene."),
    ram_buffer_mb: float = typer.Option(512, min=1, help="Lucene's indexing buffer; larger = fewer flushes."),
    hnsw_m: int = typer.Option(HNSW_M, min=2, max=512, help="HNSW neighbours per node (Lucene's M)."),
    hnsw_beam: int = typer.Option(HNSW_BEAM, min=1, max=3200, help="HNSW construction beam width."),
    vector_format: Optional[str] = typer.Option(
        None, help="HNSW vectors: float (default), int8 (scalar-quantised) or bbq (1-bit, rescored exactly "
                   "at search time); recorded in the index, appends keep the index's own."),
    chunk: bool = typer.Option(True, "--chunk/--no-chunk",
                               help="Split long documents into passages (default), or keep one passage per "
                                    "document (the encoder truncates; the published BEIR/MS MARCO protocol)."),
    dense_text: Optional[str] = typer.Option(None, "--dense-text",
                                             help="Encode passages from title+text (default, as BEIR/MTEB) or "
                                                  "text; recorded in the index manifest."),
    progress: bool = typer.Option(True, help="Show progress on stderr: a bar on a terminal, else a line "
                                             "every --progress-every seconds."),
    progress_every: float = typer.Option(10.0, min=0.0, help="Seconds between progress lines without a terminal."),
    ray: Optional[str] = typer.Option(
        None, "--ray", is_flag=False, flag_value="local", metavar="[ADDRESS]",
        help="Encode and write shards on a Ray cluster (pip install 'lucerag\\[ray]'): --ray alone starts a "
             "local one, --ray auto joins this machine's cluster, --ray ray://HOST:10001 a remote one."),
    ray_encoders: Optional[int] = typer.Option(None, min=1, help="With --ray: encoder actors (default: one per CPU, "
                                                                 "or per GPU with --ray-gpus)."),
    ray_gpus: float = typer.Option(0.0, min=0, help="With --ray: GPUs per encoder actor (CUDA provider; needs "
                                                    "onnxruntime-gpu on the workers)."),
    ray_shard_passages: int = typer.Option(50_000, min=1, help="With --ray: passages per Lucene shard."),
    ray_retries: int = typer.Option(3, min=0, help="With --ray: retries of a failed encoder call or shard."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
):
    """Ingest documents into a Lucene index with BM25 text and HNSW vectors.

    A new build replaces the index only when complete; --append commits once, at the end.
    Either way a failure or a kill leaves the previous index as it was."""
    from lucerag.connectors import ConnectorError, RejectsFile, read_documents
    from lucerag.errors import RecordError
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
    ray_options = None
    if ray is not None:
        import logging
        import sys

        from lucerag.ingest.distributed import RayOptions

        ray_options = RayOptions(address=None if ray == "local" else ray, encoders=ray_encoders,
                                 encoder_gpus=ray_gpus,
                                 shard_passages=ray_shard_passages, max_retries=ray_retries)
        handler = logging.StreamHandler(sys.stderr)  # progress lines (passages/s, ETA) without a terminal
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger = logging.getLogger("lucerag.ingest.distributed")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    sink = RejectsFile(rejects) if rejects else None
    try:
        options: dict[str, Any] = source_options(input, format, query=query, id_column=id_column,
                                                 text_column=text_column, title_column=title_column)
        stream = read_documents(input, format, on_error="skip" if on_error == "skip" else "fail", rejects=sink,
                                **options)
        report = build_index(stream, index_dir, encoder=encoder, dense=not bm25_only,
                             mode="append" if append else "create", batch_size=batch_size,
                             hnsw_m=hnsw_m, hnsw_beam=hnsw_beam, vector_format=vector_format,
                             stats=stream.stats, delete_missing=delete_missing, on_error=on_error,
                             on_reject=sink, ram_buffer_mb=ram_buffer_mb, progress=progress,
                             total=estimate_total(input, format), chunk=chunk, dense_text=dense_text,
                             progress_every=progress_every, ray=ray_options)
    except ConnectorError as exc:
        # the hint is for a bad record; skipping cannot help a source that can't be read at all (missing,
        # a failing SQL query, a CSV header without the columns)
        hint = ("; --on-error skip rejects bad records (listed with --rejects FILE) and indexes the rest"
                if on_error == "fail" and isinstance(exc, RecordError) else "")
        _fail(f"{exc} (nothing was changed in {index_dir}{hint})")
    except RuntimeError as exc:
        _fail(f"{exc} (nothing was changed in {index_dir})")
    except ImportError as exc:  # RayNotInstalledError
        _fail(str(exc))
    finally:
        if sink is not None:
            sink.close()
    for warning in report.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if json_out:
        print(json.dumps(report.as_dict()))
    else:
        typer.echo(f"indexed {report.indexed} documents as {report.passages} passages into {index_dir} "
                   f"in {report.seconds:.1f}s{_rate(report)}; "
                   f"read {report.read}, skipped {report.skipped}, rejected {report.rejected}"
                   + (f", deleted {report.deleted}" if delete_missing else "")
                   + (f"; rejected records in {rejects}" if rejects and report.rejected else "")
                   + f"; the index holds {report.index_passages} passages")


@app.command("import-vectors")
@reports_interrupts("import")
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
                   f"into {index_dir} in {report.seconds:.1f}s{_rate(report)}")


def _rate(report) -> str:
    """`` (123 passages/s)``, or nothing when no passage was written (never "0 passages/s")."""
    from lucerag.ingest.pipeline import rate_text

    text = rate_text(report.passages, report.seconds)
    return f" ({text})" if text else ""
