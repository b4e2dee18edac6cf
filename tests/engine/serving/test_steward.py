"""The automatic mode of a release, end to end: a real local deployment, a canary or shadow started with
``auto=True``, real requests and feedback over HTTP, and the steward process deciding by the promotion rule; plus the
rule itself is tested in tests/engine/monitoring/test_promotion.py."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine.errors import MMError
from mm_magics.engine.serving import steward
from mm_magics.engine.serving.deployer import Deployer

from ...conftest import commit_kwargs
from ...waiting import wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def serving(ws, iris, models):
    """iris@v1 (logistic regression) serving; iris@v2 a stump (worse live), iris@v3 another logistic regression
    (as good); both committed with evaluations that pass the deploy gates, so only live evidence tells them apart."""
    X, y = iris
    ws.registry.commit("iris", models["logreg"], message="logreg", **commit_kwargs(X, y))
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    ws.registry.commit("iris", stump, message="stump", parent="iris@v1", **commit_kwargs(X, y, 0.96))
    twin = LogisticRegression(max_iter=500, C=0.9).fit(X, y)
    ws.registry.commit("iris", twin, message="twin", parent="iris@v1", **commit_kwargs(X, y, 0.96))
    ws.monitor.set_rules("iris", promote_min_labelled=100, promote_margin=0.05, promote_check_s=0.3)
    deployer = Deployer(ws)
    dep = deployer.deploy("iris@v1")
    with httpx.Client(base_url=dep.url, timeout=10) as client:
        yield deployer, client
    for d in deployer.list():
        deployer.undeploy(d.name)
    deployer.close()


def _traffic(client: httpx.Client, X, y, n: int) -> None:
    """``n`` requests (cycling over the rows), then their true labels through the feedback route."""
    ids, labels = [], []
    for i in range(n):
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [X.iloc[i % 150].tolist()]}]}
        resp = client.post("/v2/models/iris/infer", json=body)
        assert resp.status_code == 200, resp.text
        ids.append(resp.headers["x-request-id"])
        labels.append(int(y.iloc[i % 150]))
    assert client.post("/v2/models/iris/feedback", json={"ids": ids, "labels": labels}).status_code == 200


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and b"zombie" not in _state(pid)


def _state(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/status").read_bytes().lower()
    except OSError:
        return b"zombie"


def _decided(deployer: Deployer) -> dict | None:
    dep = deployer.get("iris")
    return dep.history[-1] if dep.release is None else None


def test_the_steward_promotes_a_canary_as_good_as_the_champion(ws, serving, iris):
    deployer, client = serving
    X, y = iris
    dep = deployer.deploy("iris@v3", canary=50, auto=True)
    pid = dep.release["auto"]["pid"]
    assert _alive(pid) and "decided automatically by the promotion rule" in str(deployer.get("iris"))
    _traffic(client, X, y, 60)  # too little evidence: it waits
    log = ws.run_dir / "deployments" / "iris.steward.log"
    wait_until(lambda: "waiting: " in log.read_text(), "the steward's first check")
    assert deployer.get("iris").release is not None
    _traffic(client, X, y, 400)
    last = wait_until(lambda: _decided(deployer), "the steward's decision", timeout=60)
    assert last["action"] == "promote" and last["actor"] == steward.ACTOR
    assert last["reason"].startswith("Automatic promote by the promotion rule: iris@v3's live F1 0.9")
    assert deployer.get("iris").version == "iris@v3" and ws.registry.get("iris@v1").stage == "retire"
    wait_until(lambda: not _alive(pid), "the steward to exit once the release is decided")
    assert "Automatic promote" in log.read_text()
    commits = [c.message for c in ws.git.repo.iter_commits(max_count=5)] if hasattr(ws, "git") else []
    assert not commits or any("Replaced by iris@v3" in m for m in commits)


def test_the_steward_aborts_a_shadow_worse_than_the_champion(ws, serving, iris):
    deployer, client = serving
    X, y = iris
    dep = deployer.deploy("iris@v2", shadow=True, auto=True)
    pid = dep.release["auto"]["pid"]
    _traffic(client, X, y, 150)
    last = wait_until(lambda: _decided(deployer), "the steward's decision", timeout=60)
    assert last["action"] == "abort" and last["actor"] == steward.ACTOR
    assert "iris@v2's live F1 0." in last["reason"] and "is worse than iris@v1's" in last["reason"]
    assert deployer.get("iris").version == "iris@v1" and ws.registry.get("iris@v2").stage == "retire"
    wait_until(lambda: not _alive(pid), "the steward to exit once the release is decided")
    card = ws.card("iris@v2").markdown  # the aborted candidate's own live evidence, not the deployment's
    assert "Not deployed on this machine (the deployment serves iris@v1)" in card
    assert "- **Live, last 24h**: predicted 150 as a shadow" in card
    assert "- **Live quality** on 150 labelled predictions: accuracy 0." in card
    assert "answered 150 requests" in ws.card("iris@v1").markdown


def test_a_person_deciding_first_stops_the_steward(ws, serving, iris):
    deployer, _ = serving
    ws.monitor.set_rules("iris", promote_check_s=600)
    dep = deployer.deploy("iris@v3", canary=10, auto=True)
    pid = dep.release["auto"]["pid"]
    assert _alive(pid)
    deployer.abort("iris", reason="not today")
    assert not _alive(pid)
    assert deployer.get("iris").history[-1]["actor"] != steward.ACTOR
    dep = deployer.deploy("iris@v2", canary=10, auto=True)  # v3 retired when it was dropped
    second = dep.release["auto"]["pid"]
    deployer.undeploy("iris")
    assert not _alive(second)


def test_a_release_whose_steward_died_says_so(serving):
    """A steward killed (as a machine restart would) leaves the release running: the deployment's note says who
    must decide now, and how."""
    import signal

    deployer, _ = serving
    dep = deployer.deploy("iris@v3", canary=10, auto=True)
    os.kill(dep.release["auto"]["pid"], signal.SIGKILL)
    wait_until(lambda: not steward.running(deployer.get("iris").release), "the steward to be gone")
    note = deployer.get("iris").note
    assert "the process deciding the release of iris@v3 automatically is not running" in note
    assert "mm promote iris or mm abort iris" in note
    assert note in str(deployer.list()[0])
    aborted = deployer.abort("iris", reason="decided by hand")
    assert aborted.note is None  # the note went with the release


def test_auto_needs_a_release_and_a_release_runs_where_the_deployment_runs(serving):
    deployer, _ = serving
    with pytest.raises(MMError, match="--auto decides a canary or a shadow: add --canary PERCENT or --shadow"):
        deployer.deploy("iris@v3", auto=True)
    with pytest.raises(MMError, match="iris runs as a local process, so its canary does too: leave out --docker"):
        deployer.deploy("iris@v3", canary=10, docker=True)
    with pytest.raises(MMError, match="a shadow runs inside the deployed server, on its port and workers"):
        deployer.deploy("iris@v3", shadow=True, workers=2)
    assert deployer.get("iris").release is None


def test_a_switch_during_a_release_drops_the_candidate_and_deploying_the_candidate_promotes_it(ws, serving, iris):
    deployer, client = serving
    deployer.deploy("iris@v3", canary=20)
    with pytest.raises(MMError, match="not enough live evidence to promote iris@v3"):
        deployer.deploy("iris@v3")  # deploying the candidate promotes it: the rule is checked as for %mm_promote
    dep = deployer.deploy("iris@v3", force=True, reason="seen enough")
    assert dep.version == "iris@v3" and dep.release is None and dep.history[-1]["action"] == "promote"
    deployer.deploy("iris@v2", shadow=True, force=True, reason="a look at the stump")
    new, dep = deployer.rollback("iris", "iris@v1", "back to the first")  # a switch decides the release
    assert dep.version == new.id == "iris@v4" and dep.release is None
    assert [h["action"] for h in dep.history][-3:] == ["shadow", "abort", "switch"]
    assert ws.registry.get("iris@v2").stage == "retire"


def test_a_steward_is_recognised_by_its_command_line_before_it_is_signalled():
    """A pid on record may belong to another process by now: stop() leaves anything but a steward alone."""
    steward.stop({"auto": {"pid": os.getpid()}})  # the caller itself: never
    steward.stop({"auto": {"pid": 1}})  # init: not a steward, untouched
    assert _alive(1)
