"""train() from plain Python, as a script or CI would call it: no IPython anywhere."""

from __future__ import annotations

import pytest

from mm_magics.engine import metrics
from mm_magics.engine.training import TrainingError, TrainOptions, train

CODE = "from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression(max_iter=500)\n"


def test_train_runs_code_fits_and_evaluates_in_a_plain_namespace(iris):
    X, y = iris
    ns = {"X": X, "y": y}
    run = train("iris", CODE, ns, TrainOptions(test_size=0.25, random_state=0))
    assert run.estimator == "LogisticRegression" and "model" in ns
    assert 0.8 < run.metrics["accuracy"] <= 1.0
    assert {"f1_macro", "precision_macro", "confusion_matrix"} <= set(run.metrics)
    assert run.params["max_iter"] == 500 and run.code == CODE


def test_training_and_live_quality_share_one_metric_set():
    """The figure a monitor shows beside the training figure is the same computation (they used to differ)."""
    y_true, y_pred = [0, 1, 1, 0, 1], [0, 1, 0, 0, 1]
    full = metrics.classification(y_true, y_pred)
    live = metrics.classification([str(v) for v in y_true], [str(v) for v in y_pred], confusion=False)
    for key in ("accuracy", "precision", "recall", "f1", "f1_macro"):
        assert full[key] == pytest.approx(live[key]), key
    assert metrics.regression([1.0], [2.0])["mae"] == 1.0  # one row: no crash, R² undefined


def test_a_failing_cell_leaves_the_namespace_as_it_was(iris):
    X, y = iris
    ns = {"X": X, "y": y, "keep": 1}
    with pytest.raises(Exception, match="boom"):
        train("iris", "keep = 2\nraise RuntimeError('boom')\n", ns)
    assert ns["keep"] == 1 and set(ns) == {"X", "y", "keep"}
    with pytest.raises(TrainingError):
        train("iris", "x = 1\n", ns)  # no estimator defined


def test_a_binary_run_keeps_roc_and_precision_recall_curves_for_its_charts():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    code = "from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression(max_iter=5000)"
    run = train("cancer", code, {"X": X, "y": y})
    found = run.evaluation["diagnostics"]
    roc, pr = found["roc"], found["pr"]
    assert 0.9 < roc["auc"] <= 1 and 0.9 < pr["ap"] <= 1 and found["positive"] == 1
    assert len(roc["fpr"]) <= 100 and (roc["fpr"][0], roc["tpr"][-1]) == (0.0, 1.0)  # thinned, both ends kept
    assert pr["base_rate"] == pytest.approx(y.mean(), abs=0.05)


def test_a_regression_run_keeps_a_sample_of_residuals_and_multiclass_keeps_no_curves(iris):
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    run = train("diabetes", "from sklearn.linear_model import Ridge\nmodel = Ridge()", {"X": X, "y": y})
    residuals = run.evaluation["diagnostics"]["residuals"]
    assert len(residuals["predicted"]) == len(residuals["residual"]) == run.evaluation["test_rows"]  # 111 < 300
    X, y = iris
    run = train(
        "iris", "from sklearn.tree import DecisionTreeClassifier\nmodel = DecisionTreeClassifier()", {"X": X, "y": y}
    )
    assert run.evaluation["diagnostics"] == {}  # ROC is a binary picture; the confusion matrix covers the rest
