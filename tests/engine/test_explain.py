"""SHAP values in a version's explanation (the optional ``shap`` extra), committed through the registry.

Needs ``shap`` (``pip install mm_magics[shap]``, in the ``test`` extra); without it only the "not installed" test
runs. The values are checked against shap itself on the model loaded back from the registry, so they are SHAP values,
not a copy of the importances."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from mm_magics.engine import explain, shapley
from mm_magics.render import to_html

needs_shap = pytest.mark.skipif(not shapley.available(), reason="shap is not installed: pip install mm_magics[shap]")


@pytest.fixture(scope="module")
def dominant():
    """A table where one feature (``signal``) decides the label and three others are noise."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(400, 4)), columns=["noise_a", "signal", "noise_b", "noise_c"])
    y = (X["signal"] + 0.1 * rng.normal(size=400) > 0).astype(int)
    return X, y


def _shap_of(x: explain.Explanation) -> dict[str, float]:
    return {f["feature"]: f["shap"] for f in x.features}


@needs_shap
def test_a_forest_and_a_logistic_regression_get_shap_values_at_commit(ws, iris):
    X, y = iris
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    ws.registry.commit("forest", forest, message="rf", probe_data=X)
    ws.registry.commit("linear", LogisticRegression(max_iter=500).fit(X, y), message="lr", probe_data=X)
    for name, method in (("forest@v1", "TreeExplainer"), ("linear@v1", "LinearExplainer")):
        x = ws.registry.explanation(name)
        assert x.has_shap() and x.shap_method.startswith(method) and x.shap_error is None
        assert x.shap_rows == 100 and x.rows == 150  # at most 100 of the 150-row sample, and it says so
        assert all(f["shap"] >= 0 for f in x.features) and set(_shap_of(x)) == set(X.columns)
        assert "averaged over 3 classes" in x.shap_output
        assert "SHAP" in str(x) and "on 100 of 150 rows" in str(x)
    assert ws.registry.explanation("forest@v1").shap_output.startswith("probability")
    assert ws.registry.explanation("linear@v1").shap_output.startswith("decision function")
    html = to_html(ws.registry.explanation("forest@v1"))
    assert "mean |SHAP|" in html and html.count("SHAP: mean |SHAP value| of the probability") == 1


@needs_shap
def test_a_trees_shap_values_add_up_to_its_output_and_are_the_ones_stored(ws, iris):
    """Local accuracy on the model loaded back from the registry: expected value + Σ SHAP = predict_proba for each
    row; and the stored mean |SHAP| is shap's own on the same rows, so it is not a copy of the importances."""
    import shap

    X, y = iris
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    ws.registry.commit("forest", forest, message="rf", probe_data=X)
    x = ws.registry.explanation("forest@v1")
    loaded = ws.registry.checkout("forest@v1")
    rows = ws.registry.probe_data("forest@v1").iloc[: x.shap_rows]
    explainer = shap.TreeExplainer(loaded)
    values = explainer.shap_values(rows)  # (rows, features, classes)
    reconstructed = values.sum(axis=1) + explainer.expected_value
    np.testing.assert_allclose(reconstructed, loaded.predict_proba(rows), atol=1e-6)
    expected = np.abs(values).mean(axis=0).mean(axis=1)
    stored = _shap_of(x)
    np.testing.assert_allclose([stored[c] for c in X.columns], expected, rtol=1e-9)
    impurity = {f["feature"]: f["own"] for f in x.features}
    assert not np.allclose([stored[c] for c in X.columns], [impurity[c] for c in X.columns], rtol=0.05)


@needs_shap
@pytest.mark.parametrize(
    "model",
    [RandomForestClassifier(n_estimators=50, random_state=0), LogisticRegression()],
    ids=["forest", "logreg"],
)
def test_the_top_feature_by_shap_agrees_with_permutation_importance(ws, dominant, model):
    X, y = dominant
    ws.registry.commit("m", model.fit(X, y), message="one feature decides", probe_data=X)
    x = ws.registry.explanation("m@v1")
    assert x.features[0]["feature"] == "signal"  # permutation importance, largest first
    shap = _shap_of(x)
    assert max(shap, key=shap.get) == "signal"
    assert shap["signal"] > 3 * max(v for k, v in shap.items() if k != "signal")


@needs_shap
def test_text_columns_are_explained_by_the_model_agnostic_explainer(ws):
    """A pipeline over a text column: shap's masker mixes numbers, so the column goes in as codes and comes back as
    text before the model sees it."""
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"colour": rng.choice(["red", "blue", "green"], 300), "size": rng.normal(size=300)})
    y = (X["colour"] == "red").astype(int)
    model = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough"), LogisticRegression()
    ).fit(X, y)
    ws.registry.commit("colours", model, message="text column", probe_data=X)
    x = ws.registry.explanation("colours@v1")
    assert x.shap_method.startswith("PermutationExplainer") and x.shap_output.startswith("probability")
    shap = _shap_of(x)
    assert shap["colour"] > 10 * shap["size"]
    assert x.shap_rows == 50 and "approximate" in x.shap_method


@needs_shap
def test_a_failure_inside_shap_is_recorded_and_the_commit_succeeds(ws, iris, monkeypatch):
    import shap

    def broken(self, *args, **kwargs):
        raise RuntimeError("tree walk failed\nsecond line")

    monkeypatch.setattr(shap.TreeExplainer, "shap_values", broken)
    X, y = iris
    version = ws.registry.commit("rf", RandomForestClassifier(n_estimators=10).fit(X, y), message="m", probe_data=X)
    assert version.explanation is not None  # committed, with permutation importance
    x = ws.registry.explanation("rf@v1")
    assert x.shap_error == "RuntimeError: tree walk failed second line" and not x.has_shap()
    assert all("shap" not in f for f in x.features) and x.features[0]["importance"] > 0
    assert "SHAP: RuntimeError: tree walk failed" in str(x)


@needs_shap
def test_a_forest_too_large_for_the_commit_budget_says_why_it_has_no_shap(ws, iris, monkeypatch):
    monkeypatch.setattr(shapley, "TREE_WORK", 1000.0)
    X, y = iris
    ws.registry.commit(
        "rf", RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y), message="m", probe_data=X
    )
    x = ws.registry.explanation("rf@v1")
    assert x.shap_error.startswith("not computed: TreeSHAP over 10 trees with") and not x.has_shap()


def test_without_shap_the_document_says_nothing_and_the_text_says_how(ws, iris, models, monkeypatch):
    monkeypatch.setitem(sys.modules, "shap", None)  # import shap fails, find_spec answers None: not installed
    X, _ = iris
    doc = explain.explain(models["logreg"], X, "classification")
    assert not [k for k in doc if "shap" in k] and not [k for f in doc["features"] for k in f if "shap" in k]
    ws.registry.commit("m", models["logreg"], message="one", probe_data=X)
    text = str(ws.registry.explanation("m@v1"))
    assert text.count("SHAP") == 1 and text.endswith("SHAP: install mm_magics[shap]")
    html = to_html(ws.registry.explanation("m@v1"))
    assert html.count("SHAP") == 1 and "install mm_magics[shap]</span>" in html  # once, dim; no SHAP column
