"""What a version's predictions depend on, computed once at commit time on the sample kept for prediction agreement.

Permutation importance, as ``sklearn.inspection.permutation_importance`` computes it: shuffle one feature at a time
and measure how far the model's predictions move from its own unshuffled predictions (accuracy for a classifier, R²
for a regressor), over a few repeats, so each importance comes with its spread. It is scored against the model's own
predictions rather than labels: the sample kept for agreement holds no labels, and the question is what the *model*
relies on, which is what a drift alert or a reviewer needs. Linear and tree models also report their own
coefficients or impurity importances. Where the optional ``shap`` package is installed (``mm_magics[shap]``), each
feature also gets its mean |SHAP value| on (up to 100 rows of) the same sample, from the exact explainer the model
allows or a model-agnostic one on a fixed budget (:mod:`.shapley` says which and why); SHAP attributes each
prediction to the features, where permutation importance measures how much the model leans on each. Without shap the
document says nothing about it; a failure inside shap is recorded as ``shap_error`` and never fails a commit. The
full result is an artifact (content-addressed, not in git); the version's metadata keeps a summary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import shapley
from .records import Record

REPEATS = 3
MAX_FEATURES = 200  # beyond this many columns the cost of a commit would be the explanation's
SUMMARY_TOP = 5


@dataclass(repr=False)
class Explanation(Record):
    """A version's explanation: features by permutation importance (mean, spread), the model's own weights, and
    mean |SHAP value| per feature when shap was installed at commit time."""

    version: str
    method: str
    scoring: str
    rows: int
    repeats: int
    features: list[dict[str, Any]] = field(default_factory=list)
    own: str | None = None  # "coefficients" or "impurity importances" when the model has them
    shap_method: str | None = None  # the explainer, when each feature has a "shap" value
    shap_rows: int | None = None
    shap_output: str | None = None  # what was explained: "probability, averaged over 3 classes", "prediction", …
    shap_error: str | None = None  # why there are no SHAP values although shap was installed

    def __str__(self) -> str:
        lines = [f"{self.version}: {self.method} ({self.scoring}, {self.rows} rows x {self.repeats} repeats)"]
        top = max((f["importance"] for f in self.features), default=0.0) or 1.0
        for f in self.features[:20]:
            bar = "#" * max(0, round(20 * f["importance"] / top))
            own = f"  {self.own} {f['own']:+.3g}" if self.own and f.get("own") is not None else ""
            shap = f"  SHAP {f['shap']:.3g}" if f.get("shap") is not None else ""
            lines.append(f"  {f['feature'][:24]:<24} {f['importance']:7.3f} ± {f['std']:.3f} {bar}{own}{shap}")
        if len(self.features) > 20:
            lines.append(f"  … {len(self.features) - 20} more features")
        lines.append(f"  {self.shap_note()}")
        return "\n".join(lines)

    def has_shap(self) -> bool:
        return self.shap_method is not None and any(f.get("shap") is not None for f in self.features)

    def shap_note(self) -> str:
        """One line about SHAP: what the values are, why there are none, or how to get them."""
        if self.has_shap():
            rows = f"{self.shap_rows} of {self.rows} rows" if self.shap_rows != self.rows else f"{self.rows} rows"
            return f"SHAP: mean |SHAP value| of the {self.shap_output}, {self.shap_method}, on {rows}"
        if self.shap_error:
            return f"SHAP: {self.shap_error}"
        if not shapley.available():
            return "SHAP: install mm_magics[shap]"
        return "SHAP: none recorded (shap was not installed when this version was committed)"

    def importance(self) -> dict[str, float]:
        return {f["feature"]: f["importance"] for f in self.features}


def explain(model: Any, sample: Any, task: str | None) -> dict[str, Any] | None:
    """The explanation document for ``model`` on ``sample`` (a DataFrame or 2-D array), or None when it cannot be
    computed (too few rows, too many columns, or a model whose predictions cannot be scored)."""
    frame = sample if isinstance(sample, pd.DataFrame) else pd.DataFrame(np.asarray(sample))
    if len(frame) < 10 or not 0 < frame.shape[1] <= MAX_FEATURES:
        return None
    regression = task == "regression"
    try:
        means, stds = _permutation_importance(model, sample, regression)
    except Exception:  # an explanation is an aid: a model it cannot score still commits
        return None
    own_kind, own = _own_weights(model, frame.shape[1])
    features = [
        {
            "feature": str(name),
            "importance": float(means[i]),
            "std": float(stds[i]),
            "own": None if own is None else float(own[i]),
        }
        for i, name in enumerate(frame.columns)
    ]
    doc = {
        "format": 1,
        "method": "permutation importance against the model's own predictions",
        "scoring": "r2" if regression else "accuracy",
        "rows": len(frame),
        "repeats": REPEATS,
        "own": own_kind,
        "features": features,
    }
    _add_shap(doc, shapley.shap_summary(model, frame, isinstance(sample, pd.DataFrame), regression))
    features.sort(key=lambda f: -f["importance"])
    return doc


def _add_shap(doc: dict[str, Any], found: dict[str, Any]) -> None:
    """Each feature's mean |SHAP| (same order as the sample's columns) and how it was computed, or the one-line
    reason there is none; nothing at all when shap is not installed."""
    if "error" in found:
        doc["shap_error"] = found["error"]
    elif "values" in found:
        for f, value in zip(doc["features"], found["values"], strict=True):
            f["shap"] = value
        doc.update(shap_method=found["method"], shap_rows=found["rows"], shap_output=found["output"])


def _permutation_importance(model: Any, sample: Any, regression: bool) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's permutation importance (same shuffles: one per feature and repeat, seeded), scored against the
    model's own predictions, but with every shuffled copy predicted in ONE call: ``permutation_importance`` calls
    ``predict`` features x repeats times, which cost a 100-tree forest 0.6 s a commit (60 calls of ~10 ms), one
    stacked call about 0.05 s. Scores: accuracy for a classifier, R² for a regressor, as sklearn's scorers."""
    from sklearn.metrics import accuracy_score, r2_score

    frame = sample if isinstance(sample, pd.DataFrame) else None
    X = np.asarray(sample, dtype=object if frame is not None and not _numeric(frame) else None)
    n, d = X.shape
    rng = np.random.RandomState(0)
    copies = []
    for j in range(d):
        for _ in range(REPEATS):
            shuffled = X.copy()
            shuffled[:, j] = X[rng.permutation(n), j]
            copies.append(shuffled)
    stacked = np.concatenate([X, *copies])
    if frame is not None:
        stacked = pd.DataFrame(stacked, columns=frame.columns).astype(frame.dtypes.to_dict())
    predicted = np.asarray(model.predict(stacked))
    reference, rest = predicted[:n], predicted[n:].reshape(d, REPEATS, n, *predicted.shape[1:])
    score = r2_score if regression else accuracy_score
    base = score(reference, reference)
    drops = np.array([[base - score(reference, rest[j, r]) for r in range(REPEATS)] for j in range(d)])
    return drops.mean(axis=1), drops.std(axis=1)


def _numeric(frame: pd.DataFrame) -> bool:
    return all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes)


def summary(doc: dict[str, Any], sha256: str) -> dict[str, Any]:
    """What the version's metadata keeps: where the full explanation is, and its top features."""
    top = [[f["feature"], round(f["importance"], 4)] for f in doc["features"][:SUMMARY_TOP]]
    return {"sha256": sha256, "method": doc["method"], "scoring": doc["scoring"], "top": top}


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes, version: str) -> Explanation:
    doc = json.loads(data)
    return Explanation(
        version=version,
        method=doc["method"],
        scoring=doc["scoring"],
        rows=int(doc["rows"]),
        repeats=int(doc["repeats"]),
        features=list(doc["features"]),
        own=doc.get("own"),
        shap_method=doc.get("shap_method"),
        shap_rows=doc.get("shap_rows"),
        shap_output=doc.get("shap_output"),
        shap_error=doc.get("shap_error"),
    )


def shift(a: Explanation, b: Explanation) -> list[dict[str, Any]]:
    """Importance shift from ``a`` to ``b``, per feature, largest first (what ``diff`` shows)."""
    ia, ib = a.importance(), b.importance()
    rows = [
        {"feature": f, "a": ia.get(f), "b": ib.get(f), "delta": (ib.get(f) or 0.0) - (ia.get(f) or 0.0)}
        for f in dict.fromkeys([*ia, *ib])
    ]
    return sorted(rows, key=lambda r: -abs(r["delta"]))


def _own_weights(model: Any, n: int) -> tuple[str | None, np.ndarray | None]:
    """The model's own per-feature weights: impurity importances or coefficients (their largest magnitude across
    classes), from the model or the last step of a pipeline, when they have one value per feature."""
    est = model.steps[-1][1] if hasattr(model, "steps") else model
    if hasattr(est, "feature_importances_"):
        values = np.asarray(est.feature_importances_, dtype=float)
        kind = "impurity importances"
    elif hasattr(est, "coef_"):
        coef = np.atleast_2d(np.asarray(est.coef_, dtype=float))
        values = coef[np.argmax(np.abs(coef), axis=0), np.arange(coef.shape[1])]
        kind = "coefficients"
    else:
        return None, None
    return (kind, values) if values.shape == (n,) else (None, None)
