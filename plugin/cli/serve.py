"""``lucerag serve`` (HTTP) and ``lucerag mcp`` (Model Context Protocol server)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lucerag.cli.app import app, _fail, _rag


@app.command()
def serve(
    index_dir: Optional[Path] = typer.Option(None, "--index", help="A lucerag index directory."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: all; needs an API key "
                                               "or --insecure)."),
    port: int = typer.Option(8000, min=0, max=65535),
    workers: Optional[int] = typer.Option(None, min=1, max=64, help="Search threads (default 4)."),
    max_queue: int = typer.Option(256, min=0, help="Searches allowed to wait for a thread; beyond: 503."),
    max_k: Optional[int] = typer.Option(None, min=1, help="Largest k a request may ask for (default: the "
                                                          "configuration's limits.max_k; only lower)."),
    max_body: Optional[int] = typer.Option(None, min=256, help="Largest request body in bytes, beyond: 413 "
                                                               "(default: limits.max_body_bytes; only lower)."),
    api_key_env: str = typer.Option("LUCERAG_API_KEY", help="Environment variable holding the API key "
                                    "(requests must send it when it is set)."),
    tenants: Optional[Path] = typer.Option(None, help="Multi-tenancy: a TOML file of one API key per tenant "
                                           "(default $LUCERAG_TENANTS); each request searches only its tenant's "
                                           "passages (metadata key `tenant`). Exclusive with the API key."),
    insecure: bool = typer.Option(False, "--insecure", help="Serve beyond loopback without an API key."),
    reload: bool = typer.Option(True, "--reload/--no-reload", help="Search passages added by `lucerag index "
                                "--append`, and a rebuild of the index folder, without a restart (the index "
                                "is reopened in the background once its folder changes)."),
    log_level: str = typer.Option("warning"),
):
    """Serve /v1/retrieve, /v1/context, /healthz, /metrics and /docs over HTTP (FastAPI + uvicorn)."""
    import os

    from lucerag.serve.http import ServerSettings, bind, require_key_off_loopback, serve as run_server

    from lucerag.serve.tenants import Tenants

    key = os.environ.get(api_key_env) or None
    tenants_file = tenants or os.environ.get("LUCERAG_TENANTS") or None
    if key and tenants_file:
        _fail(f"give either an API key (${api_key_env}) or a tenants file, not both: with tenants, every key "
              "belongs to one tenant")
    table = Tenants.load(tenants_file) if tenants_file else None   # ConfigError names the file
    require_key_off_loopback(host, bool(key or table), insecure)   # before the JVM and the index are opened
    sock = bind(host, port)  # a busy port fails here, before the index is opened or "serving" is printed
    settings = ServerSettings(api_key=key, tenants=table, max_k=max_k, max_body_bytes=max_body)
    rag = _rag(index_dir, config, workers, max_queue=max_queue, reload=reload)
    access = (f"{len(table.keys)} tenants by API key (metadata key {table.field!r})" if table
              else f"API key {'required' if key else 'off'}")
    typer.echo(f"lucerag serving {rag.info()['index']} on http://{host}:{port} "
               f"({rag.workers} search threads, {access})", err=True)
    run_server(rag, settings, host=host, port=port, log_level=log_level, insecure=insecure, sock=sock)


@app.command()
def mcp(
    index_dir: Optional[Path] = typer.Option(None, "--index", help="A lucerag index directory."),
    config: Optional[Path] = typer.Option(None, help="A lucerag TOML configuration."),
    transport: str = typer.Option("stdio", help="stdio (for desktop agents) or http."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8001, min=1, max=65535),
):
    """Serve search as MCP tools (search, context) for LLM agents."""
    from lucerag.adapters.mcp import run_mcp

    if transport not in ("stdio", "http"):
        _fail("--transport must be stdio or http")
    run_mcp(_rag(index_dir, config, None, reload=True), transport=transport, host=host, port=port)
