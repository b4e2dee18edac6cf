"""The explanation bar chart from Python: its synced state carries every feature's numbers, its output carries the
record's text bars; ``%mm_explain`` shows it where a widget front end runs and the record (HTML) elsewhere."""

from __future__ import annotations

import pytest
from sklearn.ensemble import RandomForestClassifier

from mm_magics.engine import shapley
from mm_magics.widgets import widget_for
from mm_magics.widgets.explanation import ExplanationChart

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def explained(ws, iris):
    X, y = iris
    ws.registry.commit("m", RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y), probe_data=X)
    return ws.registry.explanation("m@v1")


def test_the_traits_carry_every_feature_largest_importance_first(ws, explained):
    chart = widget_for(ws, explained)
    assert isinstance(chart, ExplanationChart)
    c = chart.chart
    by_name = {f["feature"]: f for f in explained.features}
    assert sorted(c["feature"]) == sorted(by_name) and len(c["feature"]) == 4
    assert c["importance"] == sorted(c["importance"], reverse=True)
    for i, name in enumerate(c["feature"]):
        assert c["importance"][i] == by_name[name]["importance"] and c["std"][i] == by_name[name]["std"]
        assert c["own_value"][i] == by_name[name]["own"]
    assert c["version"] == "m@v1" and c["scoring"] == "accuracy" and c["own"] == "impurity importances"
    if shapley.available():
        assert [c["shap"][i] for i in range(4)] == [by_name[n]["shap"] for n in c["feature"]]
        assert c["shap_output"].startswith("probability") and c["shap_note"].startswith("SHAP: mean |SHAP value|")


def test_without_shap_values_the_chart_has_no_shap_column_and_says_how(ws, iris, models, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "shap", None)  # not installed
    X, _ = iris
    ws.registry.commit("m", models["logreg"], probe_data=X)
    c = ExplanationChart(ws, ws.registry.explanation("m@v1")).chart
    assert c["shap"] == [] and c["shap_output"] is None and c["shap_note"] == "SHAP: install mm_magics[shap]"
    assert len(c["feature"]) == 4 and c["own"] == "coefficients"


def test_the_output_carries_the_static_picture_too(ws, explained):
    bundle = ExplanationChart(ws, explained)._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert WIDGET_MIME in data
    assert "█" in data["text/html"] and "permutation importance" in data["text/html"]  # untrusted / saved copy
    assert data["text/plain"].startswith("m@v1: permutation importance")


def _outputs(kc, code: str) -> list[dict]:
    """The display data a real kernel sends for ``code`` (display_data and execute_result, by MIME type)."""
    shown: list[dict] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] in ("display_data", "execute_result"):
            shown.append(msg["content"]["data"])
        if msg["msg_type"] == "error":
            shown.append({"error": msg["content"]["evalue"]})

    reply = kc.execute_interactive(code, timeout=120, output_hook=hook)
    assert reply["content"]["status"] == "ok", shown
    return shown


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A real IPython kernel (what JupyterLab talks to) with one explained forest committed."""
    import os

    from jupyter_client.manager import start_new_kernel

    root = tmp_path_factory.mktemp("kernel")
    km, kc = start_new_kernel(kernel_name="python3", env={**os.environ, "MM_HOME": str(root / ".mm")}, cwd=str(root))
    try:
        _outputs(
            kc,
            "%load_ext mm_magics\nfrom sklearn.datasets import load_iris\n"
            "X, y = load_iris(return_X_y=True, as_frame=True)",
        )
        _outputs(
            kc,
            "%%mm_train flowers --commit -m 'a forest'\nfrom sklearn.ensemble import RandomForestClassifier\n"
            "model = RandomForestClassifier(20, random_state=0)",
        )
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_mm_explain_shows_the_chart_where_a_widget_front_end_runs(kernel):
    shown = _outputs(kernel, "%mm_explain flowers@v1")
    assert len(shown) == 1 and WIDGET_MIME in shown[0], shown
    assert "█" in shown[0]["text/html"]  # its static picture: what a saved or untrusted copy shows
    assert _outputs(kernel, "x = %mm_explain flowers@v1\ntype(x).__name__") == [{"text/plain": "'Explanation'"}]


def test_mm_explain_shows_the_record_where_no_widget_can(kernel):
    _outputs(kernel, "%config MMMagics.widgets = False")
    try:
        shown = _outputs(kernel, "%mm_explain flowers@v1")
    finally:
        _outputs(kernel, "%config MMMagics.widgets = True")
    assert len(shown) == 1 and WIDGET_MIME not in shown[0], shown
    assert "█" in shown[0]["text/html"] and shown[0]["text/plain"].startswith("flowers@v1: permutation importance")
