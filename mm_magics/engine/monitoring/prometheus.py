"""Prometheus metrics of a serving process, at ``GET /metrics`` (prometheus-client's text exposition).

What KServe, MLServer, BentoML and Triton expose, so an existing Prometheus and Grafana can watch our servers:
requests by model, version and status; server time per request by part (the whole, queue, processing, overhead)
as histograms; micro-batch sizes; how long the served version took to load. The request path pays nothing: the
recorder thread, which already receives every request once a second, feeds the batch to :meth:`observe`, so the
counters trail the traffic by at most the recorder's interval (one second).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Seconds: a sklearn model answers in a millisecond or two; a heavy one, or a queue, in tens to hundreds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class PrometheusMetrics:
    """One serving process's metrics, in their own registry (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model", "version"]
        self.requests = Counter(
            "mm_requests", "Inference requests answered, by HTTP status", [*labels, "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mm_request_duration_seconds",
            "Server time per successful request, by part: server (all of it), queue, processing, overhead",
            [*labels, "part"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch = Histogram(
            "mm_batch_size", "Requests in the micro-batch a request joined", labels, buckets=BATCH_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.rows = Counter("mm_rows", "Rows predicted", labels, registry=self.registry)
        self.load_seconds = Gauge(
            "mm_model_load_seconds", "Seconds the served version took to load and health-check", labels,
            registry=self.registry,
        )  # fmt: skip

    def observe(self, rows: Iterable[dict[str, Any]]) -> None:
        """Count one recorder batch of request rows (``status``, ``total_s``, ``queue_s``, ``proc_s``, ...)."""
        for row in rows:
            model, version = str(row.get("model") or ""), str(row.get("version") or "")
            self.requests.labels(model, version, str(row.get("status"))).inc()
            if row.get("status") != 200:
                continue
            total, queue, proc = (float(row.get(k) or 0.0) for k in ("total_s", "queue_s", "proc_s"))
            self.latency.labels(model, version, "server").observe(total)
            self.latency.labels(model, version, "queue").observe(queue)
            self.latency.labels(model, version, "processing").observe(proc)
            self.latency.labels(model, version, "overhead").observe(max(total - queue - proc, 0.0))
            if row.get("batch_size"):
                self.batch.labels(model, version).observe(float(row["batch_size"]))
            if row.get("rows"):
                self.rows.labels(model, version).inc(float(row["rows"]))

    def loaded(self, model: str, version: int, seconds: float) -> None:
        self.load_seconds.labels(model, str(version)).set(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus scrapes, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
