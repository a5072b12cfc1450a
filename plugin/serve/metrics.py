"""Prometheus metrics of the HTTP service, kept by ``prometheus-client``.

One :class:`Registry` per server (so tests and several apps in one process do not share counts)
holds lucerag's counters, gauges and histograms plus the client library's process metrics (CPU
seconds, resident memory, open file descriptors, start time: ``process_*``), platform and Python
GC metrics. :meth:`Registry.render` answers the Prometheus text format, or OpenMetrics when the
scraper asks for it (``Accept: application/openmetrics-text``).

Several worker processes: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable directory
before the server starts (prometheus-client's multiprocess mode); ``/metrics`` then aggregates the
files every process writes there (process metrics are per process and left out in that mode).

Label values are bounded: each labelled metric keeps at most ``max_series`` label sets (default
64); further values are counted under ``"other"``, so a client cannot grow the registry by
sending new routes or methods.
"""

from __future__ import annotations

import os
import threading
from typing import Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram
from prometheus_client import exposition, gc_collector, platform_collector, process_collector

CONTENT_TYPE = exposition.CONTENT_TYPE_LATEST
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"

# Seconds: 1 ms .. 10 s, dense around the 5-100 ms a hybrid search takes.
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                                      0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
MAX_SERIES = 64
OTHER = "other"


class _Bounded:
    """A prometheus-client metric whose label sets are capped at ``max_series``."""

    def __init__(self, metric, labelnames: Sequence[str], max_series: int):
        self._metric, self.labelnames, self.max_series = metric, tuple(labelnames), max_series
        self._seen: set[tuple[str, ...]] = set()
        self._lock = threading.Lock()

    def _child(self, labels: Sequence[str]):
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self._metric._name} takes labels {self.labelnames}, got {tuple(labels)}")
        if not self.labelnames:
            return self._metric
        key = tuple(str(v) for v in labels)
        if key not in self._seen:
            with self._lock:
                if key not in self._seen:
                    if len(self._seen) >= self.max_series:
                        key = (OTHER,) * len(key)
                    self._seen.add(key)
        return self._metric.labels(*key)


class Counter(_Bounded):
    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self._child(labels).inc(amount)

    def value(self, *labels: str) -> float:
        return float(self._child(labels)._value.get())


class Gauge(_Bounded):
    def set(self, value: float, *labels: str) -> None:
        self._child(labels).set(value)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self._child(labels).inc(amount)

    def dec(self, *labels: str, amount: float = 1.0) -> None:
        self._child(labels).dec(amount)


class Histogram(_Bounded):
    def observe(self, value: float, *labels: str) -> None:
        self._child(labels).observe(value)

    def count(self, *labels: str) -> int:
        child = self._child(labels)
        return int(sum(b.get() for b in child._buckets))


class Registry:
    """The metrics of one server: lucerag's, and the process's (``process_*``, ``python_*``)."""

    def __init__(self, max_series: int = MAX_SERIES, process: bool = True):
        self.registry = CollectorRegistry(auto_describe=True)
        self.max_series = max_series
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        if process and self.multiprocess_dir is None:
            process_collector.ProcessCollector(registry=self.registry)
            platform_collector.PlatformCollector(registry=self.registry)
            gc_collector.GCCollector(registry=self.registry)

    @staticmethod
    def _base(name: str, suffix: str) -> str:
        return name[: -len(suffix)] if name.endswith(suffix) else name

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        # prometheus-client appends "_total" to counters itself
        metric = _Counter(self._base(name, "_total"), help, list(labelnames), registry=self.registry)
        return Counter(metric, labelnames, self.max_series)

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Gauge:
        metric = _Gauge(name, help, list(labelnames), registry=self.registry,
                        multiprocess_mode="livesum" if self.multiprocess_dir else "all")
        return Gauge(metric, labelnames, self.max_series)

    def histogram(self, name: str, help: str, labelnames: Sequence[str] = (),
                  buckets: Iterable[float] = LATENCY_BUCKETS) -> Histogram:
        metric = _Histogram(name, help, list(labelnames), registry=self.registry, buckets=tuple(buckets))
        return Histogram(metric, labelnames, self.max_series)

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition for a scrape: (body, content type); OpenMetrics when ``accept`` asks for it."""
        registry = self.registry
        if self.multiprocess_dir is not None:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        if accept and "application/openmetrics-text" in accept:
            from prometheus_client.openmetrics import exposition as openmetrics

            return openmetrics.generate_latest(registry), OPENMETRICS_CONTENT_TYPE
        return exposition.generate_latest(registry), CONTENT_TYPE
