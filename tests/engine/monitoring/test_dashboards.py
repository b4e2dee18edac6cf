"""The shipped Grafana dashboard reads what the servers write: every query's measurement, fields and tags are the
ones a real request record becomes in line protocol, and every variable it uses is defined. (Grafana itself is not
installable here; the import was not tried against a live Grafana.)"""

from __future__ import annotations

import re
import subprocess
import sys

from mm_magics.engine.monitoring.dashboards import grafana_dashboard, write_grafana_dashboard
from mm_magics.engine.monitoring.line_protocol import to_line


def _written() -> tuple[str, set[str], set[str]]:
    """Measurement, tag keys and field keys of a fully populated request point, as the sink writes it."""
    record = {
        "kind": "request", "model": "iris", "version": 1, "deployment": "iris", "status": 200, "time": 1.7e9,
        "total_s": 0.002, "queue_s": 0.0001, "proc_s": 0.001, "network_s": 0.0005, "batch_size": 3, "rows": 1,
    }  # fmt: skip
    head, fields, _ = to_line(record).split(" ")
    measurement, *tags = head.split(",")
    return measurement, {t.split("=")[0] for t in tags}, {f.split("=")[0] for f in fields.split(",")}


def test_every_query_reads_measurements_fields_and_tags_the_servers_write():
    measurement, tags, fields = _written()
    dashboard = grafana_dashboard()
    queries = [t["query"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(queries) == len(dashboard["panels"]) >= 5
    for query in queries:
        assert re.findall(r'r\._measurement == "(\w+)"', query) == [measurement]
        used_fields = set(re.findall(r'r\._field == "(\w+)"', query))
        assert used_fields and used_fields <= fields, (used_fields - fields, query)
        used_tags = set(re.findall(r"\br\.(\w+) ==", query)) - {"_measurement", "_field"}
        assert used_tags <= tags, used_tags - tags
        grouped = {c for g in re.findall(r"group\(columns: \[([^\]]*)\]", query) for c in re.findall(r'"(\w+)"', g)}
        assert grouped <= tags | {"_field"}, grouped


def test_variables_are_defined_and_panels_do_not_overlap():
    dashboard = grafana_dashboard()
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    used = set(re.findall(r"\$\{(\w+)\}", str(dashboard["panels"]) + str(dashboard["templating"])))
    assert used <= defined, used - defined
    cells = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert g["x"] + g["w"] <= 24 and not (cells & mine), panel["title"]
        cells |= mine
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_mm_export_grafana_writes_the_dashboard(tmp_path):
    out = tmp_path / "dash" / "mm.json"
    run = subprocess.run(
        [sys.executable, "-m", "mm_magics.cli", "export", "grafana", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert str(out) in run.stdout
    import json

    assert json.loads(out.read_text()) == grafana_dashboard()
    assert write_grafana_dashboard(tmp_path / "again.json").read_text() == out.read_text()
