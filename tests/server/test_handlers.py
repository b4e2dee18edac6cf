"""Every /mm/api/ route through a real Jupyter server (pytest-jupyter's jp_fetch) over a real workspace: reads,
actions as one engine call each, Jupyter's authentication and XSRF, bad input as 4xx JSON, the version handshake."""

from __future__ import annotations

import json

import httpx
import pytest
from tornado.httpclient import HTTPClientError

from mm_magics import __version__


async def call(jp_fetch, *path, method="GET", body=None, **kwargs):
    """(status, JSON body) of a request, 4xx/5xx included."""
    data = json.dumps(body) if body is not None else (None if method in ("GET", "DELETE") else "")
    try:
        resp = await jp_fetch("mm", "api", *path, method=method, body=data, **kwargs)
    except HTTPClientError as exc:
        resp = exc.response
    text = resp.body.decode() if resp.body else ""
    is_json = "json" in resp.headers.get("Content-Type", "")
    return resp.code, (json.loads(text) if text and is_json else text or None)


async def test_version_handshake(jp_fetch, workspace):
    status, body = await call(jp_fetch, "version")
    assert status == 200 and body == {"version": __version__, "api": 1}
    status, body = await call(jp_fetch, "version", params={"client": "0.0.1"})
    assert status == 409
    assert body["error"].startswith(f"the Models panel is version 0.0.1 but the server extension is {__version__}")


async def test_reads(jp_fetch, workspace):
    status, body = await call(jp_fetch, "models")
    assert status == 200 and [m["name"] for m in body["models"]] == ["iris"] and body["models"][0]["latest"] == 2
    status, page = await call(jp_fetch, "models", "iris", "versions", params={"limit": "1"})
    assert status == 200 and [v["number"] for v in page["versions"]] == [2] and page["next_before"] == 2
    status, timeline = await call(jp_fetch, "models", "iris", "timeline")
    assert status == 200 and timeline["count"] == 2 and timeline["metric"] == "accuracy"
    status, version = await call(jp_fetch, "versions", "iris@v1")
    assert status == 200 and version["message"] == "first"
    status, details = await call(jp_fetch, "versions", "iris@v2", params={"details": "1"})
    assert status == 200 and details["diff"]["a"] == "iris@v1"
    assert {m["to"]: m["allowed"] for m in details["moves"]}["deploy"] is False
    status, diff = await call(jp_fetch, "diff", params={"a": "iris@v1", "b": "iris@v2", "agreement": "0"})
    assert status == 200 and diff["params"]
    status, picture = await call(jp_fetch, "models", "iris", "lifecycle", params={"version": "v2"})
    assert status == 200 and picture["stage"] == "evaluate" and len(picture["stages"]) == 6
    status, history = await call(jp_fetch, "history", params={"model": "iris"})
    assert status == 200 and history["entries"][0]["action"] == "gate"
    status, deployments = await call(jp_fetch, "deployments")
    assert status == 200 and deployments == {"deployments": []}
    status, series = await call(jp_fetch, "models", "iris", "series", params={"window": "1m"})
    assert status == 200 and len(series["t"]) == 60 and set(series["columns"]["rate"]) == {0.0}
    status, alerts = await call(jp_fetch, "models", "iris", "alerts")
    assert status == 200 and alerts == {"alerts": []}
    status, listed = await call(jp_fetch, "models", "iris", "stages", "evaluate")
    assert status == 200 and listed == {"versions": ["iris@v2", "iris@v1"]}
    status, spaces = await call(jp_fetch, "workspaces")
    assert status == 200 and spaces["found"] == ["."] and spaces["default"].endswith(".mm")


async def test_the_head_route_answers_304_until_something_changes(jp_fetch, workspace):
    first = await jp_fetch("mm", "api", "head")
    etag = first.headers["ETag"]
    with pytest.raises(HTTPClientError) as unchanged:
        await jp_fetch("mm", "api", "head", headers={"If-None-Match": etag})
    assert unchanged.value.code == 304
    workspace.registry.set_alias("iris@v1", "production")  # a change made elsewhere (another process, mm)
    moved = await jp_fetch("mm", "api", "head", headers={"If-None-Match": etag})
    assert moved.code == 200 and moved.headers["ETag"] != etag


async def test_actions_are_one_engine_call_each(jp_fetch, workspace):
    status, move = await call(jp_fetch, "versions", "iris@v2", "stage", method="POST", body={"stage": "retire"})
    assert status == 200 and move["to_stage"] == "retire" and workspace.lifecycle.stage("iris@v2") == "retire"
    alias_route = ("models", "iris", "aliases", "production")
    status, alias = await call(jp_fetch, *alias_route, method="PUT", body={"version": "v1"})
    assert status == 200 and alias["new"] == 1 and workspace.registry.aliases("iris") == {"production": 1}
    status, deleted = await call(jp_fetch, *alias_route, method="DELETE")
    assert status == 200 and workspace.registry.aliases("iris") == {}
    status, dep = await call(jp_fetch, "versions", "iris@v1", "deploy", method="POST", body={"message": "from REST"})
    try:
        assert status == 201 and dep["version"] == "iris@v1" and dep["status"] == "running"
        answer = httpx.post(dep["url"] + "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert answer.status_code == 200
        status, back = await call(jp_fetch, "models", "iris", "rollback", method="POST", body={"to": "v1"})
        assert status == 201 and back["version"]["number"] == 3 and back["deployment"]["version"] == "iris@v3"
    finally:
        status, stopped = await call(jp_fetch, "deployments", "iris", method="DELETE")
    assert status == 200 and stopped["name"] == "iris"


@pytest.mark.parametrize(
    ("path", "method", "body", "status", "says"),
    [
        (("versions", "iris@v9"), "GET", None, 404, "iris@v9"),
        (("models", "nope", "versions"), "GET", None, 404, "unknown model 'nope'"),
        (("models", "iris", "versions"), "GET", None, 400, None),  # with limit=0 below
        (("versions", "iris@v2", "stage"), "POST", {"stage": "deploy"}, 409, "accuracy >= 0.9"),
        (("versions", "iris@v2", "stage"), "POST", {}, 400, "'stage' must be a non-empty string"),
        (("versions", "iris@v2", "stage"), "POST", ["deploy"], 400, "must be a JSON object"),
        (("models", "iris", "aliases", "v1"), "PUT", {"version": "v1"}, 400, "alias"),
        (("models", "../etc", "versions"), "GET", None, 404, None),  # never reaches a handler: no route
        (("diff",), "GET", None, 400, "say which versions to compare"),
        (("deployments", "iris"), "DELETE", None, 404, "not deployed"),
    ],
)
async def test_bad_input_is_a_4xx_json_line(jp_fetch, workspace, path, method, body, status, says):
    params = {"limit": "0"} if path == ("models", "iris", "versions") else None
    got, answer = await call(jp_fetch, *path, method=method, body=body, params=params)
    assert 400 <= got < 500, (got, answer)
    if says is not None:
        assert got == status and says in answer["error"], answer
        assert "\n" not in answer["error"] and "Traceback" not in answer["error"]


async def test_no_token_no_answer_and_no_xsrf_no_action(jp_fetch, workspace, jp_serverapp):
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("mm", "api", "models", headers={"Authorization": ""})
    assert refused.value.code == 403
    # a browser session: the login cookie, but no XSRF token on a change
    login = await jp_fetch("mm", "api", "version", params={"token": jp_serverapp.identity_provider.token},
                           headers={"Authorization": ""})  # fmt: skip
    cookies = "; ".join(c.split(";")[0] for c in login.headers.get_list("Set-Cookie"))
    assert cookies
    with pytest.raises(HTTPClientError) as forged:
        await jp_fetch("mm", "api", "versions", "iris@v2", "stage", method="POST", body='{"stage": "retire"}',
                       headers={"Authorization": "", "Cookie": cookies})  # fmt: skip
    assert forged.value.code == 403 and workspace.lifecycle.stage("iris@v2") == "evaluate"


async def test_another_workspace_under_the_root_and_none_outside_it(jp_fetch, workspace, jp_root_dir):
    from mm_magics.engine import Workspace

    with Workspace.open(jp_root_dir / "team" / ".mm") as other:
        other.registry.commit("other", workspace.registry.checkout("iris@v1"), message="x", metrics={"accuracy": 0.9})
    status, spaces = await call(jp_fetch, "workspaces")
    assert spaces["found"] == [".", "team"]
    status, listing = await call(jp_fetch, "models", params={"workspace": "team"})
    assert status == 200 and [m["name"] for m in listing["models"]] == ["other"]
    status, outside = await call(jp_fetch, "models", params={"workspace": "../.."})
    assert status == 400 and "outside the server's root" in outside["error"]
    status, missing = await call(jp_fetch, "models", params={"workspace": "nowhere"})
    assert status == 400 and "no workspace at 'nowhere'" in missing["error"]


async def test_a_long_action_never_stalls_the_server(jp_fetch, workspace):
    """A deploy waits for its server to answer (seconds); reads answer meanwhile (it runs off the event loop)."""
    import asyncio

    deploy = asyncio.ensure_future(call(jp_fetch, "versions", "iris@v1", "deploy", method="POST", body={}))
    await asyncio.sleep(0.05)
    status, _ = await call(jp_fetch, "models")
    still_deploying = not deploy.done()  # the read came back while the deploy was still under way
    status_deploy, dep = await deploy
    try:
        assert status == 200 and status_deploy == 201 and still_deploying
    finally:
        await call(jp_fetch, "deployments", "iris", method="DELETE")
