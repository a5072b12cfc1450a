"""The typer application, its command groups, and the helpers every command shares."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, NoReturn, Optional

import typer

# Plain help text (click's formatter) instead of rich panels: rendering help through rich imports rich,
# its Markdown renderer and markdown-it, which was most of `lucerag <command> --help`'s time
# (scripts/help-time.sh measures it; issue 19 asks for < 0.5 s).
_PLAIN = None  # typer's rich_markup_mode: no rich rendering

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=_PLAIN,
                  help="Hybrid BM25 + HNSW retrieval for RAG on Lucene/Anserini.")
models_app = typer.Typer(no_args_is_help=True, rich_markup_mode=_PLAIN,
                         help="Export ONNX encoders (`lucerag info` shows the default model and its int8 self-check).")
app.add_typer(models_app, name="models")
bench_app = typer.Typer(no_args_is_help=True, rich_markup_mode=_PLAIN, help="Benchmarks on this machine (JSON with --json).")
app.add_typer(bench_app, name="bench")


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _precision(value: Optional[str]) -> Optional[Literal["fp32", "int8"]]:
    if value is None:
        return None
    if value == "fp32":
        return "fp32"
    if value == "int8":
        return "int8"
    _fail(f"--precision must be fp32 or int8, not {value!r}")


def _vector_format(value: Optional[str]) -> Optional[str]:
    from lucerag.index.hnsw import VECTOR_FORMATS

    if value is not None and value not in VECTOR_FORMATS:
        _fail(f"--vector-format must be one of {', '.join(VECTOR_FORMATS)}, not {value!r}")
    return value


def _retriever(index: Optional[Path], config: Optional[Path]):
    from lucerag.config import Config
    from lucerag.search.retriever import Retriever

    if config is not None:
        cfg = Config.load(config)
    elif index is not None:
        cfg = Config.for_index(index)
    else:
        _fail("give --index DIR or --config FILE")
    return Retriever(cfg)


def _rag(index: Optional[Path], config: Optional[Path], workers: Optional[int], **options):
    from lucerag.rag.api import RAG

    if workers:
        options["workers"] = workers
    if config is not None:
        return RAG.from_config(config, **options)
    if index is not None:
        return RAG.from_index(index, **options)
    _fail("give --index DIR or --config FILE")


def main() -> None:
    """Entry point that turns expected errors into one clear line (no stack traces)."""
    from lucerag.errors import LuceragError

    try:
        app()
    except (LuceragError, FileNotFoundError, ValueError, ImportError) as exc:
        typer.secho(f"error: {exc}{_install_hint(exc)}", fg=typer.colors.RED, err=True)
        sys.exit(2)


# Top-level module -> the optional extra of pyproject.toml that installs it.
EXTRA_OF = {"fastapi": "server", "uvicorn": "server", "httpx": "server", "prometheus_client": "server",
            "fastapi_offline": "server", "langchain_core": "langchain", "llama_index": "llamaindex",
            "fastmcp": "mcp", "sqlalchemy": "sql", "ir_measures": "eval", "sklearn": "eval", "scipy": "eval",
            "pyarrow": "parquet", "trafilatura": "html", "matplotlib": "bench", "ray": "ray", "torch": "export",
            "transformers": "export", "safetensors": "export"}


def _install_hint(exc: BaseException) -> str:
    """"; install it with: pip install 'lucerag[extra]'" for a missing optional module, else ""."""
    name = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    extra = EXTRA_OF.get((name or "").split(".")[0])
    return f" (install it with: pip install 'lucerag[{extra}]')" if extra else ""
