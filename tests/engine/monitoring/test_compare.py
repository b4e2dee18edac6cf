"""Champion and challenger compared live, through a real deployment: requests over HTTP, ground truth through the
feedback route, the picture through ``ws.monitor.view`` (what ``%mm_monitor`` and ``mm monitor`` show). The verdict
refuses to decide on too little evidence, then decides when the evidence is there."""

from __future__ import annotations

import httpx
import pytest
from sklearn.tree import DecisionTreeClassifier

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
    assert c.decided and c.verdict.startswith("iris@v1 better on accuracy by 0.")
    assert c.difference["high"] < 0  # the challenger's accuracy minus the champion's, all of its interval
    assert c.sides["iris@v2"]["quality"] < 0.75 < 0.9 < c.sides["iris@v1"]["quality"]
    assert "verdict: iris@v1 better on accuracy" in str(ws.monitor.view("iris", "10m", deployments=deployer))


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
    deployer.deploy("iris@v2", shadow=True)
    _traffic(client, X, y, range(0, 150, 3))  # 50 labelled requests
    with pytest.raises(GateError, match="not enough live evidence to promote iris@v2: 50 labelled requests"):
        deployer.promote("iris")
    _traffic(client, X, y, range(1, 150))
    with pytest.raises(GateError, match=r"iris@v2's live accuracy 0\.\d+ is worse than iris@v1's") as err:
        deployer.promote("iris")
    assert "mm promote iris --force -m WHY" in str(err.value)
    with pytest.raises(GateError, match="a forced promotion needs a reason"):
        deployer.promote("iris", force=True)
    promoted = deployer.promote("iris", force=True, reason="the stump is what the audit asked for")
    assert promoted.version == "iris@v2"
    assert deployer.get("iris").history[-1]["reason"] == "the stump is what the audit asked for"
