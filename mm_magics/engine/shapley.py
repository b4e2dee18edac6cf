"""Mean |SHAP value| per feature for a version's explanation, when the optional ``shap`` package is installed
(``pip install mm_magics[shap]``); :mod:`.explain` calls it at commit time on the agreement sample.

Which explainer: the exact, fast one the model allows, else a model-agnostic one on a small fixed budget.

* Trees and tree ensembles (``shap.TreeExplainer``, tree path-dependent TreeSHAP): exact, and fast for ordinary
  forests (a 100-tree forest on 100 iris rows: 14 ms). Its cost grows with rows x nodes x depth², and a forest
  grown on a large table has millions of nodes (100 regression trees on 10 000 rows: 0.4 s a row), so the rows are
  cut to fit :data:`TREE_WORK`, and a forest too large for :data:`MIN_ROWS` rows gets no SHAP values, with the reason.
* Linear models (``shap.LinearExplainer``, features taken as independent, background = the sample): exact for the
  model's margin (X·coef + intercept: the log-odds of a logistic regression).
* Anything else (``shap.PermutationExplainer`` over ``predict_proba``, ``decision_function`` or ``predict``): one
  antithetic permutation per row (2·features + 1 model evaluations, exact for an additive model), over
  :data:`BACKGROUND` background rows, on as many rows as :data:`AGNOSTIC_WORK` predicted rows allow (10 to 50).
  Text and category columns are coded as numbers for shap's masker and decoded before the model sees them. shap
  compiles this explainer with numba the first time a process uses it: that first commit pays ~6 s once.

A pipeline whose earlier steps keep one column per feature under the same names (a scaler) is explained through its
last step with the exact explainer; any other pipeline with the model-agnostic one. Classifiers: mean |SHAP| per
class, averaged over the classes (the output that was explained is named). A failure inside shap never fails a
commit: the reason is recorded as ``shap_error``, one line.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from .errors import one_line

ROWS = 100  # at most this many sample rows are explained (the exact explainers)
MIN_ROWS = 10  # fewer rows than this say too little: no SHAP values then, and why
TREE_WORK = 2e9  # rows x tree nodes x depth² (TreeSHAP's cost): about 1 s on one core here
AGNOSTIC_WORK = 60_000  # rows the model predicts for the model-agnostic explainer (rows x evaluations x background)
AGNOSTIC_ROWS = 50
BACKGROUND = 20


def available() -> bool:
    """Whether ``shap`` can be imported here (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec("shap") is not None


def shap_summary(model: Any, frame: pd.DataFrame, as_frame: bool, regression: bool) -> dict[str, Any]:
    """``{"values": [mean |SHAP| per column of frame], "method", "rows", "output"}``; ``{"error": one line}`` when
    shap raised or the model is too large to explain in budget; ``{}`` when shap is not installed."""
    if not available():
        return {}
    try:
        import shap
    except Exception as exc:  # installed but broken (e.g. a numba that does not match numpy): say so, commit anyway
        return {"error": one_line(f"shap could not be imported: {type(exc).__name__}: {exc}", 300)}
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return _explain(shap, model, frame, as_frame, regression)
    except Skipped as exc:
        return {"error": str(exc)}
    except Exception as exc:  # SHAP is an extra: whatever it raises, the version still commits
        return {"error": one_line(f"{type(exc).__name__}: {exc}", 300)}


class Skipped(Exception):
    """The model is too large to explain within the budget (not a failure of shap; the message says why)."""


def _explain(shap: Any, model: Any, frame: pd.DataFrame, as_frame: bool, regression: bool) -> dict[str, Any]:
    est, seen = _last_step(model, frame)
    if est is not None and not _numeric(seen):
        est = None  # shap's exact explainers read numbers; text or category columns go the model-agnostic way
    if est is not None and hasattr(est, "feature_importances_"):
        try:
            explainer = shap.TreeExplainer(est)
        except Exception:  # a model TreeExplainer does not read (AdaBoost, multi-class gradient boosting)
            explainer = None
        if explainer is not None:
            return _tree(explainer, seen)
    if est is not None and hasattr(est, "coef_") and hasattr(est, "intercept_"):
        explainer = shap.LinearExplainer(est, seen)
        rows = seen.iloc[:ROWS]
        output = "decision function" if _is_classifier(est) else "prediction"
        return _result(explainer.shap_values(rows), "LinearExplainer (exact, features independent)", rows, output)
    return _agnostic(shap, model, frame, as_frame, regression)


def _tree(explainer: Any, seen: pd.DataFrame) -> dict[str, Any]:
    trees = explainer.model
    nodes = int(np.sum(trees.num_nodes))
    per_row = max(1, nodes) * max(1, int(trees.max_depth)) ** 2
    rows = min(ROWS, len(seen), int(TREE_WORK // per_row))
    if rows < MIN_ROWS:
        raise Skipped(
            f"not computed: TreeSHAP over {len(trees.trees)} trees with {nodes:,} nodes (depth {trees.max_depth}) "
            f"would take too long for {MIN_ROWS} rows at commit time"
        )
    sample = seen.iloc[:rows]
    output = {"probability": "probability", "log_odds": "log-odds", "raw_value": "prediction"}.get(
        str(trees.tree_output), str(trees.tree_output)
    )
    return _result(explainer.shap_values(sample), "TreeExplainer (exact TreeSHAP, tree path-dependent)", sample, output)


def _agnostic(shap: Any, model: Any, frame: pd.DataFrame, as_frame: bool, regression: bool) -> dict[str, Any]:
    """shap's permutation explainer over the whole model, on a budget (see the module docstring)."""
    if not regression and hasattr(model, "predict_proba"):
        predict, output = model.predict_proba, "probability"
    elif not regression and hasattr(model, "decision_function"):
        predict, output = model.decision_function, "decision function"
    elif regression:
        predict, output = model.predict, "prediction"
    else:
        raise Skipped("not computed: a classifier with neither predict_proba nor decision_function")
    coded, decode = _coded(frame, as_frame)
    d = frame.shape[1]
    evals = 2 * d + 1
    rows = max(MIN_ROWS, min(AGNOSTIC_ROWS, len(frame), AGNOSTIC_WORK // (evals * BACKGROUND)))
    masker = shap.maskers.Independent(coded, max_samples=BACKGROUND)
    explainer = shap.explainers.Permutation(lambda a: predict(decode(a)), masker, seed=0)
    result = explainer(coded[:rows], max_evals=evals, batch_size=evals, silent=True)
    method = (
        f"PermutationExplainer (approximate: 1 permutation, {evals} evaluations a row, {BACKGROUND} background rows)"
    )
    return _result(result.values, method, frame.iloc[:rows], output)


def _result(values: Any, method: str, rows: pd.DataFrame, output: str) -> dict[str, Any]:
    """Mean |SHAP| per feature; a multi-output model's (classes) averaged over its outputs."""
    arr = np.stack(values, axis=-1) if isinstance(values, list) else np.asarray(values, dtype=float)
    if arr.ndim not in (2, 3) or arr.shape[:2] != rows.shape:
        raise ValueError(
            f"unexpected SHAP values shape {arr.shape} for {rows.shape[0]} rows x {rows.shape[1]} features"
        )
    mean = np.abs(arr).mean(axis=0)
    if arr.ndim == 3 and arr.shape[2] > 1:
        mean = mean.mean(axis=1)
        output = f"{output}, averaged over {arr.shape[2]} classes" if output != "prediction" else f"{output}s"
    elif arr.ndim == 3:
        mean = mean[:, 0]
    return {"values": [float(v) for v in mean], "method": method, "rows": int(rows.shape[0]), "output": output}


def _last_step(model: Any, frame: pd.DataFrame) -> tuple[Any, pd.DataFrame]:
    """The estimator an exact explainer can read and the data it sees: the model itself, or a pipeline's last step
    over its earlier steps' output when those keep one numeric column per feature under the same names (a scaler);
    ``(None, frame)`` otherwise (the model-agnostic explainer then explains the whole pipeline)."""
    if not hasattr(model, "steps"):
        return model, frame
    names = [str(c) for c in frame.columns]
    try:
        head = model[:-1]
        if [str(n) for n in head.get_feature_names_out(names)] != names:
            return None, frame
        seen = np.asarray(head.transform(frame), dtype=float)
    except Exception:  # a step without feature names, or output that is not numeric: explain the whole pipeline
        return None, frame
    return model.steps[-1][1], pd.DataFrame(seen, columns=frame.columns, index=frame.index)


def _coded(frame: pd.DataFrame, as_frame: bool) -> tuple[np.ndarray, Any]:
    """The sample as a float array shap's masker can mix (text, category and bool columns as codes), and the
    function turning such an array back into what the model was fitted on (a frame with the original dtypes)."""
    columns, kinds = [], []
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            columns.append(col.to_numpy(dtype=float, na_value=np.nan))
            kinds.append(None)
        else:
            codes, uniques = pd.factorize(col)
            columns.append(codes.astype(float))  # -1 for a missing value
            kinds.append(np.asarray(uniques, dtype=object))
    coded = np.column_stack(columns) if columns else np.empty((len(frame), 0))
    dtypes = frame.dtypes.to_dict()

    def decode(a: np.ndarray) -> Any:
        data = {}
        for j, name in enumerate(frame.columns):
            uniques = kinds[j]
            if uniques is None:
                data[name] = a[:, j]
            else:
                codes = a[:, j].astype(int)
                found = (codes >= 0) & (codes < len(uniques))
                data[name] = np.where(found, uniques[np.where(found, codes, 0)] if len(uniques) else None, None)
        out = pd.DataFrame(data, columns=frame.columns).astype(dtypes)
        return out if as_frame else out.to_numpy()

    return coded, decode


def _numeric(frame: pd.DataFrame) -> bool:
    return all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in frame.dtypes)


def _is_classifier(est: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(est))
