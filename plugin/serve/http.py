"""The HTTP service (FastAPI + uvicorn): ``lucerag serve``.

Endpoints: ``POST /v1/retrieve``, ``POST /v1/context``, ``GET /healthz``, ``GET /metrics``
(Prometheus text), ``GET /openapi.json`` and ``/docs``. Requests are checked by the one request
validator (:mod:`lucerag.search.request`) with the configuration's ``[limits]``; lucerag's own
errors become JSON 4xx/5xx bodies ``{"error": {"type", "message", ...}}`` and anything else a 500
with a request id, never a stack trace (:mod:`lucerag.serve.errors`).

The parts: :mod:`lucerag.serve.app` (settings, routes, ``create_app``), :mod:`lucerag.serve.schemas`
(request and response models), :mod:`lucerag.serve.middleware` (body checks, metrics), and this
module, which runs the app with uvicorn and re-exports the public names.

Searches run on the :class:`~lucerag.rag.api.SearchPool` worker threads (attached to the JVM once),
never on the event loop; the pool's queue is bounded so overload answers 503 quickly.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from lucerag.errors import InputError
from lucerag.rag.api import RAG
from lucerag.serve.app import ServerSettings, create_app
from lucerag.serve.schemas import ContextRequest, ContextResponse, RetrieveRequest, RetrieveResponse

__all__ = ["BackgroundServer", "ContextRequest", "ContextResponse", "RetrieveRequest", "RetrieveResponse",
           "ServerSettings", "create_app", "make_server", "require_key_off_loopback", "serve"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_key_off_loopback(host: str, api_key: str | bool | None, insecure: bool = False) -> None:
    """Refuse to listen beyond loopback without an API key (``api_key``: the key, or whether keys
    are required, e.g. a tenants file), unless ``insecure`` says so explicitly.

    Raises :class:`~lucerag.errors.InputError` naming the host and the two ways out."""
    if not api_key and not insecure and not is_loopback(host):
        raise InputError(f"refusing to serve on {host} without an API key: anyone who can reach it could "
                         "search the index. Set one (LUCERAG_API_KEY, or the variable named by --api-key-env), "
                         "give a tenants file (--tenants), or pass --insecure to serve without one.")


# -- running it ----------------------------------------------------------------------------------

def make_server(app, host: str = "127.0.0.1", port: int = 8000, *, log_level: str = "warning",
                limit_concurrency: int | None = 1000, access_log: bool = False):
    """A ``uvicorn.Server`` for ``app`` (call ``.run()``, or ``.run(sockets=[sock])``)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            limit_concurrency=limit_concurrency, timeout_keep_alive=30,
                            server_header=False, lifespan="on")
    return uvicorn.Server(config)


def bind(host: str, port: int):
    """A TCP socket bound to ``host``:``port`` (IPv6 when ``host`` has a colon), for :func:`serve`.

    Raises :class:`~lucerag.errors.InputError` naming the address when it cannot be bound (in use,
    not an address of this machine, a privileged port)."""
    import socket

    from lucerag.errors import InputError

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def serve(rag: RAG, settings: ServerSettings | None = None, host: str = "127.0.0.1", port: int = 8000,
          log_level: str = "warning", *, insecure: bool = False, sock=None) -> None:
    """Serve ``rag`` until interrupted (uvicorn's event loop on this thread; searches on the pool).
    ``sock``: a socket already bound to ``host``:``port`` (:func:`bind`), else one is bound here.

    Raises :class:`~lucerag.errors.InputError` for a non-loopback ``host`` without an API key
    unless ``insecure`` (:func:`require_key_off_loopback`), or when the address cannot be bound."""
    settings = settings or ServerSettings.from_env()
    require_key_off_loopback(host, settings.secured, insecure)
    sock = sock or bind(host, port)
    app = create_app(rag, settings, close_rag=True)
    make_server(app, host, port, log_level=log_level).run(sockets=[sock])


class BackgroundServer:
    """Runs an app with uvicorn on a background thread, on 127.0.0.1 and a free port (tests, notebooks).

    ``with BackgroundServer(app) as server: httpx.get(server.url + "/healthz")``
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, **options: Any):
        import socket
        import threading

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.server = make_server(app, self.host, self.port, **options)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="lucerag-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> "BackgroundServer":
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the HTTP server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        self.sock.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
