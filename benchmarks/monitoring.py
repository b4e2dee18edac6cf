"""Monitoring benchmark: embedded store ingest, the request recorder, and serving throughput with recording on/off.

Run ``python benchmarks/monitoring.py [--points N] [--duration S] [--rounds R]``; one JSON document goes to stdout,
progress to stderr. Three parts:

1. **Embedded store ingest.** ``SQLiteStore.write_requests`` takes N realistic request records (exactly the keys the
   recorder writes: time, model, version, deployment, request_id, status, total_s, queue_s, proc_s, batch_size,
   rows, a one-element prediction list, error None; request ids are UUIDv7 as the server makes them) in
   batches of 100, 1 000 and 10 000 records per call. The baseline is plain ``sqlite3``: ``executemany`` of the very
   tuples the store would build, one ``BEGIN IMMEDIATE``/``COMMIT`` per batch, into an identical table (the store's
   own ``SCHEMA``, indexes included) with the same pragmas (WAL, ``synchronous=NORMAL``). Every measurement writes
   into a fresh database file, so the figures compare like with like; ``ours/raw`` says what the store adds on top
   of SQLite (building the tuples from dicts, ms conversion, JSON for the prediction). Two diagnostic baselines
   (raw, 10 000 per call) tell where SQLite's own time goes: the same table without the ``request_id`` index, and
   the same tuples with random (UUIDv4) request ids, which the server used before it switched to UUIDv7.
2. **The recorder path.** ``Recorder.record`` is what a request handler pays: N calls are timed (per-call µs)
   against a bare ``deque.append`` of the same dicts; then ``flush()`` is timed until everything is persisted
   (rows counted; ``flush()`` is called again while it still finds work, and the report says whether one call
   was enough) against raw ``executemany`` of as many rows. The records are exactly what ``app.py`` hands over
   (the parsed 1-row frame, the outputs and the training profile, so the flush also updates drift counts and
   reservoirs). Three variants: one ``flush()`` for all N; ``flush(drift=False)`` after every 1 000 records, which
   is what the background thread does when serving ~1 000 req/s with its 1 s interval (drift state on its own
   cadence, written by a last ``flush()``; baseline: raw, 1 000 per transaction); and the latter without a
   profile (no drift work). The recorder's own thread is parked (a long
   interval) so it cannot flush in the middle of a measurement; the cyclic GC stays on, with the fixtures frozen
   out of its sight.
3. **Serving with recording on vs off.** The same version (LogisticRegression on iris, 4 features) is served by
   two ``python -m mm_magics.engine.serving.server`` processes started up front, one with ``--metrics-db`` and one
   without; the port is read from the state file the server writes once it is ready. Debian's ``wrk`` (C, epoll;
   ``-t2 -c8``) POSTs a 1-row V2 body to ``/v2/models/iris/infer`` through a small Lua script that counts non-200
   answers. Runs alternate off, on, off, on, ..., off: every "on" run is bracketed by two "off" runs, and its
   ratio is taken against their mean, which cancels slow drifts of the machine's load; the median of these
   paired ratios gives ``recording_overhead = 1 - on/off``. After every run both servers are asked to flush
   (``POST /mm/v1/flush``, admin token), so no recorder backlog spills into the next run, and the server's CPU
   time (``/proc/PID/stat``, from before the run to after the flush) gives CPU µs per request, a figure that is far
   less sensitive to a noisy neighbour than req/s. Finally the store is read back: it must hold as many request
   rows as the "on" server answered (wrk's count, plus the few requests still in flight when wrk stopped, which
   wrk does not count), and exactly as many as the server's own counter.

The machine is shared (2 cores), so every figure comes with a ratio against a baseline measured in the same run,
measurements are interleaved in rounds whose order rotates, and medians are reported. Only 127.0.0.1 is used,
every wrk run is bounded by a timeout, and both servers are stopped in a ``finally`` (SIGTERM and SIGHUP are
turned into a normal exit so that clean-up runs). ``benchmarks/serving.py`` is the model for the wrk harness;
the helpers both use live in ``benchmarks/_bench.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from _bench import (  # benchmarks/ is on sys.path when a script there runs
    cpu_model,
    make_log,
    median,
    now_iso,
    package_version,
    rnd,
    rotated,
    stop_process,
    terminate_on_sigterm,
    wrk_info,
)
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mm_magics.engine import Workspace, fingerprint, schema_of
from mm_magics.engine.monitoring.recorder import Recorder
from mm_magics.engine.monitoring.store import SCHEMA, SQLiteStore
from mm_magics.engine.serving.protocol import Schema, from_v2
from mm_magics.engine.serving.request_ids import new_request_id

log = make_log("monitoring")

MODEL = "iris"
SPEC = f"{MODEL}@v1"
INFER_PATH = f"/v2/models/{MODEL}/infer"
INSERT_SQL = "INSERT INTO requests VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
BATCH_SIZES = (100, 1_000, 10_000)
TARGET_BATCHES = (1_000, 10_000)
DIAGNOSTIC_BATCH = 10_000
INGEST_TARGET = 200_000.0  # points/s with batching
OVERHEAD_TARGET = 0.05  # 1 - on/off req/s
CONNECTIONS, WRK_THREADS = 8, 2
WRK_TIMEOUT_S = 5
READY_TIMEOUT_S = 60.0
SETTLE_S = 0.3
ROW_INDEX = 50  # a versicolor flower: class 1
SERVER_FLUSH = 1000  # ~1 000 req/s x the recorder's 1 s interval: what one background flush sees when serving

WRK_SCRIPT = """\
-- POST the same 1-row V2 body on every request and count non-200 answers; print one JSON summary line.
wrk.method = "POST"
wrk.body = %(body)s
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  n_responses = 0
  n_non200 = 0
end

function response(status, headers, body)
  n_responses = n_responses + 1
  if status ~= 200 then n_non200 = n_non200 + 1 end
end

function done(summary, latency, requests)
  local responses, non200 = 0, 0
  for _, thread in ipairs(threads) do
    responses = responses + thread:get("n_responses")
    non200 = non200 + thread:get("n_non200")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"duration_us":%%.0f,"requests":%%.0f,"responses":%%.0f,"non200":%%.0f,' ..
    '"socket_errors":%%.0f,"p50_us":%%.0f,"p99_us":%%.0f,"mean_us":%%.1f}\\n',
    summary.duration, summary.requests, responses, non200,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


# -- small helpers ------------------------------------------------------------------------------------------------
def remove_db(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextlib.contextmanager
def gc_settled() -> Iterator[None]:
    """Collect, then freeze the fixtures out of the GC's sight for a timed section; the GC stays on.

    The code under test pays for collecting what it allocates itself (as it would in a server), but not for
    traversing the hundreds of thousands of freshly built fixture records that happen to be young.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


# -- machine and tools --------------------------------------------------------------------------------------------
def filesystem_of(path: Path) -> str:
    """The mount (device, type) holding ``path``: SQLite ingest depends on it."""
    best, fs = "", "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if str(path.resolve()).startswith(mount) and len(mount) > len(best):
                best, fs = mount, f"{kind} on {mount} ({device})"
    return fs


def machine_info(tmp: Path) -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "loadavg_at_start": [rnd(x, 2) for x in os.getloadavg()],
        "sqlite": sqlite3.sqlite_version,
        "scratch_filesystem": filesystem_of(tmp),
        "packages": {
            name: package_version(name)
            for name in ("mm_magics", "uvicorn", "starlette", "httptools", "uvloop", "scikit-learn", "numpy", "pandas")
        },
    }


def code_state() -> dict[str, Any]:
    """Which engine code was measured: the commit, and any uncommitted changes under mm_magics/."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            cmd = ["git", "-C", str(repo), *args]
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout
        return ""

    changed = [ln[3:] for ln in git("status", "--porcelain", "--", "mm_magics").splitlines() if len(ln) > 3]
    return {"git_commit": git("rev-parse", "HEAD").strip() or None, "uncommitted_engine_files": changed}


# -- part 1: embedded store ingest --------------------------------------------------------------------------------
def make_records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Request records with exactly the keys the recorder hands to ``write_requests``."""
    rng = random.Random(seed)
    start = time.time() - n * 0.001
    out = []
    for i in range(n):
        proc = rng.lognormvariate(-7.0, 0.3)  # ~1 ms
        total = proc + rng.lognormvariate(-8.0, 0.3)
        out.append(
            {
                "time": start + i * 0.001,
                "model": MODEL,
                "version": 1,
                "deployment": MODEL,
                "request_id": new_request_id(int((start + i * 0.001) * 1000)),
                "status": 200,
                "total_s": total,
                "queue_s": 0.0,
                "proc_s": proc,
                "batch_size": 1,
                "rows": 1,
                "prediction": [rng.randrange(3)],
                "error": None,
            }
        )
    return out


def store_tuples(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The very tuples ``SQLiteStore.write_requests`` inserts for these records (built outside any timing)."""
    return [
        (
            r["time"],
            r["model"],
            r["version"],
            r["deployment"],
            r["request_id"],
            r["status"],
            r["total_s"] * 1000.0,
            r["queue_s"] * 1000.0,
            r["proc_s"] * 1000.0,
            r["batch_size"],
            r["rows"],
            json.dumps(r["prediction"]),
            r["error"],
        )
        for r in records
    ]


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def count_rows(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM requests").fetchone()[0])


def ingest_ours(path: Path, batches: list[list[dict[str, Any]]]) -> float:
    """Seconds for SQLiteStore.write_requests over all batches (store opened and schema created before the clock)."""
    store = SQLiteStore(path)
    try:
        with gc_settled():
            start = time.perf_counter()
            for batch in batches:
                store.write_requests(batch)
            return time.perf_counter() - start
    finally:
        store.close()


def raw_connection(path: Path, schema: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db


def ingest_raw(path: Path, batches: list[list[tuple[Any, ...]]], schema: str = SCHEMA) -> float:
    """Seconds for plain sqlite3 executemany, one transaction per batch, same table and pragmas as the store."""
    db = raw_connection(path, schema)
    try:
        with gc_settled():
            start = time.perf_counter()
            for batch in batches:
                db.execute("BEGIN IMMEDIATE")
                db.executemany(INSERT_SQL, batch)
                db.execute("COMMIT")
            return time.perf_counter() - start
    finally:
        db.close()


def schema_without_id_index() -> str:
    lines = [ln for ln in SCHEMA.splitlines() if "requests_by_id" not in ln]
    if len(lines) == len(SCHEMA.splitlines()):
        raise RuntimeError("the store's SCHEMA has no requests_by_id index any more: update the diagnostic")
    return "\n".join(lines)


def random_ids(tuples: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The same rows with random request ids (UUIDv4, what the server used before): index inserts land anywhere."""
    rng = random.Random(11)
    return [(*t[:4], uuid.UUID(int=rng.getrandbits(128), version=4).hex, *t[5:]) for t in tuples]


def measure_store_ingest(tmp: Path, points: int, rounds: int) -> dict[str, Any]:
    records = make_records(points)
    tuples = store_tuples(records)
    unordered = random_ids(tuples)
    no_id_index = schema_without_id_index()
    cases: list[tuple[str, int, Callable[[Path], float]]] = []
    for size in BATCH_SIZES:
        ours_batches, raw_batches = chunks(records, size), chunks(tuples, size)
        cases.append(("ours", size, lambda p, b=ours_batches: ingest_ours(p, b)))
        cases.append(("raw", size, lambda p, b=raw_batches: ingest_raw(p, b)))
    diag_plain, diag_random = chunks(tuples, DIAGNOSTIC_BATCH), chunks(unordered, DIAGNOSTIC_BATCH)
    cases.append(("raw_no_id_index", DIAGNOSTIC_BATCH, lambda p: ingest_raw(p, diag_plain, no_id_index)))
    cases.append(("raw_random_ids", DIAGNOSTIC_BATCH, lambda p: ingest_raw(p, diag_random)))

    seconds: dict[tuple[str, int], list[float]] = {(kind, size): [] for kind, size, _ in cases}
    for r in range(rounds):
        for kind, size, fn in rotated(cases, r):
            path = tmp / f"ingest-{kind}-{size}.sqlite"
            remove_db(path)
            elapsed = fn(path)
            stored = count_rows(path)
            remove_db(path)
            if stored != points:
                raise RuntimeError(f"{kind} batch {size}: {stored} rows stored, {points} written")
            seconds[(kind, size)].append(elapsed)
        log(
            f"ingest round {r + 1}/{rounds}: "
            + ", ".join(f"{k}@{s} {points / v[-1]:,.0f}/s" for (k, s), v in seconds.items())
        )

    def rate(kind: str, size: int) -> dict[str, Any]:
        runs = seconds[(kind, size)]
        return {
            "points_per_s": rnd(points / median(runs), 0),
            "runs_points_per_s": [rnd(points / s, 0) for s in runs],
        }

    def paired(kind: str, size: int, base: str, base_size: int) -> float | None:
        return rnd(median([a / b for a, b in zip(seconds[(base, base_size)], seconds[(kind, size)], strict=True)]))

    by_batch = {}
    for size in BATCH_SIZES:
        by_batch[str(size)] = {
            "ours": rate("ours", size),
            "raw_sqlite3": rate("raw", size),
            "ratio_ours_vs_raw": paired("ours", size, "raw", size),
            "us_per_point_ours": rnd(median(seconds[("ours", size)]) / points * 1e6),
            "us_per_point_raw": rnd(median(seconds[("raw", size)]) / points * 1e6),
        }
    return {
        "what": f"{points} request records into a fresh database per measurement; ours = SQLiteStore.write_requests "
        "(dicts in), raw = sqlite3 executemany of the same tuples (pre-built), one transaction per batch, identical "
        "table (the store's SCHEMA, both indexes), WAL + synchronous=NORMAL; ratio = median over rounds of "
        "ours_rate/raw_rate measured in the same round",
        "points": points,
        "rounds": rounds,
        "by_batch_size": by_batch,
        "diagnostics_raw_at_10000": {
            "what": "where SQLite's time goes: raw executemany of the same rows with one change each, as a ratio "
            "to raw with the store's table (same rounds)",
            "without_request_id_index": rate("raw_no_id_index", DIAGNOSTIC_BATCH)
            | {"ratio_vs_raw": paired("raw_no_id_index", DIAGNOSTIC_BATCH, "raw", DIAGNOSTIC_BATCH)},
            "random_uuid4_request_ids": rate("raw_random_ids", DIAGNOSTIC_BATCH)
            | {"ratio_vs_raw": paired("raw_random_ids", DIAGNOSTIC_BATCH, "raw", DIAGNOSTIC_BATCH)},
        },
    }


# -- part 2: the recorder path ------------------------------------------------------------------------------------
def served_records(n: int, X: pd.DataFrame, profile: dict[str, Any]) -> list[dict[str, Any]]:
    """Exactly what handlers.finish() hands to on_request: references to the parsed rows, outputs, profile."""
    schema = Schema.from_version(schema_of(X))
    frames = []
    for row in X.to_numpy().tolist():
        body = {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": [row]}]}
        frames.append(from_v2(body, schema, 10_000).rows)  # the rows the server records for this request
    rng = random.Random(3)
    out = []
    for i in range(n):
        proc = rng.lognormvariate(-7.0, 0.3)
        out.append(
            {
                "time": time.time(),
                "model": MODEL,
                "version": 1,
                "request_id": new_request_id(),
                "status": 200,
                "queue_s": 0.0,
                "proc_s": proc,
                "total_s": proc + rng.lognormvariate(-8.0, 0.3),
                "batch_size": 1,
                "rows": 1,
                "protocol": "v2",
                "frame": frames[i % len(frames)],
                "outputs": {"predict": np.array([rng.randrange(3)])},
                "profile": profile,
            }
        )
    return out


def time_recorder(path: Path, records: list[dict[str, Any]], flush_every: int | None) -> dict[str, float]:
    """record() every record, then flush() until everything is persisted; with ``flush_every``, in groups."""
    store = SQLiteStore(path)
    recorder = Recorder(store, deployment=MODEL, interval=3600.0)  # parked: only our flush() writes
    groups = [records] if flush_every is None else chunks(records, flush_every)
    record_s = flush_s = 0.0
    calls, first_call = 0, -1
    try:
        record = recorder.record
        # the background thread's flush leaves drift state to its own cadence; a last full flush() writes it
        flush_now = recorder.flush if flush_every is None else functools.partial(recorder.flush, drift=False)
        with gc_settled():
            for group in groups:
                start = time.perf_counter()
                for rec in group:
                    record(rec)
                recorded = time.perf_counter()
                written = flush_now()
                first_call = written if first_call < 0 else first_call
                while written:  # flush() is documented to write everything queued; loop in case it stops short
                    calls += 1
                    written = flush_now()
                record_s += recorded - start
                flush_s += time.perf_counter() - recorded
            if flush_every is not None:
                start = time.perf_counter()
                recorder.flush()
                flush_s += time.perf_counter() - start
        stored = count_rows(path)
        if stored != len(records):
            raise RuntimeError(f"the recorder persisted {stored} of {len(records)} records ({recorder.last_error})")
        return {"record_s": record_s, "flush_s": flush_s, "flush_calls": calls, "first_call_wrote": first_call}
    finally:
        recorder.close()
        store.close()


def time_append(records: list[dict[str, Any]]) -> float:
    """Baseline for record(): a bare deque.append of the same dicts, same loop shape."""
    queue: deque[tuple[str, Any]] = deque()
    append = queue.append
    with gc_settled():
        start = time.perf_counter()
        for rec in records:
            append(("request", rec))
        return time.perf_counter() - start


def measure_recorder(tmp: Path, points: int, rounds: int, X: pd.DataFrame, profile: dict[str, Any]) -> dict[str, Any]:
    records = served_records(points, X, profile)
    plain = [{**r, "profile": {}} for r in records]  # no reference profile: no drift work in the flush
    tuples = store_tuples(make_records(points, seed=5))
    variants: dict[str, tuple[list[dict[str, Any]], int | None]] = {
        "as_served_one_flush": (records, None),
        f"as_served_flush_every_{SERVER_FLUSH}": (records, SERVER_FLUSH),
        f"no_profile_flush_every_{SERVER_FLUSH}": (plain, SERVER_FLUSH),
    }
    timings: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    appends: list[float] = []
    raw: dict[int | None, list[float]] = {None: [], SERVER_FLUSH: []}
    steps: list[Callable[[], None]] = [lambda: appends.append(time_append(records))]
    for size, out in raw.items():
        batches = [tuples] if size is None else chunks(tuples, size)
        steps.append(lambda b=batches, o=out: o.append(raw_once(tmp / "rec-raw.sqlite", b)))
    for name, (recs, every) in variants.items():
        path = tmp / f"rec-{name}.sqlite"
        steps.append(lambda n=name, rs=recs, e=every, p=path: timings[n].append(once(p, time_recorder, rs, e)))
    for r in range(rounds):
        for step in rotated(steps, r):
            step()
        log(
            f"recorder round {r + 1}/{rounds}: record() "
            + ", ".join(f"{n} {t[-1]['record_s'] / points * 1e6:.2f} µs" for n, t in timings.items())
            + f" (deque.append {appends[-1] / points * 1e6:.2f} µs); until persisted "
            + ", ".join(f"{n} {points / t[-1]['flush_s']:,.0f}/s" for n, t in timings.items())
            + f" (raw one transaction {points / raw[None][-1]:,.0f}/s, per {SERVER_FLUSH} "
            f"{points / raw[SERVER_FLUSH][-1]:,.0f}/s)"
        )

    result: dict[str, Any] = {
        "what": f"{points} record() calls (the request-path cost), then flush() until everything is persisted "
        f"(rows counted): once for all records, or after every {SERVER_FLUSH} records as the background thread "
        "sees them when serving ~1 000 req/s with its 1 s interval (drift state on its own cadence, then written "
        "by a last flush()); records are exactly what app.py hands over (parsed 1-row frame, outputs, training "
        "profile, so drift is updated); fresh database each time. "
        "Baselines: deque.append of the same dicts; raw sqlite3 executemany of as many rows, in one transaction "
        f"or per {SERVER_FLUSH} (same table and pragmas). Ratios are medians of per-round ratios.",
        "points": points,
        "rounds": rounds,
        "baseline_deque_append_us_per_call": rnd(median(appends) / points * 1e6, 4),
        "baseline_raw_one_transaction_points_per_s": rnd(points / median(raw[None]), 0),
        f"baseline_raw_per_{SERVER_FLUSH}_points_per_s": rnd(points / median(raw[SERVER_FLUSH]), 0),
    }
    for name, runs in timings.items():
        every = variants[name][1]
        base = raw[every]
        record_s = [t["record_s"] for t in runs]
        flush_s = [t["flush_s"] for t in runs]
        total_s = [t["record_s"] + t["flush_s"] for t in runs]
        result[name] = {
            "record_us_per_call": rnd(median(record_s) / points * 1e6, 4),
            "record_ratio_vs_deque_append": rnd(median([a / b for a, b in zip(record_s, appends, strict=True)])),
            "flush_s_total": rnd(median(flush_s), 4),
            "flush_us_per_point": rnd(median(flush_s) / points * 1e6),
            "flush_points_per_s": rnd(points / median(flush_s), 0),
            "flush_time_ratio_vs_raw": rnd(median([a / b for a, b in zip(flush_s, base, strict=True)])),
            "record_to_persisted_s": rnd(median(total_s), 4),
            "end_to_end_points_per_s": rnd(points / median(total_s), 0),
            "flush_calls_that_wrote": int(median([t["flush_calls"] for t in runs])),
            "first_flush_call_persisted": int(runs[0]["first_call_wrote"]),
            "one_flush_call_persisted_all_queued": runs[0]["first_call_wrote"] == min(points, every or points),
        }
    return result


def once(path: Path, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(path, *args)`` against a fresh database file, removed afterwards."""
    remove_db(path)
    try:
        return fn(path, *args)
    finally:
        remove_db(path)


def raw_once(path: Path, batches: list[list[tuple[Any, ...]]]) -> float:
    return once(path, ingest_raw, batches)


# -- part 3: serving with recording on vs off ---------------------------------------------------------------------
@dataclass
class Fixture:
    X: pd.DataFrame
    model: Any
    expected: list[Any]
    body: bytes
    profile: dict[str, Any]
    workspace: Path


def make_fixture(tmp: Path) -> Fixture:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    row = X.iloc[[ROW_INDEX]].reset_index(drop=True)
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row.to_numpy().tolist()}]}
    data = fingerprint(X, y)
    ws = Workspace.open(tmp / "workspace" / ".mm")
    try:
        ws.registry.commit(
            MODEL,
            model,
            message="monitoring benchmark model",
            schema=schema_of(X),
            data=data,
            metrics={"accuracy": float(model.score(X, y))},
        )
        root = ws.root
    finally:
        ws.close()
    return Fixture(X, model, model.predict(row).tolist(), json.dumps(body).encode(), data["profile"], root)


@dataclass
class Server:
    label: str
    proc: subprocess.Popen[bytes]
    url: str
    metrics_db: Path | None
    admin_token: str
    log_path: Path


def start_server(
    label: str, fixture: Fixture, tmp: Path, record: bool, batch: bool, stack: contextlib.ExitStack
) -> Server:
    home = tmp / f"server-{label}"
    home.mkdir()
    state_file = home / "state.json"
    token = uuid.uuid4().hex
    token_file = home / "admin-token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    metrics_db = home / "metrics.sqlite" if record else None
    cmd = [sys.executable, "-m", "mm_magics.engine.serving.server", "--workspace", str(fixture.workspace)]
    cmd += ["--version", SPEC, "--host", "127.0.0.1", "--port", "0", "--state-file", str(state_file)]
    cmd += ["--admin-token-file", str(token_file)]
    if batch:
        cmd.append("--batch")
    if metrics_db is not None:
        cmd += ["--metrics-db", str(metrics_db), "--deployment", MODEL]
    log_path = home / "server.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed by the exit stack
    stack.callback(log_file.close)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_V2_")}  # embedded store only
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    stack.callback(stop_process, proc, f"{label} server", log, 15.0)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not state_file.exists():
        if proc.poll() is not None:
            raise RuntimeError(f"the {label} server exited with {proc.returncode}: {log_path.read_text()[-500:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {label} server wrote no state file in {READY_TIMEOUT_S:.0f}s (see {log_path})")
        time.sleep(0.02)
    state = json.loads(state_file.read_text())
    url = f"http://127.0.0.1:{int(state['port'])}"
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} ({label}) was not ready in {READY_TIMEOUT_S:.0f}s")
        time.sleep(0.02)
    log(f"{label} server pid {proc.pid} on {url}" + (f", recording into {metrics_db}" if metrics_db else ""))
    return Server(label, proc, url, metrics_db, token, log_path)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def flush(server: Server, max_calls: int = 20) -> tuple[float, int]:
    """POST /mm/v1/flush until the store holds every request the server answered; (seconds, calls)."""
    start = time.perf_counter()
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    calls = 0
    while calls < max_calls:
        calls += 1
        httpx.post(server.url + "/mm/v1/flush", headers=headers, timeout=60).raise_for_status()
        if server.metrics_db is None or stored_rows(server.metrics_db) >= served_requests(server):
            break
    return time.perf_counter() - start, calls


def served_requests(server: Server) -> int:
    return int(httpx.get(server.url + "/mm/v1/status", timeout=10).json()["requests"])


def stored_rows(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        row = conn.execute("SELECT count(*) FROM requests WHERE model=? AND status=200", (MODEL,)).fetchone()
        return int(row[0])


def check_prediction(server: Server, fixture: Fixture) -> None:
    resp = httpx.post(
        server.url + INFER_PATH, content=fixture.body, headers={"Content-Type": "application/json"}, timeout=10
    )
    resp.raise_for_status()
    got = {o["name"]: o["data"] for o in resp.json()["outputs"]}.get("predict")
    if got != fixture.expected:
        raise RuntimeError(f"the {server.label} server predicted {got}, model.predict {fixture.expected}")


@dataclass
class WrkRun:
    server: str
    index: int
    duration_s: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    served: int  # the server's own counter, delta over the run
    cpu_s: float  # server process CPU from before the run to after the flush
    cpu_us_per_request: float
    flush_ms: float
    flush_calls: int  # POST /mm/v1/flush calls until every answered request was stored
    stored_at_wrk_end: int | None  # rows persisted when wrk returned (recorder keeping up?)
    stored_after_flush: int | None  # rows persisted for this run once flushed


def run_wrk(wrk: str, script: Path, server: Server, duration: float, index: int) -> WrkRun:
    before_rows = stored_rows(server.metrics_db) if server.metrics_db else None
    before_served = served_requests(server)
    before_cpu = cpu_seconds(server.proc.pid)
    cmd = [wrk, f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{max(1, round(duration))}s"]
    cmd += [f"--timeout={WRK_TIMEOUT_S}s", "-s", str(script), server.url + INFER_PATH]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    at_end = stored_rows(server.metrics_db) if server.metrics_db else None
    flush_s, flush_calls = flush(server)
    cpu = cpu_seconds(server.proc.pid) - before_cpu
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed on {server.label} ({proc.returncode}): {proc.stderr.strip() or proc.stdout}")
    doc = json.loads(line.removeprefix("BENCHJSON "))
    served = served_requests(server) - before_served
    after_rows = stored_rows(server.metrics_db) if server.metrics_db else None
    requests = int(doc["requests"])
    return WrkRun(
        server=server.label,
        index=index,
        duration_s=rnd(doc["duration_us"] / 1e6),
        requests=requests,
        rps=rnd(requests / (doc["duration_us"] / 1e6), 1),
        p50_ms=rnd(doc["p50_us"] / 1000),
        p99_ms=rnd(doc["p99_us"] / 1000),
        errors=int(doc["non200"] + doc["socket_errors"]),
        served=served,
        cpu_s=rnd(cpu),
        cpu_us_per_request=rnd(cpu / max(served, 1) * 1e6, 1),
        flush_ms=rnd(flush_s * 1000),
        flush_calls=flush_calls,
        stored_at_wrk_end=None if at_end is None or before_rows is None else at_end - before_rows,
        stored_after_flush=None if after_rows is None or before_rows is None else after_rows - before_rows,
    )


def measure_serving(
    wrk: str, tmp: Path, fixture: Fixture, duration: float, rounds: int, warmup: float, batch: bool
) -> dict[str, Any]:
    script = tmp / "post.lua"
    script.write_text(WRK_SCRIPT % {"body": json.dumps(fixture.body.decode())})  # a JSON string is a Lua string
    runs: list[WrkRun] = []
    warm: list[WrkRun] = []
    with contextlib.ExitStack() as stack:
        off = start_server("off", fixture, tmp, False, batch, stack)
        on = start_server("on", fixture, tmp, True, batch, stack)
        for server in (off, on):
            check_prediction(server, fixture)
        log(f"warming up ({warmup:g} s each)")
        for server in (off, on):
            warm.append(run_wrk(wrk, script, server, warmup, -1))
        sequence = [off, on] * rounds + [off]  # every "on" run sits between two "off" runs
        for i, server in enumerate(sequence):
            result = run_wrk(wrk, script, server, duration, i)
            runs.append(result)
            extra = ""
            if result.stored_after_flush is not None:
                extra = f", stored {result.stored_at_wrk_end} by wrk's end, {result.stored_after_flush} after flush"
            log(
                f"run {i + 1}/{len(sequence)} {server.label:>3}: {result.rps:8.1f} req/s  p50 {result.p50_ms:.3f} ms  "
                f"p99 {result.p99_ms:.3f} ms  {result.cpu_us_per_request:.0f} CPU µs/req{extra}"
                + (f"  ERRORS {result.errors}" if result.errors else "")
            )
            time.sleep(SETTLE_S)
        # what the store holds against what the "on" server was asked, over its whole life
        assert on.metrics_db is not None
        flush(on)
        total_rows = stored_rows(on.metrics_db)
        total_served = served_requests(on)
        on_runs = [r for r in [*warm, *runs] if r.server == "on"]
        wrk_total = sum(r.requests for r in on_runs) + 1  # + the prediction check
        in_flight_bound = CONNECTIONS * len(on_runs)
        log("stopping the servers")

    off_runs = [r for r in runs if r.server == "off"]
    on_only = [r for r in runs if r.server == "on"]
    ratios, cpu_ratios = [], []
    for i, r in enumerate(on_only):
        before, after = off_runs[i], off_runs[i + 1]
        ratios.append(r.rps / ((before.rps + after.rps) / 2))
        cpu_ratios.append(r.cpu_us_per_request / ((before.cpu_us_per_request + after.cpu_us_per_request) / 2))

    def summary(rs: list[WrkRun]) -> dict[str, Any]:
        return {
            "rps": rnd(median([r.rps for r in rs]), 1),
            "p50_ms": rnd(median([r.p50_ms for r in rs])),
            "p99_ms": rnd(median([r.p99_ms for r in rs])),
            "cpu_us_per_request": rnd(median([r.cpu_us_per_request for r in rs]), 1),
            "flush_ms": rnd(median([r.flush_ms for r in rs])),
            "max_flush_calls_needed": max(r.flush_calls for r in rs),
            "runs": len(rs),
            "errors": sum(r.errors for r in rs),
        }

    lag = [1 - r.stored_at_wrk_end / r.served for r in on_only if r.stored_at_wrk_end is not None and r.served]
    verification = {
        "store_rows_status_200": total_rows,
        "server_counter_requests": total_served,
        "wrk_counted_requests_incl_warmup_and_check": wrk_total,
        "store_vs_wrk": rnd(total_rows / wrk_total, 4),
        "store_minus_wrk": total_rows - wrk_total,
        "allowed_extra_in_flight": in_flight_bound,
        "per_run_store_equals_server_counter": all(r.stored_after_flush == r.served for r in on_only),
        "median_share_not_yet_persisted_when_wrk_ended": rnd(median(lag), 4) if lag else None,
    }
    verification["ok"] = bool(
        total_rows == total_served
        and 0 <= total_rows - wrk_total <= in_flight_bound
        and sum(r.errors for r in runs) == 0
    )
    overhead = 1 - median(ratios)
    return {
        "what": "two server processes for the same version, started up front: off (no --metrics-db) and on "
        "(--metrics-db); wrk -t2 -c8 POSTs a 1-row V2 body; runs alternate off,on,...,off and each on run is "
        "compared with the mean of the off runs either side; both servers are flushed after every run",
        "model": "LogisticRegression(max_iter=500) on iris (4 features), with its training profile (drift on)",
        "micro_batching": batch,
        "sink": "embedded SQLite only: no InfluxDB configured, INFLUXDB_V2_* removed from the servers' environment",
        "duration_s_per_run": duration,
        "rounds": rounds,
        "off": summary(off_runs),
        "on": summary(on_only),
        "paired_on_vs_off_rps": [rnd(x, 4) for x in ratios],
        "recording_overhead": rnd(overhead, 4),
        "recording_overhead_from_medians": rnd(
            1 - median([r.rps for r in on_only]) / median([r.rps for r in off_runs]), 4
        ),
        "cpu_per_request_on_vs_off": rnd(median(cpu_ratios), 4),
        "recording_cpu_us_per_request": rnd(
            median([r.cpu_us_per_request for r in on_only]) - median([r.cpu_us_per_request for r in off_runs]), 1
        ),
        "verification": verification,
        "warmup_runs": [asdict(r) for r in warm],
        "runs": [asdict(r) for r in runs],
    }


# -- the report ---------------------------------------------------------------------------------------------------
def targets_report(ingest: dict[str, Any], serving: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for size in TARGET_BATCHES:
        entry = ingest["by_batch_size"][str(size)]
        rate = entry["ours"]["points_per_s"]
        out.append(
            {
                "name": f"embedded store ingest, {size} records per write_requests call",
                "value": rate,
                "unit": "points/s",
                "threshold": f">= {INGEST_TARGET:.0f}",
                "baseline_raw_sqlite3_points_per_s": entry["raw_sqlite3"]["points_per_s"],
                "ratio_ours_vs_raw": entry["ratio_ours_vs_raw"],
                "met": bool(rate >= INGEST_TARGET),
            }
        )
    overhead = serving["recording_overhead"]
    out.append(
        {
            "name": "serving throughput cost of recording (wrk -c8, 1-row V2)",
            "value": overhead,
            "unit": "1 - on/off req/s (median of bracketed pairs)",
            "threshold": f"<= {OVERHEAD_TARGET}",
            "off_rps": serving["off"]["rps"],
            "on_rps": serving["on"]["rps"],
            "store_verified": serving["verification"]["ok"],
            "met": bool(overhead <= OVERHEAD_TARGET and serving["verification"]["ok"]),
        }
    )
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    wrk = wrk_info()
    started = now_iso()
    code = code_state()
    tmp = Path(tempfile.mkdtemp(prefix="mm-bench-monitoring-"))
    try:
        machine = machine_info(tmp)
        log(f"part 1: store ingest, {args.points} points, {args.rounds} rounds")
        ingest = measure_store_ingest(tmp, args.points, args.rounds)
        log("committing the model")
        fixture = make_fixture(tmp)
        log(f"part 2: recorder path, {args.recorder_points} points, {args.rounds} rounds")
        recorder = measure_recorder(tmp, args.recorder_points, args.rounds, fixture.X, fixture.profile)
        log(f"part 3: serving with recording on vs off, {args.rounds} rounds of {args.duration:g} s")
        serving = measure_serving(wrk["path"], tmp, fixture, args.duration, args.rounds, args.warmup, args.batch)
    finally:
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    machine["loadavg_at_end"] = [rnd(x, 2) for x in os.getloadavg()]
    return {
        "benchmark": "monitoring",
        "started": started,
        "finished": now_iso(),
        "code": code,
        "machine": machine,
        "wrk": wrk | {"connections": CONNECTIONS, "threads": WRK_THREADS},
        "config": {
            "points": args.points,
            "recorder_points": args.recorder_points,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "server_micro_batching": args.batch,
            "batch_sizes": list(BATCH_SIZES),
        },
        "targets": targets_report(ingest, serving),
        "store_ingest": ingest,
        "recorder": recorder,
        "serving": serving,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=200_000, help="records per store-ingest run (200 000)")
    parser.add_argument("--recorder-points", type=int, default=20_000, help="record() calls per run (20 000)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (5)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; medians reported (5)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load per server (2)")
    parser.add_argument("--batch", action="store_true", help="start both servers with --batch (micro-batching)")
    parser.add_argument("--out", type=Path, help="also write the JSON document here")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs, workspace)")
    args = parser.parse_args(argv)
    if args.points < max(BATCH_SIZES) or args.recorder_points < 1 or args.duration < 1 or args.rounds < 1:
        parser.error(f"--points must be >= {max(BATCH_SIZES)}, --recorder-points, --duration, --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    terminate_on_sigterm()
    report = run(args)
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    for target in report["targets"]:
        log(f"target {'met' if target['met'] else 'MISSED'}: {target['name']}: {target['value']} {target['threshold']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
