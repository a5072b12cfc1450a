"""The manifest that travels with an exported model folder (manifest.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
# Bumped when export/quantisation changes what an exported folder contains; cached default models
# from an older recipe are re-exported (see lucerag.models.store).
# 4: 7-bit int8 weights, exact on every x86-64 int8 kernel; 5: the QKV projection in int8 too (Attention
# unfused into MatMul + MultiHeadAttention), hidden states as rows, 11-node per-token groups (faster queries)
EXPORT_RECIPE = 5
# The int8 form `quantize_model(..., activations="symmetric")` writes (not the default): one symmetric
# range per token (zero point 128) and a one-sided range after GELU, 7 nodes per MatMul instead of 11;
# its own number so that its self-check verdicts are cached apart from recipe 5's (docs/encoder.md).
SYMMETRIC_INT8_RECIPE = 6


# What `lucerag index` (and build_index without an encoder) encodes passages with, and what queries are
# encoded with unless `[encoder] precision` says otherwise. int8 (recipes 4 and 5: 7-bit weights, one
# activation range per token) gives the same vector on every x86-64 CPU and in every batch, and is checked against fp32 once
# per CPU before use (lucerag.models.selfcheck); docs/encoder.md has the measurements.
DEFAULT_PASSAGE_PRECISION: Literal["fp32", "int8"] = "int8"
DEFAULT_QUERY_PRECISION: Literal["fp32", "int8"] = "int8"


class ModelManifest(BaseModel):
    """What the runtime needs to know to encode exactly like the source model."""

    name: str
    dim: int = Field(gt=0)
    pooling: Literal["mean", "cls"]
    normalize: bool = True
    max_length: int = Field(gt=1, description="tokens per input, special tokens included")
    query_prefix: str = ""
    passage_prefix: str = ""
    precision: Literal["fp32", "int8"] = "fp32"
    optimized: bool = False
    # True when a text's vector cannot depend on its batchmates (fp32, per-token int8 from recipe 4);
    # None in folders written before the field existed: then only fp32 counts as batch independent.
    batch_independent: bool | None = None
    recipe: int = Field(1, description="export recipe version (EXPORT_RECIPE when written)")
    weights_sha256: str = Field(description="sha256 of the source model.safetensors")
    opset: int
    inputs: list[str] = Field(default_factory=lambda: ["input_ids", "attention_mask"])
    source: str = ""

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> "ModelManifest":
        path = Path(model_dir) / MANIFEST_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no {MANIFEST_FILE} in {model_dir}: not an exported lucerag model folder")
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
