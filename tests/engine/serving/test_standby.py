"""The warm path: a standby process that already imported scikit-learn becomes the next deployment.

Real processes throughout: the first deploy starts cold and leaves a standby behind; the next deploy (another
workspace) is served by that very process, in that workspace, and keeps serving the right version
across a switch and a rollback (its models come from the sha256-keyed cache)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine import Workspace, schema_of
from mm_magics.engine.serving import standby

from ...waiting import wait_until


@pytest.fixture
def pool(monkeypatch):
    """A private standby pool for this test (XDG_RUNTIME_DIR keys it; short, as Unix socket paths must be),
    stopped at the end."""
    runtime = tempfile.mkdtemp(prefix="mm-")
    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    monkeypatch.setenv("MM_STANDBY", "1")
    yield standby.pool_dir()
    standby.stop_all()
    shutil.rmtree(runtime, ignore_errors=True)


def _workspace(root, X, y):
    ws = Workspace.open(root / ".mm")
    common = {"schema": schema_of(X), "probe_data": X, "metrics": {"accuracy": 0.95}}
    ws.registry.commit("iris", LogisticRegression(max_iter=500).fit(X, y), message="logreg", **common)
    ws.registry.commit("iris", DecisionTreeClassifier(max_depth=1).fit(X, y), message="stump", **common)
    return ws


def _predict(dep, X):
    body = {"inputs": [{"name": "x", "shape": list(X.shape), "datatype": "FP64", "data": X.to_numpy().tolist()}]}
    resp = httpx.post(dep.url + "/v2/models/iris/infer", json=body)
    assert resp.status_code == 200, resp.text
    return resp.json()["outputs"][0]["data"]


def test_a_standby_becomes_the_next_deployment_and_serves_the_right_versions(tmp_path, pool):
    X, y = load_iris(return_X_y=True, as_frame=True)
    first = _workspace(tmp_path / "a", X, y)
    second = _workspace(tmp_path / "b", X, y)
    try:
        cold = first.deployments.deploy("iris@v1")
        waiting = wait_until(lambda: list(pool.glob("*.sock")), "a standby to listen after the first deploy")
        standby_pid = int(waiting[0].stem)
        assert standby_pid != cold.pid
        warm = second.deployments.deploy("iris@v1")
        assert warm.pid == standby_pid  # that very process now serves, from the second workspace's directory
        assert os.readlink(f"/proc/{warm.pid}/cwd") == str(second.root)
        with open(f"/proc/{warm.pid}/cmdline", "rb") as fh:  # ps and pgrep show a server, not a standby
            assert b"mm_magics.engine.serving.server --workspace=" + str(second.root).encode() in fh.read()
        logreg, stump = (second.registry.checkout(f"iris@v{n}") for n in (1, 2))
        assert _predict(warm, X) == logreg.predict(X).tolist()
        second.deployments.deploy("iris@v2")  # a switch inside the warm process
        assert _predict(warm, X) == stump.predict(X).tolist()
        rolled, dep = second.deployments.rollback("iris", "iris@v1", "back to the logistic regression")
        assert dep is not None and dep.version == rolled.id and dep.pid == standby_pid
        assert _predict(warm, X) == logreg.predict(X).tolist()  # v3 shares v1's sha256: the cached model
        assert not np.array_equal(logreg.predict(X), stump.predict(X))
        # and the pool refilled behind it
        wait_until(lambda: [p for p in pool.glob("*.sock") if int(p.stem) != standby_pid], "the next standby")
    finally:
        for ws in (first, second):
            with contextlib.suppress(Exception):
                ws.deployments.undeploy("iris")
            ws.close()


def test_without_a_standby_the_deploy_starts_cold(tmp_path, pool, monkeypatch):
    monkeypatch.setenv("MM_STANDBY", "0")
    X, y = load_iris(return_X_y=True, as_frame=True)
    ws = _workspace(tmp_path / "c", X, y)
    try:
        dep = ws.deployments.deploy("iris@v1")
        assert _predict(dep, X) == ws.registry.checkout("iris@v1").predict(X).tolist()
        assert not list(pool.glob("*.sock")) and not list(pool.glob("*.warming"))
    finally:
        ws.deployments.undeploy("iris")
        ws.close()
