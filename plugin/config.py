"""lucerag's configuration: one TOML file, validated with pydantic.

Unknown keys and bad values are rejected with the key's dotted name.  Relative paths are
resolved against the directory of the configuration file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lucerag.errors import ConfigError
from lucerag.models.manifest import DEFAULT_QUERY_PRECISION


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IndexConfig(_Section):
    """Where the index lives: one lucerag index (``path``) or two existing Anserini indexes."""

    path: Path | None = None
    bm25_path: Path | None = None
    dense_path: Path | None = None
    vector_field: str = "vector"

    @model_validator(mode="after")
    def _one_layout(self) -> "IndexConfig":
        if self.path is None and self.bm25_path is None and self.dense_path is None:
            raise ValueError("set index.path (one lucerag index) or index.bm25_path / index.dense_path")
        if self.path is not None and (self.bm25_path or self.dense_path):
            raise ValueError("set either index.path or index.bm25_path/index.dense_path, not both")
        return self

    @property
    def bm25(self) -> Path | None:
        return self.path or self.bm25_path

    @property
    def dense(self) -> Path | None:
        return self.path or self.dense_path


class EncoderConfig(_Section):
    model: str = "default"   # "default" (all-MiniLM-L6-v2) or an exported model directory
    threads: int = Field(1, ge=1, le=256)
    # The query encoder: "int8" (default, lucerag.models.store.DEFAULT_QUERY_PRECISION) is a smoothed
    # int8 copy checked against fp32 on each CPU (docs/encoder.md); passages: `lucerag index --precision`.
    precision: Literal["fp32", "int8"] = DEFAULT_QUERY_PRECISION
    # Query vectors kept for repeated queries (least recently used dropped first; 0: no cache).
    # 1.5 KB each for 384 dimensions. `lucerag bench peers` asks distinct queries, so it never hits.
    cache: int = Field(1024, ge=0, le=1_000_000)


class BM25Config(_Section):
    k1: float = Field(0.9, gt=0)
    b: float = Field(0.4, ge=0, le=1)


class DenseConfig(_Section):
    # HNSW beam width at query time; unset: 400 below 100K passages, 800 from there, and at least twice the
    # number of hits asked for (searchers.auto_ef_search).
    ef_search: int | None = Field(None, ge=1, le=10_000)
    # Rescore the HNSW candidates exactly from the stored float vectors; unset: on for indexes built
    # with --vector-format bbq (1-bit vectors), off otherwise (searchers.auto_rescore).
    rescore: bool | None = None
    # Search the dense view by an exact scan of every stored vector (an int8 scan plus float rescoring,
    # lucerag.search.scan) instead of the HNSW graph; unset: on below 100K passages, where the scan is
    # faster than the graph (searchers.auto_exact).
    exact: bool | None = None


class FusionConfig(_Section):
    # anchored: cosine + bm25_weight * zscore(BM25) (lucerag.search.fusion.anchored): it beat convex
    # min-max fitted on the other collection on both held-out collections (docs/fusion-and-filter.md);
    # adaptive: convex min-max with the dense weight predicted per query (lucerag.search.adaptive)
    method: Literal["anchored", "convex", "adaptive", "rrf"] = "anchored"
    # 0.05: the anchored BM25 weight best on the DL19 slice and SciFact-2k together (int8 recipe 5;
    # 0.06 under recipe 4)
    bm25_weight: float = Field(0.05, ge=0, le=10)
    # 0.75: the min-max weight best on the DL19 slice and SciFact together (docs/fusion-and-filter.md)
    dense_weight: float = Field(0.75, ge=0, le=1)
    norm: Literal["minmax", "zscore", "rank"] = "minmax"
    rrf_k: int = Field(60, ge=1)
    depth: int = Field(100, ge=1, le=10_000)  # candidates taken from each view


# The one hard bound on k, the passages one query may ask for: neither search.k nor limits.max_k may
# exceed it. Every surface (Python API, CLI, HTTP and its OpenAPI schema, MCP) reads limits.max_k.
MAX_K = 1000


class SearchConfig(_Section):
    k: int = Field(10, ge=1, le=MAX_K)


class LimitsConfig(_Section):
    """Bounds on one query request, the same on every surface (lucerag.search.request checks them)."""

    max_k: int = Field(MAX_K, ge=1, le=MAX_K)                       # passages per query
    max_query_chars: int = Field(4096, ge=1, le=1_000_000)          # query text, in characters
    max_context_tokens: int = Field(16_000, ge=64, le=1_000_000)    # context budget (max_tokens)
    max_body_bytes: int = Field(16_384, ge=256, le=10_000_000)      # HTTP request body, in bytes


class FilterConfig(_Section):
    """The relevance filter: whether hybrid searches apply it when the caller does not say
    (``enabled``; decided in one place, ``Retriever.filter_applies``) and with which calibrator."""

    enabled: bool = True
    calibrator: str = "auto"   # "auto": <index>/lucerag-calibrator.json, else the shipped default
    threshold: float | None = Field(None, ge=0, le=1)  # override the calibrator's threshold


class RerankConfig(_Section):
    """The optional re-ranking stage between fusion and the relevance filter (lucerag.search.rerank)."""

    model: str | None = None   # a directory with model.onnx + tokenizer.json (a cross-encoder); None: off
    depth: int = Field(20, ge=1, le=1000)      # fused candidates re-ranked per query
    max_length: int = Field(512, ge=8, le=8192)
    batch_size: int = Field(32, ge=1, le=1024)


class JvmConfig(_Section):
    heap: str = Field("2g", pattern=r"^\d+[kKmMgG]$")


class Config(_Section):
    """The whole configuration; every section has defaults except ``index``."""

    index: IndexConfig
    encoder: EncoderConfig = EncoderConfig()
    bm25: BM25Config = BM25Config()
    dense: DenseConfig = DenseConfig()
    fusion: FusionConfig = FusionConfig()
    search: SearchConfig = SearchConfig()
    limits: LimitsConfig = LimitsConfig()
    filter: FilterConfig = FilterConfig()
    rerank: RerankConfig = RerankConfig()
    jvm: JvmConfig = JvmConfig()
    # Sections of the RAG layer, validated by lucerag.rag.api.load_config (LLMConfig, ContextBuilder).
    llm: dict = Field(default_factory=dict)
    context: dict = Field(default_factory=dict)

    @model_validator(mode="after")
    def _k_within_limits(self) -> "Config":
        if self.search.k > self.limits.max_k:
            if "k" not in self.search.model_fields_set:  # only the limit was set: the default k follows it
                self.search.k = self.limits.max_k
            else:
                raise ValueError(f"search.k ({self.search.k}) is above limits.max_k ({self.limits.max_k})")
        return self

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        """Read and validate a TOML file; errors name the file and the offending key."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{path}: {format_errors(exc)}") from None
        return config.resolve_paths(path.parent)

    @classmethod
    def for_index(cls, path: str | Path, **sections) -> "Config":
        """A default configuration for one lucerag index directory."""
        return cls.model_validate({"index": {"path": Path(path)}, **sections})

    def resolve_paths(self, base: Path) -> "Config":
        idx = self.index
        for name in ("path", "bm25_path", "dense_path"):
            value = getattr(idx, name)
            if value is not None and not value.is_absolute():
                setattr(idx, name, (base / value).resolve())
        cal = self.filter.calibrator
        if cal != "auto" and not Path(cal).is_absolute():
            self.filter.calibrator = str((base / cal).resolve())
        rerank = self.rerank.model
        if rerank is not None and not Path(rerank).is_absolute() and (base / rerank).exists():
            self.rerank.model = str((base / rerank).resolve())
        model = self.encoder.model
        if model != "default" and not Path(model).is_absolute() and (base / model).exists():
            self.encoder.model = str((base / model).resolve())
        return self

    def to_toml(self) -> str:
        """The configuration as TOML text (simple writer: the schema is two levels deep)."""
        lines: list[str] = []
        for section, values in self.model_dump(exclude_none=True).items():
            if not values and section in ("llm", "context"):
                continue
            lines.append(f"[{section}]")
            for key, value in values.items():
                lines.append(f"{key} = {_toml_value(value)}")
            lines.append("")
        return "\n".join(lines)


def format_errors(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"])) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{key}'")
        else:
            parts.append(f"'{key}': {err['msg']}")
    return "; ".join(parts)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
