"""The sparklines widget from Python, on a real server's request log: the first picture is the window, a poll
sends only the buckets completed since, a view opened later gets the window as held now, closing stops it."""

from __future__ import annotations

import time

import pytest

from mm_magics.engine.monitoring.series import SETTLE_S
from mm_magics.widgets.sparklines import Sparklines
from mm_magics.widgets.view import ModelView

from ..engine.monitoring.test_live import flushed, live, send  # noqa: F401  (a deployed iris and its helpers)
from ..engine.monitoring.test_series import completed, rates, released, stored, traffic  # noqa: F401


def test_a_poll_sends_only_the_new_buckets(live, front):  # noqa: F811
    monitor, deployer = live["monitor"], live["deployer"]
    cursor = monitor.series("iris", "2m", step=1, deployment=deployer.get("iris"))
    widget = Sparklines(cursor.advance(now=completed(1)), cursor=cursor, poll_s=1)
    assert widget.series["name"] == "iris" and len(widget.series["t"]) == 120 and widget.poll_s == 1
    browser = front(widget)
    before = len(monitor.store.requests("iris", 0))
    send(live["dep"].url, live["X"].iloc[:30])
    flushed(live, before + 30)
    time.sleep(1 + SETTLE_S)  # the poll below asks at real time: the requests' buckets are final by then
    (points,) = [m for m in browser.say({"kind": "poll"}) if m["kind"] == "points"]
    assert 1 <= len(points["t"]) <= 10 and points["t"][0] > widget.series["t"][-1]  # only what is new
    assert sum(points["columns"]["rate"]) == 30 and points["version"] == "iris@v1"
    assert widget.series["challenger"] is None and "challenger" not in points  # no release: nothing more
    assert browser.bytes_sent() < 4096
    (window,) = browser.say({"kind": "hello"})  # a second view of the same output
    assert window["kind"] == "window" and window["series"]["t"][-len(points["t"]) :] == points["t"]
    assert len(window["series"]["t"]) == 120  # the window slid: as long as before
    widget.close()
    assert widget.closed.is_set()


def test_the_model_view_has_three_tabs_over_the_deployment(live):  # noqa: F811
    ws = live["ws"]
    view = ModelView(ws, ws.overview("iris", window="1m"))
    status, tabs = view.children
    assert "iris@v1 running at" in status.value
    assert [tabs.get_title(i) for i in range(3)] == ["Timeline", "Lifecycle", "Live"]
    assert view.timeline.payload["model"] == "iris" and view.lifecycle.picture["model"] == "iris"
    assert view.sparklines.poll_s > 0  # the Live tab asks for new buckets while it is on screen
    bundle = view._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert data["text/plain"].startswith("iris: serves iris@v1 at http://127.0.0.1:")
    view.close()
    assert view.sparklines.closed.is_set()


@pytest.mark.parametrize("kind", ["nonsense", None])
def test_unknown_messages_are_ignored(live, front, kind):  # noqa: F811
    series = live["monitor"].series("iris", "1m").advance(now=time.time())
    widget = Sparklines(series)
    assert front(widget).say({"kind": kind}) == []


def test_a_canary_release_syncs_and_pushes_the_challengers_columns_beside_the_champions(released, front):  # noqa: F811
    ws = released["ws"]
    ws.deployments.deploy("iris@v2", canary=50)
    cursor = ws.monitor.series("iris", "2m", step=1, deployment=ws.deployments.get("iris"))
    traffic(released, range(0, 60, 2))
    stored(released, 30)
    widget = Sparklines(cursor.advance(now=completed(1)), cursor=cursor, poll_s=1)
    synced = widget.get_state()["series"]  # what the browser receives
    ch = synced["challenger"]
    assert synced["version"] == "iris@v1" and (ch["version"], ch["mode"], ch["percent"]) == ("iris@v2", "canary", 50)
    lengths = {k: len(v) for k, v in ch["columns"].items()}
    assert lengths == dict.fromkeys(("rate", "errors", "p50", "p99", "quality"), 120)  # the same 120 buckets
    assert rates(synced["columns"]).sum() + rates(ch["columns"]).sum() == 30 and rates(ch["columns"]).sum() > 0
    assert any(v is not None for v in ch["columns"]["quality"])
    browser = front(widget)
    traffic(released, range(1, 41, 2))
    stored(released, 50)
    time.sleep(1 + SETTLE_S)  # the poll below asks at real time: the requests' buckets are final by then
    (points,) = [m for m in browser.say({"kind": "poll"}) if m["kind"] == "points"]
    assert all(len(col) == len(points["t"]) for col in points["challenger"]["columns"].values())
    assert rates(points["columns"]).sum() + rates(points["challenger"]["columns"]).sum() == 20
    (window,) = browser.say({"kind": "hello"})  # a view opened later: the held window carries both, as long as t
    held = window["series"]
    assert len(held["t"]) == 120 and held["challenger"]["version"] == "iris@v2"
    assert all(len(col) == 120 for col in held["challenger"]["columns"].values())
    assert held["challenger"]["columns"]["rate"][-len(points["t"]) :] == points["challenger"]["columns"]["rate"]
    assert "canary iris@v2 (50 %)" in str(widget.static_record())
    widget.close()
