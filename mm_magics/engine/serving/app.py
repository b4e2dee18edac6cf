"""The serving app: Starlette over the engine, speaking Open Inference Protocol V2 and MLflow's scoring protocol.

Design points, each from a complaint about other servers:
* every response carries ``X-Request-ID`` (the key for ground-truth feedback) and ``Server-Timing`` with queue,
  processing and total server time, so a client can compute network time as its own total minus ``total``;
* bad input is always a 4xx with a JSON ``{"error": ...}`` body naming the fix, never a 5xx or a dead server;
* micro-batching never holds a lone request (see :mod:`.batching`);
* a new version is loaded and health-checked *before* it takes traffic, then swapped in with one assignment, so a
  rollback drops no request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..._version import __version__
from ..errors import DeploymentError
from . import protocol
from .batching import MicroBatcher, Result, predict_now
from .protocol import BadRequest, Schema
from .request_ids import new_request_id

JSON_TYPES = ("application/json", "application/json; charset=utf-8")
logger = logging.getLogger("mm_magics.serving")


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
        doc, model = self.source.load(spec)
        schema = Schema.from_version(doc.get("schema") or {})
        health_check(model, schema)
        batcher = (
            MicroBatcher(model, max_batch=self.settings.max_batch, max_delay=self.settings.max_delay_ms / 1000)
            if self.settings.batch
            else None
        )
        name, number = identity(doc)
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


def _error(status: int, message: str, request_id: str | None = None) -> JSONResponse:
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum():
        return given
    return new_request_id()


async def _read_json(request: Request, settings: Settings) -> Any:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
        raise BadRequest(
            413,
            f"request body of {length} bytes is over the {settings.max_body_bytes}-byte limit: "
            "send fewer rows per request",
        )
    body = await _read_body(request, settings.max_body_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "text/csv":
        return ("csv", body.decode("utf-8", "replace"))
    if ctype not in ("application/json", ""):
        raise BadRequest(
            415,
            f"content type {ctype!r} is not supported: send application/json"
            f"{' or text/csv' if request.url.path == '/invocations' else ''}",
        )
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"body is not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise BadRequest(400, "body is not valid JSON (not UTF-8 text)") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise BadRequest(400, f"body is not usable JSON ({exc}): send ordinary numbers") from None
    except RecursionError:
        raise BadRequest(400, "body is nested too deeply: send rows of values") from None


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it passes ``limit``: a chunked upload (no Content-Length) is never
    buffered past the limit."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body is over the {limit}-byte limit: send fewer rows per request")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(source: ModelSource, versions: list[str], settings: Settings | None = None) -> Starlette:
    """Build the app serving ``versions`` (``NAME@vN`` specs) from ``source``; each is health-checked first."""
    settings = settings or Settings()
    state = ServingState(source, settings)
    for spec in versions:
        state.install(state.load(spec))

    def served_for(name: str, version: str | None) -> Served:
        served = state.models.get(name)
        if served is None:
            known = ", ".join(sorted(state.models)) or "none"
            raise BadRequest(404, f"model {name!r} is not served here (serving: {known})")
        if version is not None and version.lstrip("v") != str(served.number):
            raise BadRequest(
                404,
                f"version {version} of {name} is not served (serving {served.id}): "
                f"use /v2/models/{name}/infer for the current version",
            )
        return served

    async def predict(served: Served, frame: pd.DataFrame, outputs: tuple[str, ...]) -> Result:
        try:
            if served.batcher is not None:
                return await served.batcher.submit(frame, outputs)
            return predict_now(served.model, frame, outputs, time.perf_counter())
        except AttributeError as exc:
            raise BadRequest(422, f"{exc}: ask for outputs this model has") from None
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise BadRequest(
                422, f"the model could not predict on this input ({type(exc).__name__}: {first})"
            ) from None

    def finish(
        request_id: str,
        served: Served,
        result: Result,
        t0: float,
        body: dict[str, Any],
        protocol_name: str,
        frame: pd.DataFrame,
    ) -> JSONResponse:
        total = time.perf_counter() - t0
        # queue: waiting for the model (micro-batching); proc: the predict call; total: all server time, so
        # parsing and validation are total - queue - proc, and the client's own total minus this is network time
        timing = (
            f"queue;dur={result.queue_s * 1000:.3f}, proc;dur={result.proc_s * 1000:.3f}, total;dur={total * 1000:.3f}"
        )
        state.requests += 1
        if settings.on_request is not None:
            settings.on_request(
                {
                    "time": time.time(),
                    "model": served.name,
                    "version": served.number,
                    "request_id": request_id,
                    "status": 200,
                    "queue_s": result.queue_s,
                    "proc_s": result.proc_s,
                    "total_s": total,
                    "batch_size": result.batch_size,
                    "rows": len(frame),
                    "protocol": protocol_name,
                    # references only: the recorder converts them on its own thread, off the request path
                    "frame": frame,
                    "outputs": result.outputs,
                    "profile": served.profile,
                }
            )
        headers = {"X-Request-ID": request_id, "Server-Timing": timing, "X-Batch-Size": str(result.batch_size)}
        return JSONResponse(body, headers=headers)

    def failed(request_id: str, exc: BadRequest, name: str | None) -> JSONResponse:
        state.errors += 1
        if settings.on_request is not None and name:
            settings.on_request(
                {
                    "time": time.time(),
                    "model": name,
                    "request_id": request_id,
                    "status": exc.status,
                    "error": exc.message,
                }
            )
        return _error(exc.status, exc.message, request_id)

    async def infer(request: Request) -> Response:
        t0 = time.perf_counter()
        request_id = _request_id(request)
        name = request.path_params["name"]
        try:
            served = served_for(name, request.path_params.get("version"))
            body = await _read_json(request, settings)
            if isinstance(body, tuple):
                raise BadRequest(415, "V2 inference takes application/json")
            frame, outputs = protocol.from_v2(body, served.schema, settings.max_rows)
            result = await predict(served, frame, tuple(outputs))
        except BadRequest as exc:
            return failed(request_id, exc, name)
        out = []
        for key in outputs:
            arr = np.asarray(result.outputs[key])
            out.append(
                {
                    "name": key,
                    "shape": list(arr.shape),
                    "datatype": protocol.v2_datatype(arr),
                    "data": protocol.to_jsonable(arr.ravel()),
                }
            )
        payload = {"model_name": served.name, "model_version": str(served.number), "id": request_id, "outputs": out}
        if isinstance(body, dict) and body.get("id"):
            payload["parameters"] = {"client_id": str(body["id"])[:64]}
        return finish(request_id, served, result, t0, payload, "v2", frame)

    async def invocations(request: Request) -> Response:
        t0 = time.perf_counter()
        request_id = _request_id(request)
        try:
            if len(state.models) != 1:
                raise BadRequest(404, "/invocations needs exactly one served model: use /v2/models/{name}/infer")
            served = next(iter(state.models.values()))
            body = await _read_json(request, settings)
            if isinstance(body, tuple):
                frame = protocol.from_csv(body[1], served.schema, settings.max_rows)
            else:
                frame = protocol.from_mlflow(body, served.schema, settings.max_rows)
            result = await predict(served, frame, ("predict",))
        except BadRequest as exc:
            return failed(request_id, exc, next(iter(state.models), None))
        payload = {"predictions": protocol.to_jsonable(result.outputs["predict"])}
        return finish(request_id, served, result, t0, payload, "mlflow", frame)

    async def metadata(request: Request) -> Response:
        try:
            served = served_for(request.path_params["name"], request.path_params.get("version"))
        except BadRequest as exc:
            return _error(exc.status, exc.message)
        doc = served.doc
        outputs = [
            {"name": "predict", "datatype": "BYTES" if doc.get("task") == "classification" else "FP64", "shape": [-1]}
        ]
        if hasattr(served.model, "predict_proba"):
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
        return JSONResponse(
            {
                "name": served.name,
                "versions": [str(served.number)],
                "platform": "sklearn",
                "inputs": served.schema.v2_inputs(),
                "outputs": outputs,
                "parameters": {
                    "version": served.id,
                    "estimator": doc.get("estimator"),
                    "task": doc.get("task"),
                    "feature_names": served.schema.feature_names,
                    "sha256": doc["artifact"]["sha256"],
                },
            }
        )

    async def model_ready(request: Request) -> Response:
        try:
            served_for(request.path_params["name"], request.path_params.get("version"))
        except BadRequest as exc:
            return _error(exc.status, exc.message)
        return JSONResponse({"name": request.path_params["name"], "ready": True})

    async def feedback(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            served_for(name, None)
            body = await _read_json(request, settings)
            ids, labels = _feedback_pairs(body)
        except BadRequest as exc:
            return _error(exc.status, exc.message)
        state.feedback += len(ids)
        if settings.on_feedback is not None:
            settings.on_feedback(name, ids, labels)
        return JSONResponse({"accepted": len(ids)})

    async def load_version(request: Request) -> Response:
        """Swap in another version of a served model, through the same lifecycle gates as a switch.

        Body: ``{"version": "NAME@vN", "reason": "...", "force": false}``. The Deployer records the switch in the
        deployment record and the lifecycle; a swap made by anyone else is logged here, and the Deployer reports
        what the server really serves, so no record can claim another version."""
        if not settings.admin_token or not _bearer_ok(request, settings.admin_token):
            return _error(401, "model swaps need the admin token (Authorization: Bearer ...)")
        try:
            body = await _read_json(request, settings)
            spec = body.get("version") if isinstance(body, dict) else None
            if not isinstance(spec, str):
                raise BadRequest(422, 'send {"version": "NAME@vN", "reason": "why"}')
            reason = body.get("reason") or f"swap to {spec} over /mm/v1/load"
            force = body.get("force") is True
            if not isinstance(reason, str):
                raise BadRequest(422, '"reason" must be a string')
            name = spec.partition("@")[0]
            if name not in state.models:
                raise BadRequest(409, f"{spec} is not a version of the served model ({', '.join(state.models)})")
        except BadRequest as exc:
            return _error(exc.status, exc.message)
        async with state._swap_lock:
            try:
                served = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: state.load(spec, admit=(reason, force))
                )
            except Exception as exc:  # refused by a gate, or it does not load: the old version keeps serving
                return _error(409, f"{spec} was not swapped in: {exc}")
            old = state.install(served)
        logger.warning(
            "swapped %s -> %s over /mm/v1/load (%s%s)",
            old.id if old else None,
            served.id,
            reason,
            ", forced" if force else "",
        )
        if old is not None and old.batcher is not None:
            asyncio.get_running_loop().call_later(5, old.batcher.close)  # let its in-flight batch finish
        return JSONResponse({"serving": served.id, "previous": old.id if old else None})

    async def flush(request: Request) -> Response:
        if not settings.admin_token or not _bearer_ok(request, settings.admin_token):
            return _error(401, "flushing metrics needs the admin token (Authorization: Bearer ...)")
        if settings.on_flush is not None:
            await asyncio.get_running_loop().run_in_executor(None, settings.on_flush)
        return JSONResponse({"flushed": True})

    async def status(request: Request) -> Response:
        return JSONResponse(
            {
                "server": "mm_magics",
                "version": __version__,
                "uptime_s": round(time.time() - state.started, 3),
                "models": {n: s.id for n, s in state.models.items()},
                "requests": state.requests,
                "errors": state.errors,
                "feedback": state.feedback,
                "batching": settings.batch,
            }
        )

    async def live(_: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(_: Request) -> Response:
        return JSONResponse({"ready": bool(state.models)}, status_code=200 if state.models else 503)

    async def server_meta(_: Request) -> Response:
        return JSONResponse({"name": "mm_magics", "version": __version__, "extensions": ["mlflow", "feedback"]})

    async def version(_: Request) -> Response:
        return Response(__version__, media_type="text/plain")

    async def ping(_: Request) -> Response:
        return Response("\n", media_type="text/plain")

    routes = [
        Route("/v2", server_meta),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}", metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/versions/{version}", metadata),
        Route("/v2/models/{name}/versions/{version}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/feedback", feedback, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/ping", ping),
        Route("/health", ping),
        Route("/version", version),
        Route("/mm/v1/load", load_version, methods=["POST"]),
        Route("/mm/v1/status", status),
        Route("/mm/v1/flush", flush, methods=["POST"]),
    ]
    open_paths = {"/v2/health/live", "/v2/health/ready", "/ping", "/health", "/mm/v1/load", "/mm/v1/flush"}

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        hint = {
            404: "see /v2 and /v2/models/{name} for the served endpoints",
            405: "check the HTTP method (inference is POST)",
        }.get(exc.status_code, "")
        return _error(exc.status_code, f"{exc.detail} ({request.method} {request.url.path}): {hint}".rstrip(": "))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        if settings.on_shutdown is not None:
            await asyncio.get_running_loop().run_in_executor(None, settings.on_shutdown)

    middleware = [Middleware(Guard, state=state)]
    if settings.token:
        middleware.append(Middleware(BearerAuth, token=settings.token, open_paths=open_paths))
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error}, middleware=middleware, lifespan=lifespan
    )
    app.state.serving = state
    return app


class Guard:
    """Answer an unexpected exception with a 500 JSON body, record it, and keep the connection.

    Starlette's own error middleware re-raises after answering, so uvicorn drops the keep-alive connection (the
    client's next good request fails) and nothing is recorded (the error-rate alert never sees it). A bug must
    cost one request, visibly, never the connection."""

    def __init__(self, app: ASGIApp, state: ServingState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if started:  # half an answer is out: nothing sane can follow it on this connection
                raise
            self.state.errors += 1
            path = scope.get("path", "")
            message = f"internal error while serving {path}: {type(exc).__name__} (recorded; see the server log)"
            request_id = new_request_id()
            logger.exception("internal error on %s %s (request %s)", scope.get("method"), path, request_id)
            name = self.state.model_for_path(path)
            if self.state.settings.on_request is not None and name:
                self.state.settings.on_request(
                    {"time": time.time(), "model": name, "request_id": request_id, "status": 500, "error": message}
                )
            await _error(500, message, request_id)(scope, receive, send)


class BearerAuth:
    """Every path but the health and admin ones (which check their own token) needs ``Authorization: Bearer``."""

    def __init__(self, app: ASGIApp, token: str, open_paths: set[str]) -> None:
        self.app = app
        self.expected = f"Bearer {token}"
        self.open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.open_paths:
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not secrets.compare_digest(header, self.expected):
                await _error(
                    401,
                    "missing or wrong bearer token: send Authorization: Bearer <token> "
                    "(the token is in the workspace's run/secrets/token)",
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer_ok(request: Request, token: str) -> bool:
    return secrets.compare_digest(request.headers.get("authorization", ""), f"Bearer {token}")


def _feedback_pairs(body: Any) -> tuple[list[str], list[Any]]:
    if isinstance(body, dict) and isinstance(body.get("feedback"), list):
        items = body["feedback"]
        if not all(isinstance(i, dict) and "id" in i and "label" in i for i in items):
            raise BadRequest(422, 'feedback items must be {"id": REQUEST_ID, "label": TRUE_VALUE}')
        ids, labels = [str(i["id"]) for i in items], [i["label"] for i in items]
    elif isinstance(body, dict) and isinstance(body.get("ids"), list) and isinstance(body.get("labels"), list):
        ids, labels = [str(i) for i in body["ids"]], list(body["labels"])
    else:
        raise BadRequest(422, 'send {"ids": [REQUEST_ID, ...], "labels": [TRUE_VALUE, ...]}')
    if len(ids) != len(labels):
        raise BadRequest(422, f"{len(ids)} ids but {len(labels)} labels: send one label per request id")
    if not ids:
        raise BadRequest(422, "no feedback in the request")
    return ids, labels


class WorkspaceSource:
    """Versions straight from the workspace's registry (hash verified, never unpickled)."""

    def __init__(self, workspace: Any) -> None:
        self.ws = workspace

    def load(self, spec: str) -> tuple[dict[str, Any], Any]:
        version = self.ws.registry.get(spec)
        return version.to_dict(), self.ws.registry.checkout(version.id)

    def admit(self, spec: str, reason: str, force: bool) -> None:
        from ..lifecycle import SERVING

        version = self.ws.registry.get(spec)
        if version.stage not in SERVING:
            self.ws.lifecycle.preflight(version.id, "deploy", reason, force=force)


class BundleSource:
    """A version packed into a directory (``version.json``, ``artifact.skops``, ``trusted.json``): Docker images."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def admit(self, spec: str, reason: str, force: bool) -> None:
        doc = json.loads((self.root / "version.json").read_text())
        name, number = identity(doc)
        if spec != f"{name}@v{number}":
            raise DeploymentError(f"this container serves only {name}@v{number}: switch with mm deploy {spec}")

    def load(self, spec: str | None = None) -> tuple[dict[str, Any], Any]:
        from .. import serialization
        from ..artifacts import sha256_bytes
        from ..errors import ArtifactCorruptError

        doc = json.loads((self.root / "version.json").read_text())
        data = (self.root / "artifact.skops").read_bytes()
        if sha256_bytes(data) != doc["artifact"]["sha256"]:
            raise ArtifactCorruptError(f"bundle artifact in {self.root} does not match its sha256: rebuild the image")
        trusted_file = self.root / "trusted.json"
        trusted = json.loads(trusted_file.read_text()) if trusted_file.exists() else []
        name, number = identity(doc)
        label = f"artifact of {name}@v{number}"
        return doc, serialization.loads(data, trusted=trusted, label=label)
