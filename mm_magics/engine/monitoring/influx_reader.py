"""Reading a deployment's requests back from the InfluxDB it writes to: the monitor's view of a model served elsewhere.

A deployment on this machine records into the embedded store, which the monitor reads. An exported one (a Kubernetes
pod, a container on another host, ``docker run`` of a published image) records only into InfluxDB, so for a model
with no deployment here the monitor reads the same picture from there: request rate, errors, the latency split and
the per-bucket series, from the ``mm_request`` points (:mod:`.line_protocol` documents them). Ground truth and drift
summaries stay in the store of the machine that served them; the picture says so instead of showing nothing.

Two kinds of server answer the InfluxDB write protocol, and they are read differently:

* **InfluxDB 2.x / Cloud**: a Flux query through influxdb-client, pivoting the fields of each point into a row.
* **VictoriaMetrics** (and other servers that take line protocol and answer Prometheus' API): each field is a series
  ``mm_request_<field>`` labelled with the tags, read raw with ``/api/v1/export``; the fields of one point share a
  timestamp and a position in their series.

Which one is asked for is told by the server's ``/health`` answer (InfluxDB's names itself ``influxdb``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np
import pandas as pd

from ..errors import MMError, one_line
from .influx_settings import InfluxSettings, client_options, redact_url

#: The request log's columns the monitor reads, from the line-protocol fields they were written as.
FIELDS = {"latency_ms": "total_ms", "queue_ms": "queue_ms", "processing_ms": "proc_ms", "rows": "rows"}
COLUMNS = ["t", "model", "version", "deployment", "status", "total_ms", "queue_ms", "proc_ms", "rows"]


class InfluxReader:
    """The read side of the monitor's store interface, answered from InfluxDB (or VictoriaMetrics)."""

    def __init__(self, settings: InfluxSettings, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._kind: str | None = None

    @property
    def where(self) -> str:
        """Where the picture came from, fit to show (no credentials)."""
        return f"InfluxDB {redact_url(self.settings.url)}, bucket {self.settings.bucket}"

    def kind(self) -> str:
        """``influxdb`` or ``victoriametrics``, from the server's health answer; a one-line error if none answers."""
        if self._kind is None:
            try:
                resp = httpx.get(self.settings.url.rstrip("/") + "/health", timeout=self.timeout)
            except httpx.HTTPError as exc:
                raise MMError(
                    f"cannot read the monitoring data of a deployment elsewhere from {self.where}: {exc} (check "
                    "INFLUXDB_V2_URL or the workspace's influx settings)"
                ) from None
            name = ""
            if resp.headers.get("content-type", "").startswith("application/json"):
                name = str(resp.json().get("name", ""))
            self._kind = "influxdb" if name == "influxdb" else "victoriametrics"
        return self._kind

    def requests(self, model: str, since: float, until: float | None = None) -> pd.DataFrame:
        """The request log of ``model`` since ``since`` (unix seconds), in the embedded store's columns."""
        rows = self._flux(model, since, until) if self.kind() == "influxdb" else self._export(model, since, until)
        frame = pd.DataFrame(rows, columns=COLUMNS)
        if frame.empty:
            return frame
        frame["status"] = pd.to_numeric(frame["status"], errors="coerce").fillna(0).astype(int)
        frame["version"] = pd.to_numeric(frame["version"], errors="coerce").astype("Int64")
        return frame.sort_values("t", ignore_index=True)

    # the rest of the store interface: what only the serving machine's store holds
    def probes(self, model: str, since: float) -> pd.DataFrame:
        return pd.DataFrame(columns=["t", "model", "request_id", "total_ms", "server_ms", "network_ms"])

    def joined_feedback(self, model: str, since: float) -> pd.DataFrame:
        return pd.DataFrame(columns=["t", "version", "request_id", "prediction", "label", "labelled"])

    def drift(self, model: str, version: int, since: float) -> tuple[dict[str, list[int]], dict[str, list[float]]]:
        return {}, {}

    # -- VictoriaMetrics: /api/v1/export ----------------------------------------------------------------------------
    def _export(self, model: str, since: float, until: float | None) -> list[dict[str, Any]]:
        names = "|".join(f"mm_request_{f}" for f in FIELDS)
        match = f'{{__name__=~"{names}",model="{_promql_string(model)}"}}'
        params = {"match[]": match, "start": f"{since:.3f}"}
        if until is not None:
            params["end"] = f"{until:.3f}"
        body = self._get("/api/v1/export", params)
        series: dict[tuple, dict[str, tuple[list[int], list[float]]]] = {}
        for line in body.splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            labels = dict(row["metric"])
            field = labels.pop("__name__").removeprefix("mm_request_")
            key = tuple(sorted(labels.items()))
            series.setdefault(key, {})[field] = (row["timestamps"], row["values"])
        out: list[dict[str, Any]] = []
        for key, fields in series.items():
            labels = dict(key)
            stamps, _ = fields.get("latency_ms", next(iter(fields.values())))
            for i, ts in enumerate(stamps):
                rec = {"t": ts / 1000.0, **{c: labels.get(c) for c in ("model", "version", "deployment", "status")}}
                for name, column in FIELDS.items():
                    times, values = fields.get(name, ([], []))
                    rec[column] = values[i] if i < len(values) and times[i] == ts else np.nan
                out.append(rec)
        return out

    # -- InfluxDB 2.x: Flux --------------------------------------------------------------------------------------
    def flux(self, model: str, since: float, until: float | None = None) -> str:
        """The Flux query for ``model``'s requests in the window, one row per point (fields pivoted)."""
        stop = f", stop: {_flux_time(until)}" if until is not None else ""
        return (
            f'from(bucket: "{_flux_string(self.settings.bucket)}")\n'
            f"  |> range(start: {_flux_time(since)}{stop})\n"
            f'  |> filter(fn: (r) => r._measurement == "mm_request" and r.model == "{_flux_string(model)}")\n'
            f"  |> filter(fn: (r) => contains(value: r._field, set: {json.dumps(list(FIELDS))}))\n"
            '  |> pivot(rowKey: ["_time", "model", "version", "deployment", "status"], columnKey: ["_field"], '
            'valueColumn: "_value")\n'
            '  |> group()\n  |> sort(columns: ["_time"])'
        )

    def _flux(self, model: str, since: float, until: float | None) -> list[dict[str, Any]]:
        try:
            from influxdb_client import InfluxDBClient
        except ImportError:
            raise MMError("reading from InfluxDB needs influxdb-client: pip install 'mm_magics[influx]'") from None
        _, options = client_options(os.environ)
        client = InfluxDBClient(
            url=self.settings.url,
            token=self.settings.token or "",
            org=self.settings.org or "-",
            timeout=int(self.timeout * 1000),
            **options,
        )
        with client:
            try:
                tables = client.query_api().query(self.flux(model, since, until), org=self.settings.org)
            except Exception as exc:  # the client raises its own ApiException and urllib3's errors
                raise MMError(f"InfluxDB refused the monitor's query ({one_line(exc, 200)}) at {self.where}") from None
        out = []
        for table in tables:
            for record in table.records:
                values: Mapping[str, Any] = record.values
                rec = {"t": record.get_time().timestamp()}
                rec.update({c: values.get(c) for c in ("model", "version", "deployment", "status")})
                rec.update({column: values.get(name, np.nan) for name, column in FIELDS.items()})
                out.append(rec)
        return out

    def _get(self, path: str, params: dict[str, str]) -> str:
        url = self.settings.url.rstrip("/") + path
        headers = {"Authorization": f"Token {self.settings.token}"} if self.settings.token else {}
        try:
            resp = httpx.get(url, params=params, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise MMError(f"cannot read the monitoring data from {self.where}: {one_line(exc, 200)}") from None
        if resp.status_code != 200:
            raise MMError(f"{self.where} refused the monitor's query ({resp.status_code}: {one_line(resp.text, 200)})")
        return resp.text


def _promql_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _flux_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")


def _flux_time(t: float) -> str:
    return pd.Timestamp(t, unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


__all__ = ["InfluxReader"]
