"""The HTML face: what survives JupyterLab's sanitiser, reads in both themes, and is aligned as a table should be.

The real-browser checks (computed styles, contrast in the dark theme, an untrusted copy) are in ``tests/e2e``;
these check the markup itself on real records, fast.
"""

from __future__ import annotations

import re

import pytest

from mm_magics.engine.serving.deployments import Deployment, Prediction
from mm_magics.render import to_html
from mm_magics.render.core import BLOCKS, signed, sparkline, table


def _records(ws, models):
    one = ws.registry.commit("m", models["logreg"], message="one", code="x = 1", metrics={"accuracy": 0.9, "f1": 0.8})
    two = ws.registry.commit("m", models["tree"], message="two", code="x = 2", metrics={"accuracy": 0.8, "f1": 0.85})
    dep = Deployment(
        name="m", version="m@v2", runner="docker", url="http://127.0.0.1:9", host="127.0.0.1", port=9, started="",
        container_id="abc", token_required=True, forced=True, status="running", stage="deploy",
        gates=[{"gate": "accuracy >= 0.9", "passed": False, "detail": "accuracy 0.8 (off by 0.1)"}],
    )  # fmt: skip
    pred = Prediction(
        version="m@v2", request_id="r1", outputs={"predict": [0, 1], "predict_proba": [[0.9, 0.1], [0.2, 0.8]]},
        latency_ms={"total": 3.0, "server": 1.0, "queue": 0.1, "processing": 0.6, "network": 2.0},
    )  # fmt: skip
    return [one, ws.registry.log("m"), ws.registry.diff("m@v1", "m@v2", agreement=False), ws.models(), dep, pred, two]


def test_outputs_carry_no_global_style_or_svg_and_every_cell_is_aligned(ws, models):
    """A <style> block is stripped from an untrusted notebook and leaked into every other open notebook; SVG is
    stripped too. Every table cell says its own alignment (JupyterLab's right-aligned rule loses to inline style)."""
    for record in _records(ws, models):
        html = to_html(record)
        assert "<style" not in html and "<svg" not in html and "class='dim'" not in html, type(record).__name__
        cells = re.findall(r"<t[dh]( [^>]*)?>", html)
        assert cells and all("text-align:" in (c or "") for c in cells), type(record).__name__


def test_colour_is_never_the_only_signal(ws, models):
    assert "✓" in signed(0.05) and "✗" in signed(-0.05) and "✓" in signed(-0.05, lower_better=True)
    html = to_html(_records(ws, models)[2])
    assert "-0.1 ✗" in html and "+0.05 ✓" in html  # accuracy fell, f1 rose: marked, not only red and green
    card = to_html(_records(ws, models)[4])
    assert "✗ accuracy &gt;= 0.9" in card and "⚠ deployed past refused gates" in card


def test_theme_colours_are_jupyterlab_variables_with_a_fallback(ws, models):
    html = "".join(to_html(r) for r in _records(ws, models))
    colours = set(re.findall(r"color:([^;']+)", html))
    assert colours and all(c.startswith(("var(--jp-", "color-mix(in srgb,var(--jp-")) for c in colours), colours
    assert "#555" not in html and "#ddf4ff" not in html  # the hard-coded colours that vanished in the dark theme


def test_the_deploy_card_says_how_to_get_the_token_and_links_the_url(ws, models):
    card = to_html(_records(ws, models)[4])
    assert "token = %mm_token" in card and "$(mm token)" in card and "run/token" not in card
    assert "<a href='http://127.0.0.1:9/v2/models/m'" in card


def test_a_prediction_shows_its_probabilities_and_the_latency_split(ws, models):
    html = to_html(_records(ws, models)[5])
    assert "P(class 1)" in html and "0.800" in html
    assert "processing 0.60 · queue 0.10 · overhead 0.30 · network 2.00 ms" in html


def test_sparkline_shows_range_span_and_gaps():
    html = sparkline([1.0, None, 3.0, 2.0], unit=" ms", span="last 5m → now")
    line = re.search(r"<code[^>]*>([^<]*)</code>", html).group(1)
    assert line[0] == BLOCKS[0] and line[1] == " " and line[2] == BLOCKS[-1]  # an empty bucket is a gap, not a 0
    assert "min 1 ms max 3 ms" in html and "last 5m → now" in html
    assert "no data" in sparkline([None, None])


@pytest.mark.parametrize("numeric", [(), (1,)])
def test_tables_align_labels_left_and_numbers_right(numeric):
    html = table(["metric", "value"], [("<code>a</code>", "0.5")], numeric=numeric)
    styles = re.findall(r"<td style='([^']*)'", html)
    assert "text-align:left" in styles[0]
    assert ("text-align:right" if numeric else "text-align:left") in styles[1]


def test_a_run_shows_its_charts_as_images_that_survive_the_sanitiser():
    import base64

    from sklearn.datasets import load_breast_cancer

    from mm_magics.engine.training import train

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    run = train(
        "cancer", "from sklearn.tree import DecisionTreeClassifier\nmodel = DecisionTreeClassifier()", {"X": X, "y": y}
    )
    html = to_html(run)
    images = re.findall(r"<img src='data:image/svg\+xml;base64,([^']+)'[^>]*alt='([^']+)'", html)
    assert {alt.split(" (")[0] for _, alt in images} == {"ROC curve", "precision–recall curve"}
    svg = base64.b64decode(images[0][0]).decode()
    assert svg.startswith("<svg") and "<script" not in svg and "AUC" in svg
    assert "larger: ROC curve (AUC" in html  # small by default, twice as large in the details
    assert re.search(r"<td style='[^']*background:#[0-9a-f]{6};color:#[0-9a-f]{6}'>\d+</td>", html)  # the heatmap


def test_the_lifecycle_picture_is_an_image_plus_the_verdicts_in_words(ws, models):
    import base64

    ws.registry.commit("m", models["logreg"], metrics={"accuracy": 0.95})
    ws.registry.commit("m", models["tree"], metrics={"accuracy": 0.7})
    ws.lifecycle.set_gates("m", ["accuracy >= 0.9"])
    html = to_html(ws.lifecycle.picture("m@v2"))
    data = re.search(r"<img src='data:image/svg\+xml;base64,([^']+)'", html).group(1)
    svg = base64.b64decode(data).decode()
    assert svg.count("<rect") >= 7 and "evaluate" in svg and "2 versions" in svg  # six stages and the frame
    assert "✗ deploy" in html and "accuracy &gt;= 0.9 — accuracy 0.7 fails" in html and "✓ retire" in html


def test_a_timeline_without_a_widget_is_a_picture_of_the_metric_by_stage(ws, models):
    for accuracy in (0.9, 0.92, 0.88):
        ws.registry.commit("m", models["logreg"], metrics={"accuracy": accuracy})
    ws.registry.set_alias("m@v2", "production")
    html = to_html(ws.registry.timeline("m"))
    assert "3 version(s) · production → v2" in html and "accuracy of 3 versions, coloured by stage" in html
