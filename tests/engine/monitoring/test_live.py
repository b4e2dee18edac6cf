"""Monitoring end to end: a real server records requests; feedback, drift and alerts come out of the store."""

from __future__ import annotations

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mm_magics.engine import Workspace, fingerprint, schema_of
from mm_magics.engine.errors import MMError
from mm_magics.engine.monitoring.live import Monitor, parse_duration
from mm_magics.engine.serving.deployer import Deployer
from mm_magics.render import to_html


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("mon") / ".mm")
    X, y = load_iris(return_X_y=True, as_frame=True)
    X = X.sample(frac=1, random_state=0)  # shuffled, so any slice is a fair resample of the training data
    y = y.loc[X.index]
    model = LogisticRegression(max_iter=500).fit(X, y)
    ws.registry.commit(
        "iris",
        model,
        message="v1",
        metrics={"accuracy": 0.97},
        schema=schema_of(X),
        data=fingerprint(X, y),
        probe_data=X,
    )
    deployer = Deployer(ws)
    dep = deployer.deploy("iris")
    monitor = Monitor(ws)
    yield {"ws": ws, "deployer": deployer, "dep": dep, "monitor": monitor, "X": X, "y": y, "model": model}
    deployer.undeploy("iris")
    monitor.close()
    ws.close()


def send(url, frame):
    ids = []
    with httpx.Client(base_url=url) as client:
        for i in range(len(frame)):
            resp = client.post("/invocations", json={"instances": frame.iloc[[i]].to_numpy().tolist()})
            assert resp.status_code == 200
            ids.append(resp.headers["x-request-id"])
    return ids


def flushed(live, n):
    """Ask the server to write what it recorded (as %mm_monitor does) and check that all n requests are stored."""
    assert live["deployer"].flush_metrics("iris")
    assert len(live["monitor"].store.requests("iris", 0)) == n


def test_requests_feedback_quality_and_quiet_drift(live):
    X, y, monitor = live["X"], live["y"], live["monitor"]
    ids = send(live["dep"].url, X.iloc[:120])
    flushed(live, 120)
    labels = y.iloc[:120].tolist()
    labels[:12] = [(v + 1) % 3 for v in labels[:12]]  # ten percent of the ground truth disagrees
    monitor.record_feedback("iris", ids, labels)
    head = live["ws"].git.read_ref()
    for _ in range(3):  # what a refresh tick or a panel poll does: reads only, however often
        snap = monitor.snapshot("iris", "10m", deployment=live["deployer"].get("iris"))
    assert live["ws"].git.read_ref() == head and live["ws"].lifecycle.stage("iris@v1") == "deploy"
    snap = monitor.evaluate("iris", "10m", deployment=live["deployer"].get("iris"))  # the user's action writes
    assert snap.requests == 120 and snap.error_rate == 0 and snap.version == "iris@v1"
    expected = (live["model"].predict(X.iloc[:120]) == labels).mean()
    assert snap.quality["accuracy"] == pytest.approx(expected) and snap.labelled == 120
    assert snap.training["accuracy"] == 0.97
    assert set(snap.latency_ms) >= {"server", "processing", "queue", "overhead"}
    assert max(d["psi"] for d in snap.drift.values()) < 0.2  # a resample of the training data is no drift
    assert not [a for a in snap.alerts if a["rule"] == "psi"]
    assert live["ws"].lifecycle.stage("iris@v1") == "maintain"  # watched in production now
    html = to_html(snap)
    assert "iris (iris@v1)" in str(snap) and "<svg" not in html and "<style" not in html  # kept by the sanitiser
    assert any(block in html for block in "▁▂▃▄▅▆▇█")  # the text sparkline


def test_drifted_batch_raises_a_psi_alert_that_says_what_to_do(live):
    monitor = live["monitor"]
    drifted = live["X"].iloc[:80].copy()
    drifted["petal length (cm)"] += 4.0
    before = len(monitor.store.requests("iris", 0))
    send(live["dep"].url, drifted)
    flushed(live, before + 80)
    snap = monitor.snapshot("iris", "10m", deployment=live["deployer"].get("iris"))
    assert snap.drift["petal length (cm)"]["psi"] > 0.2
    assert snap.drift["petal length (cm)"]["ks_p"] < 1e-3
    alert = next(a for a in snap.alerts if a["rule"] == "psi")
    assert "petal length (cm)" in alert["message"] and "retrain iris from iris@v1" in alert["message"]
    # the explanation made at commit time says whether the drifted feature matters to the model
    assert "the model's #1 feature by permutation importance" in alert["message"], alert["message"]


def test_errors_probes_and_the_frame(live):
    monitor, url = live["monitor"], live["dep"].url
    for _ in range(5):
        assert httpx.post(url + "/invocations", json={"instances": [[1, 2]]}).status_code == 422
    probes = live["deployer"].probe("iris", 5)
    monitor.store.write_probes("iris", probes)
    assert live["deployer"].flush_metrics("iris")  # the recorder writes on its own cadence; ask, do not sleep
    snap = monitor.snapshot("iris", "10m", deployment=live["deployer"].get("iris"))
    assert 0 < snap.error_rate < 0.1 and "network" in snap.latency_ms
    frame = monitor.frame("iris", "10m")
    assert {"time", "total_ms", "status", "version"} <= set(frame.columns) and (frame["status"] == 422).sum() == 5


def test_alert_rules_are_configurable_and_audited(live):
    monitor = live["monitor"]
    rules = monitor.set_rules("iris", latency_p99_ms=0.001, min_requests=1)
    assert rules["latency_p99_ms"] == 0.001
    snap = monitor.snapshot("iris", "10m", deployment=live["deployer"].get("iris"))
    assert any(a["rule"] == "latency_p99_ms" and a["opened"] is None for a in snap.alerts)  # firing, not recorded
    assert "latency_p99_ms" not in set(monitor.store.alerts("iris")["rule"])
    snap = monitor.evaluate("iris", "10m", deployment=live["deployer"].get("iris"))
    assert any(a["rule"] == "latency_p99_ms" and a["opened"] for a in snap.alerts)
    assert "latency_p99_ms" in set(monitor.store.alerts("iris")["rule"])
    assert live["ws"].registry.history("iris")[0].action == "alerts"
    with pytest.raises(MMError, match="unknown alert rule"):
        monitor.set_rules("iris", nonsense=1)
    for bad, said in (
        ({"promote_check_s": -5}, "thresholds of zero or more: promote_check_s=-5"),
        ({"promote_check_s": 0}, "promote_check_s=0 is too often"),
        ({"promote_min_labelled": 2.5}, "take whole numbers: promote_min_labelled=2.5"),
        ({"promote_margin": -0.1}, "thresholds of zero or more: promote_margin=-0.1"),
    ):
        with pytest.raises(MMError, match=said):
            monitor.set_rules("iris", **bad)
    monitor.set_rules("iris", latency_p99_ms=500)


def test_durations():
    assert parse_duration("5m") == 300 and parse_duration("2s") == 2 and parse_duration(90) == 90
    with pytest.raises(MMError, match="bad duration"):
        parse_duration("soon")


@pytest.fixture
def fresh(live, request):
    """Another model of the same workspace (its own name per test), deployed just now with no traffic yet."""
    ws, X, y = live["ws"], live["X"], live["y"]
    name = request.node.name.removeprefix("test_")[:40].rstrip("_")
    common = {"schema": schema_of(X), "data": fingerprint(X, y), "probe_data": X}
    ws.registry.commit(name, live["model"], message="v1", metrics={"accuracy": 0.97}, **common)
    dep = live["deployer"].deploy(name)
    yield dep
    live["deployer"].undeploy(name)


def test_probes_are_kept_apart_from_traffic(live, fresh):
    name = fresh.name
    monitor, deployer = live["monitor"], live["deployer"]
    send(fresh.url, live["X"].iloc[:15])
    report = monitor.probe(name, 10, deployments=deployer)
    assert report.probes == 10
    assert deployer.flush_metrics(name)
    snap = monitor.snapshot(name, "10m", deployment=deployer.get(name))
    assert snap.requests == 15  # was 25: the ten probes counted as traffic
    assert {d["n"] for d in snap.drift.values()} == {15.0}  # and entered drift
    assert len(monitor.store.probes(name, 0)) == 10 and "network" in snap.latency_ms


def test_a_handful_of_rows_is_no_drift_and_the_rate_counts_the_time_served(live, fresh):
    name = fresh.name
    monitor, deployer = live["monitor"], live["deployer"]
    odd = live["X"].iloc[:5].copy()
    odd["petal length (cm)"] += 4.0
    send(fresh.url, odd)
    assert deployer.flush_metrics(name)
    snap = monitor.evaluate(name, "5m", deployment=deployer.get(name))
    assert snap.drift["petal length (cm)"]["psi"] > 1  # PSI on five rows is huge ...
    assert not [a for a in snap.alerts if a["rule"] == "psi"]  # ... and judged on too few rows to mean drift
    # five requests in the seconds since the deploy: the rate is per second served, not per 300 s of window
    assert snap.rate_per_s > 5 / 60
    send(fresh.url, live["X"].iloc[5:155])  # 150 undrifted rows more: PSI's noise alone, not drift
    assert deployer.flush_metrics(name)
    snap = monitor.evaluate(name, "5m", deployment=deployer.get(name))
    assert not [a for a in snap.alerts if a["rule"] == "psi"], snap.drift


def test_an_alert_belongs_to_its_version_and_resolves_when_that_version_stops_serving(live, fresh):
    name = fresh.name
    monitor, deployer, ws, X, y = live["monitor"], live["deployer"], live["ws"], live["X"], live["y"]
    ids = send(fresh.url, X.iloc[:30])
    assert deployer.flush_metrics(name)
    monitor.record_feedback(name, ids, [(v + 1) % 3 for v in y.iloc[:30]])  # every label disagrees
    snap = monitor.evaluate(name, "10m", deployment=deployer.get(name))
    (alert,) = [a for a in snap.alerts if a["rule"] == "quality_drop"]
    assert alert["version"] == 1

    common = {"schema": schema_of(X), "data": fingerprint(X, y), "probe_data": X}
    ws.registry.commit(name, live["model"], message="v2", metrics={"accuracy": 0.97}, parent=f"{name}@v1", **common)
    deployer.switch(name, f"{name}@v2", force=True)
    snap = monitor.evaluate(name, "10m", deployment=deployer.get(name))
    assert snap.version == f"{name}@v2" and snap.labelled == 0  # no ground truth for v2 yet ...
    assert not [a for a in snap.alerts if a["rule"] == "quality_drop"]  # ... so v1's alert is not shown beside it
    closed = monitor.store.alerts(name, open_only=False)
    assert closed.loc[closed["rule"] == "quality_drop", "resolved"].notna().all()
