"""The serving routes as module-level handlers over ``request.app.state.serving`` (a :class:`ServingState`).

Open Inference Protocol V2 (infer, metadata, readiness), MLflow scoring (``/invocations``, ``/ping``, ``/version``),
feedback, and our admin routes (load, flush, status). Every problem with a request is a :class:`BadRequest` that
becomes a 4xx JSON body naming the fix; every answer carries ``X-Request-ID`` and ``Server-Timing``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import zlib
from dataclasses import replace
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..._version import __version__
from ..monitoring.labels import label_problem
from . import protocol, releases, workers
from .batching import DivertedError, Result, predict_now
from .protocol import PROBE_HEADER, BadRequest
from .request_ids import new_request_id
from .rows import Rows
from .state import Served, ServingState, Settings

logger = logging.getLogger("mm_magics.serving")


def error_response(status: int, message: str, request_id: str | None = None) -> JSONResponse:
    headers = {"X-Request-ID": request_id} if request_id else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum():
        return given
    return new_request_id()


async def _read_payload(request: Request, settings: Settings) -> bytes:
    """The request body within ``settings.max_body_bytes``, decompressed if it says ``Content-Encoding: gzip`` or
    ``deflate`` (Triton's clients can compress); a decompressed body past the limit is refused too."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
        raise BadRequest(
            413,
            f"request body of {length} bytes is over the {settings.max_body_bytes}-byte limit: "
            "send fewer rows per request",
        )
    body = await _read_body(request, settings.max_body_bytes)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise BadRequest(415, f"content encoding {encoding!r} is not supported: send gzip, deflate or none")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        plain = inflater.decompress(body, settings.max_body_bytes + 1)
    except zlib.error as exc:
        raise BadRequest(400, f"the body is not valid {encoding} data ({exc})") from None
    if len(plain) > settings.max_body_bytes or inflater.unconsumed_tail:
        raise BadRequest(
            413, f"the {encoding} body inflates past the {settings.max_body_bytes}-byte limit: send fewer rows"
        )
    return plain


async def read_json(request: Request, settings: Settings) -> Any:
    body = await _read_payload(request, settings)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "text/csv":
        return ("csv", body.decode("utf-8", "replace"))
    if ctype not in ("application/json", ""):
        raise BadRequest(
            415,
            f"content type {ctype!r} is not supported: send application/json"
            f"{' or text/csv' if request.url.path == '/invocations' else ''}"
            f"{' (or binary tensors with Inference-Header-Content-Length)' if '/v2/' in request.url.path else ''}",
        )
    return _parse_json(body)


def _parse_json(body: bytes) -> Any:
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


async def _read_v2(request: Request, settings: Settings) -> tuple[Any, bytes | None]:
    """A V2 request's JSON, and its binary tail when it uses the binary tensor data extension."""
    header = request.headers.get(protocol.BINARY_HEADER)
    if header is None:
        body = await read_json(request, settings)
        if isinstance(body, tuple):
            raise BadRequest(415, "V2 inference takes application/json (or binary tensors)")
        return body, None
    return protocol.split_binary(await _read_payload(request, settings), header.strip())


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


def _versions(state: ServingState, served: Served) -> list[str]:
    """The versions a model's paths answer: the served one, and a canary's or shadow's candidate beside it."""
    release = state.releases.get(served.name)
    champion = state.models.get(served.name)
    numbers = [champion.number if champion is not None else served.number]
    if release is not None:
        numbers.append(release.served.number)
    return [str(n) for n in numbers]


def served_for(state: ServingState, name: str, version: str | None) -> Served:
    served = state.models.get(name)
    if served is None:
        known = ", ".join(sorted(state.models)) or "none"
        raise BadRequest(404, f"model {name!r} is not served here (serving: {known})")
    if version is not None and version.lstrip("v") != str(served.number):
        candidate = releases.candidate_for(state, name, version)
        if candidate is not None:
            return candidate
        release = state.releases.get(name)
        beside = f" and its {release.mode} {release.served.id}" if release is not None else ""
        raise BadRequest(
            404,
            f"version {version} of {name} is not served (serving {served.id}{beside}): "
            f"use /v2/models/{name}/infer for the current version",
        )
    return served


async def predict(
    served: Served, rows: Rows, outputs: tuple[str, ...], divert: releases.Release | None = None
) -> Result:
    """``served``'s prediction, or, with ``divert`` (a canary drawn per batch), maybe the candidate's: the result
    says which (``diverted``), and an error the candidate raised names it (``BadRequest.served``)."""
    try:
        if served.batcher is not None:
            return await served.batcher.submit(rows, outputs, divert)
        if divert is not None and divert.draw():
            try:
                return replace(await predict(divert.served, rows, outputs), diverted=True)
            except BadRequest as exc:
                exc.served = divert.served
                raise
        return predict_now(served.model, rows, outputs, time.perf_counter())
    except DivertedError as exc:
        bad = _refusal(exc.error)
        bad.served = divert.served if divert is not None else None
        raise bad from None
    except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise _refusal(exc) from None


def _refusal(exc: Exception) -> BadRequest:
    """A model's error on a request as the 4xx the client gets."""
    if isinstance(exc, AttributeError):
        return BadRequest(422, f"{exc}: ask for outputs this model has")
    if isinstance(exc, (ValueError, TypeError, KeyError, IndexError)):
        first = (str(exc).splitlines() or [""])[0]
        return BadRequest(422, f"the model could not predict on this input ({type(exc).__name__}: {first})")
    raise exc


def finish(
    state: ServingState,
    request_id: str,
    served: Served,
    result: Result,
    t0: float,
    body: dict[str, Any],
    protocol_name: str,
    rows: Rows,
    probe: bool = False,
    buffers: list[bytes] | None = None,
) -> Response:
    """The answer, with its timing headers (``buffers``: binary output tensors, sent after the JSON as a binary
    extension response). The request goes to the recorder unless it is our own probe (a synthetic request must not
    count as traffic, enter drift or quality; the monitor keeps probes apart)."""
    total = time.perf_counter() - t0
    # queue: waiting for the model (micro-batching); proc: the predict call; total: all server time, so
    # parsing and validation are total - queue - proc, and the client's own total minus this is network time
    timing = f"queue;dur={result.queue_s * 1000:.3f}, proc;dur={result.proc_s * 1000:.3f}, total;dur={total * 1000:.3f}"
    state.requests += 1
    if not probe:
        record(state, request_id, served, result, t0, protocol_name, rows, total=total)
    headers = {"X-Request-ID": request_id, "Server-Timing": timing, "X-Batch-Size": str(result.batch_size)}
    if not buffers:
        return JSONResponse(body, headers=headers)
    header = json.dumps(body, separators=(",", ":")).encode()
    headers["Inference-Header-Content-Length"] = str(len(header))
    return Response(b"".join([header, *buffers]), media_type="application/octet-stream", headers=headers)


def record(
    state: ServingState,
    request_id: str,
    served: Served,
    result: Result | None,
    t0: float,
    protocol_name: str,
    rows: Rows,
    *,
    total: float | None = None,
    role: str | None = None,
    error: BadRequest | None = None,
) -> None:
    """Hand one prediction to the recorder (``role="shadow"``: computed by a shadow, not answered)."""
    settings = state.settings
    if settings.on_request is None:
        return
    total = time.perf_counter() - t0 if total is None else total
    if result is None:
        status, message = (error.status, error.message) if error is not None else (500, "no result")
        settings.on_request(
            {"time": time.time(), "model": served.name, "version": served.number, "request_id": request_id,
             "status": status, "error": message, "role": role}
        )  # fmt: skip
        return
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
            "rows": len(rows),
            "protocol": protocol_name,
            # references only: the recorder converts them on its own thread, off the request path
            "frame": rows,
            "outputs": result.outputs,
            "profile": served.profile,
            "role": role,
        }
    )


def failed(
    state: ServingState, request_id: str, exc: BadRequest, name: str | None, served: Served | None = None
) -> JSONResponse:
    """The error answer, recorded against the version that refused it (``served``: a canary's, once routed)."""
    settings = state.settings
    state.errors += 1
    if settings.on_request is not None and name:
        served = exc.served or (served if served is not None else state.models.get(name))
        settings.on_request(
            {
                "time": time.time(),
                "model": name,
                "version": served.number if served is not None else None,  # the version that refused it
                "request_id": request_id,
                "status": exc.status,
                "error": exc.message,
            }
        )
    return error_response(exc.status, exc.message, request_id)


async def infer(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    settings = state.settings
    t0 = time.perf_counter()
    request_id = _request_id(request)
    name = request.path_params["name"]
    served: Served | None = None
    try:
        version = request.path_params.get("version")
        served, divert = releases.route(state, request, served_for(state, name, version), version)
        body, tail = await _read_v2(request, settings)
        parsed = protocol.from_v2(body, served.schema, settings.max_rows, tail)
        result = await predict(served, parsed.rows, tuple(parsed.outputs), divert)
        if result.diverted and divert is not None:
            served = divert.served
    except BadRequest as exc:
        return failed(state, request_id, exc, name, served)
    out = []
    buffers = []
    for key in parsed.outputs:
        arr = np.asarray(result.outputs[key])
        datatype = protocol.v2_datatype(arr)
        tensor: dict[str, Any] = {"name": key, "shape": list(arr.shape), "datatype": datatype}
        if key in parsed.binary:
            buffers.append(protocol.binary_output(arr, datatype))
            tensor["parameters"] = {"binary_data_size": len(buffers[-1])}
        else:
            tensor["data"] = protocol.to_jsonable(arr.ravel())
        out.append(tensor)
    # the V2 protocol echoes the client's id; ours stays in X-Request-ID (what feedback and the request log use)
    client_id = body.get("id")
    plain = isinstance(client_id, (str, int)) and not isinstance(client_id, bool) and str(client_id)
    echoed = str(client_id)[:256] if plain else request_id
    payload = {"model_name": served.name, "model_version": str(served.number), "id": echoed, "outputs": out}
    probe = _is_probe(request, settings)
    response = finish(state, request_id, served, result, t0, payload, "v2", parsed.rows, probe, buffers)
    if probe:
        return response
    outputs = tuple(parsed.outputs)
    return releases.shadow_after(state, response, served, parsed.rows, outputs, request_id, "v2", predict, record)


async def invocations(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    settings = state.settings
    t0 = time.perf_counter()
    request_id = _request_id(request)
    served: Served | None = None
    try:
        if len(state.models) != 1:
            raise BadRequest(404, "/invocations needs exactly one served model: use /v2/models/{name}/infer")
        served, divert = releases.route(state, request, next(iter(state.models.values())), None)
        body = await read_json(request, settings)
        if isinstance(body, tuple):
            rows = protocol.from_csv(body[1], served.schema, settings.max_rows)
        else:
            rows = protocol.from_mlflow(body, served.schema, settings.max_rows)
        result = await predict(served, rows, ("predict",), divert)
        if result.diverted and divert is not None:
            served = divert.served
    except BadRequest as exc:
        return failed(state, request_id, exc, next(iter(state.models), None), served)
    payload = {"predictions": protocol.to_jsonable(result.outputs["predict"])}
    response = finish(state, request_id, served, result, t0, payload, "mlflow", rows)
    return releases.shadow_after(state, response, served, rows, ("predict",), request_id, "mlflow", predict, record)


async def metadata(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    try:
        served = served_for(state, request.path_params["name"], request.path_params.get("version"))
    except BadRequest as exc:
        return error_response(exc.status, exc.message)
    doc = served.doc
    outputs = [
        {"name": "predict", "datatype": "BYTES" if doc.get("task") == "classification" else "FP64", "shape": [-1]}
    ]
    if hasattr(served.model, "predict_proba"):
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, -1]})
    return JSONResponse(
        {
            "name": served.name,
            "versions": _versions(state, served),
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
    state: ServingState = request.app.state.serving
    try:
        served_for(state, request.path_params["name"], request.path_params.get("version"))
    except BadRequest as exc:
        return error_response(exc.status, exc.message)
    return JSONResponse({"name": request.path_params["name"], "ready": True})


async def feedback(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    settings = state.settings
    name = request.path_params["name"]
    try:
        served_for(state, name, None)
        body = await read_json(request, settings)
        ids, labels = _feedback_pairs(body)
    except BadRequest as exc:
        return error_response(exc.status, exc.message)
    state.feedback += len(ids)
    if settings.on_feedback is not None:
        settings.on_feedback(name, ids, labels)
    return JSONResponse({"accepted": len(ids)})


async def load_version(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    settings = state.settings
    """Swap in another version of a served model, through the same lifecycle gates as a switch.

    Body: ``{"version": "NAME@vN", "reason": "...", "force": false}``. The Deployer records the switch in the
    deployment record and the lifecycle; a swap made by anyone else is logged here, and the Deployer reports
    what the server really serves, so no record can claim another version."""
    if not settings.admin_token or not bearer_ok(request, settings.admin_token):
        return error_response(401, "model swaps need the admin token (Authorization: Bearer ...)")
    try:
        body = await read_json(request, settings)
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
        return error_response(exc.status, exc.message)
    peer_call = request.headers.get(workers.PEER_HEADER) == "1"
    async with state._swap_lock:
        try:
            admit = None if peer_call else (reason, force)  # the worker that was asked checked the gates
            served = await asyncio.get_running_loop().run_in_executor(None, lambda: state.load(spec, admit=admit))
        except Exception as exc:  # refused by a gate, or it does not load: the old version keeps serving
            return error_response(409, f"{spec} was not swapped in: {exc}")
        old = state.install(served)
        if settings.peers and not peer_call:
            failed_peers = await _swap_peers(state, spec, old)
            if failed_peers:
                return error_response(409, f"{spec} was not swapped in: {failed_peers}; {old.id if old else ''} serves")
    logger.warning(
        "swapped %s -> %s over /mm/v1/load (%s%s)",
        old.id if old else None,
        served.id,
        reason,
        ", forced" if force else "",
    )
    if old is not None and old.batcher is not None:
        asyncio.get_running_loop().call_later(5, old.batcher.close)  # let its in-flight batch finish
    return JSONResponse({"serving": served.id, "previous": old.id if old else None, "workers": settings.workers})


async def _swap_peers(state: ServingState, spec: str, old: Served | None) -> str:
    """Swap every other worker to ``spec``; if one cannot, put back ``old`` everywhere (this worker too) and say
    which failed: a deployment never serves two versions at once for longer than the swap takes."""
    settings = state.settings
    assert settings.admin_token is not None
    answers = await workers.pass_on(settings.peers, "/mm/v1/load", settings.admin_token, {"version": spec})
    failed = [f"worker at {peer}: {body.get('error', status)}" for peer, status, body in answers if status != 200]
    if failed and old is not None:
        state.install(old)
        swapped = [peer for peer, status, _ in answers if status == 200]
        await workers.pass_on(swapped, "/mm/v1/load", settings.admin_token, {"version": old.id})
    return "; ".join(failed)


async def flush(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    settings = state.settings
    if not settings.admin_token or not bearer_ok(request, settings.admin_token):
        return error_response(401, "flushing metrics needs the admin token (Authorization: Bearer ...)")
    if settings.on_flush is not None:
        await asyncio.get_running_loop().run_in_executor(None, settings.on_flush)
    if settings.peers and request.headers.get(workers.PEER_HEADER) != "1":
        await workers.pass_on(settings.peers, "/mm/v1/flush", settings.admin_token)
    return JSONResponse({"flushed": True})


async def status(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    settings = state.settings
    counts = {"requests": state.requests, "errors": state.errors, "feedback": state.feedback}
    per_worker = {}
    if settings.peers and request.headers.get(workers.PEER_HEADER) != "1":  # the deployment's totals
        per_worker["per_worker_requests"] = [state.requests]
        for code, body in await workers.gather_get(settings.peers, "/mm/v1/status", settings.token):
            peer = json.loads(body) if code == 200 else {}
            per_worker["per_worker_requests"].append(peer.get("requests"))  # None: that worker did not answer
            for key in counts:
                counts[key] += int(peer.get(key) or 0)
    return JSONResponse(
        {
            "server": "mm_magics",
            "version": __version__,
            "uptime_s": round(time.time() - state.started, 3),
            "models": {n: s.id for n, s in state.models.items()},
            "releases": {n: r.describe() for n, r in state.releases.items()},
            **counts,
            "batching": settings.batch,
            "workers": settings.workers,
            **per_worker,
        }
    )


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    state: ServingState = request.app.state.serving
    return JSONResponse({"ready": bool(state.models)}, status_code=200 if state.models else 503)


async def server_meta(request: Request) -> Response:
    return JSONResponse({"name": "mm_magics", "version": __version__, "extensions": ["mlflow", "feedback"]})


async def version(request: Request) -> Response:
    return Response(__version__, media_type="text/plain")


async def prometheus(request: Request) -> Response:
    """``GET /metrics``: Prometheus's text exposition (empty when the server runs without a recorder)."""
    settings = request.app.state.serving.settings
    metrics = settings.metrics
    if metrics is None:
        return Response(b"", media_type="text/plain; version=0.0.4; charset=utf-8")
    body, content_type = metrics.exposition()
    if settings.peers and request.headers.get(workers.PEER_HEADER) != "1":  # summed over every worker
        answers = await workers.gather_get(settings.peers, "/metrics", None)
        texts = [body.decode(), *(text.decode() for code, text in answers if code == 200)]
        body = workers.merge_expositions(texts)
    return Response(body, media_type=content_type)


async def ping(request: Request) -> Response:
    return Response("\n", media_type="text/plain")


def _is_probe(request: Request, settings: Any) -> bool:
    """A probe from our own tools carries the admin token in ``X-MM-Probe`` (so nobody else can hide traffic)."""
    marker = request.headers.get(PROBE_HEADER)
    return bool(marker and settings.admin_token and secrets.compare_digest(marker, settings.admin_token))


def bearer_ok(request: Request, token: str) -> bool:
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
    problem = label_problem(labels)
    if problem:
        raise BadRequest(422, problem)
    return ids, labels
