"""``lucerag models``: export ONNX encoders."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional, cast

import typer

from lucerag.cli.app import _fail, models_app

if TYPE_CHECKING:  # lucerag.models.export imports onnx: not at --help time
    from lucerag.models.export import Backend


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

    if pooling not in (None, "mean", "cls"):
        _fail(f"--pooling must be mean or cls, not {pooling!r}")
    if backend not in ("auto", "numpy", "torch"):
        _fail(f"--backend must be auto, numpy or torch, not {backend!r}")
    out = out or default_model_dir()
    path = export_model(source, out, overwrite=overwrite, optimize=optimize,
                        backend=cast("Backend", backend), pooling=cast(Literal["mean", "cls"] | None, pooling),
                        query_prefix=query_prefix or "", passage_prefix=passage_prefix or "")
    typer.echo(f"exported {path}")
    if int8:
        path = quantize_model(path, Path(str(out) + "-int8"), overwrite=overwrite)
        typer.echo(f"quantised {path}")
