"""Every example notebook, executed end to end on a real kernel; any cell error fails the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mm_magics.demo import execute_notebook
from mm_magics.engine import Workspace

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "example_notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run each notebook once, on first use, in its own workspace; every test of it reads the same run."""
    runs: dict[str, tuple] = {}

    def run(name: str):
        if name not in runs:
            where = tmp_path_factory.mktemp(name.split(".")[0])
            path = next(p for p in NOTEBOOKS if p.name == name)
            nb = execute_notebook(path, where, env={"MM_HOME": str(where / ".mm")}, timeout=600)
            runs[name] = (nb, where / ".mm")
        return runs[name]

    return run


def outputs(nb, kind: str = "text/plain") -> str:
    """Everything the code cells showed as ``kind`` (stream text counts as plain text)."""
    return "\n".join(
        (o.get("text", "") if kind == "text/plain" else "") + o.get("data", {}).get(kind, "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_example_notebook_runs_clean(executed, name):
    nb, home = executed(name)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    with Workspace.open(home, create=False) as ws:
        assert ws.registry.models()


def test_quickstart_tells_the_whole_story(executed):
    nb, home = executed("01_quickstart.ipynb")
    html = outputs(nb, "text/html")
    assert "predictions agree on" in html  # the diff
    assert "GridSearchCV: best" in html  # the tuning run
    assert "✗ accuracy &gt;= 0.95" in html  # the gate refusing the weak version
    with Workspace.open(home, create=False) as ws:
        log = ws.registry.log("cancer")
        assert [v.number for v in log.versions] == [5, 4, 3, 2, 1]
        assert log.versions[0].rollback_of == "cancer@v4" and log.versions[0].aliases == ["production"]
        assert ws.lifecycle.stage("cancer@v3") == "deploy"
        assert ws.lifecycle.stage("cancer@v4") == "evaluate"


def test_deploy_notebook_serves_rolls_back_and_cleans_up(executed):
    nb, home = executed("02_deploy.ipynb")
    text = outputs(nb)
    assert "switched without downtime" in text and "wine@v3 -> [0, 0, 2]" in text  # v1 again, not the forest
    if "Docker engine ready" in text:
        assert "(docker, container" in text
    elif os.environ.get("CI"):
        raise AssertionError("CI must exercise the notebook's Docker part: " + text[-300:])
    with Workspace.open(home, create=False) as ws:
        assert not (ws.run_dir / "deployments" / "wine.json").exists()  # the notebook undeploys at the end
        assert ws.lifecycle.stage("wine@v2") == "retire"


def test_monitor_notebook_sees_drift_and_alerts(executed):
    nb, home = executed("03_monitor.ipynb")
    text = outputs(nb)
    assert "ALERT psi: feature mean radius drifted" in text
    assert "quality on 150 labelled" in text and "screening@v2 ->" in text
    with Workspace.open(home, create=False) as ws:
        assert ws.registry.get("screening@v2").parent == "screening@v1"
        assert ws.lifecycle.stage("screening@v1") == "retire"  # replaced in production by the retrained version
