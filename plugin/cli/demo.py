"""``lucerag demo`` (index a folder and answer a question) and ``lucerag info`` (CPU, encoder, index facts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from lucerag.cli.app import app, _fail
from lucerag.cli.search import search


@app.command()
def demo(
    corpus: Optional[Path] = typer.Option(None, help="Folder to ingest (default: the small demo corpus "
                                                     "shipped with lucerag, lucerag/data/demo)."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Where to build the demo index."),
    question: str = typer.Option("How does lucerag fuse BM25 and dense scores?", "--question", "-q"),
    k: int = typer.Option(5, min=1, max=100),
):
    """Ingest the embedded default corpus and answer a sample question (no network needed)."""
    from lucerag.resources import DEMO_CORPUS
    from lucerag.models import cache_dir

    corpus = corpus or DEMO_CORPUS
    if not corpus.is_dir():
        _fail(f"no demo corpus at {corpus}: pass --corpus FOLDER")
    index_dir = index_dir or cache_dir() / "indexes" / "demo"
    from lucerag.connectors import read_documents
    from lucerag.ingest.pipeline import build_index

    encoder = _demo_encoder()
    typer.echo(f"indexing {corpus} ...", err=True)
    stream = read_documents(corpus, "folder")
    report = build_index(stream, index_dir, encoder=encoder, progress=False, stats=stream.stats)
    typer.echo(f"indexed {report.indexed} documents ({report.passages} passages) from {corpus} "
               f"into {index_dir} in {report.seconds:.1f}s\n")
    typer.secho(f"Q: {question}\n", bold=True)
    search(question, index_dir=index_dir, config=None, k=k, method="hybrid", filter_=None, where=None, json_out=False)


def _demo_encoder():
    """The default passage encoder, saying so on stderr when the first run has to export it."""
    import time

    from lucerag.models import load_encoder
    from lucerag.models.paths import default_model_dir
    from lucerag.models.store import DEFAULT_PASSAGE_PRECISION

    first = not (default_model_dir() / "manifest.json").is_file()
    if first:
        typer.echo(f"first run: exporting the default encoder (all-MiniLM-L6-v2) to ONNX in {default_model_dir()} "
                   "and checking its int8 copy on this CPU; this happens once and takes about a minute ...",
                   err=True)
    start = time.perf_counter()
    encoder = load_encoder(None, precision=DEFAULT_PASSAGE_PRECISION)
    if first:
        typer.echo(f"encoder ready in {time.perf_counter() - start:.0f}s", err=True)
    return encoder


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
