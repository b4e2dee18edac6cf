"""A real deployment (server process on 127.0.0.1) shared by the serving tests of one module."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine import Workspace, fingerprint, schema_of
from mm_magics.engine.serving.deployer import Deployer

from .docker_fixtures import base_image, deployer, docker_client, runner  # noqa: F401 - a real Docker engine


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Workspace with iris@v1 (logistic regression) and iris@v2 (a tree), v1 deployed locally."""
    root = tmp_path_factory.mktemp("serving") / ".mm"
    ws = Workspace.open(root)
    X, y = load_iris(return_X_y=True, as_frame=True)
    logreg = LogisticRegression(max_iter=500).fit(X, y)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
    common = {"schema": schema_of(X), "data": fingerprint(X, y), "probe_data": X}
    ws.registry.commit("iris", logreg, message="logreg", metrics={"accuracy": 0.97}, **common)
    ws.registry.commit("iris", tree, message="tree", metrics={"accuracy": 0.95}, parent="iris@v1", **common)
    local = Deployer(ws)
    dep = local.deploy("iris@v1")
    yield {"ws": ws, "deployer": local, "dep": dep, "X": X, "y": y, "logreg": logreg, "tree": tree}
    for d in local.store.all():
        local.undeploy(d.name)
    ws.close()
