"""What a serving process holds: its settings, the versions it serves (each loaded and health-checked), and where
versions come from (the workspace, or a bundle in a container image)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd

from .batching import MicroBatcher
from .protocol import Schema


class ModelSource(Protocol):
    """Where versions come from: the workspace (local runner) or a bundle directory (Docker)."""

    def load(self, spec: str) -> tuple[dict[str, Any], Any]: ...

    def admit(self, spec: str, reason: str, force: bool) -> None:
        """Raise unless ``spec`` may be swapped in (the deploy gates a switch checks)."""
        ...


@dataclass
class Settings:
    batch: bool = False
    max_batch: int = 64
    max_delay_ms: float = 0.0
    max_body_bytes: int = 8 * 1024 * 1024
    max_rows: int = 10_000
    token: str | None = None  # bearer token for every non-health endpoint (required off loopback)
    admin_token: str | None = None  # for /mm/v1/load; None disables model swaps over HTTP
    on_request: Callable[[dict[str, Any]], None] | None = None  # monitoring hook, called off the hot path
    on_feedback: Callable[[str, list[str], list[Any]], None] | None = None
    on_flush: Callable[[], Any] | None = None  # make recorded metrics durable now (%mm_monitor asks first)
    metrics: Any = None  # monitoring.prometheus.PrometheusMetrics: GET /metrics, fed by the recorder thread
    # Runs after the last response, before the process exits. It must be a lifespan hook: uvicorn re-raises the
    # SIGTERM it caught once it has shut down, so code after ``server.run()`` never runs on a normal stop.
    on_shutdown: Callable[[], Any] | None = None


@dataclass
class Served:
    name: str
    number: int
    doc: dict[str, Any]
    model: Any
    schema: Schema
    batcher: MicroBatcher | None = None
    loaded: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return f"{self.name}@v{self.number}"

    @property
    def profile(self) -> dict[str, Any]:
        """The training data's per-feature reference profile (for drift)."""
        return (self.doc.get("data") or {}).get("profile") or {}


def health_check(model: Any, schema: Schema) -> None:
    """Predict on one neutral row before a version takes traffic: a model that cannot predict never goes live."""
    row = pd.DataFrame([[0.0] * (schema.n_features or 1)], columns=schema.columns or None)
    for col in schema.columns:
        if not schema.numeric(col):
            row[col] = row[col].astype(object)
    model.predict(row)


class ServingState:
    def __init__(self, source: ModelSource, settings: Settings) -> None:
        self.source = source
        self.settings = settings
        self.models: dict[str, Served] = {}
        self.started = time.time()
        self.requests = 0
        self.errors = 0
        self.feedback = 0
        self._swap_lock = asyncio.Lock()

    def load(self, spec: str, admit: tuple[str, bool] | None = None) -> Served:
        """Load and health-check ``spec``; ``admit=(reason, force)`` first checks the lifecycle's deploy gates."""
        if admit is not None:
            self.source.admit(spec, *admit)
        started = time.perf_counter()
        doc, model = self.source.load(spec)
        schema = Schema.from_version(doc.get("schema") or {})
        health_check(model, schema)
        batcher = (
            MicroBatcher(model, max_batch=self.settings.max_batch, max_delay=self.settings.max_delay_ms / 1000)
            if self.settings.batch
            else None
        )
        name, number = identity(doc)
        if self.settings.metrics is not None:
            self.settings.metrics.loaded(name, number, time.perf_counter() - started)
        return Served(name, number, doc, model, schema, batcher)

    def model_for_path(self, path: str) -> str | None:
        """The served model a request path addresses (for recording a request that failed before routing)."""
        if path.startswith("/v2/models/"):
            name = path.split("/")[3]
            return name if name in self.models else None
        if path == "/invocations" and len(self.models) == 1:
            return next(iter(self.models))
        return None

    def install(self, served: Served) -> Served | None:
        old = self.models.get(served.name)
        self.models[served.name] = served  # one assignment: requests see the old or the new, never neither
        return old


def identity(doc: dict[str, Any]) -> tuple[str, int]:
    """(name, number) of a version document, as stored in git (model/version) or as a record (name/number)."""
    return str(doc.get("model") or doc["name"]), int(doc.get("version") or doc["number"])
