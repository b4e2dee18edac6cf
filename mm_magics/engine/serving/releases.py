"""Canary and shadow releases inside one serving process: a candidate version beside the served one (the champion).

* **canary**: a share of requests is answered by the candidate. A request carrying a routing key (the
  ``X-MM-Route-Key`` header: a user or session id) always lands on the same side, so one user does not flip between
  versions; one without a key is drawn at random. A path naming a version (``/v2/models/NAME/versions/N/infer``)
  is answered by that version, champion or candidate.
* **shadow**: every request is answered by the champion; after the answer is sent, the candidate predicts on the
  same rows and its answer is recorded under the same request id with the role ``shadow``, so feedback scores both
  versions on every request and their agreement on live traffic can be measured. A shadow never delays or fails
  the answer.

The release is set, promoted and dropped through ``/mm/v1/release`` (admin token), passed on to every worker like a
switch; promoting installs the already loaded and health-checked candidate with one assignment, so no request fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import workers
from .batching import Result
from .protocol import BadRequest
from .rows import Rows
from .state import Served, ServingState

logger = logging.getLogger("mm_magics.serving")

ROUTE_KEY_HEADER = "x-mm-route-key"
MODES = ("canary", "shadow")


@dataclass
class Release:
    """A candidate served beside the champion of the same model."""

    served: Served
    mode: str
    percent: float = 0.0
    started: float = field(default_factory=time.time)

    @property
    def model(self) -> Any:
        """The candidate's model: a batch the champion's batcher draws for it is predicted with this."""
        return self.served.model

    def draw(self) -> bool:
        """A fair draw: True for ``percent`` % of calls."""
        return random.random() * 100 < self.percent

    def routes_here(self, request: Request) -> bool:
        """Whether a canary release answers ``request`` (sticky by routing key, else a fair draw)."""
        if self.mode != "canary":
            return False
        key = request.headers.get(ROUTE_KEY_HEADER)
        if key:
            bucket = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 10_000
            return bucket < self.percent * 100
        return self.draw()

    def describe(self) -> dict[str, Any]:
        return {"version": self.served.id, "mode": self.mode, "percent": self.percent, "started": self.started}


def route(
    state: ServingState, request: Request, champion: Served, version: str | None
) -> tuple[Served, Release | None]:
    """The version that answers, and the canary to draw for when that is decided per batch.

    The version a path names answers; a request with a routing key goes to its side; any other request of a canary
    whose candidate takes the champion's features is drawn for *per batch* (the release is returned as the divert):
    the candidate's requests are then batched as the champion's are, instead of each costing a predict call of its
    own (a 10 % canary cost 13 % of throughput at c=8 that way). Otherwise one draw per request."""
    release = state.releases.get(champion.name)
    if release is None or version is not None or release.mode != "canary":
        return champion, None
    if not request.headers.get(ROUTE_KEY_HEADER) and release.served.schema == champion.schema:
        return champion, release
    return (release.served if release.routes_here(request) else champion), None


def candidate_for(state: ServingState, name: str, version: str) -> Served | None:
    """The candidate of ``name`` when ``version`` (``N`` or ``vN``) names it."""
    release = state.releases.get(name)
    if release is not None and version.lstrip("v") == str(release.served.number):
        return release.served
    return None


def shadow_after(
    state: ServingState, response: Response, answered: Served, rows: Rows, outputs: tuple[str, ...], request_id: str,
    protocol_name: str, predict: Any, record: Any,
) -> Response:  # fmt: skip
    """Attach the shadow prediction to ``response`` (it runs once the answer is sent), when a shadow is set."""
    release = state.releases.get(answered.name)
    if release is None or release.mode != "shadow" or release.served is answered:
        return response

    async def run() -> None:
        t0 = time.perf_counter()
        try:
            result: Result = await predict(release.served, rows, outputs)
        except BadRequest as exc:
            record(state, request_id, release.served, None, t0, protocol_name, rows, role="shadow", error=exc)
            return
        record(state, request_id, release.served, result, t0, protocol_name, rows, role="shadow")

    response.background = BackgroundTask(run)
    return response


async def release_route(request: Request) -> Response:
    """``POST /mm/v1/release``: ``{"action": "start", "version": "NAME@vN", "mode": "canary", "percent": 10,
    "reason": …, "force": false}``, ``{"action": "promote", "name": NAME}`` or ``{"action": "abort", "name": NAME}``.
    Admin token only. Passed on to every worker; a worker that fails undoes the start everywhere."""
    from .handlers import bearer_ok, error_response, read_json

    state: ServingState = request.app.state.serving
    settings = state.settings
    if not settings.admin_token or not bearer_ok(request, settings.admin_token):
        return error_response(401, "releases need the admin token (Authorization: Bearer ...)")
    try:
        body = await read_json(request, settings)
        if not isinstance(body, dict) or body.get("action") not in ("start", "promote", "abort"):
            raise BadRequest(422, 'send {"action": "start"|"promote"|"abort", ...}')
    except BadRequest as exc:
        return error_response(exc.status, exc.message)
    peer_call = request.headers.get(workers.PEER_HEADER) == "1"
    async with state._swap_lock:
        try:
            answer = await _act(state, body, peer_call)
        except BadRequest as exc:
            return error_response(exc.status, exc.message)
        if settings.peers and not peer_call:
            answers = await workers.pass_on(settings.peers, "/mm/v1/release", settings.admin_token or "", body)
            failed = [f"worker at {p}: {b.get('error', s)}" for p, s, b in answers if s != 200]
            if failed:
                if body["action"] == "start":  # undo it where it was applied: one process never routes alone
                    name = str(body["version"]).partition("@")[0]
                    state.releases.pop(name, None)
                    ok = [p for p, s, _ in answers if s == 200]
                    undo = {"action": "abort", "name": name}
                    await workers.pass_on(ok, "/mm/v1/release", settings.admin_token or "", undo)
                return error_response(409, f"the release was not applied everywhere: {'; '.join(failed)}")
    return JSONResponse(answer)


async def _act(state: ServingState, body: dict[str, Any], peer_call: bool) -> dict[str, Any]:
    action = body["action"]
    if action == "start":
        return await _start(state, body, peer_call)
    name = body.get("name")
    release = state.releases.get(name) if isinstance(name, str) else None
    if release is None:
        raise BadRequest(409, f"{name!r} has no canary or shadow release to {action}")
    del state.releases[name]
    if action == "abort":
        _close_later(release.served)
        logger.warning("release of %s aborted (%s)", release.served.id, release.mode)
        return {"serving": state.models[name].id, "dropped": release.served.id}
    old = state.install(release.served)  # one assignment: every request sees the old or the new
    if old is not None:
        _close_later(old)
    logger.warning("release of %s promoted (%s)", release.served.id, release.mode)
    return {"serving": release.served.id, "previous": old.id if old else None}


async def _start(state: ServingState, body: dict[str, Any], peer_call: bool) -> dict[str, Any]:
    spec, mode, percent = body.get("version"), body.get("mode"), body.get("percent", 0)
    if not isinstance(spec, str) or mode not in MODES:
        raise BadRequest(422, 'send {"action": "start", "version": "NAME@vN", "mode": "canary"|"shadow"}')
    ok_percent = isinstance(percent, (int, float)) and not isinstance(percent, bool) and 0 < percent < 100
    if mode == "canary" and not ok_percent:
        raise BadRequest(422, f"a canary's share is a percentage between 0 and 100 (exclusive), not {percent!r}")
    name = spec.partition("@")[0]
    champion = state.models.get(name)
    if champion is None:
        raise BadRequest(409, f"{spec} is not a version of a served model ({', '.join(state.models)})")
    if champion.id == spec:
        raise BadRequest(409, f"{spec} already serves: a release needs another version")
    reason = body.get("reason") if isinstance(body.get("reason"), str) else f"{mode} of {spec}"
    admit = None if peer_call else (reason, body.get("force") is True)
    try:
        served = await asyncio.get_running_loop().run_in_executor(None, lambda: state.load(spec, admit=admit))
    except Exception as exc:
        raise BadRequest(409, f"{spec} was not released: {exc}") from None
    if mode == "shadow" and served.schema.columns != champion.schema.columns:
        _close_later(served)
        raise BadRequest(
            409,
            f"{spec} takes other features than {champion.id}: a shadow predicts on the champion's rows; deploy it "
            "as a switch once clients send its features",
        )
    previous = state.releases.get(name)
    state.releases[name] = Release(served, mode, float(percent) if mode == "canary" else 0.0)
    if previous is not None:
        _close_later(previous.served)
    return {"serving": champion.id, "release": state.releases[name].describe()}


def _close_later(served: Served) -> None:
    if served.batcher is not None:
        asyncio.get_running_loop().call_later(5, served.batcher.close)  # let its in-flight batch finish
