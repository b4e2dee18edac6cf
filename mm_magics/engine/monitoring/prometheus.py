"""Prometheus metrics of a serving process, at ``GET /metrics`` (prometheus-client's text exposition).

What KServe, MLServer, BentoML and Triton expose, so an existing Prometheus and Grafana can watch our servers:
requests by model, version and status; server time per request by part (the whole, queue, processing, overhead)
as histograms; micro-batch sizes; rows; how long the served version took to load.

The request path pays nothing: the recorder thread, which already receives every request, hands each batch it
writes (about a second of requests) to :meth:`PrometheusMetrics.observe`, so the figures trail the traffic by at
most the recorder's interval. ``observe`` counts a whole batch with numpy (bucket counts by ``searchsorted``), about
a microsecond a request: prometheus-client's per-value ``Histogram.observe`` cost 18 µs a request here, a third of
the recorder's budget. The numbers are exposed through a custom collector, prometheus-client's public API for
metrics kept elsewhere.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

#: Seconds: a sklearn model answers in a millisecond or two; a heavy one, or a queue, in tens to hundreds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PARTS = ("server", "queue", "processing", "overhead")


class _Histogram:
    """Cumulative-ready bucket counts and the sum of one labelled histogram."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = np.asarray(bounds, dtype=float)
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)  # the last one is +Inf
        self.total = 0.0

    def add(self, values: np.ndarray) -> None:
        # a value equal to a bound belongs to that bucket (Prometheus buckets are "less than or equal")
        self.counts += np.bincount(np.searchsorted(self.bounds, values, side="left"), minlength=len(self.counts))
        self.total += float(values.sum())

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = np.cumsum(self.counts)
        labels = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        return [(le, float(n)) for le, n in zip(labels, cumulative, strict=True)]


class PrometheusMetrics:
    """One serving process's metrics, in their own registry (never the process-global one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], float] = defaultdict(float)
        self._rows: dict[tuple[str, str], float] = defaultdict(float)
        self._latency: dict[tuple[str, str, str], _Histogram] = {}
        self._batch: dict[tuple[str, str], _Histogram] = {}
        self._load: dict[tuple[str, str], float] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe(self, rows: Iterable[dict[str, Any]]) -> None:
        """Count one recorder batch of request rows (``status``, ``total_s``, ``queue_s``, ``proc_s``, ...)."""
        groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        with self._lock:
            for row in rows:
                key = (str(row.get("model") or ""), str(row.get("version") or ""))
                self._requests[(*key, str(row.get("status")))] += 1
                if row.get("status") == 200:
                    groups[key].append(row)
            for key, ok in groups.items():
                total, queue, proc = (np.fromiter((r.get(k) or 0.0 for r in ok), float, len(ok)) for k in
                                      ("total_s", "queue_s", "proc_s"))  # fmt: skip
                for part, values in zip(
                    PARTS, (total, queue, proc, np.maximum(total - queue - proc, 0.0)), strict=True
                ):
                    hist = self._latency.get((*key, part))
                    if hist is None:
                        hist = self._latency[(*key, part)] = _Histogram(LATENCY_BUCKETS)
                    hist.add(values)
                sizes = np.fromiter((r.get("batch_size") or 1 for r in ok), float, len(ok))
                batch = self._batch.get(key)
                if batch is None:
                    batch = self._batch[key] = _Histogram(BATCH_BUCKETS)
                batch.add(sizes)
                self._rows[key] += float(sum(r.get("rows") or 0 for r in ok))

    def loaded(self, model: str, version: int, seconds: float) -> None:
        with self._lock:
            self._load[(model, str(version))] = seconds

    def collect(self) -> Iterator[Metric]:
        """prometheus-client's collector protocol: the families, as they stand."""
        with self._lock:
            requests = CounterMetricFamily(
                "mm_requests", "Inference requests answered, by HTTP status", labels=["model", "version", "status"]
            )
            for labels, n in self._requests.items():
                requests.add_metric(list(labels), n)
            latency = HistogramMetricFamily(
                "mm_request_duration_seconds",
                "Server time per successful request, by part: server (all of it), queue, processing, overhead",
                labels=["model", "version", "part"],
            )
            for labels, hist in self._latency.items():
                latency.add_metric(list(labels), hist.buckets(), hist.total)
            batch = HistogramMetricFamily(
                "mm_batch_size", "Requests in the micro-batch a request joined", labels=["model", "version"]
            )
            for labels, hist in self._batch.items():
                batch.add_metric(list(labels), hist.buckets(), hist.total)
            rows = CounterMetricFamily("mm_rows", "Rows predicted", labels=["model", "version"])
            for labels, n in self._rows.items():
                rows.add_metric(list(labels), n)
            load = GaugeMetricFamily(
                "mm_model_load_seconds",
                "Seconds the served version took to load and health-check",
                labels=["model", "version"],
            )
            for labels, seconds in self._load.items():
                load.add_metric(list(labels), seconds)
        yield from (requests, latency, batch, rows, load)

    def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus scrapes, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
