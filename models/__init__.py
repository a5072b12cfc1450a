"""lucerag.models: ONNX export of bi-encoders and the onnxruntime encoder used at query time.

Importing this package imports nothing heavy: onnxruntime, onnx and (only for :func:`export_model`'s
PyTorch route, used for architectures the numpy builder does not cover) torch are imported by the
submodules that need them, when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "OnnxEncoder": "encoder",
    "ModelManifest": "manifest",
    "ExportDependencyError": "export",
    "export_model": "export",
    "quantize_model": "export",
    "load_encoder": "store",
    "default_model_dir": "paths",
    "cache_dir": "paths",
}

__all__ = ["OnnxEncoder", "ExportDependencyError", "export_model", "quantize_model", "ModelManifest", "cache_dir",
           "default_model_dir", "load_encoder"]

if TYPE_CHECKING:  # pragma: no cover
    from .encoder import OnnxEncoder
    from .export import ExportDependencyError, export_model, quantize_model
    from .manifest import ModelManifest
    from .paths import cache_dir, default_model_dir
    from .store import load_encoder


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
