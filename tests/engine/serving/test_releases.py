"""Canary and shadow releases in a real local deployment, driven over HTTP as clients and the Deployer drive them:
the canary's share over 2 000 requests within binomial bounds, sticky routing by key, a shadow answering with the
champion while recording both, promote and abort under load with no failed request, and refusals in one line."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

from mm_magics.engine.errors import DeploymentError, MMError
from mm_magics.engine.serving.deployer import Deployer

from ...conftest import commit_kwargs
from ...waiting import wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def deployed(ws, iris, models):
    """iris@v1 (logistic regression) deployed; iris@v2 (a tree) committed beside it."""
    X, y = iris
    ws.registry.commit("iris", models["logreg"], message="logreg", **commit_kwargs(X, y))
    ws.registry.commit("iris", models["tree"], message="tree", parent="iris@v1", **commit_kwargs(X, y, 0.96))
    deployer = Deployer(ws)
    dep = deployer.deploy("iris@v1")
    with httpx.Client(base_url=dep.url, timeout=10) as client:
        yield deployer, client, X
    for d in deployer.list():
        deployer.undeploy(d.name)
    deployer.close()


def _body(X, i: int = 0) -> dict:
    row = X.iloc[i % len(X)].tolist()
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [row]}]}


def _version(client: httpx.Client, X, i: int = 0, key: str | None = None, path: str = "/v2/models/iris/infer") -> str:
    headers = {"X-MM-Route-Key": key} if key else {}
    resp = client.post(path, json=_body(X, i), headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()["model_version"]


def test_a_canary_takes_its_share_and_a_key_always_lands_on_the_same_side(deployed, ws):
    deployer, client, X = deployed
    dep = deployer.deploy("iris@v2", canary=30)
    assert dep.version == "iris@v1" and dep.release["mode"] == "canary" and dep.release["percent"] == 30
    assert ws.registry.get("iris@v2").stage == "deploy"  # it takes traffic: through the deploy gates
    assert "canary iris@v2 takes 30 % of requests" in str(deployer.get("iris"))

    shares = Counter(_version(client, X, i) for i in range(2000))
    # binomial(2000, 0.3): mean 600, sd 20.5; 5 sd either side fails a fair router once in ~3.5 million runs
    assert 600 - 5 * 20.5 < shares["2"] < 600 + 5 * 20.5, shares

    by_key = {f"user-{k}": {_version(client, X, i, key=f"user-{k}") for i in range(6)} for k in range(60)}
    assert all(len(sides) == 1 for sides in by_key.values()), by_key  # sticky
    assert 0 < sum(sides == {"2"} for sides in by_key.values()) < 60  # and both sides get users

    assert _version(client, X, path="/v2/models/iris/versions/2/infer") == "2"  # a path may name either
    assert _version(client, X, path="/v2/models/iris/versions/1/infer") == "1"
    status = client.get("/mm/v1/status").json()
    assert status["releases"]["iris"]["version"] == "iris@v2"
    assert client.get("/v2/models/iris").json()["versions"] == ["1", "2"]  # the candidate's paths answer too
    missing = client.post("/v2/models/iris/versions/7/infer", json=_body(X))
    assert missing.status_code == 404 and "(serving iris@v1 and its canary iris@v2)" in missing.json()["error"]


def test_a_shadow_answers_with_the_champion_and_records_both(deployed, ws):
    deployer, client, X = deployed
    deployer.deploy("iris@v2", shadow=True)
    ids = []
    for i in range(0, 150, 10):
        resp = client.post("/v2/models/iris/infer", json=_body(X, i))
        assert resp.status_code == 200 and resp.json()["model_version"] == "1"
        ids.append(resp.headers["x-request-id"])

    def recorded():
        deployer.flush_metrics("iris")
        frame = ws.monitor.store.requests("iris", 0)
        return [frame] if len(frame) == 30 else None

    [frame] = wait_until(recorded, "both versions' predictions of every request to be recorded", timeout=30)
    answered, shadow = frame[frame["role"].isna()], frame[frame["role"] == "shadow"]
    assert sorted(answered["request_id"]) == sorted(shadow["request_id"]) == sorted(ids)
    assert set(answered["version"]) == {1} and set(shadow["version"]) == {2}
    assert (shadow["status"] == 200).all()
    metrics = client.get("/metrics").text  # a shadow's prediction is no answered request
    assert 'mm_requests_total{model="iris",status="200",version="1"} 15.0' in metrics
    assert 'version="2"' not in metrics.split("# HELP mm_request_duration_seconds")[0]


def test_promote_and_abort_under_load_fail_no_request(deployed, ws, iris, models):
    deployer, client, X = deployed
    failures, answered, stop = [], Counter(), threading.Event()

    def load() -> None:
        with httpx.Client(base_url=client.base_url, timeout=10) as own:
            i = 0
            while not stop.is_set():
                resp = own.post("/v2/models/iris/infer", json=_body(X, i))
                i += 1
                if resp.status_code != 200:
                    failures.append(resp.status_code)
                else:
                    answered[resp.json()["model_version"]] += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        deployer.deploy("iris@v2", canary=50)
        wait_until(lambda: answered["2"] > 50, "the canary to answer requests")
        dropped = deployer.abort("iris", reason="checking abort")
        assert dropped.release is None and dropped.version == "iris@v1"
        assert ws.registry.get("iris@v2").stage == "retire"
        before = answered["2"]
        wait_until(lambda: answered["1"] > 200, "more traffic after the abort")
        assert answered["2"] == before  # nothing reaches a dropped canary

        Xi, yi = iris
        ws.registry.commit(
            "iris", models["tree"], message="tree again", parent="iris@v2", **commit_kwargs(Xi, yi, 0.96)
        )
        deployer.deploy("iris@v3", canary=20)
        wait_until(lambda: answered["3"] > 20, "the second canary to answer requests")
        promoted = deployer.promote("iris", reason="v3 holds up")
        after = answered["3"]
        wait_until(lambda: answered["3"] > after + 200, "traffic on the promoted version")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert promoted.version == "iris@v3" and promoted.release is None
    assert ws.registry.get("iris@v1").stage == "retire" and ws.registry.get("iris@v3").stage in ("deploy", "maintain")
    assert [h["action"] for h in deployer.get("iris").history][-4:] == ["canary", "abort", "canary", "promote"]


def test_bad_releases_are_refused_in_one_line(deployed, ws, iris, models):
    deployer, client, X = deployed
    for kwargs in ({"canary": 0}, {"canary": 100}, {"canary": 10, "shadow": True}):
        with pytest.raises(MMError) as err:
            deployer.deploy("iris@v2", **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(DeploymentError, match="already serves"):
        deployer.deploy("iris@v1", canary=10)
    with pytest.raises(DeploymentError, match="no canary or shadow release to promote"):
        deployer.promote("iris")
    narrow = X.iloc[:, :3]
    ws.registry.commit("iris", models["tree"].__class__(max_depth=2).fit(narrow, iris[1]), message="3 features",
                       **commit_kwargs(narrow, iris[1]))  # fmt: skip
    with pytest.raises(DeploymentError, match="takes other features.*deploy it as a switch once clients send"):
        deployer.deploy("iris@v3", shadow=True)
    with pytest.raises(DeploymentError, match=r"iris@v3 takes other features than iris@v1 \(3 against 4.*--force"):
        deployer.deploy("iris@v3", canary=10)  # its share of valid requests would fail
    with pytest.raises(MMError, match="a forced canary needs a reason: add -m WHY"):
        deployer.deploy("iris@v3", canary=10, force=True)
    resp = client.post("/mm/v1/release", json={"action": "abort", "name": "iris"})
    assert resp.status_code == 401  # the admin token only
    assert _version(client, X) == "1"  # nothing changed


def test_a_canary_that_refuses_a_request_is_charged_with_the_error(deployed, ws, iris, models):
    """A canary forced to take other features: a request it refuses counts against it, not against the champion."""
    deployer, client, X = deployed
    narrow = X.iloc[:, :3]
    ws.registry.commit("iris", models["tree"].__class__(max_depth=2).fit(narrow, iris[1]), message="3 features",
                       **commit_kwargs(narrow, iris[1]))  # fmt: skip
    deployer.deploy("iris@v3", canary=50, force=True, reason="see what clients send")
    statuses = Counter()
    for k in range(40):
        resp = client.post("/v2/models/iris/infer", json=_body(X, k), headers={"X-MM-Route-Key": f"user-{k}"})
        statuses[resp.status_code] += 1
    assert statuses[200] > 0 and statuses[422] > 0, statuses  # 4 features: the champion answers, the canary refuses

    def recorded():
        deployer.flush_metrics("iris")
        frame = ws.monitor.store.requests("iris", 0)
        return [frame] if len(frame) == 40 else None

    [frame] = wait_until(recorded, "the 40 requests to be recorded", timeout=30)
    assert set(frame[frame["status"] == 422]["version"]) == {3}
    assert set(frame[frame["status"] == 200]["version"]) == {1}


def test_a_canary_spans_every_worker(deployed, ws):
    """With ``workers=2`` a release is passed on to both processes: over fresh connections (which the kernel spreads
    over the workers) the canary keeps its share, which it would halve if one worker lacked it, and a key lands on
    the same side whichever worker answers; promote reaches both."""
    deployer, _, X = deployed
    dep = deployer.deploy("iris@v1", workers=2)
    deployer.deploy("iris@v2", canary=30)
    url = f"{dep.url}/v2/models/iris/infer"

    def version(i: int, key: str | None = None) -> str:
        headers = {"X-MM-Route-Key": key} if key else {}
        resp = httpx.post(url, json=_body(X, i), headers=headers, timeout=10)  # a new connection each time
        assert resp.status_code == 200, resp.text
        return resp.json()["model_version"]

    shares = Counter(version(i) for i in range(600))
    # binomial(600, 0.3): mean 180, sd 11.2; one worker without the canary would give about 90
    assert 180 - 5 * 11.2 < shares["2"] < 180 + 5 * 11.2, shares
    by_key = {k: {version(i, f"user-{k}") for i in range(6)} for k in range(20)}
    assert all(len(sides) == 1 for sides in by_key.values()), by_key
    status = httpx.get(f"{dep.url}/mm/v1/status", timeout=10).json()
    assert status["workers"] == 2 and all(n for n in status["per_worker_requests"]), status
    deployer.promote("iris", reason="the tree")
    assert {version(i) for i in range(200)} == {"2"}


def test_a_new_candidate_drops_the_running_one_on_the_record_and_decisions_reach_the_audit_log(deployed, ws, iris):
    """A second canary of another version replaces the first one: the first is aborted on the record and retires
    (it no longer counts as deployed for the gates); re-setting the same candidate keeps its evidence; promote and
    abort reasons are the lifecycle commits' messages, which outlive the deployment record."""
    deployer, client, X = deployed
    Xi, yi = iris
    ws.registry.commit("iris", LogisticRegression(max_iter=500, C=0.5).fit(Xi, yi), message="C=0.5",
                       parent="iris@v1", **commit_kwargs(Xi, yi, 0.97))  # fmt: skip
    first = deployer.deploy("iris@v2", canary=10)
    again = deployer.deploy("iris@v2", canary=30)  # the same candidate, another share: the same evidence
    assert again.release["started"] == first.release["started"] and again.release["percent"] == 30
    dep = deployer.deploy("iris@v3", canary=10, reason="the better-regularised one")
    assert dep.release["version"] == "iris@v3"
    assert [h["action"] for h in dep.history][-4:] == ["canary", "canary", "abort", "canary"]
    assert ws.registry.get("iris@v2").stage == "retire"
    retired = ws.lifecycle.history("iris@v2")[-1]
    assert retired.reason.startswith("Dropped the canary of iris@v2 beside iris@v1: Replaced by the canary of iris@v3")
    deployer.promote("iris", reason="holds up on live traffic")
    replaced = ws.lifecycle.history("iris@v1")[-1]
    assert replaced.reason == "Replaced by iris@v3, promoted from its canary: holds up on live traffic"
    deployer.undeploy("iris")  # the record goes; the audit log keeps the decision
    log = [c.message for c in ws.git.history(max_count=20)]
    assert any("promoted from its canary: holds up on live traffic" in m for m in log)


def test_a_restart_of_the_deployment_drops_the_candidate_on_the_record(deployed, ws):
    """Another kind of deployment (here another worker count; local to Docker alike) restarts the server, and the
    candidate with it: it is aborted on the record first, and the history carries over."""
    deployer, _, _ = deployed
    deployer.deploy("iris@v2", canary=20)
    dep = deployer.deploy("iris@v1", workers=2)
    assert dep.release is None and dep.workers == 2
    assert [h["action"] for h in dep.history] == ["deploy", "canary", "abort", "deploy"]
    assert ws.registry.get("iris@v2").stage == "retire"


def test_under_load_a_canary_is_drawn_per_batch_and_every_answer_is_recorded_against_its_version(deployed, ws):
    """Concurrent requests without a key are batched, and the canary is drawn once per batch, so its requests are
    batched as the champion's are: the share still holds (batches of a few requests widen its spread), each
    response names the version that answered, and the request log agrees with the responses one for one."""
    deployer, client, X = deployed
    deployer.deploy("iris@v2", canary=30)
    answered: dict[str, str] = {}
    lock = threading.Lock()

    def load(offset: int) -> None:
        with httpx.Client(base_url=client.base_url, timeout=10) as own:
            for i in range(250):
                resp = own.post("/v2/models/iris/infer", json=_body(X, offset + i))
                assert resp.status_code == 200, resp.text
                with lock:
                    answered[resp.headers["x-request-id"]] = resp.json()["model_version"]

    threads = [threading.Thread(target=load, args=(k * 250,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    share = sum(v == "2" for v in answered.values()) / len(answered)
    assert len(answered) == 2000 and 0.2 < share < 0.4, share  # 30 %: 5 sd of a draw per ~4-request batch

    def recorded():
        deployer.flush_metrics("iris")
        frame = ws.monitor.store.requests("iris", 0)
        frame = frame[frame["request_id"].isin(list(answered))]
        return [frame] if len(frame) == 2000 else None

    [frame] = wait_until(recorded, "the 2 000 requests in the store", timeout=60)
    logged = dict(zip(frame["request_id"], frame["version"].astype(int).astype(str), strict=True))
    assert logged == answered
    assert frame["batch"].max() > 1  # batched, the candidate's answers included
    assert frame[frame["version"] == 2]["batch"].max() > 1
