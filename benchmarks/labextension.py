"""Benchmark the JupyterLab Models panel (issue 13): its REST routes and the panel in a real JupyterLab + Chromium.

Usage::

    python benchmarks/labextension.py [--sizes 10,1000,10000] [--models 1000] [--requests 40] [--out FILE]

Prints one JSON document (progress on stderr). What it measures, against the issue's targets:

* REST latency (p50 over ``--requests`` keep-alive requests with the server's token) of the list route
  (``/mm/api/models``), a page of versions (``/mm/api/models/bench/versions``), one version and the poll route
  (``/mm/api/head``), with one model at 10, 1 000 and 10 000 versions. Baseline in the same run: Jupyter's own
  ``/api/status``. Targets: p50 ≤ 15 ms at 10 000 versions, and flat (10 000 / 10 ≤ 2).
* With ``--models`` models: the time from the command that opens the panel to its list drawn (target ≤ 500 ms),
  and the time from a commit made by another process to its row in the open panel (target ≤ 2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _bench import make_log, rnd
from timeline import grow
from widgets import CHROMIUM, start_lab

log = make_log("labextension")
ROUTES = {
    "models": "mm/api/models",
    "versions_page": "mm/api/models/bench/versions?limit=20",
    "one_version": "mm/api/versions/bench@v1",
    "poll_head": "mm/api/head",
    "baseline_api_status": "api/status",
}


def latencies(client: Any, url: str, token: str, n: int) -> dict[str, float]:
    out = {}
    for name, path in ROUTES.items():
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            resp = client.get(f"{url}/{path}", headers={"Authorization": f"token {token}"})
            samples.append((time.perf_counter() - start) * 1000)
            assert resp.status_code == 200, (path, resp.status_code, resp.text[:200])
        out[f"{name}_p50_ms"] = rnd(statistics.median(samples), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    import httpx
    from playwright.sync_api import sync_playwright
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from mm_magics.engine import Workspace, schema_of

    X, y = load_iris(return_X_y=True, as_frame=True)
    models = [LogisticRegression(max_iter=300).fit(X, y), DecisionTreeClassifier(max_depth=2).fit(X, y)]
    results: dict[str, Any] = {"rest": {}}
    with tempfile.TemporaryDirectory(prefix="mm-bench-lab-") as tmp:
        root = Path(tmp)
        ws = Workspace.open(root / ".mm")
        env = {**os.environ, "MM_HOME": str(root / ".mm")}
        server, url, token = start_lab(root, env)
        try:
            with httpx.Client(timeout=30) as client:
                for n in sizes:
                    grow(ws, models, schema_of(X), n)
                    results["rest"][str(n)] = latencies(client, url, token, args.requests)
                    log(f"{n} versions: {results['rest'][str(n)]}")
            for i in range(args.models - 1):  # bench is one; the others have a version each
                ws.registry.commit(f"model{i:04d}", models[i % 2], message="one of many", metrics={"accuracy": 0.9})
                if (i + 1) % 250 == 0:
                    log(f"{i + 1} models")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{url}/lab?reset&token={token}")
                page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
                page.wait_for_function(
                    "() => window.jupyterapp.commands.hasCommand('mm:open-models-panel')", timeout=60_000
                )
                opened_at = page.evaluate(
                    "async () => { await window.jupyterapp.restored; const t = Date.now();"
                    " window.jupyterapp.commands.execute('mm:open-models-panel'); return t; }"
                )
                page.wait_for_function(
                    f"() => {{ const p = document.querySelector('#mm-models-panel');"
                    f" return p && p.dataset.models === '{args.models}' && p.querySelector('.mm-models-row')"
                    f" && Number(p.dataset.drawnAt) >= {opened_at}; }}",
                    timeout=60_000,
                )
                drawn_at = page.evaluate("() => Number(document.querySelector('#mm-models-panel').dataset.drawnAt)")
                rows = page.locator(".mm-models-row").count()
                ws.registry.commit("zz-new", models[0], message="made elsewhere", metrics={"accuracy": 0.9})
                committed = time.time() * 1000
                page.locator("#mm-models-panel input[type=search]").fill("zz-new")
                page.wait_for_selector(".mm-models-row[data-model='zz-new']", timeout=30_000)
                appeared = page.evaluate("() => Date.now()")
                browser.close()
            results["panel"] = {
                "models": args.models,
                "open_to_drawn_ms": rnd(drawn_at - opened_at, 1),
                "rows_in_dom": rows,
                "commit_elsewhere_to_row_ms": rnd(appeared - committed, 1),
            }
            log(f"panel: {results['panel']}")
        finally:
            ws.close()
            server.terminate()
            server.wait(20)
    big, small = results["rest"].get(str(sizes[-1])), results["rest"].get(str(sizes[0]))
    checks = []

    def check(target: str, value: float, limit: float) -> None:
        checks.append({"target": f"{target} <= {limit}", "value": value, "met": value <= limit})

    for key in ("models_p50_ms", "versions_page_p50_ms", "one_version_p50_ms"):
        check(f"{key} at {sizes[-1]} versions", big[key], 15)
        check(f"{key} {sizes[-1]} / {sizes[0]}", rnd(big[key] / small[key], 2), 2)
    check("panel open to drawn ms", results["panel"]["open_to_drawn_ms"], 500)
    check("commit elsewhere to row ms", results["panel"]["commit_elsewhere_to_row_ms"], 2000)
    results["targets"] = checks
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
