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
import logging
import secrets
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .handlers import (
    error_response,
    feedback,
    flush,
    infer,
    invocations,
    live,
    load_version,
    metadata,
    model_ready,
    ping,
    prometheus,
    ready,
    server_meta,
    status,
    version,
)
from .releases import release_route
from .request_ids import new_request_id
from .sources import BundleSource, WorkspaceSource
from .state import ModelSource, Served, ServingState, Settings, health_check, identity

__all__ = [
    "BundleSource",
    "ModelSource",
    "Served",
    "ServingState",
    "Settings",
    "WorkspaceSource",
    "create_app",
    "health_check",
    "identity",
]
logger = logging.getLogger("mm_magics.serving")


def create_app(source: ModelSource, versions: list[str], settings: Settings | None = None) -> Starlette:
    """Wire the app serving ``versions`` (``NAME@vN`` specs) from ``source``; each is health-checked first."""
    settings = settings or Settings()
    state = ServingState(source, settings)
    for spec in versions:
        state.install(state.load(spec))

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
        Route("/metrics", prometheus),
        Route("/ping", ping),
        Route("/health", ping),
        Route("/version", version),
        Route("/mm/v1/load", load_version, methods=["POST"]),
        Route("/mm/v1/release", release_route, methods=["POST"]),
        Route("/mm/v1/status", status),
        Route("/mm/v1/flush", flush, methods=["POST"]),
    ]
    # health and Prometheus scrapes need no bearer token (counts and latencies, never data), as KServe's do not
    open_paths = {
        "/v2/health/live", "/v2/health/ready", "/ping", "/health", "/metrics", "/mm/v1/load", "/mm/v1/flush",
        "/mm/v1/release",
    }  # fmt: skip

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        hint = {
            404: "see /v2 and /v2/models/{name} for the served endpoints",
            405: "check the HTTP method (inference is POST)",
        }.get(exc.status_code, "")
        return error_response(
            exc.status_code, f"{exc.detail} ({request.method} {request.url.path}): {hint}".rstrip(": ")
        )

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
            await error_response(500, message, request_id)(scope, receive, send)


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
                await error_response(
                    401,
                    "missing or wrong bearer token: send Authorization: Bearer <token>, the workspace's token "
                    "(`mm token` in the workspace prints it; in a notebook: token = %mm_token)",
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)
