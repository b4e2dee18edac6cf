"""The request recorder: what the server hands it ends up in the store, drift on its cadence, nothing lost."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from mm_magics.engine import fingerprint
from mm_magics.engine.monitoring import recorder as recorder_module
from mm_magics.engine.monitoring.recorder import DRIFT_SAMPLE, Recorder
from mm_magics.engine.monitoring.store import SQLiteStore
from mm_magics.engine.serving.request_ids import new_request_id

from ...waiting import wait_until


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, fingerprint(X, y)["profile"]


@pytest.fixture
def parked(tmp_path):
    """A recorder whose background thread never wakes during a test: only explicit flush() calls write."""
    store = SQLiteStore(tmp_path / "metrics.sqlite")
    rec = Recorder(store, deployment="dep", interval=3600.0, drift_every=3600.0)
    yield rec, store
    rec.close()
    store.close()


def served(X, profile, n, *, predict=None, t=None):
    """What app.py's finish() hands to on_request: references to the parsed 1-row frame, outputs and profile."""
    out = []
    for i in range(n):
        out.append(
            {
                "time": t or time.time(),
                "model": "iris",
                "version": 1,
                "request_id": new_request_id(),
                "status": 200,
                "queue_s": 0.0001,
                "proc_s": 0.001,
                "total_s": 0.002,
                "batch_size": 1,
                "rows": 1,
                "frame": X.iloc[[i % len(X)]].reset_index(drop=True),
                "outputs": {"predict": np.array([i % 3]) if predict is None else predict},
                "profile": profile,
            }
        )
    return out


def drift_rows(store):
    bins = {f: json.loads(c) for f, c in store._db.execute("SELECT feature, counts FROM drift_bins")}
    rows = store._db.execute("SELECT feature, sample, seen FROM drift_samples")
    samples = {f: (json.loads(s), seen) for f, s, seen in rows}
    return bins, samples


def test_flush_persists_requests_predictions_and_drift(parked, iris):
    X, profile = iris
    rec, store = parked
    records = served(X, profile, 50)
    for r in records:
        rec.record(r)
    assert rec.flush() == 50
    df = store.requests("iris", 0)
    assert len(df) == 50 and set(df["deployment"]) == {"dep"}
    assert df["request_id"].tolist() == [r["request_id"] for r in records]
    assert df["prediction"].tolist()[:4] == ["[0]", "[1]", "[2]", "[0]"]
    assert df["total_ms"].iloc[0] == pytest.approx(2.0) and df["proc_ms"].iloc[0] == pytest.approx(1.0)
    bins, samples = drift_rows(store)
    assert set(bins) == set(X.columns)
    assert all(sum(c) == 50 for c in bins.values())  # every row of every request was counted
    assert all(len(s) == 50 and seen == 50 for s, seen in samples.values())


def test_background_flushes_leave_drift_to_its_cadence_and_merge_counts(parked, iris):
    X, profile = iris
    rec, store = parked
    for batch in (served(X, profile, 30), served(X, profile, 20)):
        for r in batch:
            rec.record(r)
        rec.flush(drift=False)  # what the background thread does between drift writes
    assert len(store.requests("iris", 0)) == 50
    assert drift_rows(store) == ({}, {})
    rec.flush()
    bins, _ = drift_rows(store)
    assert all(sum(c) == 50 for c in bins.values())  # both flushes' counts, merged in memory, none lost


def test_a_closed_minute_is_written_at_once(parked, iris):
    X, profile = iris
    rec, store = parked
    for r in served(X, profile, 10, t=time.time() - 120):  # requests of a minute that is over
        rec.record(r)
    rec.flush(drift=False)
    bins, _ = drift_rows(store)
    assert all(sum(c) == 10 for c in bins.values())


def test_heavy_traffic_feeds_drift_a_uniform_sample(parked, iris):
    X, profile = iris
    rec, store = parked
    n = DRIFT_SAMPLE * 3
    for r in served(X, profile, n):
        rec.record(r)
    rec.flush()
    assert len(store.requests("iris", 0)) == n  # every request is logged
    bins, _ = drift_rows(store)
    assert all(sum(c) == DRIFT_SAMPLE for c in bins.values())  # drift saw a sample of them


def test_a_failed_drift_write_keeps_the_counts_for_the_next_one(parked, iris, monkeypatch):
    X, profile = iris
    rec, store = parked
    for r in served(X, profile, 40):
        rec.record(r)
    real = store.write_drift
    monkeypatch.setattr(store, "write_drift", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        rec.flush()
    assert len(store.requests("iris", 0)) == 40
    monkeypatch.setattr(store, "write_drift", real)
    rec.flush()
    bins, _ = drift_rows(store)
    assert all(sum(c) == 40 for c in bins.values())


def test_predictions_of_any_label_type_are_logged_as_json(parked, iris):
    X, profile = iris
    rec, store = parked
    labels = [
        np.array(["setosa"]),
        np.array([np.int64(2)], dtype=object),
        np.array([0.25]),
        np.array([True]),
        np.arange(40),  # long predictions are cut to MAX_LOGGED_ROWS
    ]
    for label in labels:
        rec.record(served(X, profile, 1, predict=label)[0])
    rec.flush()
    logged = [json.loads(p) for p in store.requests("iris", 0)["prediction"]]
    assert logged[:4] == [["setosa"], [2], [0.25], [True]]
    assert logged[4] == list(range(recorder_module.MAX_LOGGED_ROWS))


def test_errors_and_feedback_are_recorded(parked):
    rec, store = parked
    rid = new_request_id()
    rec.record({"time": time.time(), "model": "iris", "request_id": rid, "status": 422, "error": "bad input"})
    rec.feedback("iris", [rid], [1])
    rec.flush()
    df = store.requests("iris", 0)
    assert df["status"].tolist() == [422] and df["error"].tolist() == ["bad input"]
    assert pd.isna(df["total_ms"].iloc[0])
    labels = store._db.execute("SELECT request_id, label FROM feedback").fetchall()
    assert labels == [(rid, "1")]


def test_close_flushes_what_is_queued(tmp_path, iris):
    X, profile = iris
    store = SQLiteStore(tmp_path / "metrics.sqlite")
    rec = Recorder(store, interval=3600.0)
    for r in served(X, profile, 25):
        rec.record(r)
    rec.close()
    assert len(store.requests("iris", 0)) == 25
    bins, _ = drift_rows(store)
    assert all(sum(c) == 25 for c in bins.values())
    store.close()


def test_the_recorder_applies_retention_in_the_background(tmp_path):
    store = SQLiteStore(tmp_path / "metrics.sqlite", raw_days=1)
    old = time.time() - 3 * 86400
    store.write_requests([{"time": old + i, "model": "iris", "version": 1, "status": 200} for i in range(12_000)])
    store.write_requests([{"time": time.time(), "model": "iris", "version": 1, "status": 200}])
    rec = Recorder(store, interval=0.05)  # its first pass works off the backlog a chunk per tick
    wait_until(lambda: len(store.requests("iris", 0)) <= 1, "compaction to fold the old requests")
    rec.close()
    assert len(store.requests("iris", 0)) == 1 and store.rollups("iris", 0)["count"].sum() == 12_000
    assert rec.last_error is None
    store.close()
