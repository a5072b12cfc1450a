"""lucerag.models: ONNX export of bi-encoders and the onnxruntime encoder used at query time.

Importing this package never imports torch; only :func:`export_model` needs it.
"""

from .encoder import OnnxEncoder
from .export import ExportDependencyError, export_model, quantize_model
from .manifest import ModelManifest
from .paths import cache_dir, default_model_dir
from .store import load_encoder

__all__ = [
    "OnnxEncoder",
    "ModelManifest",
    "ExportDependencyError",
    "export_model",
    "quantize_model",
    "load_encoder",
    "default_model_dir",
    "cache_dir",
]
