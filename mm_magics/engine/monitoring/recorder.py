"""The request recorder: everything a server wants to remember, written off the request path.

The request handler only appends a small dict of references (the parsed frame, the outputs) to a deque — no
conversion, no I/O, no lock. A daemon thread wakes once a second, turns the batch into rows, updates the
per-minute drift counts and reservoirs in memory, writes one SQLite transaction, and hands the same batch to the
InfluxDB sink when one is configured. A slow disk or a dead InfluxDB therefore never delays a response.

The recorder shares the GIL and two cores with the request thread, so what it does per request is kept small:
rows go in with a few multi-row statements, and drift state (bin counts, reservoir samples) is written every
``drift_every`` seconds or when a minute closes rather than every flush. A reader who wants everything now
(``%mm_monitor``, ``POST /mm/v1/flush``, shutdown) calls ``flush()``, which writes it all.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text
from .drift import Reference, Reservoir, reference
from .store import COMPACT_CHUNK, SQLiteStore

MAX_LOGGED_ROWS = 16  # predictions kept per request (enough to join feedback for typical small requests)
MAX_FLUSH = 5_000  # requests per flush: bounds how long one flush holds the GIL away from request handling
# Requests per model version and minute that one flush feeds to drift. Under heavy traffic the rest are skipped: a
# uniform random subset of a few hundred requests a second (over ten thousand rows a minute) pins PSI on ten bins and
# fills the reservoirs just as well, and drift was half of the recorder's per-request cost when it saw every one.
DRIFT_SAMPLE = 200
COMPACT_EVERY = 600.0  # seconds between retention passes once caught up (a backlog is worked off a chunk a tick)


class Recorder:
    def __init__(
        self,
        store: SQLiteStore,
        *,
        sink: Any = None,
        deployment: str | None = None,
        interval: float = 1.0,
        drift_every: float = 5.0,
        state_file: Path | None = None,
        metrics: Any = None,
    ) -> None:
        self.store = store
        self.metrics = metrics  # prometheus.PrometheusMetrics: counted here, off the request path
        self.sink = sink
        self.deployment = deployment
        self.interval = interval
        self.drift_every = drift_every
        self._pending_bins: dict[tuple[str, int, str, int], list[int]] = {}
        self._dirty_samples: set[tuple[str, int, str, int]] = set()
        self._drift_written = time.monotonic()
        self._rng = random.Random()
        self._next_compact = time.monotonic()  # the first pass runs at the first tick: old data from last run
        self._queue: deque[tuple[str, Any]] = deque()
        self._refs: dict[tuple[str, int], dict[str, Reference]] = {}
        self._reservoirs: dict[tuple[str, int, str, int], Reservoir] = {}
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="mm-recorder", daemon=True)
        self._thread.start()
        self.recorded = 0
        self.last_error: str | None = None
        self.state_file = state_file
        self._state_written = 0.0

    # -- called on the request path: O(1), no I/O ------------------------------------------------------------------
    def record(self, rec: dict[str, Any]) -> None:
        self._queue.append(("request", rec))

    def feedback(self, model: str, ids: list[str], labels: list[Any]) -> None:
        self._queue.append(("feedback", (model, ids, labels, time.time())))

    # -- the background side ---------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._safe_flush(drift=False)
            self._publish_state()  # also while idle: an InfluxDB outage with no traffic must still show
            self._maybe_compact()
        self._safe_flush(drift=True)

    def _maybe_compact(self) -> None:
        """Retention and downsampling as the store defines them, one chunk per tick while there is a backlog."""
        if time.monotonic() < self._next_compact:
            return
        try:
            folded = self.store.compact(limit=COMPACT_CHUNK)["folded"]
        except Exception as exc:  # e.g. the database is busy: try again at the next pass
            self.last_error = f"retention: {type(exc).__name__}: {exc}"
            folded = 0
        self._next_compact = time.monotonic() + (0.0 if folded >= COMPACT_CHUNK else COMPACT_EVERY)

    def _safe_flush(self, drift: bool) -> None:
        try:
            self.flush(drift=drift)
        except Exception as exc:  # never let the recorder thread die: keep the reason for %mm_monitor
            self.last_error = f"{type(exc).__name__}: {exc}"

    def flush(self, *, drift: bool = True) -> int:
        """Write the requests queued so far, and the drift state unless ``drift=False`` leaves it to its cadence.

        Safe from any thread (one flush at a time). Returns how many queued items it wrote (at most ``MAX_FLUSH``).
        """
        with self._flush_lock:
            return self._flush(drift)

    def _flush(self, drift: bool) -> int:
        batch = []
        while self._queue and len(batch) < MAX_FLUSH:
            batch.append(self._queue.popleft())
        if batch:
            self._write(batch)
        if drift or time.monotonic() - self._drift_written >= self.drift_every:
            self._write_drift()
        return len(batch)

    def _write(self, batch: list[tuple[str, Any]]) -> None:
        requests, sink_records = [], []
        frames: dict[tuple[str, int, int], list[Any]] = {}
        profiles: dict[tuple[str, int], dict[str, Any]] = {}
        for kind, item in batch:
            if kind == "feedback":
                model, ids, labels, t = item
                self.store.write_feedback(model, zip(ids, labels, strict=True), t)
                continue
            row = self._request_row(item)
            requests.append(row)
            if self.sink is not None and not row["role"]:  # a shadow's answer reached no client
                sink_records.append({"kind": "request", **{k: v for k, v in row.items() if k != "prediction"}})
            if item.get("frame") is not None and item.get("status") == 200:
                key = (item["model"], int(item["version"]), int(item["time"] // 60))
                frames.setdefault(key, []).append(item["frame"])
                profiles.setdefault(key[:2], item.get("profile") or {})
        self.store.write_requests(requests)
        if self.metrics is not None:
            self.metrics.observe([r for r in requests if not r["role"]])  # /metrics counts answered requests
        for key, counts in self._drift(frames, profiles).items():
            self._merge_bins(key, counts)
            if key in self._reservoirs:
                self._dirty_samples.add(key)
        if self.sink is not None and sink_records:
            self.sink.write(sink_records)
        self.recorded += len(requests)
        if any(k[3] < int(time.time() // 60) for k in self._pending_bins):
            self._write_drift()  # a minute closed: its counts are final, write them now

    def _merge_bins(self, key: tuple[str, int, str, int], counts: list[int]) -> None:
        pending = self._pending_bins.get(key)
        if pending is None or len(pending) != len(counts):
            self._pending_bins[key] = list(counts)
        else:
            self._pending_bins[key] = [a + b for a, b in zip(pending, counts, strict=True)]

    def _write_drift(self) -> None:
        """Merge the pending bin counts into the store and save the reservoirs that changed since last time."""
        self._drift_written = time.monotonic()
        if not self._pending_bins and not self._dirty_samples:
            return
        bins, self._pending_bins = self._pending_bins, {}
        dirty, self._dirty_samples = self._dirty_samples, set()
        samples = {k: (r.sample, r.seen) for k in dirty if (r := self._reservoirs.get(k)) is not None}
        try:
            self.store.write_drift(bins, samples)
        except BaseException:
            for key, counts in bins.items():  # keep them for the next try: counts are merged, never lost
                self._merge_bins(key, counts)
            self._dirty_samples |= dirty
            raise
        self._prune_reservoirs()

    def _publish_state(self) -> None:
        """Let %mm_monitor show whether InfluxDB is reachable and how much is spooled (at most once a second)."""
        if self.sink is None or self.state_file is None or time.time() - self._state_written < 1.0:
            return
        self._state_written = time.time()
        with contextlib.suppress(OSError):
            atomic_write_text(self.state_file, json.dumps(self.sink.state(), default=str), durable=False)

    def _request_row(self, rec: dict[str, Any]) -> dict[str, Any]:
        row = {
            k: rec.get(k)
            for k in (
                "time",
                "model",
                "version",
                "request_id",
                "status",
                "total_s",
                "queue_s",
                "proc_s",
                "batch_size",
                "rows",
                "error",
                "role",
            )
        }
        row["deployment"] = self.deployment
        outputs = rec.get("outputs")
        if outputs is not None and "predict" in outputs:
            pred = np.asarray(outputs["predict"])[:MAX_LOGGED_ROWS]
            values = pred.tolist()  # Python scalars, except inside an object array
            if pred.dtype == object:
                values = [v.item() if hasattr(v, "item") else v for v in values]
            row["prediction"] = values
        return row

    def _drift(
        self, frames: dict[tuple[str, int, int], list[Any]], profiles: dict[tuple[str, int], dict[str, Any]]
    ) -> dict[tuple[str, int, str, int], list[int]]:
        """Per-minute bin counts and reservoirs for a whole flush at once: one vectorised pass per feature."""
        bins: dict[tuple[str, int, str, int], list[int]] = {}
        for (model, version, minute), parts in frames.items():
            refs = self._refs.get((model, version))
            if refs is None:
                profile = profiles.get((model, version)) or {}
                refs = {f: r for f, p in profile.items() if (r := reference(p)) is not None}
                self._refs[(model, version)] = refs
            if not refs:
                continue
            if len(parts) > DRIFT_SAMPLE:
                parts = self._rng.sample(parts, DRIFT_SAMPLE)
            frame = _one_frame(parts)
            for feature, ref in refs.items():
                if feature not in frame.columns:
                    continue
                column = frame[feature]
                key = (model, version, feature, minute)
                if ref.kind == "numeric":
                    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
                    bins[key] = ref.counts(values)
                    res = self._reservoirs.get(key)
                    if res is None:
                        res = self._reservoirs[key] = Reservoir()
                    res.extend(values[~np.isnan(values)])
                else:
                    bins[key] = ref.counts(column.tolist())
        return bins

    def _prune_reservoirs(self) -> None:
        current = int(time.time() // 60)
        for key in [k for k in self._reservoirs if k[3] < current - 1]:
            del self._reservoirs[key]

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and close the sink: at most ``timeout`` for each (a slow InfluxDB gets spooled)."""
        self._stop.set()
        self._thread.join(timeout)
        if self.sink is not None:
            with contextlib.suppress(Exception):
                self.sink.close(timeout)
            self._state_written = 0.0
            self._publish_state()


def _one_frame(parts: list[Any]) -> pd.DataFrame:
    """One frame from what the requests carried: the servers' rows (``serving/rows.py``: their float arrays stack in
    one call, no frame per request) or DataFrames."""
    arrays = [getattr(p, "numeric_array", None) for p in parts]
    if all(a is not None for a in arrays):
        return pd.DataFrame(np.vstack(arrays), columns=parts[0].columns, copy=False)
    frames = [getattr(p, "frame", p) for p in parts]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
