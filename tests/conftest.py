"""Shared fixtures: real temporary workspaces (real git repositories), real scikit-learn models and data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine import Workspace, fingerprint, schema_of

from .daemons import oci_registry, prometheus  # noqa: F401 - a real OCI registry and Prometheus
from .seaweed import s3_env, seaweed  # noqa: F401 - a real S3 server, for the artifact remote tests
from .victoria import victoria  # noqa: F401 - a fixture, shared by the monitoring and Docker tests

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _standbys_end_with_the_session():
    """Deploys leave a warm standby behind for the next one (as they do for a user); none outlives the session."""
    yield
    from mm_magics.engine.serving import standby

    standby.stop_all()


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never let a test find a developer's own workspace or identity."""
    monkeypatch.delenv("MM_HOME", raising=False)
    monkeypatch.setenv("MM_ACTOR", "tester@ci")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace.open(tmp_path / "proj" / ".mm")
    yield workspace
    workspace.close()


@pytest.fixture(scope="session")
def iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def models(iris):
    X, y = iris
    return {
        "logreg": LogisticRegression(max_iter=500).fit(X, y),
        "tree": DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y),
        "deep_tree": DecisionTreeClassifier(random_state=0).fit(X, y),
    }


@pytest.fixture
def populated(ws, iris, models):
    """A workspace with m@v1 (logistic regression, accuracy 0.95) and its child m@v2 (a tree, 0.9)."""
    X, y = iris
    ws.registry.commit("m", models["logreg"], message="one", metrics={"accuracy": 0.95}, probe_data=X)
    ws.registry.commit("m", models["tree"], message="two", metrics={"accuracy": 0.9}, parent="m@v1", probe_data=X)
    return ws


def commit_kwargs(X, y, accuracy: float = 0.95, code: str = "model = LogisticRegression()") -> dict:
    return {
        "metrics": {"accuracy": accuracy, "f1_macro": accuracy - 0.01},
        "data": fingerprint(X, y),
        "schema": schema_of(X),
        "code": code,
        "probe_data": X,
    }


def run_python(code: str, *, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a snippet in a fresh interpreter (real separate processes for concurrency and crash tests)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=full_env, check=False
    )
