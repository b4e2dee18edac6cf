"""A real Jupyter server with the extension enabled (pytest-jupyter's fixtures, loaded for this folder only: its
autouse event-loop fixtures must not reach the rest of the suite) over a real temporary workspace."""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (the fixtures and collection hooks, this folder only)
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine import Workspace, schema_of


@pytest.fixture
def jp_server_config():  # the extension, as `pip install` enables it
    return {"ServerApp": {"jpserver_extensions": {"mm_magics.server": True}}}


@pytest.fixture
def workspace(jp_root_dir, monkeypatch):
    """A workspace beside the server's root with two iris versions (the magics' rule finds it: no MM_HOME)."""
    monkeypatch.delenv("MM_HOME", raising=False)
    X, y = load_iris(return_X_y=True, as_frame=True)
    common = {"schema": schema_of(X), "probe_data": X}
    with Workspace.open(jp_root_dir / ".mm") as ws:
        ws.registry.commit("iris", LogisticRegression(max_iter=500).fit(X, y), message="first",
                           metrics={"accuracy": 0.97}, **common)  # fmt: skip
        ws.registry.commit("iris", DecisionTreeClassifier(max_depth=1).fit(X, y), message="stump",
                           metrics={"accuracy": 0.66}, parent="iris@v1", **common)  # fmt: skip
        ws.lifecycle.set_gates("iris", ["accuracy >= 0.9"])
        yield ws
