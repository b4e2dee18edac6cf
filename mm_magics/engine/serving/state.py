"""What a serving process holds: its settings, the versions it serves (each loaded and health-checked), and where
versions come from (the workspace, or a bundle in a container image)."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
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
    peers: list[str] = field(default_factory=list)  # the other workers' private URLs (workers.py)
    workers: int = 1


@dataclass
class Served:
    name: str
    number: int
    doc: dict[str, Any]
    model: Any
    schema: Schema
    batcher: MicroBatcher | None = None
    loaded: float = field(default_factory=time.time)
    array_input: bool = False  # predicts from the frame's array (see ArrayInput)

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


#: What scikit-learn says, per call, when a model fitted on a DataFrame is given an array: ArrayInput only does that
#: for a model checked at load to predict the same from an array, so the warning carries no news there.
NAMES_WARNING = "X does not have valid feature names"


class ArrayInput:
    """A served model called with the request frame's float array instead of the frame.

    scikit-learn checks a DataFrame's feature names and converts it on every call: for a 1-row request that is about
    0.5 ms of a 0.7 ms ``predict`` (the serving benchmark's in-process figures). The frame is still built and
    validated against the schema (names, order, types), so the array holds the training columns in order; a model
    only gets here if :func:`accepts_array` saw it predict the same from the array as from the frame."""

    takes_array = True  # rows.model_input hands it the rows' float array

    def __init__(self, model: Any) -> None:
        self.model = model
        self._calls: dict[str, Callable[..., Any]] = {}
        warnings.filterwarnings("ignore", message=NAMES_WARNING, category=UserWarning)

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.model, name)  # a model without predict_proba still says so
        if not callable(fn):
            return fn
        call = self._calls.get(name)
        if call is None:

            def call(X: Any, *args: Any, **kwargs: Any) -> Any:
                values = X.to_numpy(dtype=np.float64, copy=False) if isinstance(X, pd.DataFrame) else X
                return fn(values, *args, **kwargs)

            self._calls[name] = call
        return call


def accepts_array(model: Any, schema: Schema) -> bool:
    """Whether ``model`` predicts the same from the frame's array as from the frame: never for a non-numeric
    schema, nor for a model that selects columns by name (it raises on an array), nor when the answers differ."""
    if not schema.columns or not all(schema.numeric(c) for c in schema.columns):
        return False
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(4, len(schema.columns))), columns=schema.columns)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=NAMES_WARNING, category=UserWarning)
            from_array = np.asarray(model.predict(frame.to_numpy()))
        from_frame = np.asarray(model.predict(frame))
    except Exception:
        return False
    return from_array.shape == from_frame.shape and bool(np.all(from_array == from_frame))


class ServingState:
    def __init__(self, source: ModelSource, settings: Settings) -> None:
        self.source = source
        self.settings = settings
        self.models: dict[str, Served] = {}
        self.releases: dict[str, Any] = {}  # name -> releases.Release: a canary or shadow beside the champion
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
        array_input = accepts_array(model, schema)
        if array_input:
            model = ArrayInput(model)
        batcher = (
            MicroBatcher(model, max_batch=self.settings.max_batch, max_delay=self.settings.max_delay_ms / 1000)
            if self.settings.batch
            else None
        )
        name, number = identity(doc)
        if self.settings.metrics is not None:
            self.settings.metrics.loaded(name, number, time.perf_counter() - started)
        return Served(name, number, doc, model, schema, batcher, array_input=array_input)

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
