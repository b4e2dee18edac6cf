"""The request recorder: everything a server wants to remember, written off the request path.

The request handler only appends a small dict of references (the parsed frame, the outputs) to a deque — no
conversion, no I/O, no lock. A daemon thread wakes a few times a second, turns the batch into rows, updates the
per-minute drift counts and reservoirs, writes one SQLite transaction, and hands the same batch to the InfluxDB
sink when one is configured. A slow disk or a dead InfluxDB therefore never delays a response.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text
from .drift import Reference, Reservoir, reference
from .store import SQLiteStore

MAX_LOGGED_ROWS = 16  # predictions kept per request (enough to join feedback for typical small requests)
MAX_FLUSH = 5_000  # requests per flush: bounds how long one flush holds the GIL away from request handling


class Recorder:
    def __init__(
        self,
        store: SQLiteStore,
        *,
        sink: Any = None,
        deployment: str | None = None,
        interval: float = 0.25,
        state_file: Path | None = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.deployment = deployment
        self.interval = interval
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
            self._safe_flush()
        self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # never let the recorder thread die: keep the reason for %mm_monitor
            self.last_error = f"{type(exc).__name__}: {exc}"

    def flush(self) -> int:
        """Write everything queued so far; safe from any thread (one flush at a time)."""
        with self._flush_lock:
            return self._flush()

    def _flush(self) -> int:
        batch = []
        while self._queue and len(batch) < MAX_FLUSH:
            batch.append(self._queue.popleft())
        if not batch:
            return 0
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
            sink_records.append({"kind": "request", **{k: v for k, v in row.items() if k != "prediction"}})
            if item.get("frame") is not None and item.get("status") == 200:
                key = (item["model"], int(item["version"]), int(item["time"] // 60))
                frames.setdefault(key, []).append(item["frame"])
                profiles.setdefault(key[:2], item.get("profile") or {})
        self.store.write_requests(requests)
        bins = self._drift(frames, profiles)
        minutes = {k[3] for k in bins}
        samples = {k: (r.sample, r.seen) for k, r in self._reservoirs.items() if k[3] in minutes}
        self.store.write_drift(bins, samples)
        self._prune_reservoirs()
        if self.sink is not None and sink_records:
            self.sink.write(sink_records)
        self.recorded += len(requests)
        self._publish_state()
        return len(batch)

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
            )
        }
        row["deployment"] = self.deployment
        outputs = rec.get("outputs")
        if outputs is not None and "predict" in outputs:
            pred = np.asarray(outputs["predict"])[:MAX_LOGGED_ROWS]
            row["prediction"] = [v.item() if hasattr(v, "item") else v for v in pred]
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
            frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
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
        self._stop.set()
        self._thread.join(timeout)
        if self.sink is not None:
            with contextlib.suppress(Exception):
                self.sink.close()
