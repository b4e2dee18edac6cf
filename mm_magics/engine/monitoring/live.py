"""The live picture of a deployed model, computed from the embedded store over a sliding window.

Request rate, latency percentiles with their split (processing, queue, server overhead, and network time where a
client reported it through probes), error rate, live quality from ground-truth feedback beside the training-time
evaluation, drift per feature, and alerts — for ``%mm_monitor``, ``mm monitor`` and custom plots (``frame``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .. import metrics
from ..clock import timestamp_of
from ..documents import finite_number
from ..errors import MMError
from ..records import Record
from ..specs import check_name
from .compare import Comparison, compare
from .drift import PSI_SIGNIFICANT, ks, psi, reference
from .influx_reader import InfluxReader
from .influx_settings import INFLUX_STATE
from .influx_settings import resolve as resolve_influx
from .labels import label_problem
from .promotion import AUTO_MIN_LABELLED, judge
from .series import LiveSeries, label_key
from .store import SQLiteStore

if TYPE_CHECKING:
    from ..workspace import Workspace

#: Default alert rules; a model overrides them in model.json ("alerts") through Monitor.set_rules.
DEFAULT_RULES = {
    "latency_p99_ms": 500.0,  # p99 of server time above this
    "error_rate": 0.05,  # share of requests answered with an error
    "quality_drop": 0.05,  # live accuracy (or R²) below the training evaluation by more than this
    "psi": PSI_SIGNIFICANT,  # any feature's PSI above this
    "min_requests": 20,  # don't judge rates on fewer requests
    "min_feedback": 20,  # don't judge quality on fewer labels
    "min_drift_rows": 100,  # don't judge drift on fewer rows (PSI on 5 rows read 6.8)
    # promoting a canary or shadow: with a positive count, %mm_promote needs that many labelled requests on each side
    # and the challenger's live accuracy (MAE) no worse than the champion's by more than the margin (0: no rule)
    "promote_min_labelled": 0,
    "promote_margin": 0.01,
    "promote_check_s": 30.0,  # how often a release started with --auto checks the rule (engine/serving/steward.py)
}
#: Rules that count requests, labels or rows: whole numbers.
WHOLE_RULES = ("min_requests", "min_feedback", "min_drift_rows", "promote_min_labelled")
#: Below this many rows PSI is biased upward by sampling noise alone (150 undrifted rows read ~0.18): drift must
#: then also be significant by the Kolmogorov-Smirnov test against the training profile (as Evidently does).
PSI_RELIABLE_ROWS = 1000
KS_ALPHA = 0.01


def parse_duration(text: str | float | int) -> float:
    """'5m' -> 300.0; accepts s, m, h, d suffixes or plain seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = str(text).strip().lower()
    try:
        if t and t[-1] in units:
            return float(t[:-1]) * units[t[-1]]
        return float(t)
    except ValueError:
        raise MMError(f"bad duration {text!r}: write a number with s, m, h or d (e.g. 5m, 30s)") from None


@dataclass(repr=False)
class Snapshot(Record):
    """Everything %mm_monitor shows, as plain data."""

    name: str
    version: str | None
    window_s: float
    at: float
    requests: int
    rate_per_s: float
    error_rate: float | None
    latency_ms: dict[str, dict[str, float]]
    quality: dict[str, float]
    training: dict[str, float]
    labelled: int
    drift: dict[str, dict[str, float | None]]
    alerts: list[dict[str, Any]]
    sink: dict[str, Any] | None = None
    deployment: dict[str, Any] | None = None
    series: dict[str, list[float | None]] = field(default_factory=dict)
    #: where the picture was read from when not this machine's store: a deployment elsewhere, read from InfluxDB
    source: str | None = None
    #: with a canary or shadow release: champion and challenger side by side, and the verdict
    comparison: Comparison | None = None

    def __str__(self) -> str:
        lines = [f"{self.name} ({self.version or 'not deployed'}) — last {self.window_s:.0f}s"]
        if self.source:
            lines.append(f"  served elsewhere: read from {self.source} (quality and drift stay where it is served)")
        err = f"{self.error_rate:.1%}" if self.error_rate is not None else "n/a"
        lines.append(f"  traffic: {self.requests} requests, {self.rate_per_s:.2f}/s, errors {err}")
        for part, stats in self.latency_ms.items():
            p50, p95, p99 = stats["p50"], stats["p95"], stats["p99"]
            lines.append(f"  latency {part:<10} p50 {p50:.2f}  p95 {p95:.2f}  p99 {p99:.2f} ms")
        if self.quality:
            q = ", ".join(
                f"{k} {v:.3f}" + (f" (train {self.training[k]:.3f})" if k in self.training else "")
                for k, v in self.quality.items()
            )
            lines.append(f"  quality on {self.labelled} labelled: {q}")
        else:
            lines.append(
                "  quality: no feedback yet (send the true labels of logged requests as feedback, or POST .../feedback)"
            )
        drifted = {f: d for f, d in self.drift.items() if (d.get("psi") or 0) > 0}
        if drifted:
            top = sorted(drifted.items(), key=lambda kv: -(kv[1].get("psi") or 0))[:5]
            lines.append("  drift (PSI): " + ", ".join(f"{f} {d['psi']:.3f} ({d['n']:.0f} rows)" for f, d in top))
        for a in self.alerts:
            lines.append(f"  ALERT {a['rule']}: {a['message']}")
        if self.comparison is not None:
            lines += ["  " + line for line in str(self.comparison).splitlines()]
        if self.sink:
            up = "connected" if self.sink.get("connected") else "DOWN"
            line = f"  influx: {up}, {self.sink.get('spooled', 0)} spooled"
            if not self.sink.get("connected") and self.sink.get("last_error"):
                line += f" ({self.sink['last_error']})"
            lines.append(line)
        return "\n".join(lines)


@dataclass(repr=False)
class ProbeReport(Record):
    """Timed requests sent and recorded: how many, and the median client and network time."""

    name: str
    probes: int
    client_ms_median: float
    network_ms_median: float

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.probes} probes, median client {self.client_ms_median:.2f} ms of which network "
            f"{self.network_ms_median:.2f} ms (recorded: the monitor's latency split includes it)"
        )


class Monitor:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.store = SQLiteStore(workspace.run_dir / "metrics.sqlite")

    def close(self) -> None:
        self.store.close()

    # -- settings -----------------------------------------------------------------------------------------------
    def rules(self, name: str) -> dict[str, float]:
        return {**DEFAULT_RULES, **(self.ws.registry.model_doc(name).get("alerts") or {})}

    def set_rules(self, name: str, message: str = "", **rules: float) -> dict[str, float]:
        check_name(name)
        unknown = sorted(set(rules) - set(DEFAULT_RULES))
        if unknown:
            raise MMError(f"unknown alert rule(s) {', '.join(unknown)}: known rules are {', '.join(DEFAULT_RULES)}")
        bad = [f"{k}={v!r}" for k, v in rules.items() if not finite_number(v)]
        if bad:
            raise MMError(f"alert thresholds must be finite numbers: {', '.join(bad)}")
        negative = [f"{k}={v!r}" for k, v in rules.items() if v < 0]
        if negative:
            raise MMError(f"rules are thresholds of zero or more: {', '.join(negative)}")
        counts = [f"{k}={v!r}" for k, v in rules.items() if k in WHOLE_RULES and v != int(v)]
        if counts:
            raise MMError(f"these rules count requests or rows, so they take whole numbers: {', '.join(counts)}")
        if "promote_check_s" in rules and rules["promote_check_s"] < 0.1:
            raise MMError(f"promote_check_s={rules['promote_check_s']!r} is too often: use 0.1 seconds or more")
        self.ws.registry.update_model(
            name,
            lambda doc: doc.setdefault("alerts", {}).update(rules),
            message or f"Set alert rules of {name}: {rules}",
            "alerts",
        )
        return self.rules(name)

    # -- data ---------------------------------------------------------------------------------------------------
    def frame(self, name: str, window: str | float = "1h") -> pd.DataFrame:
        """Raw request log of the window as a DataFrame (time as datetimes), for custom plots."""
        check_name(name)
        df = self.store.requests(name, time.time() - parse_duration(window))
        if not df.empty:
            df["time"] = pd.to_datetime(df["t"], unit="s")
        return df

    def record_feedback(self, name: str, ids: list[str], labels: list[Any]) -> int:
        self.ws.registry.resolve(check_name(name))  # feedback for a model nobody committed is a typo, not data
        if not isinstance(ids, list) or not isinstance(labels, list):
            raise MMError("request ids and labels must be lists, one label per request id")
        if not ids:
            raise MMError("no feedback given: pass at least one request id and its label")
        if len(ids) != len(labels):
            raise MMError(f"{len(ids)} request ids but {len(labels)} labels: give one label per request")
        problem = label_problem([_plain(v) for v in labels])
        if problem:
            raise MMError(problem)
        self.store.write_feedback(name, zip(ids, labels, strict=True))
        return len(ids)

    def version_evidence(self, name: str, number: int, window: str | float = "24h") -> dict[str, Any]:
        """What one version did live over ``window``, whatever its part: requests it answered (served, or a
        canary's share), predictions it made as a shadow, and its live quality on the labelled ones. A model card
        reads this: the deployment-wide figures mix in every other version's traffic."""
        since = time.time() - parse_duration(window)
        reqs = self.store.requests(check_name(name), since)
        mine = reqs[reqs["version"] == number] if len(reqs) else reqs
        shadow = int((mine["role"] == "shadow").sum()) if len(mine) and "role" in mine else 0
        joined = self.store.joined_feedback(name, since)
        joined = joined[joined["version"] == number] if not joined.empty else joined
        task = self.ws.registry.get(f"{name}@v{number}").task
        quality, labelled = _quality(joined, task)
        return {"answered": len(mine) - shadow, "shadow": shadow, "labelled": labelled, "quality": quality}

    def probe(self, name: str, n: int = 20, *, deployments: Any) -> ProbeReport:
        """Send ``n`` timed requests through the deployment and record them apart from live traffic: the network
        part of the latency split (client total minus the server's ``Server-Timing`` total)."""
        probes = deployments.probe(check_name(name), n)
        self.store.write_probes(name, probes)
        return ProbeReport(
            name=name,
            probes=len(probes),
            client_ms_median=float(np.median([p["total_ms"] for p in probes])),
            network_ms_median=float(np.median([p["network_ms"] for p in probes])),
        )

    def sink_state(self) -> dict[str, Any] | None:
        """The InfluxDB sink's state as a server last reported it (connected, spooled, last error), or None when no
        server writes to InfluxDB. Servers write it beside the metric store, since the kernel has no sink of its own.
        """
        try:
            return json.loads((self.ws.run_dir / INFLUX_STATE).read_text())
        except (FileNotFoundError, ValueError):
            return None

    # -- the snapshot -------------------------------------------------------------------------------------------
    def snapshot(
        self,
        name: str,
        window: str | float = "5m",
        *,
        deployment: Any = None,
        sink: dict[str, Any] | None = None,
        source: Any = None,
    ) -> Snapshot:
        """The live picture of ``name`` over ``window``: a pure read (a refresh tick, a poll, a GET may call it).

        Its ``alerts`` are the rules firing on this window now, each with the time it was first recorded as open
        when :meth:`evaluate` has recorded it. ``sink`` defaults to what the servers last reported."""
        snap, vdoc = self._picture(name, window, deployment, sink, source)
        version = vdoc.number if vdoc is not None else None
        stored = {a["rule"]: a for a in self.store.alerts(name).to_dict(orient="records") if a["version"] == version}
        snap.alerts = [
            {
                "model": name,
                "version": version,
                "rule": rule,
                "severity": "warning",
                "message": message,
                "value": value,
                "opened": stored.get(rule, {}).get("opened"),
            }
            for rule, firing, message, value in self._checks(snap, vdoc)
            if firing
        ]
        return snap

    def series(
        self,
        name: str,
        window: str | float = "5m",
        *,
        step: str | float | None = None,
        deployment: Any = None,
        since: float | None = None,
    ) -> LiveSeries:
        """A cursor over ``name``'s live metrics as per-bucket series (what sparklines draw): its first
        ``advance()`` gives the window (or, with ``since``, the buckets after that bucket end: a face that already
        holds the window), each later one only the buckets completed since. With the deployment's canary or shadow
        release, each also carries the candidate's columns beside the served version's. A pure read."""
        step_s = parse_duration(step) if step is not None else None
        version = deployment.version if deployment is not None else None
        release = getattr(deployment, "release", None)
        return LiveSeries(self, name, parse_duration(window), step_s, version, since, release)

    def view(self, name: str, window: str | float = "5m", *, deployments: Any, evaluate: bool = False) -> Snapshot:
        """What ``%mm_monitor`` and ``mm monitor`` show, one verb for both: the server writes what it has recorded
        (``deployments.flush_metrics``), then the picture; ``evaluate=True`` (the user's action, not a refresh tick)
        also records alerts and the maintain move."""
        deployment = deployments.get(name)
        source = self.elsewhere() if deployment is None else None
        if source is None:
            deployments.flush_metrics(name)
        picture = self.evaluate if evaluate else self.snapshot
        return picture(name, window, deployment=deployment, source=source)

    def elsewhere(self) -> InfluxReader | None:
        """Where a model with no deployment on this machine records (an exported or remote deployment): the
        InfluxDB the workspace is configured for, or None."""
        settings = resolve_influx(self.ws.local_config)
        return InfluxReader(settings) if settings is not None else None

    def evaluate(
        self,
        name: str,
        window: str | float = "5m",
        *,
        deployment: Any = None,
        sink: dict[str, Any] | None = None,
        source: Any = None,
    ) -> Snapshot:
        """The one monitoring step that writes: record alerts opening and resolving, and move a deployed version
        that now has live traffic from *deploy* to *maintain* (an audited commit). A user action calls it (starting
        ``%mm_monitor`` or ``mm monitor``); refreshes and polls call :meth:`snapshot`."""
        snap, vdoc = self._picture(name, window, deployment, sink, source)
        version = vdoc.number if vdoc is not None else None
        firing = {rule: (message, value) for rule, on, message, value in self._checks(snap, vdoc) if on}
        for alert in self.store.alerts(name).to_dict(orient="records"):
            # an alert belongs to the version it was raised on: it resolves when that version no longer serves,
            # and when this window no longer shows the problem (including no evidence left to judge it on)
            if alert["version"] != version or alert["rule"] not in firing:
                self.store.resolve_alert(int(alert["id"]))
        for rule, (message, value) in firing.items():
            self.store.open_alert(name, version, rule, "warning", message, value)
        snap.alerts = self.store.alerts(name).to_dict(orient="records")
        if vdoc is not None and vdoc.stage == "deploy" and snap.requests:
            # the version is now watched in production: the lifecycle moves it to maintain
            self.ws.lifecycle.transition(vdoc.id, "maintain", "Monitoring started: live traffic recorded")
        return snap

    def _picture(
        self, name: str, window: str | float, deployment: Any, sink: dict[str, Any] | None, source: Any = None
    ) -> tuple[Snapshot, Any]:
        """The picture from this machine's store, or from ``source`` (an :class:`InfluxReader`) for a deployment
        elsewhere, which answers the same reads."""
        check_name(name)
        window_s = parse_duration(window)
        store = source if source is not None else self.store
        if source is not None:
            sink = {}  # this machine's servers' sink state says nothing about a server elsewhere
        sink = sink if sink is not None else self.sink_state()
        now = time.time()
        since = now - window_s
        version = deployment.version if deployment is not None else None
        logged = store.requests(name, since)
        # a shadow's predictions answered nobody: the traffic picture is the answered requests
        reqs = logged[logged["role"].isna()] if "role" in logged.columns else logged
        n = len(reqs)
        # the rate divides by the time traffic could have run: since the deployment started, if that is later
        observed = now - max(since, _started(deployment) or since)
        ok = reqs[reqs["status"] == 200] if n else reqs
        latency = _latency(ok, store.probes(name, since))
        error_rate = float((reqs["status"] != 200).mean()) if n else None
        number = int(version.split("@v")[1]) if version else (int(ok["version"].max()) if len(ok) else None)
        vdoc = self.ws.registry.get(f"{name}@v{number}") if number else None
        training = {k: v for k, v in (vdoc.metrics if vdoc else {}).items() if isinstance(v, (int, float))}
        joined = store.joined_feedback(name, since)
        if number is not None and not joined.empty:
            joined = joined[joined["version"] == number]  # live quality of the version serving now
        quality, labelled = _quality(joined, vdoc.task if vdoc else None)
        drift = self._drift(store, name, number, since, vdoc) if number else {}
        snap = Snapshot(
            name=name,
            version=f"{name}@v{number}" if number else None,
            window_s=window_s,
            at=now,
            requests=n,
            rate_per_s=n / observed if observed > 0 else 0.0,
            error_rate=error_rate,
            latency_ms=latency,
            quality=quality,
            training={k: training[k] for k in quality if k in training},
            labelled=labelled,
            drift=drift,
            alerts=[],
            sink=sink,
            deployment=deployment.to_dict() if deployment is not None else None,
            series=_series(reqs, since, now),
            source=source.where if source is not None else None,
        )
        release = deployment.release if deployment is not None else None
        if release and version:
            # since the release started (within the window): traffic before it, or an earlier candidate's, is
            # not evidence about this one; the promotion rule counts the same requests
            start = max(since, float(release.get("started") or since))
            snap.comparison = compare(
                name,
                release,
                version,
                logged[logged["t"] >= start],
                store.joined_feedback(name, start),
                vdoc.task if vdoc else None,
            )
            snap.comparison.since = start
            self._side_drift(snap.comparison, store, start, vdoc)
            rules = self.rules(name)
            if int(rules.get("promote_min_labelled") or 0) > 0 or release.get("auto"):
                need = int(rules.get("promote_min_labelled") or 0) or AUTO_MIN_LABELLED
                verdict = judge(snap.comparison, rules, need)
                snap.comparison.rule = f"{verdict.action}: {verdict.why}"
        return snap, vdoc

    def _side_drift(self, comparison: Comparison, store: Any, since: float, vdoc: Any) -> None:
        """Each side's worst feature drift: the inputs it predicted on against its own training profile (versions
        trained on other data drift differently on the same traffic). Features with fewer rows than the
        ``min_drift_rows`` rule are not judged."""
        least = self.rules(comparison.name)["min_drift_rows"]
        for vid, side in comparison.sides.items():
            try:
                doc = vdoc if vdoc is not None and vdoc.id == vid else self.ws.registry.get(vid)
            except MMError:
                continue
            judged = {
                f: d
                for f, d in self._drift(store, comparison.name, doc.number, since, doc).items()
                if d["psi"] is not None and d["n"] >= least
            }
            if judged:
                feature, worst = max(judged.items(), key=lambda kv: kv[1]["psi"])
                side["drift"] = {"feature": feature, "psi": worst["psi"], "rows": worst["n"]}

    def _drift(self, store: Any, name: str, number: int, since: float, vdoc: Any) -> dict[str, dict[str, float | None]]:
        counts, samples = store.drift(name, number, since)
        profile = (vdoc.data or {}).get("profile") or {}
        out: dict[str, dict[str, float | None]] = {}
        for feature, c in counts.items():
            ref = reference(profile.get(feature, {}))
            if ref is None or len(c) != ref.bins:
                continue
            value = psi(ref.expected, c)
            test = ks(ref, samples.get(feature, []))
            out[feature] = {
                "psi": value,
                "ks": test[0] if test else None,
                "ks_p": test[1] if test else None,
                "n": float(sum(c)),
            }
        return out

    def _checks(self, snap: Snapshot, vdoc: Any) -> list[tuple[str, bool, str, float | None]]:
        """Every alert rule on this picture: ``(rule, firing, message, value)``; computes, writes nothing."""
        rules = self.rules(snap.name)
        retrain = f"retrain {snap.name} from {snap.version}" if snap.version else f"retrain {snap.name}"
        checks: list[tuple[str, bool, str, float | None]] = []
        enough = snap.requests >= rules["min_requests"]
        p99 = snap.latency_ms.get("server", {}).get("p99")
        checks.append(
            (
                "latency_p99_ms",
                enough and p99 is not None and p99 > rules["latency_p99_ms"],
                f"p99 server latency {p99 or 0:.1f} ms > {rules['latency_p99_ms']:.0f} ms: scale out, enable "
                "--batch, or use a lighter model",
                p99,
            )
        )
        er = snap.error_rate
        checks.append(
            (
                "error_rate",
                enough and er is not None and er > rules["error_rate"],
                f"error rate {er or 0:.1%} > {rules['error_rate']:.0%}: check client payloads against the "
                "schema (the request log shows the errors)",
                er,
            )
        )
        key = "accuracy" if "accuracy" in snap.quality else ("r2" if "r2" in snap.quality else None)
        if key and key in snap.training and snap.labelled >= rules["min_feedback"]:
            drop = snap.training[key] - snap.quality[key]
            checks.append(
                (
                    "quality_drop",
                    drop > rules["quality_drop"],
                    f"live {key} {snap.quality[key]:.3f} is {drop:.3f} below training "
                    f"{snap.training[key]:.3f}: {retrain}",
                    drop,
                )
            )
        judged = {f: d for f, d in snap.drift.items() if d.get("psi") is not None and d["n"] >= rules["min_drift_rows"]}
        drifted = {f: d for f, d in judged.items() if d["psi"] > rules["psi"] and _significant(d)}
        worst = max(drifted or judged, key=lambda f: (drifted or judged)[f]["psi"], default=None)
        if worst is not None:
            d = judged[worst]
            test = f", KS p={d['ks_p']:.2g}" if d.get("ks_p") is not None and d["n"] < PSI_RELIABLE_ROWS else ""
            checks.append(
                (
                    "psi",
                    bool(drifted),
                    f"feature {worst} drifted (PSI {d['psi']:.2f} > {rules['psi']:.2f} over {d['n']:.0f} rows"
                    f"{test}{_matters(vdoc, worst)}): inspect the inputs, then {retrain} on fresh data",
                    d["psi"],
                )
            )
        return checks


def _matters(vdoc: Any, feature: str) -> str:
    """Whether a drifted feature matters to the model, from the explanation summary made at commit time."""
    top = ((vdoc.explanation or {}).get("top") or []) if vdoc is not None else []
    if not top:
        return ""
    for rank, (name, importance) in enumerate(top, 1):
        if name == feature:
            return f"; the model's #{rank} feature by permutation importance, {importance:.2f}"
    return f"; outside the model's {len(top)} most important features, so predictions may hardly move"


def _started(deployment: Any) -> float | None:
    """When the deployment first started serving (unix seconds: its first deploy, switches keep serving), from its
    record; None when unknown."""
    history = getattr(deployment, "history", None) or [{}]
    return timestamp_of(history[0].get("time")) or timestamp_of(getattr(deployment, "started", None))


def _significant(d: dict[str, float | None]) -> bool:
    """PSI alone on many rows; on fewer, the KS test must agree (PSI's sampling noise is large on small samples)."""
    if (d["n"] or 0) >= PSI_RELIABLE_ROWS:
        return True
    return d.get("ks_p") is not None and d["ks_p"] < KS_ALPHA  # type: ignore[operator]


def _percentiles(values: pd.Series) -> dict[str, float]:
    arr = values.dropna().to_numpy(dtype=float)
    if not len(arr):
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _latency(ok: pd.DataFrame, probes: pd.DataFrame) -> dict[str, dict[str, float]]:
    if ok.empty:
        return {}
    out = {
        "server": _percentiles(ok["total_ms"]),
        "processing": _percentiles(ok["proc_ms"]),
        "queue": _percentiles(ok["queue_ms"]),
        "overhead": _percentiles(ok["total_ms"] - ok["proc_ms"] - ok["queue_ms"]),
    }
    if not probes.empty:
        out["network"] = _percentiles(probes["network_ms"])
        out["client"] = _percentiles(probes["total_ms"])
    return out


def _quality(joined: pd.DataFrame, task: str | None) -> tuple[dict[str, float], int]:
    """Live metrics from predictions joined to their labels (row by row for multi-row requests)."""
    if joined.empty:
        return {}, 0
    joined = joined.drop_duplicates("request_id", keep="last")
    y_true, y_pred = [], []
    for pred, label in zip(joined["prediction"], joined["label"], strict=True):
        if pred is None or label is None:
            continue
        p, t = json.loads(pred), json.loads(label)
        t = t if isinstance(t, list) else [t]
        if len(t) != len(p):
            continue
        y_pred.extend(p)
        y_true.extend(t)
    if not y_true:
        return {}, 0
    if task == "regression":
        out = metrics.regression(y_true, y_pred)
    else:
        out = metrics.classification([label_key(v) for v in y_true], [label_key(v) for v in y_pred], confusion=False)
    return {k: v for k, v in out.items() if k in metrics.HEADLINE}, len(y_true)


def _series(reqs: pd.DataFrame, since: float, now: float, buckets: int = 30) -> dict[str, list[float | None]]:
    """Per-bucket request counts and p95 server latency: the data behind sparklines. A bucket with no request has
    a count of 0 but no latency (None: a gap, not a 0 ms request)."""
    if reqs.empty:
        return {"requests": [0.0] * buckets, "p95_ms": [None] * buckets}
    width = max((now - since) / buckets, 1e-9)
    idx = np.clip(((reqs["t"].to_numpy() - since) // width).astype(int), 0, buckets - 1)
    counts = np.bincount(idx, minlength=buckets).astype(float)
    p95 = [
        float(np.percentile(reqs["total_ms"].to_numpy()[idx == b], 95)) if (idx == b).any() else None
        for b in range(buckets)
    ]
    return {"requests": counts.tolist(), "p95_ms": p95}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (what a notebook's y holds) as the Python values a label check reads."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
