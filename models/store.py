"""Loading encoders, exporting the default model into the cache on first use."""

from __future__ import annotations

import logging
from pathlib import Path

from .encoder import OnnxEncoder
from .manifest import (  # noqa: F401 - the precision defaults are read from here too
    DEFAULT_PASSAGE_PRECISION, DEFAULT_QUERY_PRECISION, EXPORT_RECIPE, MANIFEST_FILE, MODEL_FILE, ModelManifest)
from .paths import cache_dir, default_model_dir


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


log = logging.getLogger("lucerag.models")
_warned: set[str] = set()


def load_encoder(model: str | Path | None = None, threads: int | None = None, precision: str = "fp32",
                 *, selfcheck: bool = True, **kwargs) -> OnnxEncoder:
    """An encoder for an exported model folder, or the default model (exported on first use).

    ``precision="int8"`` loads an int8 copy of the model (quantised into the cache on first use). Unless
    ``selfcheck`` is False, that copy is first compared with fp32 on this CPU (once; the verdict is
    cached, see :mod:`lucerag.models.selfcheck`); when it misses the bound, the fp32 model is returned
    instead and one warning line names the CPU's int8 kernels and the measured cosine. Check
    ``encoder.manifest.precision`` for what was loaded.

    Raises:
        ValueError: ``precision`` is not "fp32" or "int8".
        FileNotFoundError: ``model`` is not an exported model folder.
        ExportDependencyError: the default model must be exported and its dependencies are missing.
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
        int8_dir = int8_variant(model_dir)
        if selfcheck and int8_dir != model_dir:
            from . import selfcheck as sc

            verdict = sc.check(model_dir, int8_dir)
            if not verdict.passed:
                if str(int8_dir) not in _warned:
                    _warned.add(str(int8_dir))
                    log.warning("%s: using fp32 instead", verdict.line())
                return OnnxEncoder(model_dir, threads=threads, **kwargs)
        model_dir = int8_dir
    return OnnxEncoder(model_dir, threads=threads, **kwargs)
