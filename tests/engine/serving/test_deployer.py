"""A real server process on 127.0.0.1 and real HTTP clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine.errors import DeploymentError, MMError, TransitionError
from mm_magics.engine.monitoring.store import SQLiteStore
from mm_magics.engine.serving.deployer import Deployer, parse_server_timing

from ...waiting import wait_until


def v2_body(rows, outputs=("predict",)):
    return {
        "inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}],
        "outputs": [{"name": o} for o in outputs],
    }


def test_v2_and_mlflow_clients_get_model_predict(served):
    url, X, model = served["dep"].url, served["X"], served["logreg"]
    rows = X.iloc[::7].to_numpy().tolist()
    expected = model.predict(X.iloc[::7]).tolist()
    with httpx.Client(base_url=url) as client:
        v2 = client.post("/v2/models/iris/infer", json=v2_body(rows, ("predict", "predict_proba"))).json()
        assert v2["model_name"] == "iris" and v2["model_version"] == "1"
        by_name = {o["name"]: o for o in v2["outputs"]}
        assert by_name["predict"]["data"] == expected and by_name["predict"]["shape"] == [len(rows)]
        assert np.allclose(
            np.reshape(by_name["predict_proba"]["data"], by_name["predict_proba"]["shape"]),
            model.predict_proba(X.iloc[::7]),
        )
        pinned = client.post("/v2/models/iris/versions/1/infer", json=v2_body(rows)).json()
        assert pinned["outputs"][0]["data"] == expected
        split = {"dataframe_split": {"columns": list(X.columns), "data": rows}}
        records = {"dataframe_records": X.iloc[::7].to_dict(orient="records")}
        for body in (split, records, {"instances": rows}, {"inputs": rows}):
            assert client.post("/invocations", json=body).json() == {"predictions": expected}
        csv = X.iloc[::7].to_csv(index=False)
        resp = client.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
        assert resp.json() == {"predictions": expected}


def test_health_metadata_and_mlflow_endpoints(served):
    with httpx.Client(base_url=served["dep"].url) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").status_code == 200
        assert client.get("/v2/models/iris/ready").json()["ready"] is True
        meta = client.get("/v2/models/iris").json()
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
        assert meta["parameters"]["feature_names"][0] == "sepal length (cm)"
        assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
        assert client.get("/v2").json()["name"] == "mm_magics"
        assert client.get("/ping").status_code == 200 and client.get("/health").status_code == 200
        assert client.get("/version").text


def test_timing_and_request_ids(served):
    with httpx.Client(base_url=served["dep"].url) as client:
        resp = client.post("/v2/models/iris/infer", json=v2_body([[5.1, 3.5, 1.4, 0.2]]))
        timing = parse_server_timing(resp.headers["server-timing"])
        assert set(timing) == {"queue", "proc", "total"}
        assert timing["total"] >= timing["proc"] >= 0
        rid = resp.headers["x-request-id"]
        assert resp.json()["id"] == rid and len(rid) == 32
        mine = client.post(
            "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}, headers={"X-Request-ID": "client-abc-1"}
        )
        assert mine.headers["x-request-id"] == "client-abc-1"
    prediction = served["deployer"].predict("iris", served["X"].iloc[:2])
    lat = prediction.latency_ms
    assert prediction.outputs["predict"] == [0, 0] and prediction.request_id
    assert lat["total"] >= lat["server"] and lat["network"] >= 0
    assert "network" in str(prediction)


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "text"),
    [
        ("post", "/v2/models/iris/infer", {"content": b"{not json"}, 400, "not valid JSON"),
        (
            "post",
            "/v2/models/iris/infer",
            {"json": {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}},
            422,
            "expects 4 features",
        ),
        ("post", "/v2/models/iris/infer", {"json": v2_body([[1, 2, 3, 4]], ("explain",))}, 422, "unknown output"),
        ("post", "/v2/models/nope/infer", {"json": v2_body([[1, 2, 3, 4]])}, 404, "not served here"),
        ("post", "/v2/models/iris/versions/9/infer", {"json": v2_body([[1, 2, 3, 4]])}, 404, "serving iris@v"),
        (
            "post",
            "/invocations",
            {"content": b"<x/>", "headers": {"Content-Type": "application/xml"}},
            415,
            "not supported",
        ),
        ("post", "/invocations", {"content": b"x" * (9 * 1024 * 1024)}, 413, "byte limit"),
        ("post", "/invocations", {"json": {"instances": [[0, 0, 0, 0]] * 10_001}}, 413, "over the limit"),
        ("post", "/invocations", {"json": {"instances": [["a", 1, 2, 3]]}}, 422, "must be numeric"),
        ("get", "/v2/models/iris/infer", {}, 405, "check the HTTP method"),
        ("get", "/nowhere", {}, 404, "served endpoints"),
        ("post", "/v2/models/iris/feedback", {"json": {"ids": ["a"], "labels": []}}, 422, "one label per"),
        ("post", "/mm/v1/load", {"json": {"version": "iris@v2"}}, 401, "admin token"),
    ],
)
def test_bad_requests_get_4xx_json(served, method, path, kwargs, status, text):
    resp = httpx.request(method, served["dep"].url + path, timeout=30, **kwargs)
    assert resp.status_code == status
    assert text in resp.json()["error"]


payloads = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
v2_like = st.fixed_dictionaries(
    {
        "inputs": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.text(max_size=5),
                    "shape": st.lists(st.integers(-2, 5), max_size=3),
                    "datatype": st.sampled_from(["FP64", "INT64", "BYTES", "BOOL", "nope"]),
                    "data": payloads,
                }
            ),
            max_size=3,
        )
    }
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=payloads | v2_like, path=st.sampled_from(["/v2/models/iris/infer", "/invocations"]))
def test_fuzzed_payloads_never_5xx(served, body, path):
    # json.dumps, not httpx's encoder: NaN and Infinity literals are exactly the kind of input a server must survive
    resp = httpx.post(
        served["dep"].url + path, content=json.dumps(body), timeout=30, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code < 500, resp.text
    if resp.status_code != 200:
        assert "error" in resp.json()


def test_server_survives_the_fuzz(served):
    assert httpx.get(served["dep"].url + "/v2/health/ready").status_code == 200
    status = httpx.get(served["dep"].url + "/mm/v1/status").json()
    assert status["requests"] > 0 and status["errors"] > 0


def test_feedback_is_accepted(served):
    url = served["dep"].url
    rid = httpx.post(url + "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).headers["x-request-id"]
    resp = httpx.post(url + "/v2/models/iris/feedback", json={"ids": [rid], "labels": [0]})
    assert resp.json() == {"accepted": 1}
    resp = httpx.post(url + "/v2/models/iris/feedback", json={"feedback": [{"id": rid, "label": 0}]})
    assert resp.json() == {"accepted": 1}
    store = SQLiteStore(served["ws"].run_dir / "metrics.sqlite")

    # the server's recorder writes off the request path, a few times a second
    def joined_with_rid() -> list:
        joined = store.joined_feedback("iris", 0)
        return [joined] if rid in set(joined["request_id"]) else []

    (joined,) = wait_until(joined_with_rid, "the feedback joined to its request")
    row = joined[joined["request_id"] == rid].iloc[-1]
    assert json.loads(row["prediction"]) == [0] and json.loads(row["label"]) == 0
    store.close()


def test_labels_that_cannot_score_are_refused_in_one_line(served):
    """A null, a non-finite number (JSON's 1e309 parses to infinity), a nested list or an empty list is not a ground
    truth: the route answers 422 naming it, and nothing is written (one such label moved a live F1)."""
    url = served["dep"].url
    rid = httpx.post(url + "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]}).headers["x-request-id"]
    store = served["ws"].monitor.store
    before = len(store.joined_feedback("iris", 0))
    for raw, said in (
        ('{"ids": ["%s"], "labels": [null]}', "label 0 is null"),
        ('{"ids": ["%s"], "labels": [1e309]}', "label 0 is inf, not a finite number"),
        ('{"ids": ["%s"], "labels": [[[1]]]}', "label 0 holds a list inside a row's value"),
        ('{"ids": ["%s"], "labels": [[]]}', "label 0 is an empty list"),
        ('{"feedback": [{"id": "%s", "label": {"a": 1}}]}', "label 0 holds a dict"),
    ):
        resp = httpx.post(
            url + "/v2/models/iris/feedback", content=raw % rid, headers={"Content-Type": "application/json"}
        )
        assert resp.status_code == 422 and said in resp.json()["error"], resp.text
        assert "\n" not in resp.json()["error"]
    with pytest.raises(MMError, match="label 1 is nan, not a finite number"):
        served["ws"].monitor.record_feedback("iris", [rid, rid], [0, float("nan")])
    served["deployer"].flush_metrics("iris")
    assert len(store.joined_feedback("iris", 0)) == before  # nothing written


def test_rollback_under_load_loses_nothing(served):
    """A client hammers the endpoint while the deployment switches v1 -> v2 -> back (rollback): zero errors."""
    deployer, url = served["deployer"], served["dep"].url
    stop = threading.Event()
    results: list[tuple[int, str]] = []
    row = served["X"].iloc[[60]].to_numpy().tolist()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline and len(results) < 20_000:
                resp = c.post("/v2/models/iris/infer", json=v2_body(row))
                results.append((resp.status_code, resp.json().get("model_version", "")))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()

    def answered_by(version: str) -> None:
        """Let the clients run until the given version has answered a few requests (no fixed sleeps: CI is slow)."""
        deadline = time.monotonic() + 30
        while [v for _, v in results[-200:]].count(version) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)

    answered_by("1")
    deployer.switch("iris", "iris@v2", reason="try the tree", force=True)
    answered_by("2")
    version, dep = deployer.rollback("iris", "v1", "tree misbehaves: back to logreg")
    answered_by(str(version.number))
    stop.set()
    for t in threads:
        t.join()
    statuses = {s for s, _ in results}
    served_versions = [v for _, v in results]
    assert statuses == {200}, f"{len(results)} requests, statuses {statuses}"
    assert {"1", "2", str(version.number)} <= set(served_versions)
    assert dep.version == version.id and deployer.get("iris").version == version.id
    assert version.rollback_of == "iris@v2" and version.parent == "iris@v1"
    history = [h["action"] for h in deployer.get("iris").history]
    assert history == ["deploy", "switch", "switch"]


def test_refused_gate_refuses_deployment(served):
    ws, deployer = served["ws"], served["deployer"]
    ws.registry.commit(
        "weak",
        served["tree"],
        message="weak",
        metrics={"accuracy": 0.5},
        schema=served["ws"].registry.get("iris@v1").schema,
    )
    ws.lifecycle.set_gates("weak", ["accuracy >= 0.9"])
    with pytest.raises(TransitionError, match="weak@v1 cannot enter deploy"):
        deployer.deploy("weak@v1")
    assert deployer.get("weak") is None


def test_a_port_that_cannot_be_used_refuses_the_deployment_up_front(served):
    ws, deployer = served["ws"], served["deployer"]
    ws.registry.commit(
        "porty", served["logreg"], message="p", metrics={"accuracy": 0.99}, schema=ws.registry.get("iris@v1").schema
    )
    taken = int(served["dep"].url.rsplit(":", 1)[1])  # iris's server listens there
    with pytest.raises(DeploymentError, match=f"port {taken} on 127.0.0.1 is in use: pick another --port"):
        deployer.deploy("porty", port=taken)
    with pytest.raises(DeploymentError, match="port 99999 is not a TCP port"):
        deployer.deploy("porty", port=99999)
    assert deployer.get("porty") is None and not list(ws.run_dir.glob("deployments/porty*.state.json"))
    assert ws.registry.get("porty@v1").stage == "evaluate"  # the lifecycle did not move for a deployment that never was
    assert httpx.get(served["dep"].url + "/v2/health/ready").status_code == 200  # iris serves on, untouched


def test_a_server_that_fails_to_start_leaves_the_lifecycle_as_it_was(served):
    ws, deployer = served["ws"], served["deployer"]
    v = ws.registry.commit(
        "broken", served["tree"], message="b", metrics={"accuracy": 0.99}, schema=ws.registry.get("iris@v1").schema
    )
    path = ws.objects.path(v.sha256)
    path.chmod(0o644)
    path.write_bytes(b"not the model")
    with pytest.raises(TransitionError, match="artifact intact: artifact of broken@v1 is corrupted"):
        deployer.deploy("broken@v1")  # the deploy gate checks the artifact before any server starts
    # forced past the gate, the server itself verifies the hash and refuses: its one-line reason, no traceback
    with pytest.raises(DeploymentError, match="stopped before it was ready: artifact of broken@v1 is corrupted") as err:
        deployer.deploy("broken@v1", force=True, reason="see what the server says")
    assert "Traceback" not in str(err.value) and "\n" not in str(err.value)
    assert ws.registry.get("broken@v1").stage == "evaluate" and deployer.get("broken") is None
    assert [h.action for h in ws.registry.history("broken")] == ["commit"]  # no transition was recorded


def test_ctrl_c_while_a_server_starts_leaves_no_server_behind(served):
    ws = served["ws"]
    ws.registry.commit(
        "slow", served["logreg"], message="s", metrics={"accuracy": 0.99}, schema=ws.registry.get("iris@v1").schema
    )
    pgrep = ["pgrep", "-f", "--", "--version=slow@v1 "]

    def interrupt_once_the_server_runs() -> None:
        wait_until(lambda: subprocess.run(pgrep, capture_output=True).stdout, "the server process", every=0.01)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C (or a kernel interrupt) does to %mm_deploy

    threading.Thread(target=interrupt_once_the_server_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        served["deployer"].deploy("slow")
    assert subprocess.run(pgrep, capture_output=True, text=True).stdout.split() == []
    assert served["deployer"].get("slow") is None and ws.registry.get("slow@v1").stage == "evaluate"


def test_influxdb_configured_without_its_client_says_so_in_the_monitor(served, tmp_path, monkeypatch):
    from mm_magics.engine.monitoring.live import Monitor

    ws = served["ws"]
    ws.registry.commit(
        "lonely", served["logreg"], message="l", metrics={"accuracy": 0.99}, schema=ws.registry.get("iris@v1").schema
    )
    shadow = tmp_path / "shadow" / "influxdb_client"  # a server environment without the [influx] extra
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'influxdb_client'\")\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow.parent))
    monkeypatch.setenv("INFLUXDB_V2_URL", "http://127.0.0.1:9")
    dep = served["deployer"].deploy("lonely")
    try:
        state = Monitor(ws).sink_state()
        assert state["connected"] is False and "pip install 'mm_magics[influx]'" in state["last_error"]
        assert "influx: DOWN, 0 spooled (influxdb-client is not installed" in str(Monitor(ws).snapshot("lonely"))
        assert "InfluxDB is configured but influxdb-client is not installed" in Path(dep.log).read_text()
    finally:
        served["deployer"].undeploy("lonely")
        (ws.run_dir / "influx-state.json").unlink(missing_ok=True)


def test_two_kernels_deploying_one_model_at_once_start_one_server(served):
    ws = served["ws"]
    ws.registry.commit(
        "twin", served["logreg"], message="t", metrics={"accuracy": 0.99}, schema=ws.registry.get("iris@v1").schema
    )
    for _ in range(2):  # first deploy (the version enters deploy), then a redeploy (it is there already)
        with ThreadPoolExecutor(2) as pool:  # two Deployers, as two kernels would have
            deps = list(pool.map(lambda _: Deployer(ws).deploy("twin"), range(2)))
        assert deps[0].pid == deps[1].pid and deps[0].url == deps[1].url
        pgrep = ["pgrep", "-f", "--", "--version=twin@v1 "]
        servers = subprocess.run(pgrep, capture_output=True, text=True).stdout.split()
        assert servers == [str(deps[0].pid)], "a second server for the same model would serve on, unowned"
        served["deployer"].undeploy("twin")


def test_killed_server_is_detected_as_stale(served):
    ws, deployer = served["ws"], served["deployer"]
    ws.registry.commit(
        "victim", served["logreg"], message="v", metrics={"accuracy": 0.99}, schema=ws.registry.get("iris@v1").schema
    )
    dep = deployer.deploy("victim")
    assert deployer.get("victim").status == "running"
    os.kill(dep.pid, signal.SIGKILL)
    wait_until(lambda: deployer.get("victim").status == "stale", "the killed server to show as stale")
    assert {d.name: d.status for d in deployer.list()}["victim"] == "stale"
    with pytest.raises(DeploymentError, match="stale"):
        deployer.switch("victim", "victim@v1")
    fresh = deployer.deploy("victim")  # redeploying replaces the stale record
    assert fresh.status == "running" and fresh.pid != dep.pid
    deployer.undeploy("victim")
    with pytest.raises(DeploymentError, match="not deployed"):
        deployer.undeploy("victim")


def test_batching_groups_concurrent_requests_and_never_holds_a_lone_one(served):
    ws = served["ws"]
    ws.registry.commit(
        "batched", served["logreg"], message="b", metrics={"accuracy": 0.99}, schema=ws.registry.get("iris@v1").schema
    )
    deployer = Deployer(ws)
    dep = deployer.deploy("batched", batch=True)
    try:
        body = v2_body([[5.1, 3.5, 1.4, 0.2]])
        with httpx.Client(base_url=dep.url) as client:
            lone = [client.post("/v2/models/batched/infer", json=body) for _ in range(5)]
        assert {r.headers["x-batch-size"] for r in lone} == {"1"}

        def one(_: int) -> httpx.Response:
            return httpx.post(dep.url + "/v2/models/batched/infer", json=body, timeout=30)

        with ThreadPoolExecutor(32) as pool:
            responses = list(pool.map(one, range(256)))
        assert {r.status_code for r in responses} == {200}
        assert all(r.json()["outputs"][0]["data"] == [0] for r in responses)
        assert max(int(r.headers["x-batch-size"]) for r in responses) > 1
    finally:
        deployer.undeploy("batched")


def test_token_is_required_off_loopback_and_enforced(served, tmp_path):
    env = {**os.environ}
    off = subprocess.run(
        [
            sys.executable,
            "-m",
            "mm_magics.engine.serving.server",
            "--workspace",
            str(served["ws"].root),
            "--version",
            "iris@v1",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert off.returncode == 2 and "without a bearer token" in off.stderr
    ws = served["ws"]
    ws.registry.commit(
        "secured", served["logreg"], message="s", metrics={"accuracy": 0.99}, schema=ws.registry.get("iris@v1").schema
    )
    deployer = Deployer(ws)
    # what a user gets with `%mm_deploy secured --host 0.0.0.0`: the server insists on the workspace token
    dep = deployer.deploy("secured", host="0.0.0.0")
    token = (ws.run_dir / "secrets" / "token").read_text().strip()
    assert dep.token_required and token
    try:
        body = v2_body([[5.1, 3.5, 1.4, 0.2]])
        assert httpx.post(dep.url + "/v2/models/secured/infer", json=body).status_code == 401
        bad = httpx.post(dep.url + "/v2/models/secured/infer", json=body, headers={"Authorization": "Bearer no"})
        assert bad.status_code == 401 and "bearer token" in bad.json()["error"]
        ok = httpx.post(dep.url + "/v2/models/secured/infer", json=body, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert httpx.get(dep.url + "/v2/health/ready").status_code == 200  # probes stay open
        assert deployer.get("secured").status == "running"  # the health check itself carries the token
    finally:
        deployer.undeploy("secured")
        deployer.close()


def test_the_admin_load_route_passes_the_deploy_gates_and_the_record_tells_the_truth(served):
    """Anyone holding the admin token can POST /mm/v1/load: it checks the same gates a switch does, and a swap made
    that way (not through the Deployer) shows in the deployment as what really serves, never a stale record."""
    ws, deployer = served["ws"], served["deployer"]
    dep = deployer.get("iris")
    admin = {"Authorization": f"Bearer {deployer.secret('admin-token')}"}
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(served["X"], served["y"])  # an artifact of its own
    weak = ws.registry.commit(
        "iris", stump, message="weak", metrics={"accuracy": 0.5}, schema=ws.registry.get("iris@v1").schema
    )
    resp = httpx.post(f"{dep.url}/mm/v1/load", json={"version": weak.id}, headers=admin, timeout=60)
    assert resp.status_code == 409 and "worse than deployed" in resp.json()["error"]
    resp = httpx.post(f"{dep.url}/mm/v1/load", json={"version": "other@v1"}, headers=admin, timeout=60)
    assert resp.status_code == 409 and "not a version of the served model" in resp.json()["error"]
    assert deployer.get("iris").version == dep.version and deployer.get("iris").note is None

    resp = httpx.post(
        f"{dep.url}/mm/v1/load", json={"version": weak.id, "force": True, "reason": "drill"}, headers=admin, timeout=60
    )
    assert resp.status_code == 200, resp.text
    seen = deployer.get("iris")
    assert seen.version == weak.id and "swapped outside" in seen.note and weak.id in str(seen)
    deployer.switch("iris", dep.version, reason="back to what the record says", force=True)
    assert deployer.get("iris").version == dep.version and deployer.get("iris").note is None


@pytest.mark.parametrize(
    "argv, text",
    [
        (["predict", "iris", "[[NaN, 1, 2, 3]]"], "replace NaN and infinite values"),
        (["predict", "iris", "[[1e999, 1, 2, 3]]"], "replace NaN and infinite values"),
        (["predict", "iris", "[[1, 2, 3]]"], "expects 4 features"),
        (["probe", "iris", "-n", "0"], "from 1 to"),
        (["feedback", "iris", "--ids", "[]", "--labels", "[]"], "no feedback given"),
    ],
)
def test_mistakes_against_a_running_deployment_get_one_line(served, capsys, argv, text):
    from mm_magics.cli import main

    assert main(["-C", str(served["ws"].root), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mm: error:") and err.count("\n") == 1 and text in err, err
