import multiprocessing
import sqlite3
import threading
import time

from mm_magics.engine.monitoring.store import COMPACT_CHUNK, SQLiteStore


def records(n, t0=None, model="m"):
    t0 = t0 or time.time()
    return [
        {
            "time": t0 + i * 0.001,
            "model": model,
            "version": 1,
            "request_id": f"r{i}",
            "status": 200 if i % 10 else 422,
            "total_s": 0.002,
            "queue_s": 0.0001,
            "proc_s": 0.001,
            "batch_size": 1,
            "rows": 1,
            "prediction": [i % 3],
        }
        for i in range(n)
    ]


def test_write_and_read_back(tmp_path):
    store = SQLiteStore(tmp_path / "m.sqlite")
    store.write_requests(records(100))
    df = store.requests("m", 0)
    assert len(df) == 100 and (df["status"] == 422).sum() == 10
    assert df["total_ms"].iloc[0] == 2.0 and df["prediction"].iloc[1] == "[1]"
    store.write_feedback("m", [("r1", 1), ("r2", 0), ("nope", 5)])
    joined = store.joined_feedback("m", 0)
    assert sorted(joined["request_id"]) == ["r1", "r2"]  # feedback for unknown requests joins nothing


def test_wal_lets_a_reader_read_while_a_writer_writes(tmp_path):
    path = tmp_path / "m.sqlite"
    writer = SQLiteStore(path)
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    stop = threading.Event()
    errors = []

    def write():
        while not stop.is_set():
            try:
                writer.write_requests(records(200))
            except Exception as exc:  # pragma: no cover - surfaced below
                errors.append(exc)
            time.sleep(0.002)  # a server's pace: keeps the table (and each read of it) small

    thread = threading.Thread(target=write)
    thread.start()
    reader = SQLiteStore(path)  # another connection, as the kernel has beside the server process
    counts = []
    deadline = time.monotonic() + 30
    while (len(counts) < 20 or counts[-1] == 0) and time.monotonic() < deadline:  # reads until the writer has written
        counts.append(len(reader.requests("m", 0)))
        time.sleep(0.01)
    stop.set()
    thread.join()
    assert not errors and counts == sorted(counts) and counts[-1] > 0


def test_retention_folds_old_requests_into_rollups(tmp_path):
    store = SQLiteStore(tmp_path / "m.sqlite", raw_days=1, rollup_days=30)
    now = time.time()
    store.write_requests(records(500, t0=now - 3 * 86400))  # three days old: past raw retention
    store.write_requests(records(50, t0=now - 60))
    report = store.compact(now)
    assert report == {"folded": 500, "deleted": 500, "rollups": report["rollups"]} and report["rollups"] >= 1
    assert len(store.requests("m", 0)) == 50
    rollups = store.rollups("m", 0)
    assert rollups["count"].sum() == 500 and rollups["errors"].sum() == 50
    store.compact(now + 40 * 86400)  # a month later everything is past retention
    assert store.rollups("m", 0).empty and store.requests("m", 0).empty


def test_alerts_open_once_per_version_and_resolve(tmp_path):
    store = SQLiteStore(tmp_path / "m.sqlite")
    assert store.open_alert("m", 1, "psi", "warning", "x drifted", 0.3) is True
    assert store.open_alert("m", 1, "psi", "warning", "x drifted more", 0.4) is False
    assert list(store.alerts("m")["message"]) == ["x drifted more"]
    assert store.open_alert("m", 2, "psi", "warning", "v2 drifted too", 0.5) is True  # another version's own alert
    first, second = store.alerts("m").sort_values("version")["id"]
    store.resolve_alert(int(first))
    assert list(store.alerts("m")["version"]) == [2]
    store.resolve_alert(int(second))
    assert store.alerts("m").empty and len(store.alerts("m", open_only=False)) == 2


def test_large_writes_keep_every_row_and_value_in_order(tmp_path):
    # 1 + 8 + 64 + 512 rows and the sizes in between cross every multi-row statement size the store uses
    store = SQLiteStore(tmp_path / "m.sqlite")
    for n in (1, 7, 8, 9, 63, 585, 1100):
        store.write_requests(records(n, t0=1000.0 + n, model=f"m{n}"))
        df = store.requests(f"m{n}", 0)
        assert len(df) == n and df["request_id"].tolist() == [f"r{i}" for i in range(n)]
        assert df["prediction"].tolist() == [f"[{i % 3}]" for i in range(n)]
    assert store._db.execute("SELECT count(*) FROM requests").fetchone() == (1 + 7 + 8 + 9 + 63 + 585 + 1100,)
    store.write_feedback("m1", [(f"r{i}", {"label": i}) for i in range(700)])
    assert len(store.joined_feedback("m1", 0)) == 1  # only r0 exists for m1
    assert store._db.execute("SELECT count(*) FROM feedback").fetchone() == (700,)


def test_a_month_of_traffic_compacts_in_chunks_to_a_week_of_raw_rows(tmp_path):
    store = SQLiteStore(tmp_path / "m.sqlite", raw_days=7, rollup_days=90)
    now = time.time()
    month = [
        {
            "time": now - 30 * 86400 + m * 60 + 1,
            "model": "m",
            "version": 1 + m % 2,
            "request_id": f"r{m}",
            "status": 200,
            "total_s": 0.002,
            "queue_s": 0.0,
            "proc_s": 0.001,
        }
        for m in range(30 * 1440)
    ]  # one request a minute for 30 days, two versions
    minute = (now - 20 * 86400) // 60 * 60  # five errors inside one minute, wherever `now` falls
    errors = [{"time": minute + i, "model": "m", "status": 404, "error": "no such version"} for i in range(5)]
    store.write_requests(month + errors)
    old = sum(1 for r in month + errors if r["time"] < now - 7 * 86400)
    steps = []
    while True:
        report = store.compact(now, limit=COMPACT_CHUNK)
        steps.append(report["folded"])
        if report["folded"] < COMPACT_CHUNK:
            break
    assert sum(steps) == old and max(steps) == COMPACT_CHUNK and len(steps) == old // COMPACT_CHUNK + 1
    assert len(store.requests("m", 0)) == len(month) + len(errors) - old  # the last week stays raw
    rollups = store.rollups("m", 0)
    assert rollups["count"].sum() == old and rollups["errors"].sum() == 5
    unversioned = rollups[rollups["version"].isna()]
    assert len(unversioned) == 1 and unversioned["count"].iloc[0] == 5  # one row per minute, even without version
    store.write_requests(errors)  # late arrivals for a minute already rolled up are merged into it
    store.compact(now)
    unversioned = store.rollups("m", 0).query("version != version")
    assert len(unversioned) == 1 and unversioned["count"].iloc[0] == 10


def _open(path, barrier):
    barrier.wait()
    store = SQLiteStore(path)
    store.write_requests([])
    store.close()


def test_three_processes_open_one_new_store_at_once(tmp_path):
    """Two workers of a deployment (or two deployments started together) open one new store at the same instant;
    switching a new file to WAL used to fail one of them with "database is locked" and kill that server."""
    ctx = multiprocessing.get_context("fork")
    for attempt in range(15):
        path = tmp_path / f"metrics-{attempt}.sqlite"
        barrier = ctx.Barrier(3)
        procs = [ctx.Process(target=_open, args=(path, barrier)) for _ in range(3)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        assert [p.exitcode for p in procs] == [0, 0, 0], f"attempt {attempt}"
