"""Benchmark the timeline payload (issue 12's data half): bytes a face receives and the kernel's build time, as one
model's history grows to 10, 1 000 and 10 000 versions, and the update after one more commit.

Usage::

    python benchmarks/timeline.py [--sizes 10,1000,10000] [--repeat N] [--out FILE]

Prints one JSON document (progress on stderr). Why it is shaped this way:

* Targets from the issue: ≤ 40 bytes a version and ≤ 150 ms to build at 10 000 versions; the 10 000 figure ≤ 12×
  the 1 000 figure; an update after one new commit ≤ 2 KB. Bytes are exact; times are medians of ``--repeat`` runs
  from a warm workspace, and each size also reports the ratio to a baseline taken in the same run on the same
  workspace: ``Registry.log(limit=20)``, the cheapest read a face makes (the machine is shared and noisy, so
  ratios compare, milliseconds only inform).
* For scale, the naive payload (every version's JSON document, what a face would send without the columns) is
  measured beside it.
* The history is grown with real ``Registry.commit`` calls (two fitted models in turn, metrics varying, an explicit
  parent now and then); the in-browser draw time comes with the widgets themselves.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_ms(fn: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 3)


def grow(ws: Any, models: list[Any], schema: Any, target: int) -> None:
    have = ws.registry.models()[0].latest if ws.registry.models() else 0
    for n in range(have + 1, target + 1):
        parent = f"bench@v{max(n - 5, 1)}" if n > 1 and n % 17 == 0 else None
        accuracy = 0.8 + (n % 97) / 1000
        ws.registry.commit(
            "bench",
            models[n % 2],
            message=f"version {n}",
            metrics={"accuracy": accuracy, "f1_macro": accuracy - 0.01},
            schema=schema,
            parent=parent,
        )
        if n % 1000 == 0:
            log(f"grown to {n} versions")


def measure(ws: Any, n: int, repeat: int) -> dict[str, Any]:
    reg = ws.registry
    full = reg.timeline("bench")
    compact = json.dumps(full.payload, separators=(",", ":"))
    naive = sum(len(doc) for (doc,) in reg.index.query("SELECT doc FROM versions WHERE model='bench'"))
    build = median_ms(lambda: reg.timeline("bench"), repeat)
    baseline = median_ms(lambda: reg.log("bench", limit=20), repeat)
    return {
        "versions": n,
        "payload_bytes": len(compact),
        "bytes_per_version": round(len(compact) / n, 2),
        "naive_documents_bytes": naive,
        "build_ms": build,
        "log_page_ms": baseline,
        "build_vs_log_page": round(build / baseline, 2) if baseline else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,10000")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))

    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from mm_magics.engine import Workspace, schema_of

    X, y = load_iris(return_X_y=True, as_frame=True)
    models = [LogisticRegression(max_iter=300).fit(X, y), DecisionTreeClassifier(max_depth=2).fit(X, y)]
    results: dict[str, Any] = {"sizes": {}}
    with tempfile.TemporaryDirectory(prefix="mm-bench-timeline-") as tmp, Workspace.open(Path(tmp) / ".mm") as ws:
        for n in sizes:
            grow(ws, models, schema_of(X), n)
            results["sizes"][str(n)] = measure(ws, n, args.repeat)
            log(f"{n}: {results['sizes'][str(n)]}")
        held = ws.registry.timeline("bench")
        grow(ws, models, schema_of(X), sizes[-1] + 1)
        ws.lifecycle.transition("bench@v3", "retire", "benchmark: one re-staged version in the update")
        patch = ws.registry.timeline("bench", since=held.head)
        results["update_after_one_commit"] = {
            "versions_in_patch": patch.count,
            "bytes": len(json.dumps(patch.payload, separators=(",", ":"))),
            "build_ms": median_ms(lambda: ws.registry.timeline("bench", since=held.head), args.repeat),
        }
    big, mid = (results["sizes"].get(str(s)) for s in (10000, 1000))
    checks = []

    def check(target: str, value: float, limit: float) -> None:
        checks.append({"target": f"{target} <= {limit}", "value": value, "met": value <= limit})

    if big:
        check("bytes/version at 10 000", big["bytes_per_version"], 40)
        check("build ms at 10 000", big["build_ms"], 150)
    if big and mid:
        for key in ("payload_bytes", "build_ms"):
            check(f"{key} 10 000 / 1 000", round(big[key] / mid[key], 2), 12)
    check("update bytes after one commit", results["update_after_one_commit"]["bytes"], 2048)
    results["targets"] = checks
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
