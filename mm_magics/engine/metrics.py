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
