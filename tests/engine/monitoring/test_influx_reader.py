"""The monitor's view of a deployment elsewhere: a server started the way a published image or a Kubernetes pod starts
it (a bundle, no workspace, InfluxDB settings from ``INFLUXDB_V2_*``) writes to a real InfluxDB-protocol server
(VictoriaMetrics); a workspace with no deployment of that model reads the picture back from there, through the engine
verb and through ``mm monitor``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from mm_magics.engine.monitoring.influx_reader import InfluxReader
from mm_magics.engine.monitoring.influx_settings import InfluxSettings
from mm_magics.engine.serving.deployer import Deployer
from mm_magics.engine.serving.image_context import write_bundle

from ...conftest import commit_kwargs
from ...victoria import free_port
from ...waiting import wait_until

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def elsewhere(ws, iris, models, victoria, tmp_path: Path):
    """iris@v1 served from a bundle by a server with no workspace, writing to ``victoria``: its URL."""
    X, y = iris
    version = ws.registry.commit("iris", models["logreg"], message="logreg", **commit_kwargs(X, y))
    bundle = write_bundle(ws, version, tmp_path / "bundle")
    port, state = free_port(), tmp_path / "state.json"
    env = {**os.environ, "INFLUXDB_V2_URL": victoria.url, "INFLUXDB_V2_BUCKET": "mm", "INFLUXDB_V2_ORG": "team"}
    argv = [sys.executable, "-m", "mm_magics.engine.serving.server", "--bundle", str(bundle), "--port", str(port)]
    argv += ["--metrics-db", str(tmp_path / "pod" / "metrics.sqlite"), "--deployment=iris", "--state-file", str(state)]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: state.exists() or proc.poll() is not None, "the server to be ready", timeout=60)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _infer(url: str, rows: list) -> int:
    body = {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    return httpx.post(f"{url}/v2/models/iris/infer", json=body).status_code


def test_a_model_served_elsewhere_is_monitored_from_influxdb(ws, iris, elsewhere, victoria, monkeypatch):
    X, _ = iris
    rows = X.iloc[:2].values.tolist()
    assert [_infer(elsewhere, rows) for _ in range(9)] == [200] * 9
    assert _infer(elsewhere, [[1.0, 2.0]]) == 422  # refused before the model runs: counted by /metrics, not logged

    monkeypatch.setenv("INFLUXDB_V2_URL", victoria.url)
    monkeypatch.setenv("INFLUXDB_V2_BUCKET", "mm")
    deployments = Deployer(ws)
    assert deployments.get("iris") is None  # nothing serves iris on this machine
    snap = wait_until(
        lambda: (
            victoria.flush() or ((s := ws.monitor.view("iris", "10m", deployments=deployments)).requests == 9 and s)
        ),
        "the nine answered requests to be readable from VictoriaMetrics",
        timeout=60,
        every=0.5,
    )
    assert snap.version == "iris@v1"
    assert snap.source == f"InfluxDB {victoria.url}, bucket mm"
    assert snap.error_rate == 0.0
    assert set(snap.latency_ms) >= {"server", "processing", "queue"}
    assert snap.latency_ms["server"]["p50"] > 0
    assert sum(snap.series["requests"]) == 9
    assert "served elsewhere: read from InfluxDB" in str(snap)
    deployments.close()

    # the same picture through `mm monitor`, the path a script or CI takes
    env = {**os.environ, "INFLUXDB_V2_URL": victoria.url, "INFLUXDB_V2_BUCKET": "mm"}
    run = subprocess.run(
        [sys.executable, "-m", "mm_magics.cli", "-C", str(ws.root), "monitor", "iris", "--window", "10m", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    shown = json.loads(run.stdout)
    assert (shown["requests"], shown["version"], shown["source"]) == (9, "iris@v1", snap.source)


def test_an_unreachable_influxdb_is_one_line(ws):
    reader = InfluxReader(InfluxSettings(url=f"http://127.0.0.1:{free_port()}"), timeout=2)
    with pytest.raises(Exception) as err:
        reader.requests("iris", 0.0)
    assert "cannot read the monitoring data" in str(err.value) and "\n" not in str(err.value)


def test_the_flux_query_names_the_bucket_model_and_window():
    """InfluxDB 2 itself cannot run here (no package): its query is at least well-formed and escaped."""
    reader = InfluxReader(InfluxSettings(url="http://influx.example:8086", bucket='b"x'))
    flux = reader.flux('m"${x}', 1_700_000_000.0, 1_700_000_060.0)
    assert 'from(bucket: "b\\"x")' in flux
    assert "range(start: 2023-11-14T22:13:20.000000Z, stop: 2023-11-14T22:14:20.000000Z)" in flux
    assert 'r.model == "m\\"\\${x}"' in flux
