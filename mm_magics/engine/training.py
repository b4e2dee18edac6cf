"""Run user code, find the estimator and the data it defines, fit, evaluate, and record the run.

Plain Python over a namespace dict: the magic hands over the cell's (already IPython-transformed) source and the
user namespace; a script can do the same with ``globals()``. If anything fails, names the cell bound are restored,
so an error never leaves the namespace half-changed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics
from .environment import capture_environment
from .errors import MMError
from .estimators import task_of
from .fingerprints import estimator_params, fingerprint, jsonable, schema_of

_MISSING = object()
Progress = Callable[[str], None]


class TrainingError(MMError):
    """The cell, its data or its fit cannot make a run; the message says what to change."""


@dataclass
class TrainOptions:
    model_var: str | None = None
    data_vars: tuple[str, str] | None = None
    cv: int | None = None
    test_size: float = 0.25
    random_state: int = 0
    parent: str | None = None


@dataclass(repr=False)
class Run:
    """One training run: what the registry needs to make a version, plus the fitted model itself."""

    name: str
    model: Any = field(repr=False)
    model_var: str
    task: str | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    evaluation: dict[str, Any]
    data: dict[str, Any]
    schema: dict[str, Any]
    code: str
    environment: dict[str, Any]
    wall_time: float
    fit_time: float
    parent: str | None = None
    search: dict[str, Any] | None = None
    X_train: Any = field(default=None, repr=False)
    previous: dict[str, Any] | None = None

    @property
    def estimator(self) -> str:
        return type(self.model).__name__

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def __repr__(self) -> str:
        return f"<Run {self.name}: {self.estimator}>"

    def __str__(self) -> str:
        shown = {k: v for k, v in self.metrics.items() if isinstance(v, (int, float))}
        shown = {k: shown[k] for k in metrics.ordered(shown)}
        listed = ", ".join(f"{k}={v:.4g}" for k, v in shown.items())
        lines = [f"run {self.name}: {self.estimator} ({self.model_var}) {self.evaluation.get('method')}: {listed}"]
        if self.search:
            lines.append(f"  search: best {self.search['best_params']} (cv score {self.search['best_score']:.4g})")
        if self.previous:
            prev = self.previous
            deltas = [
                f"{k} {v - prev['metrics'][k]:+.4g}"
                for k, v in shown.items()
                if isinstance(prev["metrics"].get(k), (int, float))
            ]
            lines.append(f"  vs {prev['id']}: " + (", ".join(deltas) or "no common metrics"))
        lines.append(
            f"  captured: params ({len(self.params)}), data {self.data['rows']}x{self.data['columns']} "
            f"#{self.data['hash'][:10]}, schema, code ({len(self.code.splitlines())} lines), environment; "
            f"fit {self.fit_time:.2f}s of {self.wall_time:.2f}s"
        )
        return "\n".join(lines)

    def commit_fields(self) -> dict[str, Any]:
        """Keyword arguments for :meth:`Registry.commit`."""
        extra: dict[str, Any] = {"evaluation": self.evaluation, "wall_time": self.wall_time, "fit_time": self.fit_time}
        if self.search:
            extra["search"] = self.search
        return {
            "params": self.params,
            "metrics": self.metrics,
            "data": self.data,
            "code": self.code,
            "schema": self.schema,
            "parent": self.parent,
            "probe_data": self.X_train,
            "extra": extra,
        }


# -- finding things in the namespace --------------------------------------------------------------------------------
def is_estimator(obj: Any) -> bool:
    from sklearn.base import BaseEstimator

    return isinstance(obj, BaseEstimator) and not isinstance(obj, type)


def _nested(obj: Any) -> list[Any]:
    try:
        return list(obj.get_params(deep=True).values())
    except Exception:
        return []


def find_estimator(ns: MutableMapping[str, Any], assigned: list[str], model_var: str | None) -> tuple[str, Any]:
    """The estimator the cell defined: the one assigned variable that is an estimator and not part of another."""
    if model_var:
        if model_var not in ns:
            raise TrainingError(f"--model {model_var}: no variable {model_var!r} in the namespace; check the name")
        if not is_estimator(ns[model_var]):
            raise TrainingError(
                f"--model {model_var}: it is a {type(ns[model_var]).__name__}, not a scikit-learn estimator"
            )
        return model_var, ns[model_var]
    candidates = {k: ns[k] for k in assigned if is_estimator(ns.get(k))}
    inner = {id(v) for c in candidates.values() for v in _nested(c)}
    top = {k: v for k, v in candidates.items() if id(v) not in inner}
    predictors = {k: v for k, v in top.items() if hasattr(v, "predict")} or top
    if not predictors:
        raise TrainingError(
            "the cell defines no scikit-learn estimator: assign one (e.g. model = LogisticRegression()) "
            "or name an existing one with --model VAR"
        )
    if len(predictors) > 1:
        names = ", ".join(sorted(predictors))
        raise TrainingError(f"the cell defines several estimators ({names}): pick one with --model VAR")
    return next(iter(predictors.items()))


def find_data(ns: MutableMapping[str, Any], data_vars: tuple[str, str] | None) -> tuple[Any, Any, str, str]:
    """``X`` and ``y`` (or the names given with ``--data``), checked for matching lengths."""
    if data_vars:
        xn, yn = data_vars
    elif "X" in ns and "y" in ns:
        xn, yn = "X", "y"
    elif "X_train" in ns and "y_train" in ns:
        xn, yn = "X_train", "y_train"
    else:
        raise TrainingError(
            "no training data found: define X and y in the cell (or X_train and y_train), or name them with --data X y"
        )
    for n in (xn, yn):
        if n not in ns:
            raise TrainingError(f"--data: no variable {n!r} in the namespace; check the name")
    X, y = ns[xn], ns[yn]
    try:
        nx, ny = len(X), len(y)
    except TypeError:
        raise TrainingError(f"{xn} and {yn} must be array-like (rows first): got {type(X).__name__}") from None
    if nx != ny:
        raise TrainingError(f"{xn} has {nx} rows but {yn} has {ny}: they must match row for row")
    if nx < 2:
        raise TrainingError(f"{xn} has {nx} row(s): need at least 2 to train and evaluate")
    return X, y, xn, yn


def evaluate(model: Any, X: Any, y: Any, task: str | None) -> dict[str, Any]:
    return metrics.for_task(task, y, model.predict(X))


def _assess(model: Any, X: Any, y: Any, task: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics and the charts' data of one evaluation set, from a single ``predict`` over it."""
    predicted = model.predict(X)
    return metrics.for_task(task, y, predicted), metrics.diagnostics(model, X, y, task, predicted=predicted)


def _cv_metrics(
    model: Any, X: Any, y: Any, task: str | None, k: int, random_state: int, progress: Progress
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """K-fold metrics with per-fold progress (we run the folds so we can report each one)."""
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter = (StratifiedKFold if task == "classification" else KFold)(k, shuffle=True, random_state=random_state)
    folds = []
    for i, (tr, te) in enumerate(splitter.split(X, y), 1):
        progress(f"cross-validation fold {i}/{k}")
        m = clone(model).fit(_rows(X, tr), _rows(y, tr))
        folds.append({k2: v for k2, v in evaluate(m, _rows(X, te), _rows(y, te), task).items() if isinstance(v, float)})
    keys = folds[0].keys() if folds else []
    summary: dict[str, Any] = {}
    for key in keys:
        vals = [f[key] for f in folds]
        summary[key] = float(np.mean(vals))
        summary[f"{key}_std"] = float(np.std(vals))
    return summary, folds


def _rows(data: Any, idx: Any) -> Any:
    return data.iloc[idx] if hasattr(data, "iloc") else np.asarray(data)[idx]


def _search_summary(search: Any) -> dict[str, Any]:
    res = search.cv_results_
    table = []
    for i in np.argsort(res["rank_test_score"])[:50]:
        table.append(
            {
                "params": jsonable(res["params"][i]),
                "mean_test_score": float(res["mean_test_score"][i]),
                "std_test_score": float(res["std_test_score"][i]),
                "rank": int(res["rank_test_score"][i]),
            }
        )
    return {
        "kind": type(search).__name__,
        "best_params": jsonable(search.best_params_),
        "best_score": float(search.best_score_),
        "candidates": len(res["params"]),
        "folds": int(getattr(search, "n_splits_", 0)),
        "cv_results": table,
    }


# -- the run -------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def restore_on_error(ns: MutableMapping[str, Any]) -> Iterator[None]:
    """Put back every name the block rebound or added if it raises (KeyboardInterrupt included)."""
    before = dict(ns)
    try:
        yield
    except BaseException:
        for key in [k for k in ns if k not in before]:
            del ns[key]
        for key, value in before.items():
            if ns.get(key, _MISSING) is not value:
                ns[key] = value
        raise


@contextlib.contextmanager
def ticking(progress: Progress, label: Callable[[], str], every: float = 0.5) -> Iterator[None]:
    """Report elapsed time from a daemon thread that dies with the block, whatever happens."""
    stop = threading.Event()
    start = time.perf_counter()

    def loop() -> None:
        while not stop.wait(every):
            progress(f"{label()} ({time.perf_counter() - start:.1f}s)")

    thread = threading.Thread(target=loop, name="mm-train-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _is_fitted(model: Any) -> bool:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
        return True
    except (NotFittedError, TypeError):
        return False


def _fit(model: Any, X: Any, y: Any) -> None:
    try:
        model.fit(X, y)
    except (KeyboardInterrupt, MMError):
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()
        first = text[0] if text else ""
        raise TrainingError(f"fitting {type(model).__name__} failed: {type(exc).__name__}: {first}") from None


def train(
    name: str,
    code: str,
    ns: MutableMapping[str, Any],
    options: TrainOptions | None = None,
    *,
    execute: Callable[[str, MutableMapping[str, Any]], None] | None = None,
    progress: Progress = lambda _msg: None,
    previous: dict[str, Any] | None = None,
) -> Run:
    """Run ``code`` in ``ns``, then fit and evaluate the estimator it defines; returns the run (not yet committed).

    ``execute`` runs the code (the magic passes IPython's, so the cell may use magics); by default plain ``exec``.
    """
    opts = options or TrainOptions()
    started = time.perf_counter()
    with restore_on_error(ns):
        before = {k: v for k, v in ns.items()}
        if execute is not None:
            execute(code, ns)
        else:
            exec(compile(code, f"<mm_train {name}>", "exec"), ns)
        assigned = [k for k, v in ns.items() if not k.startswith("_") and before.get(k, _MISSING) is not v]
        var, model = find_estimator(ns, assigned, opts.model_var)
        X, y, xn, yn = find_data(ns, opts.data_vars)
        task = task_of(model)
        search = hasattr(model, "cv_results_") or type(model).__name__.endswith("SearchCV")
        phase = ["fitting"]
        if search and hasattr(model, "param_grid"):
            from sklearn.model_selection import ParameterGrid

            phase[0] = f"searching {len(ParameterGrid(model.param_grid))} candidates"
        with ticking(progress, lambda: phase[0]):
            if "X_test" in ns and "y_test" in ns and opts.cv is None:
                fitted = _explicit_test(model, X, y, ns["X_test"], ns["y_test"], task, phase)
            elif opts.cv:
                fitted = _cross_validated(model, X, y, task, opts, progress, phase)
            else:
                fitted = _holdout(model, X, y, task, opts, phase)
        search_info = _search_summary(model) if search and hasattr(model, "cv_results_") else None
        final = getattr(model, "best_estimator_", None) if search_info else None
        committed = final if final is not None else model
        return Run(
            name=name,
            model=committed,
            model_var=var,
            task=task_of(committed) or task,
            params=estimator_params(committed),
            metrics=fitted.metrics,
            evaluation={**fitted.evaluation, "data": f"{xn}, {yn}"},
            data=fingerprint(fitted.X_train, fitted.y_train),
            schema=schema_of(fitted.X_train),
            code=code,
            environment=capture_environment(),
            wall_time=time.perf_counter() - started,
            fit_time=fitted.fit_time,
            parent=opts.parent,
            search=search_info,
            X_train=fitted.X_train,
            previous=previous,
        )


@dataclass
class _Fitted:
    """What one evaluation strategy produced: metrics, how they were obtained, the training rows, the fit time."""

    metrics: dict[str, Any]
    evaluation: dict[str, Any]
    X_train: Any
    y_train: Any
    fit_time: float


def _explicit_test(model: Any, X: Any, y: Any, X_test: Any, y_test: Any, task: str | None, phase: list[str]) -> _Fitted:
    """The cell defined X_test / y_test: fit on X, y (unless the cell fitted already), evaluate on the test set."""
    start = time.perf_counter()
    if not _is_fitted(model):
        _fit(model, X, y)
    fit_time = time.perf_counter() - start
    phase[0] = "evaluating"
    scores, diagnostics = _assess(model, X_test, y_test, task)
    evaluation = {"method": "holdout", "test": "X_test/y_test", "test_rows": len(X_test), "diagnostics": diagnostics}
    return _Fitted(scores, evaluation, X, y, fit_time)


def _cross_validated(
    model: Any, X: Any, y: Any, task: str | None, opts: TrainOptions, progress: Progress, phase: list[str]
) -> _Fitted:
    """K-fold metrics, then a fit on every row (what gets versioned)."""
    assert opts.cv is not None
    if opts.cv < 2:
        raise TrainingError(f"--cv {opts.cv}: cross-validation needs at least 2 folds")
    start = time.perf_counter()
    metrics, folds = _cv_metrics(model, X, y, task, opts.cv, opts.random_state, progress)
    phase[0] = "fitting on all rows"
    _fit(model, X, y)
    fit_time = time.perf_counter() - start
    return _Fitted(metrics, {"method": f"{opts.cv}-fold cross-validation", "folds": folds}, X, y, fit_time)


def _holdout(model: Any, X: Any, y: Any, task: str | None, opts: TrainOptions, phase: list[str]) -> _Fitted:
    """A stratified (where possible) hold-out split; a model the cell fitted itself is evaluated as a clone."""

    if not 0 < opts.test_size < 1:
        raise TrainingError(f"test size {opts.test_size} must be between 0 and 1 (e.g. 0.25)")
    start = time.perf_counter()
    X_tr, X_te, y_tr, y_te, stratify = holdout_split(X, y, task, opts.test_size, opts.random_state)
    refit = _is_fitted(model)
    evaluated = model
    if refit:  # fitted by the cell on data we cannot see: evaluate a clone on a clean split
        from sklearn.base import clone

        evaluated = clone(model)
    _fit(evaluated, X_tr, y_tr)
    fit_time = time.perf_counter() - start
    phase[0] = "evaluating"
    scores, diagnostics = _assess(evaluated, X_te, y_te, task)
    evaluation = {
        "method": "holdout",
        "test_size": opts.test_size,
        "random_state": opts.random_state,
        "test_rows": len(X_te),
        "stratified": stratify is not None,
        "note": "the cell fitted the model itself; metrics come from a clone fitted on the split" if refit else None,
        "diagnostics": diagnostics,
    }
    return _Fitted(scores, evaluation, X if refit else X_tr, y if refit else y_tr, fit_time)


def holdout_split(X: Any, y: Any, task: str | None, test_size: float, random_state: int) -> tuple[Any, ...]:
    """The hold-out split ``%%mm_train`` makes (stratified where it can be): X_tr, X_te, y_tr, y_te, stratify."""
    from sklearn.model_selection import train_test_split

    stratify = y if task == "classification" and _can_stratify(y, test_size) else None
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=random_state, stratify=stratify)
    return X_tr, X_te, y_tr, y_te, stratify


def training_rows(X: Any, y: Any, task: str | None, evaluation: dict[str, Any]) -> tuple[Any, Any]:
    """The rows a recorded run fitted on, from its data and its recorded evaluation: what its data fingerprint
    was taken of (the hold-out split's training part, or every row for cross-validation and an explicit test set)."""
    if evaluation.get("method") == "holdout" and "test_size" in evaluation and not evaluation.get("note"):
        X_tr, _, y_tr, _, _ = holdout_split(X, y, task, evaluation["test_size"], evaluation.get("random_state", 0))
        return X_tr, y_tr
    return X, y


def _can_stratify(y: Any, test_size: float) -> bool:
    _, counts = np.unique(np.asarray(y), return_counts=True)
    return len(counts) > 1 and counts.min() >= 2 and len(counts) <= len(y) * test_size
