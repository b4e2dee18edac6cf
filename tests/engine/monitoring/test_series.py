"""Live series end to end: a real server records requests; the cursor's buckets agree with the rows stored, and a
later advance returns only the buckets completed since."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mm_magics.engine.monitoring.series import SETTLE_S

from .test_live import flushed, live, send  # noqa: F401  (the module's deployed iris and its helpers)


def completed(step: float) -> float:
    """The time to advance a cursor to once the bucket the last request fell in has ended: the requests were
    flushed to the store explicitly, so the wait for servers to write them (``SETTLE_S``) is already over."""
    time.sleep(step - time.time() % step + 0.01)
    return time.time() + SETTLE_S


def test_series_buckets_agree_with_the_request_log(live):  # noqa: F811
    X, y, monitor, deployer = live["X"], live["y"], live["monitor"], live["deployer"]
    cursor = monitor.series("iris", "10m", step=2, deployment=deployer.get("iris"))
    before = len(monitor.store.requests("iris", 0))
    ids = send(live["dep"].url, X.iloc[:60])
    flushed(live, before + 60)
    labels = y.iloc[:60].tolist()
    labels[:6] = [(v + 1) % 3 for v in labels[:6]]  # ten percent of the ground truth disagrees
    monitor.record_feedback("iris", ids, labels)
    end = completed(2)  # every request so far lies in a complete bucket
    series = cursor.advance(now=end)
    assert series.full and series.version == "iris@v1" and series.step_s == 2
    assert len(series.t) == 300 and series.t == sorted(series.t) and series.t[-1] <= end
    stored = monitor.store.requests("iris", series.t[0] - 2, series.t[-1])
    rate = np.asarray(series.columns["rate"])
    assert rate.sum() * 2 == pytest.approx(len(stored))  # every request counted once, in one bucket
    busy = [i for i, r in enumerate(rate) if r]
    assert all(series.columns["p50"][i] > 0 and series.columns["errors"][i] == 0 for i in busy)
    assert all(series.columns["p50"][i] is None for i in range(len(rate)) if not rate[i])  # a gap, not 0 ms
    expected = (live["model"].predict(X.iloc[:60]) == labels).mean()
    assert series.columns["quality"][-1] == pytest.approx(expected)  # the last bucket's window holds every label
    assert series.quality_metric == "accuracy" and series.reference["quality"] == 0.97
    assert series.reference["drift"] == monitor.rules("iris")["psi"]
    assert "iris (iris@v1): 300 bucket(s) of 2s" in str(series)

    again = cursor.advance(now=end)  # nothing completed since: nothing sent
    assert not again.full and again.t == []
    drifted = X.iloc[:120].copy()
    drifted["petal length (cm)"] += 4.0
    send(live["dep"].url, drifted)
    flushed(live, before + 180)
    later = cursor.advance(now=completed(2))
    assert not later.full and 1 <= len(later.t) <= 30 and later.t[0] > series.t[-1]  # only the new buckets
    assert sum(later.columns["rate"]) * 2 == 120
    assert later.columns["drift"][-1] > later.reference["drift"]  # the shifted feature, over its window
    assert later.columns["quality"][-1] == pytest.approx(expected)  # the same labels, still in the window


def test_series_of_a_model_without_traffic_is_gaps_not_zeros(live):  # noqa: F811
    ws = live["ws"]
    ws.registry.commit("quiet", live["model"], message="v1", metrics={"accuracy": 0.9})
    series = ws.monitor.series("quiet", "1m").advance()  # a minute in 1 s buckets, the newest two not yet final
    assert series.version is None and len(series.t) == 60
    assert set(series.columns["rate"]) == {0.0} and set(series.columns["p99"]) == {None}
    assert str(series) == "quiet (not deployed): 60 bucket(s) of 1s — no requests"
