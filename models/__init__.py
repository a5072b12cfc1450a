"""lucerag.models: ONNX export of bi-encoders and the onnxruntime encoder used at query time.

Importing this package never imports torch; :func:`export_model` needs it only for models that the
numpy builder (:mod:`lucerag.models.bert_onnx`, BERT in safetensors) does not handle.
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
