"""Live metrics as time series, advanced one step at a time: what sparklines draw.

:meth:`Monitor.snapshot` answers "how is it now" over a window; a sparkline needs "how has it been, bucket by
bucket", refreshed every second or so without re-reading the window each time. A :class:`LiveSeries` is that
cursor: its first :meth:`~LiveSeries.advance` returns every complete bucket of the window, each later one only the
buckets completed since, computed from the rows written since (requests, probes and labels are read once each).
Live quality is kept per labelled request, so a tick costs what arrived in that tick, not the window's size.

Columns (one value per bucket, ``None`` where a bucket has no evidence: a gap, not a zero):

* ``rate`` (requests/s), ``errors`` (share of requests not answered 200);
* ``p50``/``p99`` server latency and the p50 split into ``processing``, ``queue``, ``overhead`` (server time not
  spent in either), and ``network`` where a client reported it through probes;
* ``quality``: live accuracy (classifiers) or MAE (regressors) of the serving version over the window that ends
  with the bucket, by the time the request was made; ``reference`` holds its training-time value;
* ``drift``: the worst feature's PSI over the window that ends with the bucket (features with fewer than the
  ``min_drift_rows`` rule's rows are not judged); ``reference`` holds the PSI alert threshold.

Only answered requests count (a shadow's predictions answered nobody). During a canary or shadow release (the
deployment's ``release``, as it was when the cursor was made) these columns are the champion's (the served version:
its answered requests and their labels), and :attr:`Series.challenger` carries the candidate's ``rate``, ``errors``,
``p50``, ``p99`` and ``quality`` over the same buckets (gaps before it started), from its own rows: the requests it
answered (a canary), or the predictions it made on every request (a shadow: ``rate`` is its predictions/s,
``quality`` its labels joined by request id like the champion's). A request refused before any version took it has
no version: the champion's. Without a release there is no challenger (``None``). Drift, network time and alerts
stay the champion's.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..records import Record
from ..specs import check_name
from .drift import psi, reference

if TYPE_CHECKING:
    from .live import Monitor

COLUMNS = ("rate", "errors", "p50", "p99", "processing", "queue", "overhead", "network", "quality", "drift")
#: What a release's challenger carries beside the champion's columns.
CHALLENGER_COLUMNS = ("rate", "errors", "p50", "p99", "quality")
#: Buckets a window is cut into when no step is given: a sparkline's worth of points.
BUCKETS = 60
#: A bucket is final this long after it ends: servers write what they recorded every second (the recorder's
#: interval), so a bucket returned sooner could miss requests still on their way to the store, for good.
SETTLE_S = 2.0


@dataclass(repr=False)
class Series(Record):
    """Buckets ``t`` (each bucket's end, unix seconds) and one column per live metric (see the module docstring);
    ``full`` when it is the whole window, False for the buckets completed since the previous one."""

    name: str
    version: str | None
    step_s: float
    window_s: float
    full: bool
    until: float  # the end of the last complete bucket: where the next advance starts
    t: list[float]
    columns: dict[str, list[float | None]]
    quality_metric: str | None
    reference: dict[str, float | None]
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: with a canary or shadow release: ``{"version", "mode", "percent", "started", "columns"}``, the candidate's
    #: ``CHALLENGER_COLUMNS`` over the same buckets, None in those before it started (``version`` is then the
    #: champion); None without a release
    challenger: dict[str, Any] | None = None

    def __str__(self) -> str:
        head = f"{self.name} ({self.version or 'not deployed'}): {len(self.t)} bucket(s) of {self.step_s:g}s"
        text = f"{head} — {_latest(self.columns)}"
        if self.challenger:
            text += f"; {release_label(self.challenger)}: {_latest(self.challenger['columns'])}"
        return text


class LiveSeries:
    """A cursor over one model's live metrics (see the module docstring). Not thread-safe: one per face."""

    def __init__(
        self,
        monitor: Monitor,
        name: str,
        window_s: float,
        step_s: float | None,
        version: str | None,
        since: float | None = None,
        release: dict[str, Any] | None = None,
    ) -> None:
        self.monitor = monitor
        self.name = check_name(name)
        self.window_s = float(window_s)
        self.step_s = max(float(step_s) if step_s else self.window_s / BUCKETS, 1.0)
        self.version = version
        # the candidate beside the served version (its champion, then pinned: traffic never renames it)
        keys = ("version", "mode", "percent", "started")
        self.release = {k: release.get(k) for k in keys} if release and version else None
        self._until: float | None = since  # end of the last bucket returned (a face may already hold the window)
        self._labelled: dict[str, _Labelled] = {"champion": _Labelled(), "challenger": _Labelled()}
        self._label_seen = 0.0  # feedback rows up to this time are in _labelled
        vdoc = self._version_doc()
        self.task = vdoc.task if vdoc is not None else None
        self.quality_metric = "mae" if self.task == "regression" else "accuracy"
        training = (vdoc.metrics if vdoc is not None else {}).get(self.quality_metric)
        self.training = float(training) if isinstance(training, (int, float)) else None

    def _version_doc(self) -> Any:
        if self.version is None:
            return None
        try:
            return self.monitor.ws.registry.get(self.version)
        except Exception:  # a version deleted under us: the series still draws traffic
            return None

    def advance(self, now: float | None = None) -> Series:
        """Every final bucket of the window (the first call), then the buckets final since the last call (a
        bucket is final ``SETTLE_S`` after it ends)."""
        now = time.time() if now is None else now
        last_end = math.floor((now - SETTLE_S) / self.step_s) * self.step_s
        full = self._until is None
        start = last_end - self.window_s if full else max(self._until, last_end - self.window_s)
        ends = np.arange(start + self.step_s, last_end + self.step_s / 2, self.step_s)
        self._until = max(last_end, start)
        store = self.monitor.store
        champion, challenger = self._sides(store.requests(self.name, start, last_end))
        versions = champion["version"].dropna() if len(champion) else ()
        if self.release is None and len(versions):  # no release: the series follows the version answering
            latest = int(versions.iloc[-1])
            if self.version is None or not self.version.endswith(f"@v{latest}"):
                self.version = f"{self.name}@v{latest}"
        columns = _empty(COLUMNS, len(ends))
        self._traffic(columns, champion, ends)
        self._network(columns, store.probes(self.name, start), ends)
        self._fold_labels(ends)
        columns["quality"] = self._labelled["champion"].column(ends, self.window_s)
        self._drift(columns, ends)
        rules = self.monitor.rules(self.name)
        alerts = store.alerts(self.name).to_dict(orient="records")
        return Series(
            name=self.name,
            version=self.version,
            step_s=self.step_s,
            window_s=self.window_s,
            full=full,
            until=self._until,
            t=[float(e) for e in ends],
            columns=columns,
            quality_metric=self.quality_metric,
            reference={"quality": self.training, "drift": rules["psi"], "p99": rules["latency_p99_ms"]},
            alerts=[{k: a[k] for k in ("rule", "message", "opened", "version")} for a in alerts],
            challenger=self._challenger(challenger, ends),
        )

    # -- whose rows -------------------------------------------------------------------------------------------
    def _side(self, version: int | None, role: str | None) -> str | None:
        """Whose logged prediction this is (one row of the log): ``champion``, ``challenger`` or neither (None).
        :meth:`_sides` says the same of many rows at once."""
        if self.release is None:
            return "champion" if not role else None
        if not role and version in (None, _number(self.version)):
            return "champion"
        shadow = self.release["mode"] == "shadow"
        if version == _number(self.release["version"]) and (role == "shadow" if shadow else not role):
            return "challenger"
        return None

    def _sides(self, reqs: Any) -> tuple[Any, Any]:
        """The champion's rows and the challenger's (none without a release) of a slice of the request log."""
        if not len(reqs):
            return reqs, reqs
        answered = reqs["role"].isna().to_numpy()
        if self.release is None:
            return reqs[answered], reqs.iloc[:0]
        version = reqs["version"].to_numpy(dtype=float)  # NaN: refused before any version took it
        champion = answered & (np.isnan(version) | (version == _number(self.version)))
        mine = (reqs["role"] == "shadow").to_numpy() if self.release["mode"] == "shadow" else answered
        return reqs[champion], reqs[mine & (version == _number(self.release["version"]))]

    def _challenger(self, rows: Any, ends: np.ndarray) -> dict[str, Any] | None:
        if self.release is None:
            return None
        columns = _empty(COLUMNS, len(ends))
        self._traffic(columns, rows, ends)
        columns["quality"] = self._labelled["challenger"].column(ends, self.window_s)
        started = self.release.get("started")
        if isinstance(started, (int, float)):  # before the release began: a gap, not a challenger with no traffic
            for i in np.flatnonzero(ends <= started):
                for k in columns:
                    columns[k][int(i)] = None
        return {**self.release, "columns": {k: columns[k] for k in CHALLENGER_COLUMNS}}

    # -- columns ----------------------------------------------------------------------------------------------
    def _buckets(self, t: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Bucket index of each time (a bucket is (end - step, end])."""
        return np.searchsorted(ends, t, side="left")

    def _traffic(self, columns: dict[str, list[float | None]], reqs: Any, ends: np.ndarray) -> None:
        if not len(reqs) or not len(ends):
            for i in range(len(ends)):
                columns["rate"][i] = 0.0
            return
        idx = self._buckets(reqs["t"].to_numpy(), ends)
        ok = reqs["status"].to_numpy() == 200
        total, proc, queue = (reqs[c].to_numpy(dtype=float) for c in ("total_ms", "proc_ms", "queue_ms"))
        for i in range(len(ends)):
            here = idx == i
            n = int(here.sum())
            columns["rate"][i] = n / self.step_s
            if not n:
                continue
            columns["errors"][i] = float((~ok[here]).mean())
            good = here & ok
            if not good.any():
                continue
            p50, p99 = np.nanpercentile(total[good], [50, 99])
            columns["p50"][i], columns["p99"][i] = float(p50), float(p99)
            columns["processing"][i] = _median(proc[good])
            columns["queue"][i] = _median(queue[good])
            columns["overhead"][i] = _median(total[good] - proc[good] - queue[good])

    def _network(self, columns: dict[str, list[float | None]], probes: Any, ends: np.ndarray) -> None:
        if not len(probes) or not len(ends):
            return
        idx = self._buckets(probes["t"].to_numpy(), ends)
        network = probes["network_ms"].to_numpy(dtype=float)
        for i in np.unique(idx[idx < len(ends)]):
            columns["network"][int(i)] = _median(network[idx == i])

    def _fold_labels(self, ends: np.ndarray) -> None:
        """Fold in the labels that arrived since the last call, each to the side whose prediction it scores, and
        forget the requests that left the window."""
        numbers = [n for n in (_number(self.version), _number((self.release or {}).get("version"))) if n is not None]
        if not numbers or not len(ends):
            return
        oldest = float(ends[0]) - self.window_s
        rows = self.monitor.store.query(
            "SELECT f.t, f.request_id, f.label, r.t, r.prediction, r.version, r.role FROM feedback f "
            "JOIN requests r ON r.request_id = f.request_id AND r.model = f.model "
            f"WHERE f.model=? AND f.t>? AND r.version IN ({','.join('?' * len(numbers))}) AND r.t>=? ORDER BY f.t",
            (self.name, self._label_seen, *numbers, oldest),
        )
        for labelled_at, request_id, label, t, prediction, version, role in rows:
            self._label_seen = max(self._label_seen, labelled_at)
            side = self._side(version, role) if self.release else ("champion" if version == numbers[0] else None)
            scored = _score(prediction, label, self.task) if side else None
            if scored is not None:
                self._labelled[side].add(request_id, t, scored)
        for labelled in self._labelled.values():
            labelled.forget_before(oldest)

    def _drift(self, columns: dict[str, list[float | None]], ends: np.ndarray) -> None:
        """Worst PSI over each bucket's trailing window, from the per-minute bins the servers write."""
        number = _number(self.version)
        vdoc = self._version_doc()
        if number is None or vdoc is None or not len(ends):
            return
        profile = (vdoc.data or {}).get("profile") or {}
        refs = {f: r for f, p in profile.items() if (r := reference(p)) is not None}
        if not refs:
            return
        first_minute = int((float(ends[0]) - self.window_s) // 60)
        bins = self.monitor.store.query(
            "SELECT minute, feature, counts FROM drift_bins WHERE model=? AND version=? AND minute>=?",
            (self.name, number, first_minute),
        )
        if not bins:
            return
        minutes = np.asarray([b[0] for b in bins])
        min_rows = self.monitor.rules(self.name)["min_drift_rows"]
        decoded = [(b[1], np.asarray(json.loads(b[2]), dtype=float)) for b in bins]
        for i, end in enumerate(ends):
            inside = (minutes >= int((end - self.window_s) // 60)) & (minutes <= int(end // 60))
            sums: dict[str, np.ndarray] = {}
            for keep, (feature, counts) in zip(inside, decoded, strict=True):
                ref = refs.get(feature)
                if keep and ref is not None and len(counts) == ref.bins:
                    sums[feature] = sums[feature] + counts if feature in sums else counts.copy()
            worst = [psi(refs[f].expected, c) for f, c in sums.items() if c.sum() >= min_rows]
            worst = [w for w in worst if w is not None]
            if worst:
                columns["drift"][i] = max(worst)


class _Labelled:
    """The labelled requests of one side, scored once each: request id -> (request t, score sum, rows). A tick
    costs the labels that arrived in it; the window's score per bucket is a sum over these."""

    def __init__(self) -> None:
        self.by_request: dict[str, tuple[float, float, int]] = {}

    def add(self, request_id: str, t: float, scored: tuple[float, int]) -> None:
        self.by_request[request_id] = (t, *scored)  # a newer label for the request replaces the older

    def forget_before(self, oldest: float) -> None:
        for rid in [r for r, (t, _, _) in self.by_request.items() if t < oldest]:
            del self.by_request[rid]

    def column(self, ends: np.ndarray, window_s: float) -> list[float | None]:
        """Live quality over the window that ends with each bucket (None where it holds no label)."""
        out: list[float | None] = [None] * len(ends)
        if not self.by_request:
            return out
        t, score, n = (np.asarray(c, dtype=float) for c in zip(*self.by_request.values(), strict=True))
        for i, end in enumerate(ends):
            inside = (t <= end) & (t > end - window_s)
            rows_in = n[inside].sum()
            if rows_in:
                out[i] = float(score[inside].sum() / rows_in)
        return out


def release_label(challenger: dict[str, Any]) -> str:
    """How a challenger is named: ``canary iris@v2 (10 %)`` or ``shadow iris@v2``."""
    share = f" ({float(challenger.get('percent') or 0):g} %)" if challenger.get("mode") == "canary" else ""
    return f"{challenger.get('mode')} {challenger.get('version')}{share}"


def _empty(keys: tuple[str, ...], n: int) -> dict[str, list[float | None]]:
    return {k: [None] * n for k in keys}


def _latest(columns: dict[str, list[float | None]]) -> str:
    """The newest value of each column, or "no requests" when the rate column is all zero."""
    if not any(columns.get("rate") or []):
        return "no requests"
    last = {k: next((v for v in reversed(col) if v is not None), None) for k, col in columns.items()}
    return ", ".join(f"{k} {v:.3g}" for k, v in last.items() if v is not None)


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(np.median(values)) if len(values) else None


def _number(version: str | None) -> int | None:
    return int(version.rpartition("@v")[2]) if version else None


def _score(prediction: str | None, label: str | None, task: str | None) -> tuple[float, int] | None:
    """(sum of per-row scores, rows) for one labelled request: correct rows for a classifier, absolute error for a
    regressor; None when the label does not fit the prediction."""
    if prediction is None or label is None:
        return None
    p, y = json.loads(prediction), json.loads(label)
    y = y if isinstance(y, list) else [y]
    if len(p) != len(y) or not p:
        return None
    if task == "regression":
        try:
            return float(np.abs(np.asarray(p, dtype=float) - np.asarray(y, dtype=float)).sum()), len(p)
        except (TypeError, ValueError):
            return None
    return float(sum(label_key(a) == label_key(b) for a, b in zip(p, y, strict=True))), len(p)


def label_key(value: Any) -> str:
    """Compare labels by value: 1, 1.0 and "1" are one class; "setosa" stays itself."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
