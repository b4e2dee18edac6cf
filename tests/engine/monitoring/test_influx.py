"""The InfluxDB sink against a real server: Debian's victoria-metrics, which accepts InfluxDB's /api/v2/write line
protocol unchanged from influxdb-client (no InfluxDB 2 is installable here; see ../shared/ENVIRONMENT.md).

Every point is read back exactly through VictoriaMetrics' own API (``/internal/force_flush`` then
``/api/v1/export``): each field is a series ``<measurement>_<field>``, tags are labels, timestamps are in ms and
string fields are not kept, so numeric fields are what we check. VictoriaMetrics keeps about 12 significant digits of
a value, so test values are chosen with fewer. Nothing here checks Flux, buckets or orgs: this server ignores them.

The binary comes from ``scripts/setup-influx.sh``. Without it these tests skip on a developer machine and fail in CI
(``CI`` set): an InfluxDB sink that was never run against a server must not pass as tested.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mm_magics.engine.atomic import atomic_write_text
from mm_magics.engine.monitoring.influx import InfluxSink, to_line

from ...victoria import free_port
from ...waiting import wait_until


def dead_url() -> str:
    """A loopback URL where nothing listens: connection refused, at once."""
    return f"http://127.0.0.1:{free_port()}"


def request(t: float, i: int, model: str) -> dict:
    """A request record whose latency encodes its index: latency_ms == i, so order and loss are visible."""
    return {
        "kind": "request",
        "time": t,
        "model": model,
        "version": 1,
        "deployment": "d",
        "status": 200,
        "total_s": i / 1000,
        "queue_s": 0.0,
        "proc_s": i / 1000,
        "batch_size": 1,
        "rows": 1,
    }


def spooled_lines(spool: Path) -> int:
    return sum(data.count(b"\n") for p in spool.glob("*.lp") if (data := p.read_bytes()))


# -- line protocol -----------------------------------------------------------------------------------------------------


def test_line_protocol_escapes_tags_and_strings_and_skips_missing_fields():
    line = to_line(
        {"kind": "request", "time": 1.5, "model": "a b,c=d\\", "version": 2, "status": 200, "total_s": 0.25},
    )
    assert line == "mm_request,model=a\\ b\\,c\\=d\\\\,status=200,version=2 latency_ms=250.0 1500000"
    alert = to_line(
        {"kind": "alert", "time": 2, "model": "m", "rule": "r", "severity": "warning", "message": 'say "hi"\\\nnow'},
        {"host": "box 1"},
    )
    assert (
        alert
        == 'mm_alert,host=box\\ 1,model=m,rule=r,severity=warning active=1i,message="say \\"hi\\"\\\\\\nnow" 2000000'
    )
    assert "\n" not in alert  # one point is one line: the spool depends on it
    assert to_line({"kind": "feedback", "time": 3, "model": "m"}) == "mm_feedback,model=m count=1i 3000000"
    assert to_line({"kind": "metric", "time": 3, "model": "m", "name": "psi", "value": float("nan")}) is None
    with pytest.raises(ValueError, match="unknown monitoring record kind"):
        to_line({"kind": "nope"})


def test_write_never_raises_on_bad_input(tmp_path):
    sink = InfluxSink(dead_url(), None, "o", "b", spool_dir=tmp_path / "spool", flush_interval=0.05)
    try:
        sink.write([{"kind": "nope"}, {"kind": "request", "model": "m"}, None])  # type: ignore[list-item]
        sink.write(None)  # type: ignore[arg-type]
        sink.write([{"kind": "metric", "model": "m", "name": "x", "value": "not a number"}])
        state = sink.state()
        assert state["dropped"] == 4 and "dropped" in state["last_error"]
    finally:
        sink.close(timeout=5)


# -- the real server --------------------------------------------------------------------------------------------------


def test_every_kind_arrives_with_exact_values(victoria, tmp_path):
    t0 = int(time.time()) - 600
    odd = "iris, v=2 x\\"  # a tag value needing every escape
    records = [
        {
            "kind": "request",
            "time": t0 + 0.001,
            "model": odd,
            "version": 3,
            "deployment": "prod",
            "status": 200,
            "total_s": 0.0123456,
            "queue_s": 0.0004,
            "proc_s": 0.011,
            "network_s": 0.0021,
            "batch_size": 4,
            "rows": 7,
            "request_id": "ignored",
        },
        {
            "kind": "request",
            "time": t0 + 0.002,
            "model": "kinds",
            "version": 3,
            "status": 422,
            "total_s": 0.1 + 0.2,  # float noise: written as 300.0 ms, not 300.00000000000006
            "queue_s": 0.0,
            "proc_s": 0.25,
            "batch_size": 1,
            "rows": 1,
        },
        {"kind": "feedback", "time": t0 + 0.003, "model": "kinds", "version": 3, "correct": 1, "abs_error": None},
        {"kind": "feedback", "time": t0 + 0.004, "model": "kinds", "version": 3, "correct": None, "abs_error": 2.5},
        {
            "kind": "metric",
            "time": t0 + 0.005,
            "model": "kinds",
            "version": 3,
            "name": "psi",
            "feature": "petal length (cm)",
            "value": 0.2345,
        },
        {"kind": "metric", "time": t0 + 0.006, "model": "kinds", "version": 3, "name": "accuracy", "value": 0.96667},
        {
            "kind": "alert",
            "time": t0 + 0.007,
            "model": "kinds",
            "version": 3,
            "rule": "latency_p99",
            "severity": "warning",
            "message": 'p99 "high"\nretrain with %%mm_train',
        },
    ]
    sink = InfluxSink(victoria.url, "any-token", "org", "bucket", spool_dir=tmp_path / "spool", flush_interval=0.05)
    try:
        sink.write(records)
        assert sink.drain(30)
        state = sink.state()
        assert state["connected"] and state["written"] == 7 and state["spooled"] == 0 and state["dropped"] == 0
        assert state["last_error"] is None
    finally:
        sink.close()

    ms = [round((t0 + k / 1000) * 1000) for k in range(8)]
    got = victoria.series('{__name__=~"mm_.*"}', expected_samples=19)  # 18 numeric + the message (as 0)
    req1 = (("deployment", "prod"), ("model", odd), ("status", "200"), ("version", "3"))
    req2 = (("model", "kinds"), ("status", "422"), ("version", "3"))
    fb = (("model", "kinds"), ("version", "3"))
    expected = {
        ("mm_request_latency_ms", req1): [(ms[1], 12.3456)],
        ("mm_request_queue_ms", req1): [(ms[1], 0.4)],
        ("mm_request_processing_ms", req1): [(ms[1], 11.0)],
        ("mm_request_network_ms", req1): [(ms[1], 2.1)],
        ("mm_request_batch_size", req1): [(ms[1], 4)],
        ("mm_request_rows", req1): [(ms[1], 7)],
        ("mm_request_latency_ms", req2): [(ms[2], 300.0)],
        ("mm_request_queue_ms", req2): [(ms[2], 0.0)],
        ("mm_request_processing_ms", req2): [(ms[2], 250.0)],
        ("mm_request_batch_size", req2): [(ms[2], 1)],
        ("mm_request_rows", req2): [(ms[2], 1)],
        ("mm_feedback_count", fb): [(ms[3], 1), (ms[4], 1)],
        ("mm_feedback_correct", fb): [(ms[3], 1)],
        ("mm_feedback_abs_error", fb): [(ms[4], 2.5)],
        ("mm_metric_value", (("feature", "petal length (cm)"), *fb[:1], ("name", "psi"), fb[1])): [(ms[5], 0.2345)],
        ("mm_metric_value", (*fb[:1], ("name", "accuracy"), fb[1])): [(ms[6], 0.96667)],
        ("mm_alert_active", (("model", "kinds"), ("rule", "latency_p99"), ("severity", "warning"), ("version", "3"))): [
            (ms[7], 1)
        ],
    }
    numeric = {k: v for k, v in got.items() if k[0] != "mm_alert_message"}  # string fields are not kept
    assert numeric == expected
    assert ("mm_request_network_ms", req2) not in got  # only when the client reported it


def test_outage_loses_nothing_and_write_never_blocks(victoria, tmp_path):
    """Write before, during and after the server is stopped; every point arrives, in timestamp order."""
    model = "outage"
    t0 = int(time.time()) - 3000
    sink = InfluxSink(
        victoria.url,
        None,
        "org",
        "bucket",
        spool_dir=tmp_path / "spool",
        batch_size=50,
        flush_interval=0.05,
        timeout=2.0,
        max_queue=200,  # small, so the burst below also takes the caller's straight-to-disk path
    )
    n = 0
    call_seconds: list[float] = []

    def write(count: int) -> None:
        nonlocal n
        recs = [request(t0 + (n + i) / 1000, n + i, model) for i in range(count)]
        n += count
        start = time.perf_counter()
        sink.write(recs)
        call_seconds.append(time.perf_counter() - start)

    try:
        for _ in range(30):  # before
            write(10)
        assert sink.drain(30)
        before = n

        victoria.stop()  # during: the server is gone
        for _ in range(40):
            write(10)
            time.sleep(0.005)
        write(500)  # a burst larger than max_queue: straight to the spool from the caller's thread
        for _ in range(20):
            write(10)
        assert sink.flush(30)  # everything is on the server or on disk
        state = sink.state()
        assert state["connected"] is False and state["spooled"] > 0 and state["last_error"]
        assert state["spooled"] + state["written"] >= n and spooled_lines(tmp_path / "spool") == state["spooled"]

        victoria.start()  # after: same port, same data directory
        for _ in range(30):
            write(10)
        assert sink.drain(60)
        state = sink.state()
        assert state["connected"] and state["spooled"] == 0 and state["dropped"] == 0
        assert state["last_error"] is None  # the outage's error is history once the server is back
        assert sorted(p.suffix for p in (tmp_path / "spool").iterdir()) == [".lock"]  # drained segments are gone
    finally:
        sink.close()
    print(f"write() calls: {len(call_seconds)}, slowest {max(call_seconds) * 1e3:.2f} ms")  # informative only

    got = victoria.series(f'mm_request_latency_ms{{model="{model}"}}', expected_samples=n, timeout=60)
    assert len(got) == 1
    samples = next(iter(got.values()))
    assert len({ts for ts, _ in samples}) == n, f"{n - len(samples)} point(s) missing; {before} written before"
    # timestamp order and values line up: point i has timestamp t0 + i ms and latency i ms
    assert sorted(set(samples)) == [(round((t0 + i / 1000) * 1000), float(i)) for i in range(n)]


def test_a_server_that_never_answers_spools_and_a_later_sink_replays(victoria, tmp_path):
    """A hung server (accepts, never answers): write() keeps returning, points go to disk; after close() the next
    sink on the same spool directory — e.g. the next server start — adopts and replays them."""
    spool = tmp_path / "spool"
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)  # the kernel completes connections; nobody ever reads or answers
    try:
        sink = InfluxSink(
            f"http://127.0.0.1:{hung.getsockname()[1]}",
            None,
            "o",
            "b",
            spool_dir=spool,
            batch_size=20,
            flush_interval=0.05,
            timeout=0.5,
            max_queue=50,
        )
        t0 = int(time.time()) - 2000
        for k in range(40):
            sink.write([request(t0 + (k * 10 + i) / 1000, k * 10 + i, "hung") for i in range(10)])
        wait_until(lambda: sink.state()["spooled"] >= 400, "400 points in the spool")
        state = sink.state()
        assert state["connected"] is False and state["spooled"] == 400 and state["written"] == 0
        sink.close(timeout=5)
    finally:
        hung.close()
    assert spooled_lines(spool) == 400

    replay = InfluxSink(victoria.url, None, "o", "b", spool_dir=spool, flush_interval=0.05)
    try:
        assert replay.drain(30)
        assert replay.state()["written"] == 400
    finally:
        replay.close()
    assert list(spool.iterdir()) == []  # adopted stream released, nothing left behind
    samples = next(iter(victoria.series('mm_request_latency_ms{model="hung"}', 400).values()))
    assert [v for _, v in samples] == [float(i) for i in range(400)]


def test_a_crash_torn_spool_replays_its_intact_lines(victoria, tmp_path):
    """A process killed with points on disk, the last line half-written: the next sink replays the rest."""
    spool = tmp_path / "spool"
    t0 = int(time.time()) - 1000
    code = f"""
import os, time
from pathlib import Path
from mm_magics.engine.monitoring.influx import InfluxSink
sink = InfluxSink({dead_url()!r}, None, "o", "b", spool_dir=Path({str(spool)!r}), batch_size=10, flush_interval=0.05)
recs = [{{"kind": "metric", "time": {t0} + i / 1000, "model": "torn", "version": 1, "name": "n", "value": i}}
        for i in range(100)]
sink.write(recs[:60])
sink.write(recs[60:])
assert sink.flush(20)
print(sink.state()["spooled"], flush=True)
os.kill(os.getpid(), 9)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -9 and proc.stdout.strip() == "100", proc.stderr
    segments = sorted(spool.glob("*.lp"))
    assert segments and spooled_lines(spool) == 100
    last = segments[-1]
    data = last.read_bytes()
    last.write_bytes(data[:-7])  # tear the last line, as a crash mid-append would

    sink = InfluxSink(victoria.url, None, "o", "b", spool_dir=spool, flush_interval=0.05)
    try:
        assert sink.drain(30)
        assert sink.state()["written"] == 99
    finally:
        sink.close()
    assert list(spool.iterdir()) == []
    samples = next(iter(victoria.series('mm_metric_value{model="torn"}', 99).values()))
    assert [v for _, v in samples] == [float(i) for i in range(99)]


def test_live_sinks_never_replay_each_others_spool(victoria, tmp_path):
    """Two servers share a spool directory: a live one's points are its own to replay, never taken over."""
    spool = tmp_path / "spool"
    t0 = int(time.time()) - 500
    down = InfluxSink(dead_url(), None, "o", "b", spool_dir=spool, flush_interval=0.05)
    up = InfluxSink(victoria.url, None, "o", "b", spool_dir=spool, flush_interval=0.05)
    try:
        down.write([request(t0 + i / 1000, i, "down") for i in range(30)])
        assert down.flush(20) and down.state()["spooled"] == 30
        up._adopt()  # what the live sink does every minute: finds the other stream locked, leaves it alone
        up.write([request(t0 + i / 1000, i, "up") for i in range(20)])
        assert up.drain(30)
        assert up.state()["written"] == 20 and down.state()["spooled"] == 30 and spooled_lines(spool) == 30
    finally:
        down.close(timeout=5)
        up.close()
    later = InfluxSink(victoria.url, None, "o", "b", spool_dir=spool, flush_interval=0.05)  # the down one is gone
    try:
        assert later.drain(30) and later.state()["written"] == 30
    finally:
        later.close()
    assert len(next(iter(victoria.series('mm_request_latency_ms{model="down"}', 30).values()))) == 30


def test_from_config_reads_the_client_env_and_never_writes_the_token(victoria, ws, monkeypatch):
    token = "tok-" + secrets.token_hex(16)
    for key in [k for k in os.environ if k.startswith("INFLUXDB_V2_")]:
        monkeypatch.delenv(key)
    spool = ws.run_dir / "influx-spool"
    assert InfluxSink.from_config({}, spool) is None  # nothing configured: no sink
    assert InfluxSink.from_config({"influx": {"org": "o"}}, spool) is None  # no URL: no sink

    monkeypatch.setenv("INFLUXDB_V2_URL", victoria.url)
    monkeypatch.setenv("INFLUXDB_V2_ORG", "env-org")
    monkeypatch.setenv("INFLUXDB_V2_TOKEN", token)
    monkeypatch.setenv("INFLUXDB_V2_TIMEOUT", "3000")
    monkeypatch.setenv("INFLUXDB_V2_TAG_HOST", "ci-box")
    local = {"influx": {"bucket": "from-local"}}  # what a workspace's local.json may say; the rest from the env
    sink = InfluxSink.from_config(local, spool, flush_interval=0.05)
    assert sink is not None
    try:
        assert (sink.url, sink.org, sink.bucket) == (victoria.url, "env-org", "from-local")
        assert sink._client.token == token and sink._client.api_client.configuration.timeout == 3000
        t0 = int(time.time()) - 400
        sink.write([request(t0 + i / 1000, i, "cfg") for i in range(10)])
        assert sink.drain(30)
        victoria.stop()  # make the sink spool, so there is a spool to search for the token
        sink.write([request(t0 + (10 + i) / 1000, 10 + i, "cfg") for i in range(10)])
        assert sink.flush(20) and sink.state()["spooled"] == 10
        # what the recorder publishes for %mm_monitor
        atomic_write_text(ws.run_dir / "influx-state.json", json.dumps(sink.state()))
        assert token not in repr(sink) and token not in json.dumps(sink.state())
        victoria.start()
        assert sink.drain(30)
    finally:
        sink.close()
    got = victoria.series('mm_request_latency_ms{model="cfg"}', 20)
    ((name, labels),) = got
    assert dict(labels)["host"] == "ci-box" and len(got[(name, labels)]) == 20  # INFLUXDB_V2_TAG_* became a tag

    needle = token.encode()
    for root in (ws.root, spool, ws.run_dir):
        for path in Path(root).rglob("*"):
            if path.is_file():
                assert needle not in path.read_bytes(), f"token written to {path}"
    history = subprocess.run(
        ["git", "-C", str(ws.root), "log", "-p", "--all"], capture_output=True, text=True, check=False
    ).stdout
    assert token not in history

    env_free = InfluxSink.from_config({"influx": {"url": "http://user:pw@127.0.0.1:9/x", "token": "t"}}, spool)
    assert env_free is not None
    try:
        assert env_free.state()["url"] == "http://127.0.0.1:9/x" and env_free.bucket == "mm_magics"
        assert env_free._client.token == "t"  # a token in local.json (never committed) wins over the env
    finally:
        env_free.close(timeout=2)


def test_a_deployed_server_writes_every_request_to_both_stores_even_when_stopped_at_once(victoria, ws, iris, models):
    """End to end: a real local deployment configured through local.json; undeployed right after its last request,
    with nothing flushed by hand, it still writes every request to the embedded store and to InfluxDB. (uvicorn
    re-raises SIGTERM after its shutdown, so this holds only because the server closes its recorder in the
    lifespan shutdown; it lost the last second of requests before.)"""
    import httpx

    from mm_magics.engine.monitoring.store import SQLiteStore
    from mm_magics.engine.serving.deployer import Deployer

    from ...conftest import commit_kwargs

    X, y = iris
    ws.registry.commit("iris", models["logreg"], message="v1", **commit_kwargs(X, y))
    ws.set_local(influx={"url": victoria.url, "org": "o", "bucket": "b", "token": "local-token"})
    deployer = Deployer(ws)
    dep = deployer.deploy("iris")
    ids = []
    try:
        with httpx.Client(base_url=dep.url, timeout=30) as client:
            for i in range(25):
                resp = client.post("/invocations", json={"instances": X.iloc[[i]].to_numpy().tolist()})
                assert resp.status_code == 200
                ids.append(resp.headers["x-request-id"])
    finally:
        deployer.undeploy("iris")
    store = SQLiteStore(ws.run_dir / "metrics.sqlite")
    assert store.requests("iris", 0)["request_id"].tolist() == ids
    store.close()
    got = victoria.series('mm_request_latency_ms{model="iris"}', 25)
    assert sum(len(v) for v in got.values()) == 25
    ((_, labels),) = got
    assert dict(labels) == {"deployment": "iris", "model": "iris", "status": "200", "version": "1"}
