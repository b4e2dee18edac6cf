"""Data fingerprints, input schemas and JSON-safe parameters.

The fingerprint answers "was this trained on the same data?" (a content hash) and keeps a compact per-feature
profile (quantiles, moments, category frequencies) that later serves as the reference for drift detection, so the
training data itself never needs to be kept.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import pandas as pd

PROFILE_QUANTILES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
MAX_CATEGORIES = 50


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, pd.Series):
        return X.to_frame()
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"expected 2-D data, got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


def content_hash(X: Any, y: Any = None) -> str:
    """sha256 over values, dtypes, column names and index: changes when any of them does."""
    h = hashlib.sha256()
    for part in (X, y):
        if part is None:
            continue
        if isinstance(part, (pd.DataFrame, pd.Series)):
            h.update(pd.util.hash_pandas_object(part, index=True).values.tobytes())
            if isinstance(part, pd.DataFrame):
                header = (list(map(str, part.columns)), [str(t) for t in part.dtypes])
            else:
                header = ([str(part.name)], [str(part.dtype)])
            h.update(repr(header).encode())
        else:
            arr = np.ascontiguousarray(np.asarray(part))
            h.update(repr((arr.shape, str(arr.dtype))).encode())
            if arr.dtype.kind == "O":
                h.update(pd.util.hash_array(arr.ravel()).tobytes())
            else:
                h.update(arr.tobytes())
    return h.hexdigest()


def _num(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def feature_profile(col: pd.Series) -> dict[str, Any]:
    """The reference profile of one feature: enough to compute PSI and summary drift later."""
    missing = int(col.isna().sum())
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        counts = col.astype("string").value_counts(dropna=True)
        top = counts.head(MAX_CATEGORIES)
        total = int(counts.sum()) or 1
        return {
            "kind": "categorical",
            "missing": missing,
            "unique": int(counts.size),
            "frequencies": {str(k): round(int(v) / total, 6) for k, v in top.items()},
        }
    values = col.dropna().astype(float)
    if values.empty:
        return {"kind": "numeric", "missing": missing, "count": 0}
    arr = values.to_numpy()
    qs = np.quantile(arr, PROFILE_QUANTILES)
    # the share of rows in each drift bin, counted: cut at the deciles, a bin holds 10 % only without ties (a
    # feature of a few distinct values puts a third of its rows on one edge, and PSI then read drift on its own data)
    edges = np.unique(qs[1:-1])
    shares = np.bincount(np.searchsorted(edges, arr, side="right"), minlength=len(edges) + 1) / arr.size
    return {
        "kind": "numeric",
        "missing": missing,
        "count": int(values.size),
        "mean": _num(values.mean()),
        "std": _num(values.std(ddof=0)),
        "min": _num(values.min()),
        "max": _num(values.max()),
        "quantiles": [_num(q) for q in qs],
        "bins": [round(float(x), 6) for x in shares],
    }


def schema_of(X: Any) -> dict[str, Any]:
    """Feature names, dtypes and width: what a serving endpoint validates requests against."""
    frame = _frame(X)
    named = isinstance(X, pd.DataFrame)
    return {
        "n_features": int(frame.shape[1]),
        "feature_names": [str(c) for c in frame.columns] if named else None,
        "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()},
        "input_type": type(X).__module__.split(".")[0] + "." + type(X).__name__,
    }


def fingerprint(X: Any, y: Any = None) -> dict[str, Any]:
    """Content hash, shape, dtypes and the per-feature reference profile of the training data."""
    frame = _frame(X)
    fp: dict[str, Any] = {
        "hash": content_hash(X, y),
        "rows": int(frame.shape[0]),
        "columns": int(frame.shape[1]),
        "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()},
        "profile": {str(c): feature_profile(frame[c]) for c in frame.columns},
    }
    if y is not None:
        ys = pd.Series(np.asarray(y).ravel() if not isinstance(y, pd.Series) else y)
        fp["target"] = {"name": getattr(y, "name", None), "dtype": str(ys.dtype), **feature_profile(ys)}
    return fp


def jsonable(value: Any, depth: int = 0) -> Any:
    """Turn estimator params (numpy scalars, nested estimators, callables) into stable JSON values."""
    if depth > 8:
        return repr(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else str(f)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist(), depth + 1) if value.size <= 100 else f"<array {value.shape} {value.dtype}>"
    if hasattr(value, "get_params") and hasattr(value, "fit"):
        return type(value).__name__
    if isinstance(value, type) or callable(value):
        return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}".lstrip(".")
    return repr(value)


def estimator_params(model: Any) -> dict[str, Any]:
    """``get_params(deep=True)`` as flat JSON (``step__param`` keys for pipelines, as scikit-learn names them)."""
    try:
        params = model.get_params(deep=True)
    except Exception:
        return {}
    return {k: jsonable(v) for k, v in sorted(params.items())}
