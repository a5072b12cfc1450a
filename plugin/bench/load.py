"""A bounded load test of the HTTP service, on loopback only.

``run_load(url, queries, clients=50, duration=30)`` keeps ``clients`` concurrent HTTP clients
(asyncio + httpx, one connection each) posting ``/v1/retrieve`` for ``duration`` seconds, and reports
counts, errors by kind and latency percentiles. Bounds: at most ``MAX_CLIENTS`` clients, ``MAX_DURATION``
seconds and ``max_requests`` requests; the target must be a loopback address.

``lucerag bench load --index DIR`` (or ``python -m lucerag.bench.load``) starts ``lucerag serve`` in a
child process on 127.0.0.1 and a free port, waits for ``/healthz``, runs the load, scrapes ``/metrics``
and stops the server. Running the clients in another process than the server keeps the client's
Python work off the server's GIL (on a small machine both still share the CPU cores).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence
from urllib.parse import urlparse

import numpy as np
from pydantic import BaseModel

from lucerag.errors import InputError
from lucerag.resources import DEMO_QUERIES

MAX_CLIENTS = 1000
MAX_DURATION = 600.0


class LoadReport(BaseModel):
    url: str
    clients: int
    duration_s: float
    requests: int
    ok: int
    errors: int
    errors_by_kind: dict[str, int]
    throughput_rps: float
    latency_ms: dict[str, float]       # p50, p90, p99, max, mean over successful requests
    empty_results: int                 # 200 answers with no passage
    k: int
    method: str
    load_before: tuple[float, float, float] | None = None   # os.getloadavg() before the run
    server_metrics: dict[str, float] | None = None

    def summary(self) -> str:
        lat = self.latency_ms
        return (f"{self.clients} clients x {self.duration_s:.1f}s -> {self.requests} requests, {self.errors} errors, "
                f"{self.throughput_rps:.1f} req/s; latency ms p50 {lat.get('p50', 0):.1f}, p90 {lat.get('p90', 0):.1f}, "
                f"p99 {lat.get('p99', 0):.1f}, max {lat.get('max', 0):.1f}")


def check_loopback(url: str) -> None:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the load test only targets loopback addresses (127.0.0.1, ::1, localhost), not {host!r}")


async def _client(client, url: str, queries: Sequence[str], offset: int, deadline: float, body_extra: dict,
                  budget: list[int], latencies: list[float], errors: Counter, empties: list[int]) -> None:
    i = offset
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        body = {"query": queries[i % len(queries)], **body_extra}
        i += 1
        start = time.perf_counter()
        try:
            r = await client.post(url, json=body)
        except Exception as exc:  # noqa: BLE001 - counted by kind
            errors[type(exc).__name__] += 1
            continue
        took = time.perf_counter() - start
        if r.status_code != 200:
            errors[f"HTTP {r.status_code}"] += 1
            continue
        try:
            passages = r.json()["passages"]
        except Exception:  # noqa: BLE001
            errors["bad body"] += 1
            continue
        latencies.append(took)
        if not passages:
            empties[0] += 1


async def _run(url: str, queries: Sequence[str], clients: int, duration: float, k: int, method: str,
               api_key: str | None, max_requests: int, timeout: float,
               filter: bool | None = None) -> tuple[list[float], Counter, int, float, int]:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    errors: Counter = Counter()
    empties = [0]
    budget = [max_requests]
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        deadline = start + duration
        step = max(1, len(queries) // clients)
        await asyncio.gather(*(_client(client, url.rstrip("/") + "/v1/retrieve", queries, c * step, deadline,
                                       {"k": k, "method": method,
                                        **({} if filter is None else {"filter": filter})}, budget, latencies, errors, empties)
                               for c in range(clients)))
        elapsed = time.perf_counter() - start
    return latencies, errors, empties[0], elapsed, max_requests - budget[0]


def run_load(url: str, queries: Sequence[str], clients: int = 50, duration: float = 30.0, *, k: int = 10,
             method: str = "hybrid", api_key: str | None = None, max_requests: int = 1_000_000,
             timeout: float = 30.0, filter: bool | None = None) -> LoadReport:
    """Load ``url`` (a lucerag server on loopback) and report; see the module docstring."""
    check_loopback(url)
    if not queries:
        raise ValueError("no queries")
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be in 1..{MAX_CLIENTS}")
    if not 0 < duration <= MAX_DURATION:
        raise ValueError(f"duration must be in (0, {MAX_DURATION:g}] seconds")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    lat, errors, empties, elapsed, sent = asyncio.run(
        _run(url, list(queries), clients, duration, k, method, api_key, max_requests, timeout, filter))
    ms = np.asarray(lat) * 1000
    latency = ({"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)),
                "p99": float(np.percentile(ms, 99)), "max": float(ms.max()), "mean": float(ms.mean())}
               if len(ms) else {})
    n_err = sum(errors.values())
    return LoadReport(url=url, clients=clients, duration_s=round(elapsed, 3), requests=len(lat) + n_err, ok=len(lat),
                      errors=n_err, errors_by_kind=dict(errors), throughput_rps=round(len(lat) / elapsed, 2),
                      latency_ms={k_: round(v, 2) for k_, v in latency.items()}, empty_results=empties, k=k,
                      method=method, load_before=tuple(round(x, 2) for x in load_before) if load_before else None)


def scrape(url: str, api_key: str | None = None) -> dict[str, float]:
    """A few totals from the server's /metrics (request counts, search time sum and count)."""
    import httpx

    text = httpx.get(url.rstrip("/") + "/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith(("lucerag_http_requests_total", "lucerag_search_duration_seconds_sum",
                            "lucerag_search_duration_seconds_count", "lucerag_search_rejected_total")):
            out[name] = float(value)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], *, timeout: float = 180.0, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start ``lucerag serve ARGS --host 127.0.0.1 --port <free>`` in a child process; wait for /healthz."""
    import httpx

    port = _free_port()
    cmd = [sys.executable, "-m", "lucerag", "serve", *args, "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            stderr = proc.stderr.read() if proc.stderr is not None else ""
            raise RuntimeError(f"lucerag serve exited with {proc.returncode}: {stderr[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise RuntimeError(f"lucerag serve did not answer /healthz within {timeout:g}s")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def read_queries(path: Path | None, limit: int | None = None) -> list[str]:
    """Query texts: a BEIR queries.jsonl / JSONL with "text", TREC topics or a TSV (id<TAB>text), or
    plain lines; the first ``limit``. ``path`` None: the questions shipped with the demo corpus.
    Raises InputError when the file holds no query."""
    path = Path(path) if path is not None else DEMO_QUERIES
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            out.append(json.loads(line)["text"])
        elif "\t" in line:
            out.append(line.split("\t", 1)[1])
        else:
            out.append(line)
    if not out:
        raise InputError(f"no queries in {path}")
    return out[:limit] if limit else out


def bench(server_args: list[str], queries: list[str], clients: int, duration: float, *, k: int = 10,
          method: str = "hybrid", url: str | None = None, api_key: str | None = None,
          max_requests: int = 1_000_000, warmup: float = 3.0, filter: bool | None = None) -> LoadReport:
    """Start a server (unless ``url`` is given), warm it up, load it, scrape its metrics, stop it."""
    proc = None
    if url is None:
        env = {"LUCERAG_API_KEY": api_key} if api_key else None
        proc, url = start_server(server_args, env=env)
    try:
        check_loopback(url)
        if warmup > 0:
            run_load(url, queries, min(clients, 8), warmup, k=k, method=method, api_key=api_key, filter=filter)
        before = scrape(url)
        report = run_load(url, queries, clients, duration, k=k, method=method, api_key=api_key,
                          max_requests=max_requests, filter=filter)
        after = scrape(url)
        report.server_metrics = {name: round(v - before.get(name, 0.0), 6) for name, v in after.items()
                                 if v - before.get(name, 0.0)}
        return report
    finally:
        if proc is not None:
            stop_server(proc)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lucerag.bench.load", description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path)
    ap.add_argument("--config", type=Path)
    ap.add_argument("--url", help="an already running server on loopback (else one is started)")
    ap.add_argument("--queries", type=Path, help="queries file (default: the mini test queries)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--method", default="hybrid")
    ap.add_argument("--workers", type=int, default=None, help="server search threads")
    ap.add_argument("--max-requests", type=int, default=1_000_000)
    ap.add_argument("--filter", choices=["on", "off"], default=None, help="relevance filter (default: server's)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    server_args = []
    if a.url is None:
        if a.index:
            server_args += ["--index", str(a.index)]
        elif a.config:
            server_args += ["--config", str(a.config)]
        else:
            ap.error("give --index, --config or --url")
        if a.workers:
            server_args += ["--workers", str(a.workers)]
    report = bench(server_args, read_queries(a.queries), a.clients, a.duration, k=a.k, method=a.method, url=a.url,
                   max_requests=a.max_requests, filter=None if a.filter is None else a.filter == "on")
    print(report.model_dump_json(indent=2) if a.json else report.summary())
    return 0 if report.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
