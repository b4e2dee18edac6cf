"""Docker deployments against a real Docker engine: real image builds, real containers, real HTTP on 127.0.0.1.

The runner alone (build, start, status, stop) is tested through :class:`DockerRunner`; what involves the deployment
record (deploy, switch, undeploy, stale records) through the :class:`Deployer`, which owns records and the lock.

Skipped only when no engine is reachable *and* ``CI`` is unset; in CI a missing engine fails (``.ci/run`` runs
``scripts/setup-docker.sh``). Base image: ``$MM_DOCKER_BASE_IMAGE``, else ``local/python:3.11`` when present, else
``python:3.11-slim``. The first run on a machine builds the shared runtime image (about a minute); later runs reuse it.
Deselect with ``-m "not docker"``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from mm_magics.engine.errors import DeploymentError, MMError
from mm_magics.engine.serving.deployer import Deployer
from mm_magics.engine.serving.deployments import DeploymentStore
from mm_magics.engine.serving.docker_runner import LABEL, DockerRunner

from ...conftest import commit_kwargs
from ...waiting import wait_until

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


# -- fixtures (docker_client, base_image, runner, deployer: tests/engine/serving/docker_fixtures.py) ----------
@pytest.fixture
def two_versions(ws, iris, models):
    """iris@v1 (logistic regression) and iris@v2 (a tree), committed with the same environment."""
    X, y = iris
    v1 = ws.registry.commit("iris", models["logreg"], message="logreg", **commit_kwargs(X, y))
    v2 = ws.registry.commit("iris", models["tree"], message="tree", parent="iris@v1", **commit_kwargs(X, y, 0.93))
    return v1, v2


# -- a tiny real HTTP client ---------------------------------------------------------------------------------------
def _token(ws) -> str:
    return (ws.run_dir / "secrets" / "token").read_text().strip()


def post(url: str, body: dict, token: str | None, timeout: float = 10.0) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def v2_body(X) -> dict:
    return {"inputs": [{"name": "input-0", "shape": list(X.shape), "datatype": "FP64", "data": X.values.tolist()}]}


# -- tests ---------------------------------------------------------------------------------------------------------
def test_build_run_and_predict_over_both_protocols(ws, deployer, docker_client, iris, models, two_versions):
    X, _ = iris
    started = time.perf_counter()
    dep = deployer.deploy("iris@v1", docker=True)
    status, body = post(f"{dep.url}/v2/models/iris/infer", v2_body(X.iloc[:3]), _token(ws))
    first_request = time.perf_counter() - started
    print(f"start -> first successful request: {first_request:.2f}s")  # informational; tests never assert timings
    assert status == 200, body

    record = DeploymentStore(ws.run_dir).get("iris")
    assert record is not None and record.container_id == dep.container_id
    assert (record.runner, record.host, record.version) == ("docker", "127.0.0.1", "iris@v1")
    assert record.token_required
    assert dep.url == f"http://127.0.0.1:{dep.port}"
    container = docker_client.containers.get(dep.container_id)
    assert container.labels[f"{LABEL}.version"] == "iris@v1"
    assert container.attrs["HostConfig"]["Init"] is True
    assert container.ports["8000/tcp"][0]["HostIp"] == "127.0.0.1"
    assert deployer.get("iris").status == "running"
    assert ws.registry.get("iris@v1").stage == "deploy"

    expected = models["logreg"].predict(X).tolist()
    status, body = post(f"{dep.url}/v2/models/iris/infer", v2_body(X), _token(ws))
    assert status == 200, body
    assert body["model_version"] == "1"
    assert body["outputs"][0]["data"] == expected

    split = {"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}}
    status, body = post(f"{dep.url}/invocations", split, _token(ws))
    assert status == 200, body
    assert body["predictions"] == expected

    # listening on 0.0.0.0 inside the container means the server insists on the workspace token
    status, body = post(f"{dep.url}/v2/models/iris/infer", v2_body(X.iloc[:1]), None)
    assert status == 401, body


def test_a_container_runs_two_workers_and_a_switch_keeps_them(ws, deployer, iris, models, two_versions):
    """``--workers 2`` inside the container: both answer (the status sums them), and the replacement container of
    a switch runs two as well."""
    X, _ = iris
    dep = deployer.deploy("iris@v1", docker=True, workers=2)
    for i in range(30):
        status, body = post(f"{dep.url}/v2/models/iris/infer", v2_body(X.iloc[[i]]), _token(ws))
        assert status == 200, body
    request = urllib.request.Request(f"{dep.url}/mm/v1/status", headers={"Authorization": f"Bearer {_token(ws)}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        served = json.loads(resp.read())
    assert served["workers"] == 2 and served["requests"] >= 30 and len(served["per_worker_requests"]) == 2
    switched = deployer.deploy("iris@v2", docker=True, workers=2, force=True, reason="the tree, whatever its score")
    assert switched.workers == 2
    status, body = post(f"{switched.url}/v2/models/iris/infer", v2_body(X), _token(ws))
    assert status == 200 and body["outputs"][0]["data"] == models["tree"].predict(X).tolist()


def test_a_new_version_rebuilds_only_the_last_layer(runner, docker_client, two_versions):
    v1, v2 = two_versions
    first = runner.build(v1)
    second = runner.build(v2)
    assert not second.runtime_built and second.runtime == first.runtime
    # the build log: FROM the shared runtime, then one COPY of the bundle; nothing else runs
    steps = [line for line in second.log if line.startswith("Step ")]
    assert "FROM mm-magics/runtime:" in steps[0] and "COPY bundle/" in steps[1], steps
    assert not any(" RUN " in s for s in steps), steps

    one, two = (docker_client.images.get(b.image_id) for b in (first, second))
    layers1, layers2 = one.attrs["RootFS"]["Layers"], two.attrs["RootFS"]["Layers"]
    runtime_layers = docker_client.images.get(first.runtime).attrs["RootFS"]["Layers"]
    assert layers1[:-1] == layers2[:-1] == runtime_layers, "the versions must share every layer but the last"
    assert len(layers1) == len(layers2) == len(runtime_layers) + 1
    assert layers1[-1] != layers2[-1]
    top = next(h for h in two.history() if h["Size"] > 0)  # newest filesystem layer: the bundle, and it is small
    assert "COPY" in top["CreatedBy"] and top["Size"] < 5_000_000, top

    # building the same version again is a full cache hit
    again = runner.build(v2)
    assert again.image_id == second.image_id and again.cached_steps >= 1


def test_stop_is_graceful_and_removes_container_image_and_record(
    ws, deployer, runner, docker_client, iris, two_versions
):
    import docker.errors

    from mm_magics.engine.monitoring.store import SQLiteStore

    X, _ = iris
    v1, v2 = two_versions
    deployer.docker().stop_timeout = 30
    dep = deployer.deploy("iris@v1", docker=True)
    ids = []
    for i in range(5):
        status, body = post(f"{dep.url}/v2/models/iris/infer", v2_body(X.iloc[i : i + 1]), _token(ws))
        assert status == 200
        ids.append(body["id"])
    # stopped right after the last request: only a server that got SIGTERM (init=True) writes what its recorder
    # still holds on shutdown; a SIGKILL after the timeout would lose them. Proven by data, not by a stopwatch.
    deployer.undeploy("iris")
    assert set(ids) <= set(SQLiteStore(ws.run_dir / "metrics.sqlite").requests("iris", 0)["request_id"])
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(dep.container_id)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(dep.image)
    assert DeploymentStore(ws.run_dir).get("iris") is None
    docker_client.images.get(runner.build(v1).runtime)  # the shared runtime stays for the next deploy

    kept = runner.start(v2)
    runner.stop(kept, keep_image=True)
    docker_client.images.get(kept.image)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(kept.container_id)
    with pytest.raises(DeploymentError, match="not deployed"):
        deployer.undeploy("iris")


def test_killed_or_removed_containers_are_stale(ws, deployer, runner, docker_client, two_versions):
    dep = deployer.deploy("iris@v1", docker=True)
    container = docker_client.containers.get(dep.container_id)

    container.pause()
    assert runner.status(dep) == "unhealthy"
    container.unpause()
    assert runner.status(dep) == "running"

    container.kill()
    assert runner.status(dep) == "stale"

    assert deployer.get("iris").status == "stale"

    import docker.errors

    again = deployer.deploy("iris@v1", docker=True)  # a stale record is replaced, its leftovers removed
    assert again.container_id != dep.container_id and runner.status(again) == "running"
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(dep.container_id)
    assert deployer.deploy("iris@v1", docker=True).container_id == again.container_id  # already served: a no-op
    docker_client.containers.get(again.container_id).remove(force=True)
    assert deployer.get("iris").status == "stale"
    deployer.undeploy("iris")  # undeploying a stale deployment cleans up without complaint
    assert DeploymentStore(ws.run_dir).get("iris") is None


def test_switch_under_load_drops_no_request(ws, deployer, runner, docker_client, iris, two_versions):
    X, _ = iris
    first = deployer.deploy("iris@v1", docker=True)
    store, token, body = DeploymentStore(ws.run_dir), _token(ws), v2_body(X.iloc[:2])
    errors: list[str] = []
    seen: list[str] = []
    done = threading.Event()

    def client() -> None:
        deadline = time.monotonic() + 120
        while len(seen) + len(errors) < 20_000 and time.monotonic() < deadline:
            url = store.get("iris").url  # resolve the URL from the record for every request
            assert url.startswith("http://127.0.0.1:")
            try:
                status, payload = post(f"{url}/v2/models/iris/infer", body, token, timeout=10)
            except Exception as exc:
                errors.append(f"{url}: {type(exc).__name__}: {exc}")
                continue
            if status != 200:
                errors.append(f"{url}: {status} {payload}")
            else:
                seen.append(payload["model_version"])
            if done.is_set() and seen[-5:] == ["2"] * 5:
                break

    thread = threading.Thread(target=client)
    thread.start()
    while len(seen) < 20 and thread.is_alive():
        time.sleep(0.01)
    new = deployer.switch("iris", "iris@v2", force=True)  # v2 scores lower: the no-regression gate is overridden
    time.sleep(0.5)
    done.set()
    thread.join(150)
    assert not thread.is_alive()

    assert errors == []
    assert seen[0] == "1" and seen[-1] == "2" and seen.index("2") > 0
    assert "1" not in seen[seen.index("2") :], "once the new version answers, the old one never does again"
    print(f"{len(seen)} requests during the switch, none failed")
    record = store.get("iris")
    assert (record.version, record.container_id, record.url) == ("iris@v2", new.container_id, new.url)
    import docker.errors

    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(first.container_id)
    assert runner.status(new) == "running"
    assert [h["action"] for h in record.history] == ["deploy", "switch"]
    assert ws.registry.get("iris@v2").stage == "deploy" and ws.registry.get("iris@v1").stage == "retire"


def test_container_that_never_gets_ready_is_removed_with_its_logs(ws, runner, docker_client, two_versions):
    v1, _ = two_versions
    broken = dataclasses.replace(v1, schema={**v1.schema, "n_features": 7, "feature_names": None})
    with pytest.raises(DeploymentError) as info:
        runner.start(broken)
    message = str(info.value)
    assert "\n" not in message and "iris@v1" in message and "logs:" in message, message
    assert docker_client.containers.list(all=True, filters={"label": f"{LABEL}.workspace={ws.root}"}) == []


def test_missing_base_image_names_the_fix(ws, docker_client, two_versions):
    v1, _ = two_versions
    runner = DockerRunner(ws, "mm-magics-test/no-such-base:0")
    with pytest.raises(MMError) as info:
        runner.build(v1)
    message = str(info.value)
    assert "\n" not in message
    assert "mm docker-setup" in message and "local/python:3.11" in message, message


def test_unreachable_engine_names_the_fix(ws, two_versions, monkeypatch):
    v1, _ = two_versions
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    runner = DockerRunner(ws, "local/python:3.11")
    with pytest.raises(DeploymentError) as info:
        runner.build(v1)
    message = str(info.value)
    assert "\n" not in message and "mm docker-setup" in message, message


def test_without_the_docker_sdk_every_entry_point_names_the_extra(ws, two_versions, monkeypatch):
    """The quick start installs no [docker] extra: the notebook's "is Docker here?" check must answer, not raise."""
    import sys

    for module in [m for m in sys.modules if m == "docker" or m.startswith("docker.")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "docker", None)  # what `import docker` meets where the package is absent
    ok, why = Deployer(ws).docker_available()
    assert not ok and "pip install 'mm_magics[docker]'" in why
    v1, _ = two_versions
    missing = r"the docker SDK is not installed: pip install 'mm_magics\[docker\]'"
    for call in (lambda r: r.ensure_base_image(), lambda r: r.build(v1), lambda r: r.start(v1)):
        with pytest.raises(DeploymentError, match=missing):
            call(DockerRunner(ws, "local/python:3.11"))


def test_container_requests_reach_the_workspace_metric_store(ws, runner, iris, two_versions):
    """Metrics from a container land in the same embedded store as a local server's."""
    from mm_magics.engine.monitoring.store import SQLiteStore

    X, _ = iris
    v1, _ = two_versions
    dep = runner.start(v1)
    try:
        ids = []
        for i in range(5):
            request = urllib.request.Request(
                f"{dep.url}/v2/models/iris/infer",
                data=json.dumps(v2_body(X.iloc[[i]])).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {_token(ws)}"},
            )
            with urllib.request.urlopen(request, timeout=30) as resp:
                ids.append(resp.headers["X-Request-ID"])
        store = SQLiteStore(ws.run_dir / "metrics.sqlite")
        wait_until(lambda: set(ids) <= set(store.requests("iris", 0)["request_id"]), "the requests in the store")
        assert set(ids) <= set(store.requests("iris", 0)["request_id"])
        store.close()
    finally:
        runner.stop(dep)


def test_a_container_writes_to_an_influxdb_on_loopback(ws, runner, docker_client, iris, two_versions, victoria):
    """InfluxDB settings from local.json reach the container (the token as a file, never in its environment); an
    InfluxDB on 127.0.0.1 is reached through the host's network; %mm_monitor's flush works on containers too."""
    X, _ = iris
    v1, _ = two_versions
    secret = "influx-" + "s3cret" * 4
    ws.set_local(influx={"url": victoria.url, "org": "o", "bucket": "b", "token": secret})
    dep = runner.start(v1)
    try:
        attrs = docker_client.containers.get(dep.container_id).attrs
        env = attrs["Config"]["Env"]
        assert f"INFLUXDB_V2_URL={victoria.url}" in env and "INFLUXDB_V2_BUCKET=b" in env
        assert not any(secret in e for e in env) and secret not in json.dumps(attrs)
        assert attrs["HostConfig"]["NetworkMode"] == "host" and dep.url.startswith("http://127.0.0.1:")
        for i in range(10):
            status, _ = post(f"{dep.url}/v2/models/iris/infer", v2_body(X.iloc[[i]]), _token(ws))
            assert status == 200
        admin = (ws.run_dir / "secrets" / "admin-token").read_text().strip()
        status, body = post(f"{dep.url}/mm/v1/flush", {}, admin)
        assert (status, body) == (200, {"flushed": True})
    finally:
        runner.stop(dep)
    got = victoria.series('mm_request_latency_ms{model="iris"}', 10)
    assert sum(len(v) for v in got.values()) == 10
    ((_, labels),) = got
    assert dict(labels)["deployment"] == "iris" and dict(labels)["version"] == "1"


def test_a_container_takes_a_canary_and_a_shadow_then_promotes_in_place(ws, deployer, iris, models, two_versions):
    """A Docker deployment's release: the candidate's bundle is handed to the running container (no new image), the
    canary answers its share, a shadow records both versions under the same ids in the workspace store, and promote
    installs the candidate in the same container at the same URL while requests keep coming, none failing."""
    from collections import Counter

    from mm_magics.engine.monitoring.store import SQLiteStore

    X, _ = iris
    dep = deployer.deploy("iris@v1", docker=True)
    token = _token(ws)
    url = f"{dep.url}/v2/models/iris/infer"
    released = deployer.deploy("iris@v2", canary=40, force=True, reason="try the tree on live traffic")
    assert released.release["mode"] == "canary" and released.container_id == dep.container_id
    assert ws.registry.get("iris@v2").stage == "deploy"
    shares = Counter(post(url, v2_body(X.iloc[[i % 150]]), token)[1]["model_version"] for i in range(400))
    # binomial(400, 0.4): mean 160, sd 9.8; 5 sd either side
    assert 160 - 5 * 9.8 < shares["2"] < 160 + 5 * 9.8, shares

    deployer.deploy("iris@v2", shadow=True)  # a shadow replaces the canary
    ids = []
    for i in range(20):
        request = urllib.request.Request(
            url,
            data=json.dumps(v2_body(X.iloc[[i]])).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert json.loads(resp.read())["model_version"] == "1"
            ids.append(resp.headers["X-Request-ID"])
    store = SQLiteStore(ws.run_dir / "metrics.sqlite")

    def both_recorded() -> bool:
        deployer.flush_metrics("iris")
        reqs = store.requests("iris", 0)
        mine = reqs[reqs["request_id"].isin(ids)]
        return (
            set(mine[mine["role"] == "shadow"]["request_id"])
            == set(ids)
            == set(mine[mine["role"].isna()]["request_id"])
        )

    wait_until(both_recorded, "the champion's answers and the shadow's predictions in the workspace store")
    store.close()

    failures, stop = [], threading.Event()

    def load() -> None:
        while not stop.is_set():
            status, body = post(url, v2_body(X.iloc[[7]]), token)
            if status != 200:
                failures.append((status, body))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        promoted = deployer.promote("iris", reason="the tree")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert (promoted.version, promoted.url, promoted.container_id) == ("iris@v2", dep.url, dep.container_id)
    status, body = post(url, v2_body(X), token)
    assert status == 200 and body["model_version"] == "2"
    assert body["outputs"][0]["data"] == models["tree"].predict(X).tolist()
    assert ws.registry.get("iris@v1").stage == "retire"
    assert [h["action"] for h in deployer.get("iris").history][-3:] == ["canary", "shadow", "promote"]


def test_a_container_refuses_a_candidate_it_was_not_handed(ws, deployer, iris, two_versions):
    """The release route of a container loads only a bundle the runner delivered: asked for another version
    directly, it refuses in one line and keeps serving."""
    X, _ = iris
    dep = deployer.deploy("iris@v1", docker=True)
    admin = (ws.run_dir / "secrets" / "admin-token").read_text().strip()
    status, body = post(f"{dep.url}/mm/v1/release", {"action": "start", "version": "iris@v2", "mode": "shadow"}, admin)
    assert status == 409 and "was handed no bundle of iris@v2" in body["error"], body
    status, body = post(f"{dep.url}/v2/models/iris/infer", v2_body(X.iloc[:2]), _token(ws))
    assert status == 200 and body["model_version"] == "1"
