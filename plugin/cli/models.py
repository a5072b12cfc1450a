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
    int8_activations: str = typer.Option("asymmetric", help="Per-token activation ranges of the int8 copy: "
                                         "asymmetric (recipe 5, the default) or symmetric (recipe 6: ~5% faster "
                                         "queries on AVX2, probe min cosine 0.993 instead of 0.994)."),
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
    if int8_activations not in ("asymmetric", "symmetric"):
        _fail(f"--int8-activations must be asymmetric or symmetric, not {int8_activations!r}")
    out = out or default_model_dir()
    path = export_model(source, out, overwrite=overwrite, optimize=optimize,
                        backend=cast("Backend", backend), pooling=cast(Literal["mean", "cls"] | None, pooling),
                        query_prefix=query_prefix or "", passage_prefix=passage_prefix or "")
    typer.echo(f"exported {path}")
    if int8:
        path = quantize_model(path, Path(str(out) + "-int8"), overwrite=overwrite,
                              activations=cast(Literal["asymmetric", "symmetric"], int8_activations))
        typer.echo(f"quantised {path}")
