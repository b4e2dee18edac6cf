"""Champion and challenger compared live, through a real deployment: requests over HTTP, ground truth through the
feedback route, the picture through ``ws.monitor.view`` (what ``%mm_monitor`` and ``mm monitor`` show). The verdict
refuses to decide on too little evidence, then decides when the evidence is there."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine.monitoring.compare import compare
from mm_magics.engine.monitoring.store import SQLiteStore
from mm_magics.engine.serving.deployer import Deployer

from ...conftest import commit_kwargs

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def released(ws, iris, models):
    """iris@v1 (logistic regression, ~97 % accurate) serving; iris@v2 (a one-split tree, ~67 % on live traffic)
    committed with an evaluation that claims 0.96, so it passes the deploy gates and only live evidence tells."""
    X, y = iris
    ws.registry.commit("iris", models["logreg"], message="logreg", **commit_kwargs(X, y))
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    ws.registry.commit("iris", stump, message="stump", parent="iris@v1", **commit_kwargs(X, y, 0.96))
    deployer = Deployer(ws)
    dep = deployer.deploy("iris@v1")
    with httpx.Client(base_url=dep.url, timeout=10) as client:
        yield deployer, client
    for d in deployer.list():
        deployer.undeploy(d.name)
    deployer.close()


def _traffic(client: httpx.Client, X, y, rows: range, key: bool = False) -> None:
    """One request per row, then its true label through the feedback route, as a labelling pipeline sends it."""
    ids, labels = [], []
    for i in rows:
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [X.iloc[i].tolist()]}]}
        headers = {"X-MM-Route-Key": f"user-{i}"} if key else {}
        resp = client.post("/v2/models/iris/infer", json=body, headers=headers)
        assert resp.status_code == 200, resp.text
        ids.append(resp.headers["x-request-id"])
        labels.append(int(y.iloc[i]))
    assert client.post("/v2/models/iris/feedback", json={"ids": ids, "labels": labels}).status_code == 200


def test_a_shadow_is_judged_on_every_request_and_the_verdict_waits_for_evidence(ws, released, iris):
    deployer, client = released
    X, y = iris
    deployer.deploy("iris@v2", shadow=True)
    _traffic(client, X, y, range(0, 150, 3))  # 50 requests
    snap = ws.monitor.view("iris", "10m", deployments=deployer)
    c = snap.comparison
    assert (c.mode, c.champion, c.challenger) == ("shadow", "iris@v1", "iris@v2")
    assert snap.requests == 50  # the shadow's predictions are not traffic
    assert c.sides["iris@v1"]["predicted"] == c.sides["iris@v2"]["predicted"] == 50
    assert c.sides["iris@v1"]["share"] == 1.0 and c.sides["iris@v2"]["share"] == 0.0
    assert c.sides["iris@v1"]["labelled"] == c.sides["iris@v2"]["labelled"] == 50
    assert c.agreement_n == 50 and 0.4 < c.agreement < 0.9
    assert not c.decided and c.verdict.startswith("not enough evidence yet: 50 labelled requests seen by both")

    _traffic(client, X, y, range(1, 150))  # 149 more
    c = ws.monitor.view("iris", "10m", deployments=deployer).comparison
    assert c.metric == "F1" and c.decided and c.verdict.startswith("iris@v1 better on F1 by 0.")
    assert c.difference["high"] < 0  # the challenger's macro F1 minus the champion's, all of its interval
    assert c.sides["iris@v2"]["quality"] < 0.75 < 0.9 < c.sides["iris@v1"]["quality"]
    assert c.sides["iris@v2"]["accuracy"] < 0.75 < 0.9 < c.sides["iris@v1"]["accuracy"]
    text = str(ws.monitor.view("iris", "10m", deployments=deployer))
    assert "verdict: iris@v1 better on F1" in text and ", accuracy 0." in text
    # each side's worst drift, on the inputs it predicted for, against its own training profile
    for side in c.sides.values():
        assert side["drift"]["feature"] in set(X.columns) and side["drift"]["rows"] == 199, side
        assert side["drift"]["psi"] >= 0
    assert "worst drift " in text
    from mm_magics.render import to_html

    assert ">worst drift (PSI)</th>" in to_html(c)


def test_a_canary_is_judged_on_the_requests_each_version_answered(ws, released, iris):
    deployer, client = released
    X, y = iris
    deployer.deploy("iris@v2", canary=50)
    _traffic(client, X, y, range(0, 150, 2), key=True)
    c = ws.monitor.view("iris", "10m", deployments=deployer).comparison
    v1, v2 = c.sides["iris@v1"], c.sides["iris@v2"]
    assert v1["predicted"] + v2["predicted"] == 75 and v1["labelled"] + v2["labelled"] == 75
    assert abs(v1["share"] + v2["share"] - 1.0) < 1e-9 and c.agreement is None
    assert not c.decided and "needed on each" in c.verdict


def test_promote_checks_the_live_evidence_rule(ws, released, iris):
    """With a promotion rule, %mm_promote needs enough labelled requests on each side and a challenger no worse than
    the champion by more than the margin; a forced promotion needs a reason and is recorded."""
    from mm_magics.engine.errors import GateError

    deployer, client = released
    X, y = iris
    ws.monitor.set_rules("iris", promote_min_labelled=100, promote_margin=0.01)
    _traffic(client, X, y, range(0, 60))  # before the release: no evidence about it
    deployer.deploy("iris@v2", shadow=True)
    _traffic(client, X, y, range(0, 150, 3))  # 50 labelled requests
    c = ws.monitor.view("iris", "10m", deployments=deployer).comparison
    assert c.sides["iris@v1"]["predicted"] == c.sides["iris@v1"]["labelled"] == 50  # counted since it started
    assert c.sides["iris@v1"]["share"] == 1.0 and c.since >= deployer.get("iris").release["started"] - 1
    assert c.rule == "wait: 50 labelled requests on iris@v2 and 50 on iris@v1, the rule needs 100 on each"
    with pytest.raises(GateError, match="not enough live evidence to promote iris@v2: 50 labelled requests"):
        deployer.promote("iris")
    _traffic(client, X, y, range(1, 150))
    with pytest.raises(GateError, match=r"iris@v2's live F1 0\.\d+ is worse than iris@v1's") as err:
        deployer.promote("iris")
    assert "mm promote iris --force -m WHY" in str(err.value)
    with pytest.raises(GateError, match="a forced promotion needs a reason"):
        deployer.promote("iris", force=True)
    promoted = deployer.promote("iris", force=True, reason="the stump is what the audit asked for")
    assert promoted.version == "iris@v2"
    assert deployer.get("iris").history[-1]["reason"] == "the stump is what the audit asked for"


# The verdict's statistics on request logs written to the store as a serving process writes them (the champion's
# answers, a shadow's under the same request ids with role "shadow"), labelled through the store's feedback.


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "metrics.sqlite")
    yield s
    s.close()


def _log(store, version, predictions, labels, *, prefix="r", role=None) -> None:
    """One request per entry of ``predictions`` (a list of rows, or one row), its label(s) sent as feedback."""
    rows = [p if isinstance(p, list) else [p] for p in predictions]
    ids = [f"{prefix}{i:04d}" for i in range(len(rows))]
    store.write_requests([
        {"time": 1000.0 + i * 0.01, "model": "iris", "version": version, "request_id": rid, "status": 200,
         "total_s": 0.002, "rows": len(p), "prediction": p, "role": role}
        for i, (rid, p) in enumerate(zip(ids, rows, strict=True))
    ])  # fmt: skip
    if role is None:  # a shadow's requests are the champion's: labelled once
        store.write_feedback("iris", zip(ids, labels, strict=True))


def _compare(store, mode, task="classification"):
    release = {"mode": mode, "version": "iris@v2", "percent": 50.0 if mode == "canary" else 0.0}
    return compare("iris", release, "iris@v1", store.requests("iris", 0), store.joined_feedback("iris", 0), task)


def _predicted(y, right, rng):
    """``y`` with a share ``right`` of it kept and the rest replaced by another class, spread over the classes."""
    wrong = rng.random(len(y)) >= right
    return np.where(wrong, (y + rng.integers(1, 3, len(y))) % 3, y)


def test_the_point_f1_is_sklearns_macro_f1_over_every_labelled_row(store):
    """Requests of one to three rows; the champion predicts a class no label has (3) and the challenger never
    predicts class 2: each side's F1 is sklearn's on its own rows (every class seen as a label or a prediction
    counts, one never predicted right scores 0), its accuracy sklearn's too; labels sent as floats are the same
    classes."""
    rng = np.random.default_rng(7)
    sizes = {1: rng.integers(1, 4, 130), 2: rng.integers(1, 4, 120)}
    truth = {v: [rng.integers(0, 3, n).tolist() for n in sizes[v]] for v in sizes}
    guess = {
        1: [[3 if rng.random() < 0.1 else (t if rng.random() < 0.7 else (t + 1) % 3) for t in ts] for ts in truth[1]],
        2: [[t if t < 2 and rng.random() < 0.8 else int(rng.integers(0, 2)) for t in ts] for ts in truth[2]],
    }
    for v, prefix in ((1, "a"), (2, "b")):
        _log(store, v, guess[v], [[float(t) for t in ts] for ts in truth[v]], prefix=prefix)
    c = _compare(store, "canary")
    assert c.metric == "F1"
    for v in (1, 2):
        y, p = [t for ts in truth[v] for t in ts], [g for gs in guess[v] for g in gs]
        side = c.sides[f"iris@v{v}"]
        assert side["labelled"] == len(truth[v])  # requests, not rows
        assert side["quality"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0), abs=1e-12)
        assert side["accuracy"] == pytest.approx(accuracy_score(y, p), abs=1e-12)
    assert c.difference["delta"] == pytest.approx(c.sides["iris@v2"]["quality"] - c.sides["iris@v1"]["quality"])
    assert c.difference["low"] <= c.difference["delta"] <= c.difference["high"]


def test_a_shadow_decides_for_a_challenger_clearly_better_on_f1(store):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    _log(store, 1, _predicted(y, 0.6, rng).tolist(), y.tolist())
    _log(store, 2, _predicted(y, 0.95, rng).tolist(), y.tolist(), role="shadow")
    c = _compare(store, "shadow")
    assert c.decided and c.verdict.startswith("iris@v2 better on F1 by 0.")
    assert "over 200 labelled requests (95 % interval +0." in c.verdict
    assert 0 < c.difference["low"] < c.difference["delta"] < c.difference["high"]
    assert c.sides["iris@v1"]["quality"] < 0.7 < 0.9 < c.sides["iris@v2"]["quality"]


def test_equal_accuracy_but_a_better_f1_decides_on_f1(store):
    """120 of class 0 and 30 of class 1: the champion answers 0 to everything (accuracy 0.8, macro F1 0.444), the
    challenger finds half of the 1s at the price of 15 false alarms (accuracy 0.8 too, macro F1 0.6875)."""
    y = [0] * 120 + [1] * 30
    challenger = [1] * 15 + [0] * 105 + [1] * 15 + [0] * 15
    _log(store, 1, [0] * 150, y)
    _log(store, 2, challenger, y, role="shadow")
    c = _compare(store, "shadow")
    v1, v2 = c.sides["iris@v1"], c.sides["iris@v2"]
    assert v1["accuracy"] == v2["accuracy"] == pytest.approx(0.8)
    assert v1["quality"] == pytest.approx((240 / 270) / 2) and v2["quality"] == pytest.approx((210 / 240 + 0.5) / 2)
    assert c.decided and c.verdict.startswith("iris@v2 better on F1 by 0.243 over 150 labelled requests")
    assert c.difference["low"] > 0
    assert "F1 0.444, accuracy 0.800 on 150 labelled" in str(c)


def test_the_same_data_gives_the_same_verdict(store):
    """The bootstrap draws from a fixed seed, and the requests are put in one order whatever order the store gives."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 300)
    _log(store, 1, _predicted(y[:150], 0.8, rng).tolist(), y[:150].tolist(), prefix="a")
    _log(store, 2, _predicted(y[150:], 0.85, rng).tolist(), y[150:].tolist(), prefix="b")
    first, second = _compare(store, "canary"), _compare(store, "canary")
    assert first.verdict == second.verdict and first.difference == second.difference
    joined = store.joined_feedback("iris", 0).sample(frac=1.0, random_state=0)
    shuffled = compare("iris", {"mode": "canary", "version": "iris@v2"}, "iris@v1", store.requests("iris", 0),
                       joined, "classification")  # fmt: skip
    assert shuffled.verdict == first.verdict and "95 % interval" in first.verdict


def test_a_canary_with_too_few_labels_waits(store):
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 210)
    _log(store, 1, y[:150].tolist(), y[:150].tolist(), prefix="a")  # perfect, yet
    _log(store, 2, _predicted(y[150:], 0.3, rng).tolist(), y[150:].tolist(), prefix="b")
    c = _compare(store, "canary")
    assert not c.decided and c.difference is None
    assert (
        c.verdict == "not enough evidence yet: 60 labelled requests on iris@v2 and 150 on iris@v1, 100 needed on each"
    )
    assert c.sides["iris@v1"]["quality"] == 1.0 and c.sides["iris@v2"]["labelled"] == 60


def test_a_regressor_is_judged_on_mae(store):
    rng = np.random.default_rng(5)
    y = rng.normal(size=300)
    guess = {1: y[:150] + rng.normal(0, 1.0, 150), 2: y[150:] + rng.normal(0, 0.3, 150)}
    _log(store, 1, guess[1].tolist(), y[:150].tolist(), prefix="a")
    _log(store, 2, guess[2].tolist(), y[150:].tolist(), prefix="b")
    c = _compare(store, "canary", task="regression")
    assert c.metric == "MAE" and "accuracy" not in c.sides["iris@v1"]
    assert c.sides["iris@v1"]["quality"] == pytest.approx(np.mean(np.abs(guess[1] - y[:150])))
    assert c.decided and c.verdict.startswith("iris@v2 better on MAE by 0.") and c.difference["high"] < 0
