"""Benchmark the mm_magics registry: commit against plain git, and get/log/diff as one model's history grows.

Usage::

    python benchmarks/registry.py [--sizes 10,1000,10000] [--repeat N] [--out FILE] [--seed S] [--keep]

It prints one JSON document to stdout (progress goes to stderr) and, with ``--out``, writes the same document to a
file.

Why it is designed this way:

* The machine it runs on is shared and noisy, so absolute milliseconds say little from one run to the next. Every
  headline figure is therefore a ratio against a baseline measured in the same run: the git command line for
  ``commit``, the smallest registry for ``get``, ``log`` and ``diff``. Each timing is the median of ``--repeat``
  repetitions measured with ``time.perf_counter``, which shrugs off the odd descheduled call.
* The commit baseline commits the very bytes the registry writes (the skops artifact plus the model, version and
  stage JSON documents, read back from the workspace's git tree with ``git show``) with ``git add -A`` and
  ``git commit``, so the ratio measures the registry's overhead and not a difference in payload. The bytes are
  prepared before the clock starts, which favours the baseline. Registry and git commits are interleaved
  repetition by repetition, so a burst of load from a neighbour hits both sides alike.
* The registry records the state of the user's project repository (the current directory) in every version. To
  keep results independent of where the script is launched from, it works from a temporary directory that is not
  inside any git repository; the cost of that provenance inside a real project repository is reported separately,
  for information.
* One model's history is grown with real ``Registry.commit`` calls (three different fitted models in turn, so that
  adjacent versions differ in parameters, metrics, data, code and predictions, and an explicit ``parent`` now and
  then), and measured whenever it reaches one of ``--sizes``. Growing one workspace instead of building each size
  from scratch saves the smaller builds and yields the same histories.
* Each size is measured from a freshly opened ``Workspace``: the first call of each operation shows the cold cost
  (new SQLite connection, empty loaded-model cache, for ``diff`` two skops loads) and the median of the repeated
  calls the warm cost. The targets (flat within 2x from the smallest to the largest size, under 10 ms at the
  largest) apply to the warm medians.
* Everything lives in fresh ``tempfile.mkdtemp`` directories, removed at the end unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

import mm_magics
from mm_magics.engine import Workspace, fingerprint, schema_of
from mm_magics.engine.serialization import dumps

ACTOR = "bench@localhost"
MODEL = "m"
COMMIT_RATIO_TARGET = 2.0
FLAT_RATIO_TARGET = 2.0
FAST_MS_TARGET = 10.0
WARMUP_COMMITS = 3
PARENT_EVERY = 5
TAIL_WINDOW = 50
LOG_PAGE = 20
OPS = ("get_latest", "get_version", "log", "diff_no_agreement", "diff")


# -- small helpers ------------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds taken by ``fn()``, and its result."""
    start = time.perf_counter()
    result = fn()
    return ms_since(start), result


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples), 3),
        "min_ms": round(min(samples), 3),
        "max_ms": round(max(samples), 3),
    }


def git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return proc.stdout


def inside_git_repo(path: Path) -> bool:
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True, check=False)
    return proc.returncode == 0


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] < 2:
        raise argparse.ArgumentTypeError("--sizes needs positive sizes >= 2 (diff compares two versions)")
    return sizes


def dump_doc(doc: dict[str, Any]) -> bytes:
    """JSON bytes in the registry's own layout (indent 2, sorted keys, trailing newline)."""
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


# -- data and models ----------------------------------------------------------------------------------------------
@dataclass
class Candidate:
    """One fitted model with everything ``Registry.commit`` is given alongside it."""

    model: Any
    code: str
    data: dict[str, Any]
    accuracy: float


@dataclass
class Fixture:
    X: np.ndarray
    schema: dict[str, Any]
    candidates: list[Candidate] = field(default_factory=list)


def make_fixture() -> Fixture:
    """Iris and three different fitted models (two regularisations, one tree on a subset), so diffs have content."""
    X, y = load_iris(return_X_y=True)
    subset = np.random.default_rng(0).permutation(len(X))[:120]
    specs = [
        (LogisticRegression(max_iter=1000, C=1.0), None, "LogisticRegression(max_iter=1000, C=1.0).fit(X, y)"),
        (LogisticRegression(max_iter=1000, C=0.05), None, "LogisticRegression(max_iter=1000, C=0.05).fit(X, y)"),
        (
            DecisionTreeClassifier(max_depth=3, random_state=0),
            subset,
            "DecisionTreeClassifier(max_depth=3)\n.fit(Xs, ys)",
        ),
    ]
    fixture = Fixture(X=X, schema=schema_of(X))
    for estimator, rows, code in specs:
        Xt, yt = (X, y) if rows is None else (X[rows], y[rows])
        estimator.fit(Xt, yt)
        fixture.candidates.append(
            Candidate(estimator, code, fingerprint(Xt, yt), float(estimator.score(X, y))),
        )
    return fixture


def commit_kwargs(fixture: Fixture, cand: Candidate, number: int) -> dict[str, Any]:
    return {
        "message": f"version {number}",
        "metrics": {"accuracy": cand.accuracy, "run": number},
        "data": cand.data,
        "schema": fixture.schema,
        "code": cand.code,
        "probe_data": fixture.X,
    }


# -- 1. commit vs the git command line ----------------------------------------------------------------------------
@dataclass
class RegistryFiles:
    """The files one registry commit writes, read back from the workspace's git tree, to replay with git."""

    artifact_path: str
    artifact: bytes
    model_doc: dict[str, Any]
    version_doc: dict[str, Any]
    stage_doc: dict[str, Any]
    message: str
    initial: dict[str, bytes]

    def for_version(self, number: int) -> tuple[dict[str, bytes], str]:
        """Files and message of version ``number``: same content and size as the registry's, renumbered."""
        created = now_iso()
        mdoc = {**self.model_doc, "latest": number}
        vdoc = {**self.version_doc, "version": number, "created": created}
        sdoc = {**self.stage_doc, "since": created}
        sdoc["history"] = [{**h, "time": created} for h in self.stage_doc["history"]]
        shard = f"{number // 100}xx"
        files = {
            self.artifact_path: self.artifact,
            f"models/{MODEL}/model.json": dump_doc(mdoc),
            f"models/{MODEL}/versions/{shard}/v{number}.json": dump_doc(vdoc),
            f"models/{MODEL}/stages/{shard}/v{number}.json": dump_doc(sdoc),
        }
        return files, re.sub(r"MM-Version: \d+", f"MM-Version: {number}", self.message)


def read_back(ws_root: Path, number: int, artifact: bytes, sha: str) -> RegistryFiles:
    """What the registry committed for ``number``, via ``git show`` on its repository."""

    def show(path: str) -> bytes:
        out = subprocess.run(
            ["git", "--git-dir", str(ws_root / ".git"), "show", f"HEAD:{path}"], capture_output=True, check=True
        )
        return out.stdout

    shard = f"{number // 100}xx"
    return RegistryFiles(
        artifact_path=f"objects/{sha[:2]}/{sha[2:]}",
        artifact=artifact,
        model_doc=json.loads(show(f"models/{MODEL}/model.json")),
        version_doc=json.loads(show(f"models/{MODEL}/versions/{shard}/v{number}.json")),
        stage_doc=json.loads(show(f"models/{MODEL}/stages/{shard}/v{number}.json")),
        message=git("--git-dir", str(ws_root / ".git"), "show", "-s", "--format=%B", "HEAD"),
        initial={p: show(p) for p in ("mm.json", "README.md", ".gitignore")},
    )


def init_plain_repo(path: Path, initial: dict[str, bytes]) -> None:
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    for key, value in (("user.name", "bench"), ("user.email", ACTOR), ("commit.gpgsign", "false"), ("gc.auto", "0")):
        git("config", key, value, cwd=path)
    write_files(path, initial)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "Create workspace", cwd=path)


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def git_cli_commit(work: Path, files: dict[str, bytes], message: str) -> None:
    write_files(work, files)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", message, cwd=work)


def make_project_repo(path: Path) -> None:
    """A small user project repository, to price the provenance the registry records from the current directory."""
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    git("config", "user.name", "bench", cwd=path)
    git("config", "user.email", ACTOR, cwd=path)
    (path / "train.py").write_text("model.fit(X, y)\n")
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "project", cwd=path)


def bench_commit(base: Path, fixture: Fixture, repeat: int) -> dict[str, Any]:
    neutral, project = base / "cwd", base / "project"
    neutral.mkdir()
    make_project_repo(project)
    os.chdir(neutral)
    cand = fixture.candidates[0]
    ws_root = base / "commit-ws" / ".mm"
    ws = Workspace.open(ws_root, actor=ACTOR)
    try:
        reg = ws.registry
        for n in range(1, WARMUP_COMMITS + 1):  # imports, skops and GitPython's cat-file process warm up here
            version = reg.commit(MODEL, cand.model, **commit_kwargs(fixture, cand, n))
        artifact = dumps(cand.model)
        files = read_back(ws_root, version.number, artifact, version.sha256)
        plain = base / "git-cli"
        init_plain_repo(plain, files.initial)
        for n in range(1, WARMUP_COMMITS + 1):
            git_cli_commit(plain, *files.for_version(n))

        ours: list[float] = []
        ours_in_project: list[float] = []
        baseline: list[float] = []
        serialize: list[float] = []
        number = WARMUP_COMMITS
        for rep in range(repeat):
            number += 1
            kwargs = commit_kwargs(fixture, cand, number)
            ours.append(timed(lambda kw=kwargs: reg.commit(MODEL, cand.model, **kw))[0])
            payload, message = files.for_version(number)
            baseline.append(timed(lambda p=payload, m=message: git_cli_commit(plain, p, m))[0])
            os.chdir(project)
            number += 1
            kwargs = commit_kwargs(fixture, cand, number)
            ours_in_project.append(timed(lambda kw=kwargs: reg.commit(MODEL, cand.model, **kw))[0])
            os.chdir(neutral)
            serialize.append(timed(lambda: dumps(cand.model))[0])
            if (rep + 1) % 5 == 0:
                log(f"commit benchmark: {rep + 1}/{repeat} repetitions")
        neutral_version, project_version = reg.get(f"{MODEL}@v{number - 1}"), reg.get(MODEL)
        if project_version.number != number or neutral_version.project or not project_version.project:
            raise RuntimeError("the commit benchmark did not leave the registry in the expected state")
        ours_ms = statistics.median(ours)
        git_ms = statistics.median(baseline)
        return {
            "ours": summary(ours),
            "git_cli": summary(baseline),
            "commit_ratio": round(ours_ms / git_ms, 3),
            "files": {
                "artifact_bytes": len(files.artifact),
                "json_bytes": {
                    path: len(data) for path, data in files.for_version(1)[0].items() if path[-5:] == ".json"
                },
            },
            "info": {
                "serialize_ms": summary(serialize),
                "ours_in_project_repo": summary(ours_in_project),
                "in_project_repo_ratio": round(statistics.median(ours_in_project) / git_ms, 3),
                "note": (
                    "ours and git_cli run from a directory outside any git repository; ours_in_project_repo runs "
                    "from a small git project, where the registry also records the project's HEAD and dirtiness"
                ),
            },
        }
    finally:
        ws.close()


# -- 2. get, log and diff as the history grows --------------------------------------------------------------------
class Builder:
    """Grows one model's history with real ``Registry.commit`` calls, recording each commit's duration."""

    def __init__(self, root: Path, fixture: Fixture, rng: random.Random) -> None:
        self.root = root
        self.fixture = fixture
        self.rng = rng
        self.durations: list[float] = []  # durations[i] is the commit that made version i + 1

    @property
    def count(self) -> int:
        return len(self.durations)

    def grow_to(self, target: int) -> float:
        """Commit until the model has ``target`` versions; returns the seconds it took."""
        start = time.perf_counter()
        last_report = start
        with Workspace.open(self.root, actor=ACTOR) as ws:
            reg = ws.registry
            while self.count < target:
                number = self.count + 1
                cand = self.fixture.candidates[number % len(self.fixture.candidates)]
                kwargs = commit_kwargs(self.fixture, cand, number)
                if number > 1 and number % PARENT_EVERY == 0:
                    kwargs["parent"] = f"{MODEL}@v{self.rng.randint(1, number - 1)}"
                ms, version = timed(lambda c=cand, kw=kwargs: reg.commit(MODEL, c.model, **kw))
                if version.number != number:
                    raise RuntimeError(f"expected {MODEL}@v{number}, the registry made {version.id}")
                self.durations.append(ms)
                now = time.perf_counter()
                if now - last_report > 15 or self.count == target:
                    recent = statistics.median(self.durations[-TAIL_WINDOW:])
                    log(f"build: {self.count}/{target} versions, {recent:.1f} ms/commit (median of last {TAIL_WINDOW})")
                    last_report = now
        return time.perf_counter() - start

    def tail(self) -> dict[str, float]:
        """Commit timings of the last versions made, i.e. the commit cost at the current size."""
        window = self.durations[-TAIL_WINDOW:]
        if self.count <= TAIL_WINDOW and len(window) > 1:
            window = window[1:]  # the first commit into a fresh workspace also creates the model
        return summary(window)


def series(fn: Callable[[], Any], repeat: int, check: Callable[[Any], bool]) -> dict[str, Any]:
    """First call (cold) and the median of ``repeat`` further calls (warm); ``check`` validates every result."""
    first, result = timed(fn)
    if not check(result):
        raise RuntimeError(f"unexpected result: {result!r}"[:300])
    samples = []
    for _ in range(repeat):
        ms, result = timed(fn)
        if not check(result):
            raise RuntimeError(f"unexpected result: {result!r}"[:300])
        samples.append(ms)
    return {"first_ms": round(first, 3), **summary(samples)}


def measure_ops(root: Path, n: int, repeat: int, rng: random.Random) -> dict[str, Any]:
    """Time each read operation on a freshly opened workspace holding ``n`` versions."""
    with Workspace.open(root, create=False, actor=ACTOR) as ws:
        reg = ws.registry
        out: dict[str, Any] = {}
        out["get_latest"] = series(lambda: reg.get(MODEL), repeat, lambda v: v.number == n)

        picks: Iterator[int] = iter([rng.randint(1, n) for _ in range(repeat + 1)])
        wanted: list[int] = []

        def get_random() -> Any:
            wanted.append(next(picks))
            return reg.get(f"{MODEL}@v{wanted[-1]}")

        out["get_version"] = series(get_random, repeat, lambda v: v.number == wanted[-1])
        rows = min(n, LOG_PAGE)
        out["log"] = series(
            lambda: reg.log(MODEL, limit=LOG_PAGE), repeat, lambda page: page.total == n and len(page.versions) == rows
        )
        out["log"]["rows"] = rows
        k = rng.randint(1, n - 1)
        a, b = f"{MODEL}@v{k}", f"{MODEL}@v{k + 1}"
        out["diff_no_agreement"] = series(
            lambda: reg.diff(a, b, agreement=False), repeat, lambda d: d.agreement is None and bool(d.metrics)
        )
        out["diff"] = series(lambda: reg.diff(a, b), repeat, lambda d: d.agreement is not None)
        out["diff"]["pair"] = out["diff_no_agreement"]["pair"] = [a, b]
        return out


def bench_ops(base: Path, fixture: Fixture, sizes: list[int], repeat: int, seed: int) -> dict[str, Any]:
    root = base / "history-ws" / ".mm"
    builder = Builder(root, fixture, random.Random(seed))
    rng = random.Random(seed + 1)
    build: dict[str, Any] = {}
    per_size: dict[int, dict[str, Any]] = {}
    for n in sizes:
        before = builder.count
        seconds = builder.grow_to(n)
        build[str(n)] = {
            "from_versions": before,
            "seconds": round(seconds, 2),
            "mean_ms_per_commit": round(1000 * seconds / max(1, n - before), 3),
            "commit_at_size": builder.tail(),
        }
        log(f"measuring get/log/diff at {n} versions")
        per_size[n] = measure_ops(root, n, repeat, rng)
    smallest, largest = sizes[0], sizes[-1]
    ops: dict[str, Any] = {}
    for op in OPS:
        small = per_size[smallest][op]["median_ms"]
        large = per_size[largest][op]["median_ms"]
        ops[op] = {
            "by_size": {str(n): per_size[n][op] for n in sizes},
            "flat_ratio": round(large / small, 3),
            "under_10ms_at_largest": large < FAST_MS_TARGET,
        }
        if "rows" in per_size[smallest][op]:  # log: a history shorter than a page returns fewer rows
            per_row = (large / per_size[largest][op]["rows"]) / (small / per_size[smallest][op]["rows"])
            ops[op]["flat_ratio_per_row"] = round(per_row, 3)
            ops[op]["note"] = (
                f"the first page holds min(N, {LOG_PAGE}) versions, so below {LOG_PAGE} versions log does less work; "
                "flat_ratio_per_row divides each median by the rows returned (for information)"
            )
    commit_small = build[str(smallest)]["commit_at_size"]["median_ms"]
    commit_large = build[str(largest)]["commit_at_size"]["median_ms"]
    total = round(sum(b["seconds"] for b in build.values()), 2)
    return {
        "ops": ops,
        "build": {
            "phases": build,
            "total_seconds": total,
            "commit_flat_ratio": round(commit_large / commit_small, 3),
            "note": (
                "one workspace grown in phases; commit_at_size is the commit cost over the last "
                f"{TAIL_WINDOW} versions of each phase (for information: no target)"
            ),
        },
    }


# -- 3. the report ------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "git": git("--version").strip(),
        "mm_magics": getattr(mm_magics, "__version__", None),
        "scikit-learn": sklearn.__version__,
    }


def targets(commit: dict[str, Any], ops: dict[str, Any], largest: int) -> list[dict[str, Any]]:
    out = [
        {
            "target": f"commit_ratio = registry commit / git CLI commit <= {COMMIT_RATIO_TARGET:g}",
            "value": commit["commit_ratio"],
            "met": commit["commit_ratio"] <= COMMIT_RATIO_TARGET,
        }
    ]
    for op, result in ops.items():
        out.append(
            {
                "target": f"{op}: flat_ratio = warm median at largest / at smallest size <= {FLAT_RATIO_TARGET:g}",
                "value": result["flat_ratio"],
                "met": result["flat_ratio"] <= FLAT_RATIO_TARGET,
            }
        )
        out.append(
            {
                "target": f"{op}: warm median < {FAST_MS_TARGET:g} ms at {largest} versions",
                "value": result["by_size"][str(largest)]["median_ms"],
                "met": result["under_10ms_at_largest"],
            }
        )
    return out


def bench_large_model(base: Path, repeat: int) -> dict[str, Any]:
    """Issue 14's large model: a 100-tree random forest on 10 000 x 20. Commit and load through the registry, and
    where the time goes (skops dump/load, sha256), against pickle in the same run (the unsafe lower bound)."""
    import hashlib
    import pickle

    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from mm_magics.engine import serialization

    X, y = make_classification(n_samples=10_000, n_features=20, random_state=0)
    model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y)
    ws = Workspace.open(base / "large" / ".mm")
    try:
        commits, loads, cached = [], [], []
        for i in range(max(3, repeat // 4)):
            t, version = timed(lambda i=i: ws.registry.commit("forest", model, message=f"forest {i}"))
            commits.append(t)
        for _ in range(max(3, repeat // 4)):
            ws.registry._loaded.clear()  # a cold load: what a new kernel or server process pays once per version
            t, _ = timed(lambda: ws.registry.checkout(version.id))  # sha256 checked, skops loaded
            loads.append(t)
        for _ in range(max(3, repeat // 4)):
            t, _ = timed(lambda: ws.registry.checkout(version.id))  # sha256 checked, a copy of the cached model
            cached.append(t)
        data = serialization.dumps(model)
        parts = {
            "skops_dump": summary([timed(lambda: serialization.dumps(model))[0] for _ in range(3)]),
            "skops_load": summary([timed(lambda: serialization.loads(data))[0] for _ in range(3)]),
            "sha256": summary([timed(lambda: hashlib.sha256(data).hexdigest())[0] for _ in range(3)]),
        }
        pickled = pickle.dumps(model)
        baseline = {
            "pickle_dump": summary([timed(lambda: pickle.dumps(model))[0] for _ in range(3)]),
            "pickle_load": summary([timed(lambda: pickle.loads(pickled))[0] for _ in range(3)]),
        }
    finally:
        ws.close()
    return {
        "model": "RandomForestClassifier(n_estimators=100) on 10 000 x 20",
        "artifact_bytes": len(data),
        "pickle_bytes": len(pickled),
        "commit": summary(commits),
        "load": summary(loads),
        "load_cached": summary(cached),
        "parts": parts,
        "baseline": baseline,
        "targets": {"commit_ms_mlflow_reported": 245, "load_ms": 40},
    }


MLFLOW_SAVE = """
import json, sys, tempfile, time
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
import mlflow.sklearn
X, y = make_classification(n_samples=10_000, n_features=20, random_state=0)
model = RandomForestClassifier(n_estimators=100, random_state=0, n_jobs=1).fit(X, y)
saves, loads = [], []
for _ in range(int(sys.argv[1])):
    path = tempfile.mkdtemp() + "/model"
    t0 = time.perf_counter()
    # explicit requirements (no dependency inference); MLflow 3 saves sklearn models with skops by default and, like
    # us, must be told to trust the tree type to load them back
    mlflow.sklearn.save_model(
        model, path, pip_requirements=["scikit-learn"], skops_trusted_types=["sklearn.tree._tree.Tree"]
    )
    saves.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    mlflow.sklearn.load_model(path)
    loads.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"save_ms": sorted(saves)[len(saves) // 2], "load_ms": sorted(loads)[len(loads) // 2]}))
"""


def bench_mlflow_large(repeat: int) -> dict[str, Any]:
    """``mlflow.sklearn.save_model`` / ``load_model`` of the same forest, in the venv ``serving.py --peers`` builds
    (MLflow's own dependencies stay out of ours): the issue's reference for commit time, measured in this run."""
    import subprocess

    import _peers

    python = _peers.venv_python("mlflow", ["mlflow"], log)
    done = subprocess.run(
        [str(python), "-c", MLFLOW_SAVE, str(max(3, repeat // 4))], capture_output=True, text=True, timeout=600
    )
    if done.returncode:
        raise RuntimeError(f"MLflow's save failed: {done.stderr[-1000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes, default=parse_sizes("10,1000,10000"))
    parser.add_argument("--repeat", type=int, default=20, help="timed repetitions per figure (median reported)")
    parser.add_argument("--out", type=Path, help="also write the JSON document to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces (path on stderr)")
    parser.add_argument("--large-only", action="store_true", help="only the large-model commit and load")
    parser.add_argument(
        "--mlflow", action="store_true", help="also time mlflow.sklearn.save_model/load_model of the large model"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    started = time.perf_counter()
    origin = Path.cwd()
    base = Path(tempfile.mkdtemp(prefix="mm-bench-registry-")).resolve()
    try:
        if inside_git_repo(base):
            raise SystemExit(f"{base} is inside a git repository; set TMPDIR to a directory outside any repository")
        large = bench_large_model(base, args.repeat)
        if args.mlflow:
            large["mlflow"] = bench_mlflow_large(args.repeat)
            ours, theirs = large["commit"]["median_ms"], large["mlflow"]["save_ms"]
            large["commit_vs_mlflow_save"] = round(ours / theirs, 3)
            log(f"MLflow save {theirs:.0f} ms, load {large['mlflow']['load_ms']:.0f} ms")
        log(
            f"large model: commit {large['commit']['median_ms']} ms, load {large['load']['median_ms']} ms "
            f"(cached {large['load_cached']['median_ms']} ms)"
        )
        if args.large_only:
            print(json.dumps({"benchmark": "mm_magics registry (large model only)", "large_model": large}, indent=2))
            return 0
        fixture = make_fixture()
        log(f"commit benchmark in {base}")
        commit = bench_commit(base, fixture, args.repeat)
        log(f"commit: ours {commit['ours']['median_ms']} ms, git {commit['git_cli']['median_ms']} ms")
        grown = bench_ops(base, fixture, args.sizes, args.repeat, args.seed)
    finally:
        os.chdir(origin)
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    checks = targets(commit, grown["ops"], args.sizes[-1])
    doc = {
        "benchmark": "mm_magics registry",
        "machine": machine_info(),
        "config": {"sizes": args.sizes, "repeat": args.repeat, "seed": args.seed, "unit": "ms"},
        "commit": commit,
        "ops": grown["ops"],
        "build": grown["build"],
        "large_model": large,
        "targets": checks,
        "all_targets_met": all(t["met"] for t in checks),
        "elapsed_seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(doc, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
