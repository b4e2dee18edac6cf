"""One set of task metrics, for a training run's evaluation and for live quality from feedback alike.

Training and monitoring used to compute these separately and disagreed (live quality had no ``f1_macro`` for binary
tasks, training had it): a live figure shown beside its training figure must be the same computation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .fingerprints import jsonable

#: What a live view shows beside the training figure (the rest stay in the version's record).
HEADLINE = ("accuracy", "precision", "recall", "f1", "f1_macro", "mae", "rmse", "r2")


def ordered(names: Iterable[str]) -> list[str]:
    """The one order metrics are listed in everywhere (run, version, diff, monitor): headline metrics in their
    order, then the rest by name."""
    names = set(names)
    return [m for m in HEADLINE if m in names] + sorted(names - set(HEADLINE))


def classification(y_true: Any, y_pred: Any, *, confusion: bool = True) -> dict[str, Any]:
    """Accuracy; precision, recall and F1 of the positive class for a binary task; macro and weighted averages;
    the confusion matrix (with its labels) unless ``confusion`` is False."""
    from sklearn import metrics as skm

    labels = np.unique(np.concatenate([np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()]))
    out: dict[str, Any] = {"accuracy": float(skm.accuracy_score(y_true, y_pred))}
    if len(labels) == 2:
        pos = labels[-1]
        out["precision"] = float(skm.precision_score(y_true, y_pred, pos_label=pos, zero_division=0))
        out["recall"] = float(skm.recall_score(y_true, y_pred, pos_label=pos, zero_division=0))
        out["f1"] = float(skm.f1_score(y_true, y_pred, pos_label=pos, zero_division=0))
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=0)
        out.update({f"precision_{avg}": float(p), f"recall_{avg}": float(r), f"f1_{avg}": float(f)})
    if confusion:
        out["confusion_matrix"] = {
            "labels": jsonable(labels.tolist()),
            "matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        }
    return out


def regression(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """MAE, RMSE and R² (R² is undefined, NaN, for fewer than two rows)."""
    from sklearn import metrics as skm

    yt, yp = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return {
        "mae": float(skm.mean_absolute_error(yt, yp)),
        "rmse": float(np.sqrt(skm.mean_squared_error(yt, yp))),
        "r2": float(skm.r2_score(yt, yp)) if len(yt) > 1 else float("nan"),
    }


def for_task(task: str | None, y_true: Any, y_pred: Any, *, confusion: bool = True) -> dict[str, Any]:
    """The metrics of ``task`` (``classification`` or ``regression``); none for an unknown task."""
    if task == "classification":
        return classification(y_true, y_pred, confusion=confusion)
    if task == "regression":
        return regression(y_true, y_pred)
    return {}


def diagnostics(
    model: Any, X: Any, y: Any, task: str | None, *, predicted: Any = None, points: int = 100, sample: int = 300
) -> dict[str, Any]:
    """The data behind a run's charts, from the evaluation rows: ROC and precision–recall curves (at most ``points``
    each, with AUC and average precision) for a binary classifier that scores, residuals (a seeded sample of at most
    ``sample`` rows) for a regressor, from ``predicted`` when the caller already has the predictions. Empty when
    the model cannot give them; never raises for that."""
    try:
        if task == "regression":
            return _residuals(model.predict(X) if predicted is None else predicted, y, sample)
        if task == "classification":
            return _curves(model, X, y, points)
    except (AttributeError, ValueError, TypeError, IndexError):
        return {}
    return {}


def _curves(model: Any, X: Any, y: Any, points: int) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    classes = list(getattr(model, "classes_", []))
    if len(classes) != 2 or len(np.unique(np.asarray(y))) != 2:
        return {}
    if hasattr(model, "predict_proba"):
        scores = np.asarray(model.predict_proba(X))[:, 1]
    elif hasattr(model, "decision_function"):
        scores = np.asarray(model.decision_function(X))
    else:
        return {}
    positive = classes[1]
    truth = np.asarray(y) == positive
    fpr, tpr, _ = roc_curve(truth, scores)
    precision, recall, _ = precision_recall_curve(truth, scores)
    pick = _thin(len(fpr), points)
    pick_pr = _thin(len(recall), points)
    return {
        "positive": jsonable(positive),
        "roc": {"fpr": _round(fpr[pick]), "tpr": _round(tpr[pick]), "auc": float(roc_auc_score(truth, scores))},
        "pr": {
            "recall": _round(recall[pick_pr]),
            "precision": _round(precision[pick_pr]),
            "ap": float(average_precision_score(truth, scores)),
            "base_rate": float(truth.mean()),
        },
    }


def _residuals(predicted: Any, y: Any, sample: int) -> dict[str, Any]:
    predicted = np.asarray(predicted, dtype=float).ravel()
    truth = np.asarray(y, dtype=float).ravel()
    rows = np.sort(np.random.default_rng(0).choice(len(truth), min(sample, len(truth)), replace=False))
    return {"residuals": {"predicted": _round(predicted[rows]), "residual": _round(truth[rows] - predicted[rows])}}


def _thin(n: int, points: int) -> np.ndarray:
    """At most ``points`` indices spread over ``n``, first and last kept (a curve's ends matter)."""
    return np.unique(np.linspace(0, n - 1, min(n, points)).round().astype(int))


def _round(values: np.ndarray) -> list[float]:
    return [round(float(v), 5) for v in values]
