"""The InfluxDB sink: every recorded point also goes to InfluxDB, without ever slowing or failing a server.

InfluxDB is the shared, long-term sink (dashboards, many machines); the notebook keeps reading the embedded store.
So this module only writes, and its one hard rule is that the caller — a model server's request-recording thread —
never waits on the network and never sees an exception, whatever InfluxDB does.

Data model (line protocol; timestamps in microseconds, ``WritePrecision.US``: a float of unix seconds holds no more)
---------------------------------------------------------------------------------------------------------------------
======================  =========================================  ==========================================
record ``kind``          measurement and tags                        fields
======================  =========================================  ==========================================
``request``             ``mm_request`` deployment, model, status,   ``latency_ms``, ``queue_ms``,
                        version                                     ``processing_ms``, ``network_ms`` (only when
                                                                    the client reported it) — floats, rounded
                                                                    to the ns;
                                                                    ``batch_size``, ``rows`` — integers
``feedback``            ``mm_feedback`` model, version              ``count`` = 1 (so a feedback with no score
                                                                    still lands), ``correct`` 0/1 (integer),
                                                                    ``abs_error`` (float)
``metric``              ``mm_metric`` feature, model, name,         ``value`` (float)
                        version
``alert``               ``mm_alert`` model, rule, severity,         ``message`` (string), ``active`` = 1
                        version                                     (integer: servers that keep only numbers,
                                                                    like VictoriaMetrics, still see the alert)
======================  =========================================  ==========================================

Tags are the low-cardinality identity of a series (what a dashboard groups by); everything measured is a field, and a
field keeps one type forever (InfluxDB rejects a batch whose field changes type), so floats are always written as
floats and counts always as integers. Missing or ``None`` values are left out (a tag is omitted, a field skipped);
non-finite floats are skipped (line protocol has no NaN). A record with no field left is dropped and counted.
Optional static tags (``INFLUXDB_V2_TAG_*`` as the client reads them, or ``"tags"`` in the local settings, e.g.
``host``) are added to every point. Escaping follows the line-protocol rules: in tag keys and values ``,``, ``=``,
space and ``\\`` are backslash-escaped (the official client leaves ``\\`` alone, which breaks a value ending in a
backslash); in string fields ``"`` and ``\\``. Newlines, tabs and carriage returns become ``\\n``, ``\\t``, ``\\r``
everywhere, so one point is always exactly one line — the spool below relies on it.

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

The spool is a directory of append-only segment files, ``<stream>.<first seq>.lp``: one line-protocol line per point,
each segment holding a contiguous run of sequence numbers (a new segment starts whenever the run breaks), so sorting
segments by (stream, first sequence number) gives write order even when a batch that was in flight when the server
failed is spooled after newer ones. Segments are fsync'd by the writer thread (the caller never fsyncs) and replayed
in chunks of ``batch_size``; after each chunk the byte offset reached is saved beside the segment (``.pos``, atomic
rename), and a drained segment is deleted. A crash can only tear the last line of a segment: replay uses only lines
that end in a newline, so a torn tail is ignored.

Several servers share one spool directory (every deployment of a workspace records into its run directory, Docker
containers included through the mount). Each sink is one *stream* holding an ``flock`` on ``<stream>.lock`` for its
lifetime; a sink that finds another stream's segments whose lock it can take (their writer died or closed with data
still spooled) adopts them and replays them before its own, at start and then every minute.

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
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from .influx_settings import DEFAULT_BUCKET, resolve

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no adoption of other processes' spool
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_BUCKET", "InfluxSink", "to_line"]

PRECISION = WritePrecision.US
SEGMENT_MAX_BYTES = 16 * 1024 * 1024  # a segment is read whole on replay: this bounds replay memory
PERMANENT_STATUS = frozenset({400, 413, 422})  # the data is bad, retrying cannot help: bisect and drop
ADOPT_EVERY = 60.0  # seconds between scans for other processes' orphaned spool

# -- line protocol ---------------------------------------------------------------------------------------------------

_ESC_KEY = str.maketrans({"\\": "\\\\", ",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESC_STRING = str.maketrans({"\\": "\\\\", '"': r"\"", "\n": r"\n", "\t": r"\t", "\r": r"\r"})

# The tag part of a line (",deployment=…,model=…,status=…,version=…") is the same for almost every point of a
# series, so it is built once per distinct tag set and reused: conversion is the sink's hot path (it runs on the
# caller's thread). Bounded: cleared when it grows past _TAGSET_MAX entries (a high-cardinality tag still works).
_TAGSETS: dict[tuple[Any, ...], str] = {}
_TAGSET_MAX = 10_000

ExtraTags = tuple[tuple[str, str], ...]


def _tag(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text.translate(_ESC_KEY) if text else None


def _tagset(names: tuple[str, ...], values: tuple[Any, ...], extra: ExtraTags) -> str:
    key = (names, values, extra)
    try:
        cached = _TAGSETS.get(key)
    except TypeError:  # an unhashable tag value: build it every time
        cached, key = None, None
    if cached is not None:
        return cached
    pairs = [(k, v) for k, raw in zip(names, values, strict=True) if (v := _tag(raw)) is not None]
    if extra:
        present = {k for k, _ in pairs}
        pairs.extend(p for p in extra if p[0] not in present)
        pairs.sort()  # InfluxDB's recommended order (each kind lists its own tags sorted already)
    text = "".join(f",{k}={v}" for k, v in pairs)
    if key is not None:
        if len(_TAGSETS) >= _TAGSET_MAX:
            _TAGSETS.clear()
        _TAGSETS[key] = text
    return text


def _float(value: Any) -> str | None:
    """A float field (shortest round-trip repr), or None when missing or not finite (line protocol has no NaN)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return repr(number) if math.isfinite(number) else None


def _ms(seconds: Any) -> str | None:
    """Seconds as milliseconds with nanosecond resolution: ``0.3`` rather than ``0.30000000000000004``.

    Float noise would show on dashboards, and servers that keep ~12 significant digits (VictoriaMetrics) round it
    anyway. ``round(ns) / 1e6`` is correctly rounded, so its repr is the short decimal; ``round(x, 6)`` is 4x slower.
    """
    if seconds is None:
        return None
    try:
        return repr(round(float(seconds) * 1e9) / 1e6)
    except (TypeError, ValueError, OverflowError):  # not a number, NaN, infinity
        return None


def _int(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return f"{int(value)}i"
    except (TypeError, ValueError, OverflowError):
        return None


def _string(value: Any) -> str | None:
    return None if value is None else '"' + str(value).translate(_ESC_STRING) + '"'


def _timestamp(value: Any) -> int:
    """Microseconds since the epoch: a float of unix seconds (~1.7e9) resolves ~0.24 µs, so µs is exact, ns is not."""
    if value is None:
        return time.time_ns() // 1000
    return round(float(value) * 1e6)


def _fields(*pairs: tuple[str, str | None]) -> str:
    return ",".join([f"{k}={v}" for k, v in pairs if v is not None])


_REQUEST_TAGS = ("deployment", "model", "status", "version")
_REQUEST_MS = (
    ("total_s", "latency_ms"),
    ("queue_s", "queue_ms"),
    ("proc_s", "processing_ms"),
    ("network_s", "network_ms"),
)
_FEEDBACK_TAGS = ("model", "version")
_METRIC_TAGS = ("feature", "model", "name", "version")
_ALERT_TAGS = ("model", "rule", "severity", "version")


def _request(rec: Mapping[str, Any], extra: ExtraTags) -> str | None:
    # written out by hand (not through _fields): this runs once per served request
    get = rec.get
    parts = []
    for key, name in _REQUEST_MS:
        if (text := _ms(get(key))) is not None:
            parts.append(f"{name}={text}")
    for key in ("batch_size", "rows"):
        if (text := _int(get(key))) is not None:
            parts.append(f"{key}={text}")
    if not parts:
        return None
    tags = _tagset(_REQUEST_TAGS, (get("deployment"), get("model"), get("status"), get("version")), extra)
    return f"mm_request{tags} {','.join(parts)} {_timestamp(get('time'))}"


def _feedback(rec: Mapping[str, Any], extra: ExtraTags) -> str | None:
    get = rec.get
    fields = _fields(("count", "1i"), ("correct", _int(get("correct"))), ("abs_error", _float(get("abs_error"))))
    tags = _tagset(_FEEDBACK_TAGS, (get("model"), get("version")), extra)
    return f"mm_feedback{tags} {fields} {_timestamp(get('time'))}"


def _metric(rec: Mapping[str, Any], extra: ExtraTags) -> str | None:
    get = rec.get
    value = _float(get("value"))
    if value is None:
        return None
    tags = _tagset(_METRIC_TAGS, (get("feature"), get("model"), get("name"), get("version")), extra)
    return f"mm_metric{tags} value={value} {_timestamp(get('time'))}"


def _alert(rec: Mapping[str, Any], extra: ExtraTags) -> str | None:
    get = rec.get
    fields = _fields(("active", "1i"), ("message", _string(get("message"))))
    tags = _tagset(_ALERT_TAGS, (get("model"), get("rule"), get("severity"), get("version")), extra)
    return f"mm_alert{tags} {fields} {_timestamp(get('time'))}"


_KINDS: dict[str, Callable[[Mapping[str, Any], ExtraTags], str | None]] = {
    "request": _request,
    "feedback": _feedback,
    "metric": _metric,
    "alert": _alert,
}


def to_line(record: Mapping[str, Any], extra_tags: Mapping[str, Any] | None = None) -> str | None:
    """One record as one line of line protocol (µs timestamps), or None when it has no field to write.

    Raises ValueError for an unknown ``kind``. ``extra_tags`` are added unless the record sets the same tag.
    """
    convert = _KINDS.get(record.get("kind"))  # type: ignore[arg-type]
    if convert is None:
        raise ValueError(f"unknown monitoring record kind {record.get('kind')!r}: use one of {sorted(_KINDS)}")
    return convert(record, _extra_tags(extra_tags))


def _extra_tags(tags: Mapping[str, Any] | None) -> ExtraTags:
    if not tags:
        return ()
    return tuple(sorted((str(k).translate(_ESC_KEY), v) for k, raw in tags.items() if (v := _tag(raw)) is not None))


# -- settings ---------------------------------------------------------------------------------------------------------


def _redact_url(url: str) -> str:
    """The URL without user:password, fit to show in %mm_monitor and in a state file."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _env_bool(value: str) -> bool:
    return value.lower() in ("yes", "true")  # influxdb_client.client._base._to_bool


def _client_options(env: Mapping[str, str]) -> tuple[float | None, dict[str, Any]]:
    """The connection settings ``InfluxDBClient.from_env_properties`` reads, besides url, token and org.

    Returns (timeout in seconds or None, keyword arguments for ``InfluxDBClient``), with the same variable names,
    defaults and parsing as the client, so a machine configured for the client's CLI-style setup works unchanged.
    """
    options: dict[str, Any] = {}
    timeout = env.get("INFLUXDB_V2_TIMEOUT")
    if "INFLUXDB_V2_VERIFY_SSL" in env:
        options["verify_ssl"] = _env_bool(env["INFLUXDB_V2_VERIFY_SSL"])
    for name, key in (
        ("INFLUXDB_V2_SSL_CA_CERT", "ssl_ca_cert"),
        ("INFLUXDB_V2_CERT_FILE", "cert_file"),
        ("INFLUXDB_V2_CERT_KEY_FILE", "cert_key_file"),
        ("INFLUXDB_V2_CERT_KEY_PASSWORD", "cert_key_password"),
    ):
        if env.get(name):
            options[key] = env[name]
    if (pool := _env_int(env.get("INFLUXDB_V2_CONNECTION_POOL_MAXSIZE"))) is not None:
        options["connection_pool_maxsize"] = pool
    if "INFLUXDB_V2_AUTH_BASIC" in env:
        options["auth_basic"] = _env_bool(env["INFLUXDB_V2_AUTH_BASIC"])
    timeout_ms = _env_int(timeout)
    return (timeout_ms / 1000.0 if timeout_ms else None), options


def _env_int(value: str | None) -> int | None:
    """An integer setting; a malformed one is ignored rather than stopping a model server from starting."""
    try:
        return int(value) if value else None
    except ValueError:
        return None


# -- the spool ---------------------------------------------------------------------------------------------------------


def _try_lock(path: Path) -> int | None:
    """An exclusive flock on ``path`` (created if missing), or None if someone holds it or it was just replaced."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:  # no flock (not POSIX): one process per spool directory, and no adoption
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # unlinked by its last owner between our open and flock
            raise BlockingIOError
    except OSError:
        os.close(fd)
        return None
    return fd


def _parse_segment(name: str) -> tuple[str, int] | None:
    parts = name.rsplit(".", 2)
    if len(parts) != 3 or parts[2] != "lp" or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _read_pos(segment: Path) -> int:
    try:
        return int(Path(f"{segment}.pos").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0  # lost or torn offset: replay the segment from the start (at-least-once)


def _complete_lines(segment: Path) -> tuple[int, list[bytes]]:
    """(start offset, the complete lines after it): a torn last line (no newline) and NUL-damaged lines are skipped.

    NUL lines are kept in the list as empty entries so offsets stay exact; callers skip empty lines.
    """
    start = _read_pos(segment)
    with open(segment, "rb") as fh:
        fh.seek(start)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    return start, [b"" if b"\x00" in line else line for line in lines]


def _count(segment: Path) -> int:
    try:
        return sum(1 for line in _complete_lines(segment)[1] if line)
    except OSError:
        return 0


class _Spool:
    """Append-only segment files in one directory. Not thread-safe: the sink's lock guards every call but reads."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.stream = self._new_stream()
        self.count = 0  # complete points on disk, own and adopted
        self.locks: dict[str, int] = {}  # stream -> flock fd (our own and the ones we adopted)
        self._fh: BinaryIO | None = None
        self._path: Path | None = None
        self._next = -1
        self._size = 0
        self._dirty = False
        self._dir_dirty = False
        self._retired: list[BinaryIO] = []  # rotated segments, fsync'd and closed by the writer outside the lock

    @staticmethod
    def _new_stream() -> str:
        return f"{time.time_ns():019d}-{os.getpid()}-{secrets.token_hex(4)}"

    @property
    def open_path(self) -> Path | None:
        return self._path

    def busy(self) -> bool:
        return self.count > 0 or self._fh is not None

    def _own(self) -> None:
        if self.stream in self.locks:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = _try_lock(self.dir / f"{self.stream}.lock")
            if fd is not None:
                self.locks[self.stream] = fd
                return
            self.stream = self._new_stream()
        raise OSError(f"cannot lock a spool stream in {self.dir}")

    def append(self, seq: int, lines: list[str]) -> None:
        """Append points ``seq .. seq+len-1``; a break in the sequence or a full segment starts a new segment."""
        data = ("\n".join(lines) + "\n").encode()
        if self._fh is None or seq != self._next or self._size + len(data) > SEGMENT_MAX_BYTES:
            self._rotate(seq)
        assert self._fh is not None
        try:
            view = memoryview(data)
            while view:
                view = view[self._fh.write(view) or 0 :]
        except OSError:
            self._retire()  # never append after a partial write: the torn tail stays the segment's last line
            raise
        self._size += len(data)
        self._next = seq + len(lines)
        self.count += len(lines)
        self._dirty = True

    def _rotate(self, seq: int) -> None:
        self._retire()
        self._own()
        path = self.dir / f"{self.stream}.{seq:016d}.lp"
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open across appends
        self._path, self._next, self._size = path, seq, 0
        self._dir_dirty = True

    def _retire(self) -> None:
        if self._fh is not None:
            self._retired.append(self._fh)
        self._fh, self._path, self._next, self._size = None, None, -1, 0

    def seal(self) -> None:
        """Stop appending to the open segment so it can be replayed; the next append starts a new one."""
        self._retire()

    def take_sync(self) -> tuple[list[int], list[BinaryIO], bool]:
        """What the writer must fsync outside the lock: dup'd fds of the open segment, retired files, the directory."""
        fds = []
        if self._dirty and self._fh is not None:
            fds.append(os.dup(self._fh.fileno()))
        self._dirty = False
        retired, self._retired = self._retired, []
        dir_dirty, self._dir_dirty = self._dir_dirty, False
        return fds, retired, dir_dirty

    def sealed(self) -> list[Path]:
        """Segments of our own and adopted streams, in replay order, except the one still open for appends."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                parsed = _parse_segment(entry.name)
                if parsed and parsed[0] in self.locks and self.dir / entry.name != self._path:
                    found.append((parsed, self.dir / entry.name))
        return [path for _, path in sorted(found)]

    def orphans(self) -> dict[str, tuple[int, int]]:
        """Lock other streams whose writer is gone: {stream: (lock fd, complete points)}. Call without the lock."""
        if fcntl is None:
            return {}
        streams: set[str] = set()
        try:
            for entry in os.scandir(self.dir):
                if entry.name.endswith(".lock"):
                    streams.add(entry.name[: -len(".lock")])
                elif parsed := _parse_segment(entry.name):
                    streams.add(parsed[0])
        except FileNotFoundError:
            return {}
        adopted = {}
        for stream in streams - set(self.locks):
            fd = _try_lock(self.dir / f"{stream}.lock")
            if fd is None:
                continue
            segments = [p for p in self.dir.glob(f"{stream}.*.lp") if _parse_segment(p.name)]
            count = sum(_count(p) for p in segments)
            if not count:  # nothing replayable (e.g. only a torn line): clear it so the stream can be released
                for segment in segments:
                    self.finish(segment)
            adopted[stream] = (fd, count)
        return adopted

    def finish(self, segment: Path) -> None:
        """A fully replayed segment: delete it (and its offset file)."""
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()
        with contextlib.suppress(FileNotFoundError):
            Path(f"{segment}.pos").unlink()

    def release(self, stream: str) -> None:
        """Forget an adopted (or our own, at close) stream with no segment left: remove its lock file, then unlock."""
        fd = self.locks.pop(stream, None)
        if fd is None:
            return
        for stray in self.dir.glob(f"{stream}.*.lp.pos*"):  # offsets (and a .tmp a crash left) of gone segments
            with contextlib.suppress(FileNotFoundError):
                stray.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{stream}.lock").unlink()
        os.close(fd)

    def streams_without_segments(self) -> list[str]:
        have = {p[0] for e in os.scandir(self.dir) if (p := _parse_segment(e.name))} if self.dir.exists() else set()
        return [s for s in self.locks if s not in have and s != self.stream]


def _save_pos(segment: Path, offset: int) -> None:
    tmp = Path(f"{segment}.pos.tmp")
    tmp.write_text(str(offset))
    os.replace(tmp, f"{segment}.pos")


def _fsync_all(fds: list[int], retired: list[BinaryIO], directory: Path | None) -> None:
    for fd in fds:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for fh in retired:
        with contextlib.suppress(OSError):
            os.fsync(fh.fileno())
        fh.close()
    if directory is not None:
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


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
        self._extra = _extra_tags(tags)
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
        self._spool = _Spool(Path(spool_dir))
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
        timeout, options = _client_options(os.environ)
        if timeout is not None:
            kwargs.setdefault("timeout", timeout)
        kwargs.setdefault("tags", dict(settings.tags))
        kwargs.setdefault("client_options", options)
        return cls(settings.url, settings.token, settings.org, settings.bucket, spool_dir=Path(spool_dir), **kwargs)

    def __repr__(self) -> str:
        return f"InfluxSink({_redact_url(self.url)!r}, bucket={self.bucket!r})"

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
                    convert = _KINDS.get(rec.get("kind"))
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
                "url": _redact_url(self.url),
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
            _fsync_all(*sync[:2], self._spool.dir if sync[2] else None)
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
                start, lines = _complete_lines(segment)
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
                        _save_pos(segment, offset)
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
                _fsync_all(fds, retired, self._spool.dir if dir_dirty else None)
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
            self._failed(ConnectionError(f"no answer to ping from {_redact_url(self.url)}"))

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
        text = text.replace(self.url, _redact_url(self.url))
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
            _fsync_all(*sync[:2], self._spool.dir if sync[2] else None)
