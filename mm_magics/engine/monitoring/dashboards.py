"""The Grafana dashboard shipped with the package, over the InfluxDB measurements the servers write.

A team that already runs Grafana imports one JSON file and sees every deployment (local, Docker, exported) side by
side: request rate per version, status codes, the latency split at p50 and p95, micro-batch sizes. Its queries are
Flux over the ``mm_request`` points :mod:`.line_protocol` documents; the data source, bucket and model are dashboard
variables, so nothing in it names this machine.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text

GRAFANA_DASHBOARD = "grafana-dashboard.json"


def grafana_dashboard() -> dict[str, Any]:
    """The dashboard as Grafana's import takes it (``mm_magics/data/grafana-dashboard.json``)."""
    return json.loads((files("mm_magics") / "data" / GRAFANA_DASHBOARD).read_text())


def write_grafana_dashboard(out: Path) -> Path:
    """Write the dashboard to ``out`` (a file; its directory is created)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(grafana_dashboard(), indent=2) + "\n")
    return out
