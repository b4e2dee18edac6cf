"""REST handlers under ``/mm/api/``: thin, one engine call each, JSON out.

Every route is Jupyter's own: ``APIHandler`` with ``@authenticated`` (the server's token or login cookie) and the
server's XSRF check on every request that changes something. Bad input and refused actions are 4xx JSON
``{"error": "<the engine's one line>"}``; only a bug is a 500. Engine calls run on engine threads
(:class:`~mm_magics.server.workspaces.Workspaces`), so a Docker deploy never stalls the server.

Reads that a panel polls carry an ``ETag`` (the registry head, plus the deployment records' state where they are
part of the answer) and answer ``304 Not Modified`` to ``If-None-Match``: a visible panel asks every second or two
and almost always gets an empty answer.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .._version import __version__
from ..engine.errors import MMError
from ..engine.specs import check_alias, check_name
from ..engine.workspace import Workspace
from .workspaces import Workspaces

#: The API's version: a panel built for another one says so in one line (GET /mm/api/version?client=...).
API = 1
NAME = r"(?P<name>[^/]+)"
SPEC = r"(?P<spec>[^/]+)"


def _plain(value: Any) -> Any:
    """JSON-ready: records (dataclasses) as dicts, tuples as lists, NaN/inf as null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    return str(value)


class MMHandler(APIHandler):
    """Base: the workspace a request names, engine calls off the loop, errors as one-line JSON."""

    @property
    def spaces(self) -> Workspaces:
        return self.settings["mm_workspaces"]

    def workspace_path(self) -> Path:
        return self.spaces.resolve(self.get_query_argument("workspace", None))

    async def engine(self, call: Any) -> Any:
        return await self.spaces.run(self.workspace_path(), call)

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except ValueError:
            raise web.HTTPError(400, "the body is not JSON: send a JSON object") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data

    def text(self, data: dict[str, Any], key: str, *, required: bool = False) -> str:
        value = data.get(key, "")
        if not isinstance(value, str) or (required and not value):
            raise web.HTTPError(400, f"{key!r} must be a non-empty string" if required else f"{key!r} must be a string")
        return value

    def answer(self, value: Any, *, status: int = 200, etag: str | None = None) -> None:
        if etag is not None:
            self.set_header("ETag", f'"{etag}"')
            if self.request.headers.get("If-None-Match", "").strip('"') == etag:
                self.set_status(304)
                self.finish()
                return
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(_plain(value), separators=(",", ":")))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error as ``{"error": one line}``: the engine's message for a refusal, tornado's reason else."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError):
            message = exc.log_message or exc.reason or self._reason
        elif status_code >= 500:
            message = f"internal error ({type(exc).__name__ if exc else 'unknown'}): see the server log"
        else:
            message = self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": message}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, MMError):  # a refusal, not a bug: the engine's one line, its status
            self.set_status(e.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": e.render()}))
            return
        super()._handle_request_exception(e)


class VersionHandler(MMHandler):
    """``GET /mm/api/version[?client=X]``: the back end's version; 409 with one line when the panel differs."""

    @web.authenticated
    def get(self) -> None:
        client = self.get_query_argument("client", None)
        if client is not None and client != __version__:
            raise web.HTTPError(
                409,
                f"the Models panel is version {client} but the server extension is {__version__}: reload JupyterLab "
                "(if you just upgraded mm_magics, restart jupyter lab too)",
            )
        self.answer({"version": __version__, "api": API})


class WorkspacesHandler(MMHandler):
    """``GET /mm/api/workspaces``: the one in use and the ones found under the server's root."""

    @web.authenticated
    def get(self) -> None:
        current = self.spaces.default()
        self.answer(
            {
                "root": str(self.spaces.root),
                "default": str(current) if current else None,
                "found": self.spaces.found(),
            }
        )


class HeadHandler(MMHandler):
    """``GET /mm/api/head``: what a visible panel polls. ETag: the registry head and the deployments' state, so
    a commit, a stage move or a deploy anywhere (a notebook, another kernel, ``mm``) changes it."""

    @web.authenticated
    async def get(self) -> None:
        head, deployed = await self.engine(lambda ws: (ws.registry.head(), _deployments_stamp(ws)))
        self.answer({"head": head, "deployments": deployed}, etag=f"{head}-{deployed}")


class ModelsHandler(MMHandler):
    """``GET /mm/api/models``: every model with latest version, aliases, stage counts and what serves now."""

    @web.authenticated
    async def get(self) -> None:
        listing, head, stamp = await self.engine(lambda ws: (ws.models(), ws.registry.head(), _deployments_stamp(ws)))
        self.answer({"head": head, "models": listing.models}, etag=f"models-{head}-{stamp}")


class VersionsHandler(MMHandler):
    """``GET /mm/api/models/NAME/versions?limit=20&before=N``: a page of versions, newest first."""

    @web.authenticated
    async def get(self, name: str) -> None:
        check_name(name)
        limit = _int(self.get_query_argument("limit", "20"), "limit", 1, 500)
        before_arg = self.get_query_argument("before", None)
        before = _int(before_arg, "before", 1, 10**9) if before_arg else None
        page = await self.engine(lambda ws: ws.registry.log(name, limit=limit, before=before))
        self.answer(page)


class TimelineHandler(MMHandler):
    """``GET /mm/api/models/NAME/timeline?metric=M&since=HEAD``: the columnar timeline (or the patch since)."""

    @web.authenticated
    async def get(self, name: str) -> None:
        check_name(name)
        metric = self.get_query_argument("metric", None) or None
        since = self.get_query_argument("since", None) or None
        timeline = await self.engine(lambda ws: ws.registry.timeline(name, metric=metric, since=since))
        self.answer(timeline.payload, etag=f"timeline-{timeline.head}-{metric}-{since}")


class VersionDetailHandler(MMHandler):
    """``GET /mm/api/versions/SPEC``: one version; ``?details=1`` adds its diff against its parent and next moves."""

    @web.authenticated
    async def get(self, spec: str) -> None:
        if self.get_query_argument("details", "0") == "1":
            self.answer(await self.engine(lambda ws: ws.details(spec)))
        else:
            self.answer(await self.engine(lambda ws: ws.registry.get(spec)))


class DiffHandler(MMHandler):
    """``GET /mm/api/diff?a=NAME@vN&b=NAME@vM[&agreement=0]``."""

    @web.authenticated
    async def get(self) -> None:
        a, b = self.get_query_argument("a", ""), self.get_query_argument("b", "")
        if not a or not b:
            raise web.HTTPError(400, "say which versions to compare: ?a=NAME@vN&b=NAME@vM")
        agreement = self.get_query_argument("agreement", "1") != "0"
        self.answer(await self.engine(lambda ws: ws.registry.diff(a, b, agreement=agreement)))


class LifecycleHandler(MMHandler):
    """``GET /mm/api/models/NAME/lifecycle[?version=vN]``: the stage graph with gates; for a version, its moves."""

    @web.authenticated
    async def get(self, name: str) -> None:
        check_name(name)
        version = self.get_query_argument("version", None)
        spec = f"{name}@{version}" if version else name
        self.answer(await self.engine(lambda ws: ws.lifecycle.picture(spec)))


class StageVersionsHandler(MMHandler):
    """``GET /mm/api/models/NAME/stages/STAGE``: the versions in a stage, newest first (a click on the graph)."""

    @web.authenticated
    async def get(self, name: str, stage: str) -> None:
        check_name(name)
        limit = _int(self.get_query_argument("limit", "200"), "limit", 1, 10_000)
        self.answer({"versions": await self.engine(lambda ws: ws.lifecycle.in_stage(name, stage, limit))})


class HistoryHandler(MMHandler):
    """``GET /mm/api/history[?model=NAME&limit=N]``: the audit log, newest first."""

    @web.authenticated
    async def get(self) -> None:
        model = self.get_query_argument("model", None)
        if model:
            check_name(model)
        limit = _int(self.get_query_argument("limit", "100"), "limit", 1, 10_000)
        self.answer({"entries": await self.engine(lambda ws: ws.registry.history(model, limit=limit))})


class DeploymentsHandler(MMHandler):
    """``GET /mm/api/deployments``: what serves where, with health; ``DELETE /mm/api/deployments/NAME`` stops it."""

    @web.authenticated
    async def get(self) -> None:
        deployments = await self.engine(lambda ws: ws.deployments.list())
        self.answer({"deployments": deployments})

    @web.authenticated
    async def delete(self, name: str) -> None:
        check_name(name)
        self.answer(await self.engine(lambda ws: ws.deployments.undeploy(name)))


class SeriesHandler(MMHandler):
    """``GET /mm/api/models/NAME/series?window=5m&step=5&since=T``: live metrics per bucket (the sparklines)."""

    @web.authenticated
    async def get(self, name: str) -> None:
        check_name(name)
        window = self.get_query_argument("window", "5m")
        step = self.get_query_argument("step", None)
        since_arg = self.get_query_argument("since", None)
        since = _float(since_arg, "since") if since_arg else None

        def series(ws: Workspace) -> Any:
            deployment = ws.deployments.get(name) if (ws.run_dir / "deployments").is_dir() else None
            return ws.monitor.series(name, window, step=step, deployment=deployment, since=since).advance()

        self.answer(await self.engine(series))


class AlertsHandler(MMHandler):
    """``GET /mm/api/models/NAME/alerts``: the open alerts, each with its advice."""

    @web.authenticated
    async def get(self, name: str) -> None:
        check_name(name)

        def alerts(ws: Workspace) -> Any:
            ws.registry.get(name)  # an unknown model is a 404, not an empty list
            return ws.monitor.store.alerts(name).to_dict(orient="records")

        self.answer({"alerts": await self.engine(alerts)})


class StageHandler(MMHandler):
    """``POST /mm/api/versions/SPEC/stage`` ``{"stage": S, "message": WHY, "force": false}``."""

    @web.authenticated
    async def post(self, spec: str) -> None:
        data = self.body()
        stage, message = self.text(data, "stage", required=True), self.text(data, "message")
        force = data.get("force") is True
        self.answer(await self.engine(lambda ws: ws.lifecycle.transition(spec, stage, message, force=force)))


class DeployHandler(MMHandler):
    """``POST /mm/api/versions/SPEC/deploy`` ``{"docker": false, "message": WHY, "force": false}``."""

    @web.authenticated
    async def post(self, spec: str) -> None:
        data = self.body()
        message = self.text(data, "message")
        docker, force = data.get("docker") is True, data.get("force") is True
        deployment = await self.engine(
            lambda ws: ws.deployments.deploy(spec, docker=docker, force=force, reason=message)
        )
        self.answer(deployment, status=201)


class RollbackHandler(MMHandler):
    """``POST /mm/api/models/NAME/rollback`` ``{"to": "vN", "message": WHY}``: a new version equal to ``to``; a
    running deployment switches to it."""

    @web.authenticated
    async def post(self, name: str) -> None:
        check_name(name)
        data = self.body()
        to, message = self.text(data, "to", required=True), self.text(data, "message")
        version, deployment = await self.engine(lambda ws: ws.deployments.rollback(name, to, message))
        self.answer({"version": version, "deployment": deployment}, status=201)


class AliasHandler(MMHandler):
    """``PUT /mm/api/models/NAME/aliases/ALIAS`` ``{"version": "vN"}`` sets or moves it; ``DELETE`` removes it."""

    @web.authenticated
    async def put(self, name: str, alias: str) -> None:
        check_name(name)
        check_alias(alias)
        data = self.body()
        version, message = self.text(data, "version", required=True), self.text(data, "message")
        spec = version if "@" in version else f"{name}@{version}"
        self.answer(await self.engine(lambda ws: ws.registry.set_alias(spec, alias, message)))

    @web.authenticated
    async def delete(self, name: str, alias: str) -> None:
        check_name(name)
        check_alias(alias)
        self.answer(await self.engine(lambda ws: ws.registry.delete_alias(name, alias)))


def _deployments_stamp(ws: Workspace) -> str:
    """Changes when a deployment record is written or removed (a deploy, switch or undeploy from anywhere)."""
    folder = ws.run_dir / "deployments"
    if not folder.is_dir():
        return "0"
    stamps = sorted((p.name, p.stat().st_mtime_ns) for p in folder.glob("*.json"))
    return str(abs(hash(tuple(stamps))))


def _int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise web.HTTPError(400, f"{what} must be a whole number, got {text!r}") from None
    if not low <= value <= high:
        raise web.HTTPError(400, f"{what} must be between {low} and {high}, got {value}")
    return value


def _float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise web.HTTPError(400, f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise web.HTTPError(400, f"{what} must be a finite number")
    return value


def setup_handlers(serverapp: Any) -> None:
    """Mount the routes under the server's base URL."""
    app = serverapp.web_app
    app.settings["mm_workspaces"] = Workspaces(serverapp.root_dir)
    base = url_path_join(app.settings["base_url"], "mm", "api")
    routes = [
        ("version", VersionHandler),
        ("workspaces", WorkspacesHandler),
        ("head", HeadHandler),
        ("models", ModelsHandler),
        (f"models/{NAME}/versions", VersionsHandler),
        (f"models/{NAME}/timeline", TimelineHandler),
        (f"models/{NAME}/lifecycle", LifecycleHandler),
        (f"models/{NAME}/stages/(?P<stage>[^/]+)", StageVersionsHandler),
        (f"models/{NAME}/series", SeriesHandler),
        (f"models/{NAME}/alerts", AlertsHandler),
        (f"models/{NAME}/rollback", RollbackHandler),
        (f"models/{NAME}/aliases/(?P<alias>[^/]+)", AliasHandler),
        (f"versions/{SPEC}/stage", StageHandler),
        (f"versions/{SPEC}/deploy", DeployHandler),
        (f"versions/{SPEC}", VersionDetailHandler),
        ("diff", DiffHandler),
        ("history", HistoryHandler),
        ("deployments", DeploymentsHandler),
        (f"deployments/{NAME}", DeploymentsHandler),
    ]
    app.add_handlers(".*$", [(url_path_join(base, path) + "/?$", handler) for path, handler in routes])
