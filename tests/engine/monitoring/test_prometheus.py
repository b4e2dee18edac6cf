"""An existing Prometheus watching our deployments: a real ``prometheus`` (Debian's package, started on 127.0.0.1 with
a generated config) scrapes two deployments' ``/metrics`` and its query API returns each one's request count, by
model, version and status, as a platform team's dashboards and alerts would read them."""

from __future__ import annotations

import httpx
import pytest

from mm_magics.engine.serving.deployer import Deployer

from ...conftest import commit_kwargs
from ...waiting import wait_until

pytestmark = pytest.mark.timeout(300)


def _counts(prom, promql: str) -> dict[tuple[str, str, str], float]:
    return {
        (s["metric"]["model"], s["metric"]["version"], s["metric"].get("status", "")): float(s["value"][1])
        for s in prom.query(promql)
    }


def test_prometheus_scrapes_two_deployments_and_answers_their_request_counts(ws, iris, models, prometheus):
    X, y = iris
    ws.registry.commit("iris", models["logreg"], message="logreg", **commit_kwargs(X, y))
    ws.registry.commit("flowers", models["tree"], message="tree", **commit_kwargs(X, y))
    deployer = Deployer(ws)
    try:
        iris_dep = deployer.deploy("iris@v1")
        flowers_dep = deployer.deploy("flowers@v1")
        prom = prometheus({"iris": f"{iris_dep.url}/metrics", "flowers": f"{flowers_dep.url}/metrics"})
        for _ in range(7):
            deployer.predict("iris", X.iloc[:2].values.tolist())
        for _ in range(3):
            deployer.predict("flowers", X.iloc[:1].values.tolist())
        bad = httpx.post(f"{flowers_dep.url}/v2/models/flowers/infer", json={"inputs": []})  # a 4xx, counted too

        assert bad.status_code == 422
        wanted = {("iris", "1", "200"): 7.0, ("flowers", "1", "200"): 3.0, ("flowers", "1", "422"): 1.0}
        counts = wait_until(
            lambda: (c := _counts(prom, "mm_requests_total")) == wanted and c,
            "Prometheus to scrape both deployments' request counts",
            timeout=60,
            every=0.25,
        )
        assert counts == wanted
        rows = prom.query('sum by (model) (mm_rows_total{job=~"iris|flowers"})')
        assert {r["metric"]["model"]: float(r["value"][1]) for r in rows} == {"iris": 14.0, "flowers": 3.0}
        up = prom.query("up")
        assert sorted((r["metric"]["job"], r["value"][1]) for r in up) == [("flowers", "1"), ("iris", "1")]
    finally:
        for dep in deployer.list():
            deployer.undeploy(dep.name)
        deployer.close()
