"""Every example notebook, executed end to end on a real kernel; any cell error fails the test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mm_magics.demo import execute_notebook
from mm_magics.engine import Workspace

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "example_notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_example_notebook_runs_clean(path, tmp_path):
    nb = execute_notebook(path, tmp_path, env={"MM_HOME": str(tmp_path / ".mm")}, timeout=300)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code")
    with Workspace.open(tmp_path / ".mm", create=False) as ws:
        assert ws.registry.models()


def test_quickstart_tells_the_whole_story(tmp_path):
    quick = next(p for p in NOTEBOOKS if p.name == "01_quickstart.ipynb")
    nb = execute_notebook(quick, tmp_path, env={"MM_HOME": str(tmp_path / ".mm")}, timeout=300)
    html = "\n".join(
        o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "predictions agree on" in html  # the diff
    assert "GridSearchCV: best" in html  # the tuning run
    assert "✘ accuracy &gt;= 0.95" in html  # the gate refusing the weak version
    with Workspace.open(tmp_path / ".mm", create=False) as ws:
        log = ws.registry.log("cancer")
        assert [v.number for v in log.versions] == [5, 4, 3, 2, 1]
        assert log.versions[0].rollback_of == "cancer@v4" and log.versions[0].aliases == ["production"]
        assert ws.lifecycle.stage("cancer@v3") == "deploy"
        assert ws.lifecycle.stage("cancer@v4") == "evaluate"


def test_deploy_notebook_serves_rolls_back_and_cleans_up(tmp_path):
    nb = execute_notebook(
        next(p for p in NOTEBOOKS if p.name == "02_deploy.ipynb"),
        tmp_path,
        env={"MM_HOME": str(tmp_path / ".mm")},
        timeout=600,
    )
    text = "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "switched without downtime" in text and "wine@v3 -> [0, 0, 0]" in text
    if "Docker engine ready" in text:
        assert "(docker, container" in text
    elif os.environ.get("CI"):
        raise AssertionError("CI must exercise the notebook's Docker part: " + text[-300:])
    with Workspace.open(tmp_path / ".mm", create=False) as ws:
        assert not (ws.run_dir / "deployments" / "wine.json").exists()  # the notebook undeploys at the end
        assert ws.lifecycle.stage("wine@v2") == "retire"


def test_monitor_notebook_sees_drift_and_alerts(tmp_path):
    nb = execute_notebook(
        next(p for p in NOTEBOOKS if p.name == "03_monitor.ipynb"),
        tmp_path,
        env={"MM_HOME": str(tmp_path / ".mm")},
        timeout=600,
    )
    text = "\n".join(
        o.get("text", "") + o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    assert "ALERT psi: feature mean radius drifted" in text
    assert "quality on 150 labelled" in text and "screening@v2 ->" in text
    with Workspace.open(tmp_path / ".mm", create=False) as ws:
        assert ws.registry.get("screening@v2").parent == "screening@v1"
        assert ws.lifecycle.stage("screening@v1") == "retire"  # replaced in production by the retrained version
