"""The InfluxDB sink: every recorded point also goes to InfluxDB, without ever slowing or failing a server.

InfluxDB is the shared, long-term sink (dashboards, many machines); the notebook keeps reading the embedded store.
So this module only writes, and its one hard rule is that the caller — a model server's request-recording thread —
never waits on the network and never sees an exception, whatever InfluxDB does.

The record kinds and their line-protocol form are documented in :mod:`.line_protocol`; the spool's on-disk
format in :mod:`.spool`.

How points travel, and why this way
-----------------------------------
``write()`` converts records to line-protocol strings on the caller's thread (cheap, a few microseconds each) and,
under a lock held only for list operations, gives each point a sequence number and appends the batch to an in-memory
queue. A daemon thread sends the queue in batches of ``batch_size`` with influxdb-client's **synchronous** write API.
We deliberately do not use the client's batching ``WriteApi``: its retries keep failed batches in an unbounded
in-memory buffer that a crash loses, its error callback fires only after its own retry schedule gives up, and its
``flush``/``close`` block. Sending synchronously from our own thread tells us exactly which lines failed, so they can go
to disk at once, in order, and we own the retry schedule (exponential backoff, 0.25 s doubling to ``max_backoff``).

Outages: the spool
------------------
When a send fails for a reason that can go away — connection refused, timeout (``timeout``), any HTTP error but the
three below (5xx, 429, and 401/403/404: a token or bucket a user can fix) — the batch and everything queued behind it
are appended to the spool, and until the spool is empty again every new point goes there too, so replay order is
write order. A malformed line (HTTP 400/413/422) is not an outage: the batch is bisected and only the lines the
server rejects alone are dropped (counted in ``state()["dropped"]``); otherwise one bad point would block the spool
forever.

Guarantees, stated plainly
--------------------------
* At-least-once for every point that reached the server or the spool. Duplicates are possible only when a send
  succeeded at the server but the client saw a failure (e.g. a timeout after the server stored the batch), or when a
  process dies between sending a chunk and saving its offset, or when a bisected batch fails half-way; InfluxDB
  overwrites a point with the same series and timestamp, so duplicates there are harmless.
* Lost only if the process is killed outright (SIGKILL, power loss) while points are still in memory: at most the
  in-memory queue, i.e. about ``flush_interval`` of traffic plus one batch in flight. ``close()`` and an ``atexit`` hook
  move the queue to disk; a dying disk (``OSError``) drops points, counted and reported.
* Bounded memory: past ``max_queue`` points waiting in memory (the writer stuck on a slow server), ``write()`` appends
  straight to the spool — a page-cache write under the lock, never a wait on the network. The spool itself is bounded
  only by the disk.
* The token lives only in memory (the client's Authorization header): it is never written to the spool, the state, or
  any file; URLs are shown without credentials.

The API: ``write(records)`` (never blocks on the network, never raises), ``state()`` (``connected``, ``spooled``,
``queued``, ``written``, ``dropped``, ``last_error``, ``url``, ``bucket`` — for %mm_monitor), ``flush(timeout)`` (on
the server or on disk), ``drain(timeout)`` (on the server, spool empty), ``close()``. Measured on 2 cores
(``benchmarks/monitoring_influx.py``, victoria-metrics): ~160k points/s end to end against ~350k/s for the raw client
sending pre-built strings; the difference is building line protocol (~5 µs a record), paid by the caller.

Why one module of ~530 lines: the sink is one concept (a writer thread, its queue and the spool hand-off, all
under one lock), and the long text above is its contract. Line protocol, the spool's files and the settings live in
their own modules.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from .influx_settings import DEFAULT_BUCKET, client_options, redact_url, resolve
from .line_protocol import KINDS, normalize_tags, to_line
from .spool import Spool, complete_lines, fsync_all, save_pos

__all__ = ["DEFAULT_BUCKET", "InfluxSink", "to_line"]

PRECISION = WritePrecision.US
PERMANENT_STATUS = frozenset({400, 413, 422})  # the data is bad, retrying cannot help: bisect and drop
ADOPT_EVERY = 60.0  # seconds between scans for other processes' orphaned spool

# -- the sink ----------------------------------------------------------------------------------------------------------


class InfluxSink:
    """Non-blocking, spool-backed writer of monitoring records to InfluxDB (see the module docstring)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        org: str | None,
        bucket: str,
        *,
        spool_dir: Path,
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        timeout: float = 5.0,
        max_queue: int = 100_000,
        max_backoff: float = 30.0,
        tags: Mapping[str, Any] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        # Long on purpose (~60 lines): every setting and every piece of state the writer thread shares is set here,
        # in one place, so its invariants read at once; split into helpers they would scatter.
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be at least 1")
        self.url = url
        self.org = org
        self.bucket = bucket
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_backoff = max_backoff
        self._token = token or ""  # memory only: used to scrub error messages
        self._extra = normalize_tags(tags)
        self._client = InfluxDBClient(
            url=url, token=token, org=org, timeout=max(1, int(timeout * 1000)), **dict(client_options or {})
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[tuple[int, list[str]]] = deque()  # (first sequence number, lines), in sequence order
        self._queued = 0
        self._seq = 0
        self._inflight: int | None = None  # first sequence number of the batch being sent
        self._spool = Spool(Path(spool_dir))
        self._connected = False
        self._written = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._backoff = 0.0
        self._next_retry = 0.0
        self._next_adopt = 0.0
        self._force = False
        self._stop = False
        self._abort = False
        self._closed = False
        self._adopted = threading.Event()  # set once the start-up scan for orphaned spool is done

        self._thread = threading.Thread(target=self._run, name="mm-influx-sink", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)

        def _at_exit() -> None:
            sink = ref()
            if sink is not None:
                sink._spill_at_exit()

        self._atexit = _at_exit
        atexit.register(_at_exit)

    # -- configuration ------------------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, local: Mapping[str, Any] | None, spool_dir: Path, **kwargs: Any) -> InfluxSink | None:
        """The sink the workspace asks for, or None when no InfluxDB URL is configured.

        ``local["influx"]`` (the workspace's machine-local, never-committed settings: ``url``, ``org``, ``bucket``,
        optional ``token`` and ``tags``) wins key by key; anything it lacks comes from the client's own variables
        ``INFLUXDB_V2_URL``, ``INFLUXDB_V2_ORG``, ``INFLUXDB_V2_TOKEN``, ``INFLUXDB_V2_TIMEOUT``, TLS and pool
        settings and ``INFLUXDB_V2_TAG_*`` (read as ``InfluxDBClient.from_env_properties`` reads them), plus
        ``INFLUXDB_V2_BUCKET`` (default ``mm_magics``). Unlike ``from_env_properties`` no placeholder token or org is
        invented: an unset token sends no Authorization header.
        """
        settings = resolve(local)
        if settings is None:
            return None
        timeout, options = client_options(os.environ)
        if timeout is not None:
            kwargs.setdefault("timeout", timeout)
        kwargs.setdefault("tags", dict(settings.tags))
        kwargs.setdefault("client_options", options)
        return cls(settings.url, settings.token, settings.org, settings.bucket, spool_dir=Path(spool_dir), **kwargs)

    def __repr__(self) -> str:
        return f"InfluxSink({redact_url(self.url)!r}, bucket={self.bucket!r})"

    # -- the caller's side: never blocks on the network, never raises -----------------------------------------------
    def write(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Queue records for InfluxDB. Returns at once; bad records are counted in ``state()["dropped"]``."""
        try:
            lines: list[str] = []
            bad = 0
            error: BaseException | None = None
            extra = self._extra
            for rec in records:
                try:
                    convert = KINDS.get(rec.get("kind"))
                    if convert is None:
                        raise ValueError(f"unknown monitoring record kind {rec.get('kind')!r}")
                    line = convert(rec, extra)
                except Exception as exc:
                    bad, error = bad + 1, exc
                    continue
                if line is None:
                    bad += 1
                else:
                    lines.append(line)
            with self._cond:
                if bad:
                    self._dropped += bad
                    self._last_error = f"dropped {bad} record(s) with nothing to write" + (
                        f": {type(error).__name__}: {error}" if error else ""
                    )
                if not lines:
                    return
                seq = self._seq
                self._seq += len(lines)
                if self._queued + len(lines) <= self.max_queue and not self._stop:
                    self._queue.append((seq, lines))
                    before = self._queued
                    self._queued += len(lines)
                    if before < self.batch_size <= self._queued:
                        self._cond.notify_all()
                else:  # memory cap reached (writer stuck on a slow server) or closed: straight to disk
                    self._spool_locked(seq, lines)
        except Exception as exc:  # the last line of defence for the server's recording path
            with contextlib.suppress(Exception):
                self._last_error = f"write failed: {type(exc).__name__}: {exc}"

    def state(self) -> dict[str, Any]:
        """What %mm_monitor shows: reachability, points waiting on disk and in memory, counters, the last error."""
        with self._lock:
            return {
                "connected": self._connected,
                "spooled": self._spool.count,
                "queued": self._queued,
                "written": self._written,
                "dropped": self._dropped,
                "last_error": self._last_error,
                "url": redact_url(self.url),
                "bucket": self.bucket,
            }

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every point written before this call is on the server or on disk; True if that happened.

        Also retries a disconnected server at once (rather than at the next backoff step).
        """
        return self._wait(timeout, spool_empty=False)

    def drain(self, timeout: float = 30.0) -> bool:
        """Like ``flush``, and also wait until the spool is replayed (nothing left anywhere): True if it was."""
        return self._wait(timeout, spool_empty=True)

    def close(self, timeout: float = 10.0) -> None:
        """Flush, stop the writer thread and release the spool. Never waits longer than ``timeout``.

        Whatever could not be sent stays in the spool for the next sink on this directory (the next server start).
        """
        if self._closed:
            return
        deadline = time.monotonic() + timeout
        self.flush(max(0.0, timeout / 2))
        with self._cond:
            self._closed = True
            self._stop = True
            self._cond.notify_all()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            atexit.unregister(self._atexit)
        alive = self._thread.is_alive()
        with self._lock:
            if alive:  # stuck on a slow server: keep memory on disk; its in-flight batch is spooled if it returns
                self._abort = True
                self._queue_to_spool_locked()
            self._spool.seal()
            sync = self._spool.take_sync()
        with contextlib.suppress(OSError):
            fsync_all(*sync[:2], self._spool.dir if sync[2] else None)
        if alive:
            return  # keep our stream lock: the thread may still append; the lock dies with the process
        with self._lock:
            # streams with nothing left are removed; the others (ours or adopted, with points still spooled) are
            # unlocked as they are, for the next sink on this directory to adopt
            for stream in list(self._spool.locks):
                if any(self._spool.dir.glob(f"{stream}.*.lp")):
                    os.close(self._spool.locks.pop(stream))
                else:
                    self._spool.release(stream)
        with contextlib.suppress(Exception):
            self._client.close()

    def __enter__(self) -> InfluxSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- helpers under the lock ----------------------------------------------------------------------------------------
    def _spool_locked(self, seq: int, lines: list[str]) -> None:
        try:
            self._spool.append(seq, lines)
        except OSError as exc:
            self._dropped += len(lines)
            self._last_error = f"spool write failed, {len(lines)} point(s) dropped: {exc}"

    def _queue_to_spool_locked(self) -> None:
        while self._queue:
            seq, lines = self._queue.popleft()
            self._queued -= len(lines)
            self._spool_locked(seq, lines)

    def _pop_locked(self) -> list[tuple[int, list[str]]]:
        items: list[tuple[int, list[str]]] = []
        n = 0
        while self._queue and n < self.batch_size:
            seq, lines = self._queue.popleft()
            room = self.batch_size - n
            if len(lines) > room:
                self._queue.appendleft((seq + room, lines[room:]))
                lines = lines[:room]
            items.append((seq, lines))
            n += len(lines)
        self._queued -= n
        self._inflight = items[0][0] if items else None
        return items

    def _settled_locked(self, target: int) -> bool:
        pending = [s for s in (self._queue[0][0] if self._queue else None, self._inflight) if s is not None]
        return not pending or min(pending) >= target

    def _wait(self, timeout: float, *, spool_empty: bool) -> bool:
        deadline = time.monotonic() + timeout
        self._adopted.wait(timeout)  # a spool left by a dead process counts as pending work
        with self._cond:
            target = self._seq
            next_force = 0.0
            while True:
                done = self._settled_locked(target) and (not spool_empty or not self._spool.busy())
                now = time.monotonic()
                if done or now >= deadline:
                    return done
                if not self._thread.is_alive():  # closed: nothing will move; keep memory on disk
                    self._queue_to_spool_locked()
                    return self._settled_locked(target) and (not spool_empty or not self._spool.busy())
                if now >= next_force:  # retry a down server now, then at most twice a second while we wait
                    self._force = True
                    self._cond.notify_all()
                    next_force = now + 0.5
                self._cond.wait(min(deadline - now, 0.1))

    # -- the writer thread ---------------------------------------------------------------------------------------------
    def _run(self) -> None:
        with contextlib.suppress(Exception):
            self._adopt()
        self._adopted.set()
        with contextlib.suppress(Exception):
            self._probe()
        while True:
            with self._cond:
                if not (self._stop or self._force or self._queued >= self.batch_size):
                    self._cond.wait(self._wait_time())
                stop, force = self._stop, self._force
                self._force = False
                before = self._queued
            try:
                self._step(force)
            except Exception as exc:  # the writer must never die: keep the reason for %mm_monitor
                self._note(exc)
            with self._cond:
                self._cond.notify_all()
                if stop and (not self._queue or self._queued >= before or self._abort):
                    return

    def _wait_time(self) -> float:
        if self._connected:
            return self.flush_interval
        return max(0.01, min(self.flush_interval, self._next_retry - time.monotonic()))

    def _step(self, force: bool) -> None:
        now = time.monotonic()
        due = self._connected or force or now >= self._next_retry
        drain = False
        batch: list[tuple[int, list[str]]] | None = None
        with self._lock:
            busy = self._spool.busy()
            if busy or not due or self._abort:
                self._queue_to_spool_locked()  # order: once anything is on disk, everything newer follows it
                if busy and due and not self._stop:
                    self._spool.seal()
                    drain = True
            else:
                batch = self._pop_locked()
        self._sync()
        if drain:
            self._drain()
        elif batch:
            self._send_batch(batch)
        elif batch is not None:  # idle
            if not self._connected and due:
                self._probe()
            elif self._connected and now >= self._next_adopt:
                self._adopt()

    def _send_batch(self, batch: list[tuple[int, list[str]]]) -> None:
        ok = self._send([line for _, lines in batch for line in lines])
        with self._lock:
            self._inflight = None
            if not ok:
                for seq, lines in batch:
                    self._spool_locked(seq, lines)
                self._queue_to_spool_locked()
        if not ok:
            self._sync()

    def _drain(self) -> None:
        """Replay sealed segments in order, chunk by chunk, saving progress; stop at the first failure."""
        with self._lock:
            segments = self._spool.sealed()
        for segment in segments:
            try:
                start, lines = complete_lines(segment)
            except FileNotFoundError:
                continue
            offset = start
            for i in range(0, len(lines), self.batch_size):
                if self._abort:
                    return
                chunk = lines[i : i + self.batch_size]
                points = [line for line in chunk if line]
                if not self._send(points):
                    return
                offset += sum(len(line) + 1 for line in chunk)
                if i + self.batch_size >= len(lines):
                    self._spool.finish(segment)  # before the count drops: a drained spool has no file left
                else:
                    with contextlib.suppress(OSError):
                        save_pos(segment, offset)
                with self._cond:
                    self._spool.count = max(0, self._spool.count - len(points))
                    self._cond.notify_all()
            if not lines:
                self._spool.finish(segment)
        with self._lock:
            for stream in self._spool.streams_without_segments():
                self._spool.release(stream)
            if self._spool.count and not self._spool.sealed() and self._spool.open_path is None:
                self._spool.count = 0  # counts drifted (e.g. a failed disk write): nothing is left on disk

    def _sync(self) -> None:
        with self._lock:
            fds, retired, dir_dirty = self._spool.take_sync()
        if fds or retired or dir_dirty:
            try:
                fsync_all(fds, retired, self._spool.dir if dir_dirty else None)
            except OSError as exc:
                self._note(exc, prefix="spool fsync failed")

    def _adopt(self) -> None:
        self._next_adopt = time.monotonic() + ADOPT_EVERY
        found = self._spool.orphans()
        if not found:
            return
        with self._lock:
            for stream, (fd, count) in found.items():
                self._spool.locks[stream] = fd
                self._spool.count += count
            for stream in self._spool.streams_without_segments():
                self._spool.release(stream)

    def _probe(self) -> None:
        if self._client.ping():
            self._ok()
        else:
            self._failed(ConnectionError(f"no answer to ping from {redact_url(self.url)}"))

    def _send(self, lines: Sequence[str | bytes]) -> bool:
        """Send lines; True when the server has them (or rejected them as malformed: dropped, never retried)."""
        if not lines:
            return True
        payload: str | bytes = (
            b"\n".join(lines)  # type: ignore[arg-type]
            if isinstance(lines[0], bytes)
            else "\n".join(lines)  # type: ignore[arg-type]
        )
        try:
            self._api.write(self.bucket, self.org, record=payload, write_precision=PRECISION)
        except ApiException as exc:
            if exc.status not in PERMANENT_STATUS:
                self._failed(exc)
                return False
            if len(lines) == 1:
                with self._lock:
                    self._dropped += 1
                self._note(exc, prefix="the server rejected a point, dropped")
                return True
            mid = len(lines) // 2
            return self._send(lines[:mid]) and self._send(lines[mid:])
        except Exception as exc:  # connection refused, timeouts, TLS, anything urllib3 raises
            self._failed(exc)
            return False
        with self._lock:
            self._written += len(lines)
        self._ok()
        return True

    def _ok(self) -> None:
        with self._lock:
            if not self._connected:  # back after an outage: the outage's error is history, not the state
                self._last_error = None
            self._connected = True
            self._backoff = 0.0

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._connected = False
            self._backoff = min(self.max_backoff, max(0.25, self._backoff * 2))
            self._next_retry = time.monotonic() + self._backoff
        self._note(exc)

    def _note(self, exc: BaseException, prefix: str = "") -> None:
        if isinstance(exc, ApiException):
            body = (exc.body or "")[:200] if isinstance(exc.body, str) else ""
            text = f"HTTP {exc.status} {exc.reason or ''}: {body}".strip().rstrip(":")
        else:
            text = f"{type(exc).__name__}: {getattr(exc, 'reason', None) or exc}"
        if self._token:
            text = text.replace(self._token, "***")
        text = text.replace(self.url, redact_url(self.url))
        with self._lock:
            self._last_error = (f"{prefix}: {text}" if prefix else text)[:500]

    def _spill_at_exit(self) -> None:
        """Interpreter exit without close(): move memory to disk, no network (bounded, never blocks shutdown)."""
        if self._closed or not self._lock.acquire(timeout=1.0):
            return
        try:
            self._stop = True
            self._queue_to_spool_locked()
            self._spool.seal()
            sync = self._spool.take_sync()
        finally:
            self._lock.release()
        with contextlib.suppress(Exception):
            fsync_all(*sync[:2], self._spool.dir if sync[2] else None)
