"""``--workers 2``: two real server processes behind one port. Every request is answered by one of them and recorded
exactly once, a switch and a rollback reach both, a scrape of /metrics and /mm/v1/status sums both, and undeploy
stops both."""

from __future__ import annotations

import os

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine import Workspace, schema_of
from mm_magics.engine.errors import MMError
from mm_magics.engine.monitoring.store import SQLiteStore

from ...waiting import wait_until


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    X, y = load_iris(return_X_y=True, as_frame=True)
    ws = Workspace.open(tmp_path_factory.mktemp("workers") / ".mm")
    common = {"schema": schema_of(X), "probe_data": X, "metrics": {"accuracy": 0.95}}
    ws.registry.commit("iris", LogisticRegression(max_iter=500).fit(X, y), message="logreg", **common)
    ws.registry.commit("iris", DecisionTreeClassifier(max_depth=1).fit(X, y), message="stump", **common)
    dep = ws.deployments.deploy("iris@v1", workers=2)
    yield {"ws": ws, "dep": dep, "X": X}
    ws.deployments.undeploy("iris")
    ws.close()


def _children(pid):
    """The server processes ``pid`` started (not the git helpers GitPython runs)."""
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        pids = [int(p) for p in fh.read().split()]
    servers = []
    for child in pids:
        with open(f"/proc/{child}/cmdline", "rb") as fh:
            if b"mm_magics.engine.serving" in fh.read():
                servers.append(child)
    return servers


def _infer(url, X, **headers):
    body = {"inputs": [{"name": "x", "shape": list(X.shape), "datatype": "FP64", "data": X.to_numpy().tolist()}]}
    with httpx.Client() as client:  # a new connection each time: the kernel hands it to either worker
        resp = client.post(url + "/v2/models/iris/infer", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp


def test_two_processes_answer_and_each_request_is_recorded_once(two_workers):
    ws, dep, X = two_workers["ws"], two_workers["dep"], two_workers["X"]
    assert dep.workers == 2 and "2 workers" in str(dep)
    assert len(_children(dep.pid)) == 1  # the first worker forked the second
    sent = [_infer(dep.url, X.iloc[[i % 150]], **{"X-Request-ID": f"req-{i}"}) for i in range(120)]
    assert [r.headers["x-request-id"] for r in sent] == [f"req-{i}" for i in range(120)]
    status = httpx.get(dep.url + "/mm/v1/status").json()
    assert status["workers"] == 2 and status["requests"] >= 120
    assert all(n > 0 for n in status["per_worker_requests"]), status  # both took a share of the connections
    assert ws.deployments.flush_metrics("iris")  # both workers write what they recorded
    store = SQLiteStore(ws.run_dir / "metrics.sqlite")
    try:
        rows = store.query("SELECT request_id, COUNT(*) FROM requests WHERE request_id LIKE 'req-%' GROUP BY 1")
    finally:
        store.close()
    assert sorted(r[0] for r in rows) == sorted(f"req-{i}" for i in range(120))
    assert {r[1] for r in rows} == {1}


def test_metrics_are_summed_over_the_workers(two_workers):
    ws, dep, X = two_workers["ws"], two_workers["dep"], two_workers["X"]

    def total():
        ws.deployments.flush_metrics("iris")
        families = text_string_to_metric_families(httpx.get(dep.url + "/metrics").text)
        return sum(
            s.value
            for f in families
            for s in f.samples
            if s.name == "mm_requests_total" and s.labels.get("status") == "200"
        )

    before = total()
    for i in range(40):
        _infer(dep.url, X.iloc[[i]])
    assert total() - before == 40


def test_a_switch_and_a_rollback_reach_every_worker(two_workers):
    ws, dep, X = two_workers["ws"], two_workers["dep"], two_workers["X"]
    stump = ws.registry.checkout("iris@v2")
    ws.deployments.deploy("iris@v2", workers=2)
    answers = [_infer(dep.url, X.iloc[[i]]).json() for i in range(0, 150, 5)]
    assert {a["model_version"] for a in answers} == {"2"}
    assert [a["outputs"][0]["data"][0] for a in answers] == stump.predict(X.iloc[0:150:5]).tolist()
    rolled, _ = ws.deployments.rollback("iris", "iris@v1", "back")
    assert {_infer(dep.url, X.iloc[[i]]).json()["model_version"] for i in range(30)} == {str(rolled.number)}


def test_bad_worker_counts_are_refused_in_one_line(two_workers):
    for bad in (0, -1, 65, True, 1.5):
        with pytest.raises(MMError, match="workers must be a whole number from 1 to 64"):
            two_workers["ws"].deployments.deploy("iris@v1", workers=bad)


def test_undeploy_stops_every_worker(tmp_path):
    X, y = load_iris(return_X_y=True, as_frame=True)
    ws = Workspace.open(tmp_path / ".mm")
    try:
        ws.registry.commit(
            "iris", LogisticRegression(max_iter=500).fit(X, y), schema=schema_of(X), metrics={"accuracy": 0.97}
        )
        dep = ws.deployments.deploy("iris", workers=2)
        pids = [dep.pid, *_children(dep.pid)]
        assert len(pids) == 2
        ws.deployments.undeploy("iris")
        wait_until(lambda: not any(os.path.exists(f"/proc/{p}") and _state(p) != "Z" for p in pids), "workers gone")
    finally:
        ws.close()


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1]
    except FileNotFoundError:
        return "gone"
