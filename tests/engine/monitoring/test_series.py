"""Live series end to end: a real server records requests; the cursor's buckets agree with the rows stored, and a
later advance returns only the buckets completed since."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine.monitoring.series import SETTLE_S

from ...conftest import commit_kwargs
from ...waiting import wait_until
from .test_live import flushed, live, send  # noqa: F401  (the module's deployed iris and its helpers)


def completed(step: float) -> float:
    """The time to advance a cursor to once the bucket the last request fell in has ended: the requests were
    flushed to the store explicitly, so the wait for servers to write them (``SETTLE_S``) is already over."""
    time.sleep(step - time.time() % step + 0.01)
    return time.time() + SETTLE_S


def test_series_buckets_agree_with_the_request_log(live):  # noqa: F811
    X, y, monitor, deployer = live["X"], live["y"], live["monitor"], live["deployer"]
    cursor = monitor.series("iris", "10m", step=2, deployment=deployer.get("iris"))
    before = len(monitor.store.requests("iris", 0))
    ids = send(live["dep"].url, X.iloc[:60])
    flushed(live, before + 60)
    labels = y.iloc[:60].tolist()
    labels[:6] = [(v + 1) % 3 for v in labels[:6]]  # ten percent of the ground truth disagrees
    monitor.record_feedback("iris", ids, labels)
    end = completed(2)  # every request so far lies in a complete bucket
    series = cursor.advance(now=end)
    assert series.full and series.version == "iris@v1" and series.step_s == 2
    assert len(series.t) == 300 and series.t == sorted(series.t) and series.t[-1] <= end
    stored = monitor.store.requests("iris", series.t[0] - 2, series.t[-1])
    rate = np.asarray(series.columns["rate"])
    assert rate.sum() * 2 == pytest.approx(len(stored))  # every request counted once, in one bucket
    busy = [i for i, r in enumerate(rate) if r]
    assert all(series.columns["p50"][i] > 0 and series.columns["errors"][i] == 0 for i in busy)
    assert all(series.columns["p50"][i] is None for i in range(len(rate)) if not rate[i])  # a gap, not 0 ms
    expected = (live["model"].predict(X.iloc[:60]) == labels).mean()
    assert series.columns["quality"][-1] == pytest.approx(expected)  # the last bucket's window holds every label
    assert series.quality_metric == "accuracy" and series.reference["quality"] == 0.97
    assert series.reference["drift"] == monitor.rules("iris")["psi"]
    assert "iris (iris@v1): 300 bucket(s) of 2s" in str(series)

    again = cursor.advance(now=end)  # nothing completed since: nothing sent
    assert not again.full and again.t == []
    drifted = X.iloc[:120].copy()
    drifted["petal length (cm)"] += 4.0
    send(live["dep"].url, drifted)
    flushed(live, before + 180)
    later = cursor.advance(now=completed(2))
    assert not later.full and 1 <= len(later.t) <= 30 and later.t[0] > series.t[-1]  # only the new buckets
    assert sum(later.columns["rate"]) * 2 == 120
    assert later.columns["drift"][-1] > later.reference["drift"]  # the shifted feature, over its window
    assert later.columns["quality"][-1] == pytest.approx(expected)  # the same labels, still in the window


def test_series_of_a_model_without_traffic_is_gaps_not_zeros(live):  # noqa: F811
    ws = live["ws"]
    ws.registry.commit("quiet", live["model"], message="v1", metrics={"accuracy": 0.9})
    series = ws.monitor.series("quiet", "1m").advance()  # a minute in 1 s buckets, the newest two not yet final
    assert series.version is None and len(series.t) == 60
    assert set(series.columns["rate"]) == {0.0} and set(series.columns["p99"]) == {None}
    assert str(series) == "quiet (not deployed): 60 bucket(s) of 1s — no requests"


# -- a canary or shadow release: the challenger's columns beside the champion's ---------------------------------------
@pytest.fixture
def released(ws, iris, models):
    """iris@v1 (logistic regression) deployed through ``ws.deployments``; iris@v2 (a one-split tree, ~67 % right)
    committed beside it, ready to be released as a canary or a shadow."""
    X, y = iris
    ws.registry.commit("iris", models["logreg"], message="logreg", **commit_kwargs(X, y))
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    ws.registry.commit("iris", stump, message="stump", parent="iris@v1", **commit_kwargs(X, y, 0.96))
    dep = ws.deployments.deploy("iris@v1")
    with httpx.Client(base_url=dep.url, timeout=10) as client:
        yield {"ws": ws, "client": client, "X": X, "y": y, "models": {1: models["logreg"], 2: stump}}
    for d in ws.deployments.list():
        ws.deployments.undeploy(d.name)


def traffic(released, rows) -> dict[str, int]:
    """One request per row and its true label through the feedback route; which version answered each request."""
    client, X, y = released["client"], released["X"], released["y"]
    answered, labels = {}, []
    for i in rows:
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [X.iloc[i].tolist()]}]}
        resp = client.post("/v2/models/iris/infer", json=body)
        assert resp.status_code == 200, resp.text
        answered[resp.headers["x-request-id"]] = (i, int(resp.json()["model_version"]))
        labels.append(int(y.iloc[i]))
    assert client.post("/v2/models/iris/feedback", json={"ids": list(answered), "labels": labels}).status_code == 200
    return answered


def stored(released, n: int) -> None:
    """Wait until the server has written ``n`` logged predictions (a shadow's are recorded after the answer)."""
    ws = released["ws"]

    def written() -> bool:
        ws.deployments.flush_metrics("iris")
        return len(ws.monitor.store.requests("iris", 0)) >= n

    wait_until(written, f"{n} logged predictions in the store")


def rates(columns) -> np.ndarray:
    """A rate column as numbers (a challenger's buckets before its release began are gaps: no requests)."""
    return np.asarray([v or 0.0 for v in columns["rate"]])


def accuracy(released, rows: list[int], version: int) -> float:
    X, y = released["X"], released["y"]
    return float((released["models"][version].predict(X.iloc[rows]) == y.iloc[rows].to_numpy()).mean())


def test_a_canary_has_its_own_columns_and_the_two_rates_add_up_to_the_traffic(released):
    ws = released["ws"]
    ws.deployments.deploy("iris@v2", canary=30)
    cursor = ws.monitor.series("iris", "10m", step=2, deployment=ws.deployments.get("iris"))
    answered = traffic(released, range(0, 150, 2))  # 75 requests
    stored(released, 75)
    series = cursor.advance(now=completed(2))
    ch = series.challenger
    assert series.version == "iris@v1"  # the champion, whichever version answered last
    assert (ch["version"], ch["mode"], ch["percent"]) == ("iris@v2", "canary", 30)
    assert set(ch["columns"]) == {"rate", "errors", "p50", "p99", "quality"}
    assert all(len(col) == len(series.t) for col in ch["columns"].values())
    started = ws.deployments.get("iris").release["started"]
    assert all(v is None for t, v in zip(series.t, ch["columns"]["rate"], strict=True) if t <= started)  # a gap
    mine, theirs = rates(series.columns), rates(ch["columns"])
    by_version = [v for _, v in answered.values()]
    assert mine.sum() * 2 == by_version.count(1) and theirs.sum() * 2 == by_version.count(2) > 0
    assert (mine + theirs).sum() * 2 == 75  # every answered request once, on the side that answered it
    assert all(ch["columns"]["p99"][i] > 0 for i, r in enumerate(theirs) if r)
    for version, quality in ((1, series.columns["quality"]), (2, ch["columns"]["quality"])):
        rows = [i for i, v in answered.values() if v == version]
        assert quality[-1] == pytest.approx(accuracy(released, rows, version))  # each scored on its own answers
    assert "; canary iris@v2 (30 %): rate " in str(series)

    more = traffic(released, range(1, 40, 2))  # 20 more: a later advance brings only the new buckets
    stored(released, 95)
    later = cursor.advance(now=completed(2))
    assert not later.full and later.t[0] > series.t[-1]
    assert all(len(col) == len(later.t) for col in later.challenger["columns"].values())
    total = rates(later.columns).sum() + rates(later.challenger["columns"]).sum()
    assert total * 2 == len(more)


def test_a_shadow_predicts_every_request_and_is_scored_on_the_same_labels(released):
    ws = released["ws"]
    ws.deployments.deploy("iris@v2", shadow=True)
    cursor = ws.monitor.series("iris", "10m", step=2, deployment=ws.deployments.get("iris"))
    answered = traffic(released, range(0, 150, 3))  # 50 requests, each also predicted by the shadow
    stored(released, 100)
    series = cursor.advance(now=completed(2))
    ch = series.challenger
    assert (ch["version"], ch["mode"]) == ("iris@v2", "shadow")
    mine, theirs = rates(series.columns), rates(ch["columns"])
    assert mine.sum() * 2 == theirs.sum() * 2 == 50  # the shadow's predictions are not the champion's traffic
    # equal bucket by bucket, but for a prediction recorded just after its request's bucket ended
    assert np.abs(np.cumsum(mine - theirs)).max() * 2 <= 1
    rows = [i for i, _ in answered.values()]
    assert series.columns["quality"][-1] == pytest.approx(accuracy(released, rows, 1))
    assert ch["columns"]["quality"][-1] == pytest.approx(accuracy(released, rows, 2))
    assert ch["columns"]["quality"][-1] < 0.8 < series.columns["quality"][-1]  # the stump, told apart
    assert "; shadow iris@v2: rate " in str(series)


def test_without_a_release_there_is_no_challenger(released):
    ws = released["ws"]
    traffic(released, range(10))
    stored(released, 10)
    series = ws.monitor.series("iris", "1m", deployment=ws.deployments.get("iris")).advance(now=completed(1))
    assert series.challenger is None and series.to_dict()["challenger"] is None
    assert sum(series.columns["rate"]) == 10 and "canary" not in str(series)
