"""Loading encoders, exporting the default model into the cache on first use."""

from __future__ import annotations

from pathlib import Path

from .encoder import OnnxEncoder
from .manifest import EXPORT_RECIPE, MANIFEST_FILE, MODEL_FILE, ModelManifest
from .paths import cache_dir, default_model_dir

# What `lucerag index` (and build_index without an encoder) encodes passages with: the smoothed int8
# copy encodes ~2.2x more passages/s than fp32 at dense nDCG@10 within 0.003 on DL19 (docs/encoder.md).
DEFAULT_PASSAGE_PRECISION = "int8"


def is_exported(model_dir: Path) -> bool:
    return (model_dir / MODEL_FILE).is_file() and (model_dir / MANIFEST_FILE).is_file()


def _is_current(model_dir: Path) -> bool:
    return is_exported(model_dir) and ModelManifest.load(model_dir).recipe >= EXPORT_RECIPE


def _make_once(target: Path, make) -> Path:
    """``target`` if it holds a model of the current export recipe, else ``make(overwrite)`` publishes
    one there (atomically; when a concurrent process published it first, that folder is used)."""
    if _is_current(target):
        return target
    try:
        return make(is_exported(target))  # a cached folder of an older recipe is replaced
    except FileExistsError:
        if _is_current(target):
            return target
        raise


def ensure_default_model() -> Path:
    """Export the bundled all-MiniLM-L6-v2 into the cache unless it is there already."""
    from .export import export_model

    target = default_model_dir()
    return _make_once(target, lambda overwrite: export_model(None, target, overwrite=overwrite))


def int8_variant(model_dir: Path) -> Path:
    """An int8 copy of an exported fp32 model folder, quantised once into the cache (no torch)."""
    manifest = ModelManifest.load(model_dir)
    if manifest.precision == "int8":
        return model_dir
    from .export import quantize_model

    target = cache_dir() / "models" / f"{manifest.name}-{manifest.weights_sha256[:12]}-int8"
    return _make_once(target, lambda overwrite: quantize_model(model_dir, target, overwrite=overwrite))


def load_encoder(model: str | Path | None = None, threads: int | None = None, precision: str = "fp32",
                 **kwargs) -> OnnxEncoder:
    """An encoder for an exported model folder, or the default model (exported on first use).

    ``precision="int8"`` loads an int8 copy of the model (quantised into the cache on first use).
    """
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', not {precision!r}")
    if model is None:
        model_dir = ensure_default_model()
    else:
        model_dir = Path(model).expanduser()
        if not is_exported(model_dir):
            raise FileNotFoundError(
                f"{model_dir} is not an exported lucerag model (need {MODEL_FILE} and {MANIFEST_FILE}); "
                "export one with `lucerag models export`"
            )
    if precision == "int8":
        model_dir = int8_variant(model_dir)
    return OnnxEncoder(model_dir, threads=threads, **kwargs)
