"""Benchmark the mm_magics IPython layer: what ``%%mm_train``, ``%mm_commit`` and ``%load_ext`` cost on top of the work.

Usage::

    python benchmarks/magics.py [--repeat N] [--commit-repeat M] [--out FILE] [--keep]

It prints one JSON document to stdout (progress goes to stderr) and, with ``--out``, writes the same document to a
file.

Why it is designed this way:

* The machine it runs on has two shared cores and other jobs (other benchmarks included) may run at the same time,
  so absolute seconds say little. Every headline figure is a ratio against a baseline measured in the same run, in
  the same process, interleaved pair by pair with the subject (the order inside a pair alternates, ABBA..., so
  neither side always runs right after the other's garbage), and each side is the median of its repetitions,
  which shrugs off the odd descheduled run. The median of the per-pair ratios is reported too, for information.
* ``%%mm_train`` is measured on a cell whose fit takes about one second: a ``RandomForestClassifier`` with ``n_jobs=1``
  on a 20 000-row ``make_classification`` dataset (three classes, so the magic computes exactly the metrics of the
  baseline: no binary-only extras), with the number of trees calibrated at start until one fit takes ~1 s on this
  machine at this moment. The baseline is the same work by hand in plain Python: build the estimator, the same
  stratified ``train_test_split`` (test_size=0.25, random_state=0), the same fit, ``predict`` and the same
  ``sklearn.metrics`` calls. The magic's metrics are checked against the baseline's, so both did the same work.
  What the ratio prices is everything the magic adds: argument parsing, IPython's cell transform, namespace
  bookkeeping, estimator/data discovery, the data fingerprint and profile, schema, parameters and environment.
* ``%mm_commit`` is compared with the engine call it wraps, ``ws.registry.commit(name, model, message=...,
  **run.commit_fields())``, on the same workspace and the same model name (so both sides see the same, growing
  history). Each side gets its run the same way, from an untimed ``%%mm_train`` of a small model (logistic
  regression on iris), so the commit itself (skops artifact, probe sample, git objects, ref update, index) is what
  both sides time. Commits take only ~15 ms, so a burst of load from a neighbour moves their median by several
  per cent: there are many more repetitions here, and for information the magic layer alone is also timed (the
  magic with ``Registry.commit`` stubbed out on the registry instance), which gives a noise-free estimate of the
  ratio to read the measured one against.
* The registry records the user's project repository (the current directory's git HEAD and dirtiness) in every
  version, a cost both commit sides pay alike. To keep results independent of where the script is launched, it runs
  from a temporary directory outside any git repository, which makes the commit cheaper and the ratio stricter.
* Extension load time only means something in a fresh interpreter (a second ``%load_ext`` is a dictionary lookup),
  so it is measured in child processes: each starts an ``InteractiveShell`` (history in memory, a throwaway
  IPYTHONDIR), then times only the ``%load_ext`` call. The baseline is ``%load_ext autoreload``, a builtin
  extension, in the same kind of process; ``import mm_magics`` alone is timed in a third kind of fresh process. The
  three kinds are interleaved round by round (rotating the order), after one untimed warm-up process of each kind
  (bytecode caches, kept under the temporary directory with ``PYTHONPYCACHEPREFIX`` even where
  ``PYTHONDONTWRITEBYTECODE`` is set, as installed packages have them). One extra process runs with
  ``-X importtime`` to name the imports ``%load_ext`` pays for.
* Each timed call is preceded by an untimed ``gc.collect()``, so a collection triggered by earlier garbage does not
  land on whichever side happens to run next.
* Everything lives in a fresh ``tempfile.mkdtemp`` directory (the workspace via ``MM_HOME``), removed at the end
  unless ``--keep`` is given. Nothing outside it is written.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import IPython
import numpy as np
import sklearn
from IPython.testing.globalipapp import start_ipython
from sklearn.datasets import load_iris, make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import train_test_split

import mm_magics

ACTOR = "bench@localhost"
TRAIN_NAME = "bench_train"
COMMIT_NAME = "bench_commit"
TRAIN_RATIO_TARGET = 1.10
COMMIT_RATIO_TARGET = 1.10
FIT_TARGET_S = 1.0
FIT_TOLERANCE = 0.10
CALIBRATION_ROUNDS = 5
ROWS, FEATURES, CLASSES = 20_000, 20, 3
TEST_SIZE, RANDOM_STATE = 0.25, 0
COMMIT_WARMUP = 3
LAYER_CALLS = 100
LOAD_KINDS = ("load_ext mm_magics", "load_ext autoreload", "import mm_magics")
COMMIT_CELL = "from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression(max_iter=500)\n"
START_MARK, END_MARK = "MM-BENCH-LOAD-START", "MM-BENCH-LOAD-END"

#: Runs in each fresh child process: argv[1] is one of LOAD_KINDS; prints one JSON line on stdout.
CHILD = f"""
import json, sys, time
from collections import Counter

kind = sys.argv[1]
MAGIC = {{"mm_magics": "mm_train", "autoreload": "autoreload"}}  # a magic each extension registers
out = {{}}
if kind == "import mm_magics":
    before = set(sys.modules)
    start = time.perf_counter()
    import mm_magics
    out["seconds"] = time.perf_counter() - start
    out["ipython_imported"] = any(m == "IPython" or m.startswith("IPython.") for m in sys.modules)
else:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"
    start = time.perf_counter()
    shell = InteractiveShell.instance(config=config)
    out["shell_seconds"] = time.perf_counter() - start
    extension = kind.split()[-1]
    before = set(sys.modules)
    print("{START_MARK}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    shell.run_line_magic("load_ext", extension)
    out["seconds"] = time.perf_counter() - start
    print("{END_MARK}", file=sys.stderr, flush=True)
    out["loaded"] = MAGIC[extension] in shell.magics_manager.magics["cell" if extension == "mm_magics" else "line"]
new = set(sys.modules) - before
out["new_modules"] = len(new)
out["new_top_packages"] = dict(Counter(m.split(".")[0] for m in new).most_common(10))
print(json.dumps(out))
"""


# -- small helpers ------------------------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` (after an untimed garbage collection), and its result."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def summary(samples: list[float], unit: str) -> dict[str, float]:
    scale, digits = (1000.0, 3) if unit == "ms" else (1.0, 4)
    return {
        f"median_{unit}": round(statistics.median(samples) * scale, digits),
        f"min_{unit}": round(min(samples) * scale, digits),
        f"max_{unit}": round(max(samples) * scale, digits),
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 4)


def paired_ratio(subject: list[float], baseline: list[float]) -> float:
    return round(statistics.median(s / b for s, b in zip(subject, baseline, strict=True)), 4)


def interleave(
    repeat: int, subject: Callable[[], float], baseline: Callable[[], float], label: str, every: int
) -> tuple[list[float], list[float]]:
    """``repeat`` pairs of timings, subject first on even pairs and baseline first on odd ones."""
    ours: list[float] = []
    base: list[float] = []
    for rep in range(repeat):
        if rep % 2 == 0:
            ours.append(subject())
            base.append(baseline())
        else:
            base.append(baseline())
            ours.append(subject())
        if (rep + 1) % every == 0 or rep + 1 == repeat:
            log(
                f"{label}: {rep + 1}/{repeat} pairs, median so far {statistics.median(ours):.4f}s "
                f"vs {statistics.median(base):.4f}s"
            )
    return ours, base


def inside_git_repo(path: Path) -> bool:
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "--git-dir"], capture_output=True, check=False)
    return proc.returncode == 0


def magics_of(shell: Any) -> Any:
    return shell.magics_manager.registry["MMMagics"]


# -- 1. %%mm_train against the same work by hand ------------------------------------------------------------------
@dataclass
class TrainData:
    X: np.ndarray
    y: np.ndarray


def make_train_data() -> TrainData:
    X, y = make_classification(
        n_samples=ROWS,
        n_features=FEATURES,
        n_informative=10,
        n_redundant=5,
        n_classes=CLASSES,
        random_state=RANDOM_STATE,
    )
    return TrainData(X=X, y=y)


def forest(trees: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=trees, n_jobs=1, random_state=RANDOM_STATE)


def train_cell(trees: int) -> str:
    return (
        "from sklearn.ensemble import RandomForestClassifier\n"
        f"model = RandomForestClassifier(n_estimators={trees}, n_jobs=1, random_state={RANDOM_STATE})\n"
    )


def split(data: TrainData) -> tuple[Any, Any, Any, Any]:
    return train_test_split(data.X, data.y, test_size=TEST_SIZE, random_state=RANDOM_STATE, stratify=data.y)


def calibrate(data: TrainData) -> tuple[int, list[dict[str, float]]]:
    """Number of trees whose fit on the training split takes about FIT_TARGET_S seconds right now."""
    X_tr, _, y_tr, _ = split(data)
    trees, history = 5, []
    for _ in range(CALIBRATION_ROUNDS):
        seconds, _ = timed(lambda t=trees: forest(t).fit(X_tr, y_tr))
        history.append({"n_estimators": trees, "fit_s": round(seconds, 4)})
        log(f"calibration: {trees} trees fit in {seconds:.3f}s")
        if abs(seconds - FIT_TARGET_S) <= FIT_TOLERANCE * FIT_TARGET_S:
            break
        trees = max(1, round(trees * FIT_TARGET_S / seconds))
    return trees, history


def train_by_hand(data: TrainData, trees: int) -> tuple[dict[str, Any], float]:
    """The baseline: what %%mm_train does for this cell, written out in plain Python. Returns metrics, fit seconds."""
    model = forest(trees)
    X_tr, X_te, y_tr, y_te = split(data)
    start = time.perf_counter()
    model.fit(X_tr, y_tr)
    fit_s = time.perf_counter() - start
    pred = model.predict(X_te)
    metrics: dict[str, Any] = {"accuracy": float(accuracy_score(y_te, pred))}
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_te, pred, average=avg, zero_division=0)
        metrics.update({f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)})
    metrics["confusion_matrix"] = confusion_matrix(y_te, pred).tolist()
    return metrics, fit_s


def same_metrics(run_metrics: dict[str, Any], hand: dict[str, Any]) -> bool:
    """The magic computed exactly the baseline's metrics (no more, no less) with the same values."""
    ours = dict(run_metrics)
    matrix = ours.pop("confusion_matrix", {}).get("matrix")
    theirs = dict(hand)
    if matrix != theirs.pop("confusion_matrix") or set(ours) != set(theirs):
        return False
    return all(abs(ours[k] - theirs[k]) < 1e-12 for k in theirs)


def bench_train(shell: Any, data: TrainData, repeat: int) -> dict[str, Any]:
    trees, calibration = calibrate(data)
    cell = train_cell(trees)
    shell.user_ns.update(X=data.X, y=data.y)
    runs: list[Any] = []
    hand_fit: list[float] = []

    def magic() -> float:
        seconds, run = timed(lambda: shell.run_cell_magic("mm_train", TRAIN_NAME, cell))
        runs.append(run)
        return seconds

    def by_hand() -> float:
        seconds, (metrics, fit_s) = timed(lambda: train_by_hand(data, trees))
        hand_fit.append(fit_s)
        if not same_metrics(runs[-1].metrics, metrics):
            raise RuntimeError("%%mm_train and the by-hand baseline disagree on the metrics: not the same work")
        return seconds

    log(f"train: warm-up ({trees} trees)")
    first_magic = magic()  # opens the workspace and imports what the first run needs
    first_hand = by_hand()
    runs.clear()
    hand_fit.clear()
    ours, base = interleave(repeat, magic, by_hand, "train", every=2)
    run = runs[-1]
    if run.evaluation.get("stratified") is not True or run.evaluation.get("test_rows") != round(ROWS * TEST_SIZE):
        raise RuntimeError(f"unexpected evaluation: {run.evaluation}")
    magic_s, hand_s = statistics.median(ours), statistics.median(base)
    return {
        "cell": cell,
        "data": {"rows": ROWS, "features": FEATURES, "classes": CLASSES, "train_rows": run.data["rows"]},
        "n_estimators": trees,
        "calibration": calibration,
        "pairs": repeat,
        "magic": summary(ours, "s"),
        "by_hand": summary(base, "s"),
        "train_overhead_ratio": ratio(magic_s, hand_s),
        "overhead_s": round(magic_s - hand_s, 4),
        "info": {
            "paired_ratio_median": paired_ratio(ours, base),
            "by_hand_fit": summary(hand_fit, "s"),
            "magic_fit_recorded": summary([r.fit_time for r in runs], "s"),
            "magic_wall_recorded": summary([r.wall_time for r in runs], "s"),
            "first_magic_s": round(first_magic, 4),
            "first_by_hand_s": round(first_hand, 4),
            "note": (
                "magic_fit_recorded / magic_wall_recorded are the Run's own fit_time and wall_time (engine side, "
                "without argument parsing and the namespace lookups of the magic); first_* are the untimed warm-ups"
            ),
        },
    }


# -- 2. %mm_commit against Registry.commit ------------------------------------------------------------------------
def bench_commit(shell: Any, repeat: int) -> dict[str, Any]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    shell.user_ns.update(X=X, y=y)
    magics = magics_of(shell)
    expected = [0]

    def fresh_run() -> None:
        shell.run_cell_magic("mm_train", COMMIT_NAME, COMMIT_CELL)

    def check(version: Any) -> None:
        expected[0] += 1
        if version.id != f"{COMMIT_NAME}@v{expected[0]}":
            raise RuntimeError(f"expected {COMMIT_NAME}@v{expected[0]}, got {version.id}")

    def magic() -> float:
        fresh_run()
        seconds, version = timed(lambda: shell.run_line_magic("mm_commit", f'{COMMIT_NAME} -m "benchmark commit"'))
        check(version)
        return seconds

    def engine() -> float:
        fresh_run()
        run = magics.runs.pop(COMMIT_NAME)
        registry = magics.ws.registry
        seconds, version = timed(
            lambda: registry.commit(COMMIT_NAME, run.model, message="benchmark commit", **run.commit_fields())
        )
        check(version)
        return seconds

    log("commit: warm-up")
    for _ in range(COMMIT_WARMUP):
        magic()
        engine()
    ours, base = interleave(repeat, magic, engine, "commit", every=20)
    latest = magics.ws.registry.get(COMMIT_NAME)
    if latest.number != expected[0] or latest.message != "benchmark commit" or not latest.probe:
        raise RuntimeError(f"the commit benchmark left an unexpected registry state: {latest.id}")
    fresh_run()
    layer = magic_layer_only(shell, magics.runs[COMMIT_NAME], LAYER_CALLS)
    magic_s, engine_s, layer_s = statistics.median(ours), statistics.median(base), statistics.median(layer)
    return {
        "model": "LogisticRegression(max_iter=500) on iris (pandas), via an untimed %%mm_train per commit",
        "pairs": repeat,
        "versions_in_history_at_end": latest.number,
        "magic": summary(ours, "ms"),
        "engine": summary(base, "ms"),
        "commit_ratio": ratio(magic_s, engine_s),
        "overhead_ms": round((magic_s - engine_s) * 1000.0, 3),
        "info": {
            "paired_ratio_median": paired_ratio(ours, base),
            "magic_layer_only": summary(layer, "ms"),
            "ratio_from_layer_cost": ratio(engine_s + layer_s, engine_s),
            "note": (
                "magic_layer_only times %mm_commit with Registry.commit replaced by a no-op on the registry "
                f"instance ({LAYER_CALLS} calls): exactly what the magic adds (IPython's run_line_magic, argument "
                "parsing, run lookup); ratio_from_layer_cost = (engine + layer) / engine is a noise-free estimate "
                "of commit_ratio. LogisticRegression on iris fits to the same coefficients every time, so after the "
                "first commit the artifact bytes already exist and both sides skip writing them"
            ),
        },
    }


def magic_layer_only(shell: Any, run: Any, calls: int) -> list[float]:
    """``%mm_commit`` timings with the engine call stubbed out on the registry instance (restored afterwards)."""
    magics = magics_of(shell)
    registry = magics.ws.registry

    def no_commit(*_args: Any, **_kwargs: Any) -> None:
        return None

    registry.commit = no_commit  # an instance attribute shadows the method until deleted
    try:
        samples = []
        for _ in range(calls):
            magics.runs[COMMIT_NAME] = run
            seconds, _ = timed(lambda: shell.run_line_magic("mm_commit", f'{COMMIT_NAME} -m "benchmark commit"'))
            samples.append(seconds)
        return samples
    finally:
        del registry.commit
        magics.runs.pop(COMMIT_NAME, None)


# -- 3. %load_ext in fresh processes -------------------------------------------------------------------------------
def run_child(kind: str, env: dict[str, str], importtime: bool = False) -> tuple[dict[str, Any], str]:
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", CHILD, kind]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind!r} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result.get("loaded") is False:
        raise RuntimeError(f"child {kind!r}: the extension did not load")
    return result, proc.stderr


def import_hot_spots(stderr: str, top: int = 12) -> dict[str, Any]:
    """Parse ``-X importtime`` output between the markers: what the load_ext call imported, and at what cost."""
    inside = stderr.split(START_MARK, 1)[-1].split(END_MARK, 1)[0]
    rows = []
    for line in inside.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
        if m:
            rows.append((int(m[1]), int(m[2]), m[3]))
    total_us = sum(r[0] for r in rows)

    def fmt(r: tuple[int, int, str]) -> dict[str, Any]:
        return {"module": r[2], "self_ms": round(r[0] / 1000, 1), "cumulative_ms": round(r[1] / 1000, 1)}

    return {
        "modules_imported": len(rows),
        "total_import_ms": round(total_us / 1000, 1),
        "top_self": [fmt(r) for r in sorted(rows, key=lambda r: -r[0])[:top]],
        "mm_magics_chain_cumulative": [fmt(r) for r in rows if r[2].startswith("mm_magics")],
        "top_cumulative_not_mm_magics": [
            fmt(r) for r in sorted((r for r in rows if not r[2].startswith("mm_magics")), key=lambda r: -r[1])[:top]
        ],
        "note": "python -X importtime of one extra fresh process, only the imports made during %load_ext mm_magics",
    }


def bench_load(base: Path, repeat: int) -> dict[str, Any]:
    ipython_dir = base / "ipython"
    ipython_dir.mkdir()
    env = {**os.environ, "IPYTHONDIR": str(ipython_dir), "MM_HOME": str(base / "load-ws" / ".mm")}
    # A user's installed packages have bytecode caches; a machine that sets PYTHONDONTWRITEBYTECODE would make every
    # child compile every module from source and time the compiler. Caches go under ``base`` (nothing else written).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    log("load_ext: warm-up processes")
    for kind in LOAD_KINDS:
        run_child(kind, env)
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in LOAD_KINDS}
    for rnd in range(repeat):
        order = LOAD_KINDS[rnd % len(LOAD_KINDS) :] + LOAD_KINDS[: rnd % len(LOAD_KINDS)]
        for kind in order:
            samples[kind].append(run_child(kind, env)[0])
        medians = ", ".join(f"{k} {statistics.median(s['seconds'] for s in v):.3f}s" for k, v in samples.items())
        log(f"load_ext: {rnd + 1}/{repeat} rounds; medians {medians}")
    _, stderr = run_child(LOAD_KINDS[0], env, importtime=True)
    seconds = {kind: [s["seconds"] for s in samples[kind]] for kind in LOAD_KINDS}
    mm, baseline, imp = (statistics.median(seconds[k]) for k in LOAD_KINDS)
    first_mm = samples[LOAD_KINDS[0]][0]
    return {
        "processes_per_kind": repeat,
        "load_ext_mm_magics": summary(seconds[LOAD_KINDS[0]], "ms"),
        "load_ext_autoreload": summary(seconds[LOAD_KINDS[1]], "ms"),
        "import_mm_magics": summary(seconds[LOAD_KINDS[2]], "ms"),
        "load_ext_ratio_vs_autoreload": ratio(mm, baseline),
        "load_ext_overhead_ms": round((mm - baseline) * 1000.0, 1),
        "import_ratio_vs_autoreload": ratio(imp, baseline),
        "info": {
            "shell_instance_without_import": summary([s["shell_seconds"] for s in samples[LOAD_KINDS[0]]], "ms"),
            "import_mm_magics_pulls_in_ipython": any(s["ipython_imported"] for s in samples[LOAD_KINDS[2]]),
            "modules_added": {k: int(statistics.median(s["new_modules"] for s in samples[k])) for k in LOAD_KINDS},
            "load_ext_mm_magics_top_packages": first_mm["new_top_packages"],
            "import_hot_spots": import_hot_spots(stderr),
            "note": "no target was set for load time; the ratio is against %load_ext autoreload in the same kind of "
            "fresh process",
        },
    }


# -- the report ---------------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": {
            "mm_magics": getattr(mm_magics, "__version__", None),
            "scikit-learn": sklearn.__version__,
            "ipython": IPython.__version__,
            "numpy": np.__version__,
        },
    }


def targets(train: dict[str, Any], commit: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "target": f"train_overhead_ratio = %%mm_train / by hand (~1 s fit) <= {TRAIN_RATIO_TARGET:g}",
            "value": train["train_overhead_ratio"],
            "met": train["train_overhead_ratio"] <= TRAIN_RATIO_TARGET,
        },
        {
            "target": f"commit_ratio = %mm_commit / Registry.commit <= {COMMIT_RATIO_TARGET:g}",
            "value": commit["commit_ratio"],
            "met": commit["commit_ratio"] <= COMMIT_RATIO_TARGET,
        },
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=10, help="train pairs, and fresh processes per load kind")
    parser.add_argument("--commit-repeat", type=int, default=60, help="commit pairs (commits are fast: default 60)")
    parser.add_argument("--out", type=Path, help="also write the JSON document to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (path on stderr)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.commit_repeat < 1:
        parser.error("--repeat and --commit-repeat must be at least 1")

    started = time.perf_counter()
    info = machine_info()
    origin = Path.cwd()
    base = Path(tempfile.mkdtemp(prefix="mm-bench-magics-")).resolve()
    saved_env = {k: os.environ.get(k) for k in ("MM_HOME", "MM_ACTOR")}
    try:
        if inside_git_repo(base):
            raise SystemExit(f"{base} is inside a git repository; set TMPDIR to a directory outside any repository")
        cwd = base / "cwd"
        cwd.mkdir()
        os.chdir(cwd)
        os.environ["MM_HOME"] = str(base / "ws" / ".mm")
        os.environ["MM_ACTOR"] = ACTOR
        # anything the shell or the magics print must not end up inside the JSON on stdout
        with contextlib.redirect_stdout(sys.stderr):
            log(f"working in {base}")
            shell = start_ipython()
            shell.run_line_magic("load_ext", "mm_magics")
            train = bench_train(shell, make_train_data(), args.repeat)
            log(f"train: ratio {train['train_overhead_ratio']}")
            commit = bench_commit(shell, args.commit_repeat)
            log(f"commit: ratio {commit['commit_ratio']}")
            load = bench_load(base, args.repeat)
            log(f"load_ext: ratio vs autoreload {load['load_ext_ratio_vs_autoreload']}")
            magics_of(shell).ws.close()
    finally:
        os.chdir(origin)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if args.keep:
            log(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    info["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    checks = targets(train, commit)
    doc = {
        "benchmark": "mm_magics magics",
        "machine": info,
        "config": {"repeat": args.repeat, "commit_repeat": args.commit_repeat, "fit_target_s": FIT_TARGET_S},
        "train": train,
        "commit": commit,
        "load_ext": load,
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
