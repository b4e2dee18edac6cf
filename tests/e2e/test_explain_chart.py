"""%mm_explain in a real JupyterLab (Debian's Chromium through Playwright): the bar chart draws one bar per feature
with its name, SHAP bars beside when the version has them, at most 20 rows then "… N more"; its text and bars pass
WCAG AA contrast in the light and dark themes; a colleague's untrusted copy of the saved notebook shows the text bars
instead. Screenshots go to /tmp/shots/explain-*.png for a person to look at."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import nbformat
import pytest
from nbclient import NotebookClient

from mm_magics.engine import shapley

from .lab import jupyterlab, lab_env, open_notebook

SHOTS = Path("/tmp/shots")
LONG = "petal length in centimetres, measured by hand"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

CELLS = [
    "%load_ext mm_magics\nfrom sklearn.datasets import load_iris, load_breast_cancer\n"
    "X, y = load_iris(return_X_y=True, as_frame=True)\n"
    f"X = X.rename(columns={{'petal length (cm)': {LONG!r}}})",
    "%%mm_train flowers --commit -m 'a forest'\nfrom sklearn.ensemble import RandomForestClassifier\n"
    "model = RandomForestClassifier(100, random_state=0)",
    "%mm_explain flowers@v1",
    "Xb, yb = load_breast_cancer(return_X_y=True, as_frame=True)",
    "%%mm_train cancer --data Xb yb --commit -m 'thirty features'\nfrom sklearn.pipeline import make_pipeline\n"
    "from sklearn.preprocessing import StandardScaler\nfrom sklearn.linear_model import LogisticRegression\n"
    "model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))",
    "%mm_explain cancer@v1",
]

# WCAG contrast of an SVG element's fill (or a text's colour) against the colour behind it
CONTRAST_JS = """
([sel, index, prop]) => {
  const el = document.querySelectorAll(sel)[index];
  const parse = (c) => {
    const n = (c.match(/[\\d.]+/g) || []).map(Number);
    return c.startsWith('color(') ? n.map((v, i) => (i < 3 ? v * 255 : v)) : n;
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = [255, 255, 255], node = el.parentElement;
  while (node) {
    const c = parse(getComputedStyle(node).backgroundColor);
    if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) { bg = c.slice(0, 3); break; }
    node = node.parentElement;
  }
  const fg = parse(getComputedStyle(el)[prop]);
  const alpha = fg.length > 3 ? fg[3] : 1;
  const mixed = fg.slice(0, 3).map((v, i) => v * alpha + bg[i] * (1 - alpha));
  const [a, b] = [lum(mixed), lum(bg)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), color: getComputedStyle(el)[prop], background: bg};
}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab with three notebooks: one to run live, and an executed copy saved by nbclient (what `nbconvert
    --execute` leaves) twice: signed (yours) and not (a colleague's, untrusted)."""
    root = tmp_path_factory.mktemp("explain-lab")
    env = lab_env(root)
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    live = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS], metadata={"kernelspec": spec})
    nbformat.write(live, root / "explain.ipynb")
    saved = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS], metadata={"kernelspec": spec})
    with mock.patch.dict(
        os.environ, {"MM_HOME": str(root / "saved" / ".mm"), "JUPYTER_DATA_DIR": env["JUPYTER_DATA_DIR"]}
    ):
        NotebookClient(saved, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
        saved.metadata["author"] = "a colleague"  # never signed on this machine: untrusted when opened
        nbformat.write(saved, root / "colleague.ipynb")
    with jupyterlab(root, env) as server:
        yield {**server, "root": root}


def _open(browser, lab, name: str, ready: str, theme: str = "JupyterLab Light"):
    SHOTS.mkdir(parents=True, exist_ok=True)
    return open_notebook(browser, lab, name, ready, theme, width=1300)


def _check_contrast(page) -> None:
    for sel, prop, least in (
        (".mm-explain .mm-ex-name", "fill", 4.5),
        (".mm-explain .mm-ex-value", "fill", 4.5),
        (".mm-explain .mm-ex-panel", "fill", 4.5),
        (".mm-explain .mm-ex-unit", "fill", 4.5),
        (".mm-explain .mm-ex-foot", "color", 4.5),
        (".mm-explain .mm-ex-bar", "fill", 3.0),  # graphics: WCAG 1.4.11
        (".mm-explain .mm-ex-shap", "fill", 3.0),
    ):
        if page.locator(sel).count():
            found = page.evaluate(CONTRAST_JS, [sel, 0, prop])
            assert found["ratio"] >= least, (sel, found)


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_chart_has_one_bar_per_feature_with_its_name(browser, lab, theme):
    page = _open(browser, lab, "explain.ipynb", ready="mm_explain cancer", theme=theme)
    page.wait_for_selector(".jp-DebuggerBugButton[aria-disabled='false']", timeout=60_000)  # the kernel is ready
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    charts = page.locator(".mm-explain")
    charts.nth(1).wait_for(timeout=180_000)
    flowers, cancer = charts.nth(0), charts.nth(1)

    rows = flowers.locator("g.mm-ex-row")
    assert rows.count() == 4 and flowers.locator("rect.mm-ex-bar").count() == 4
    names = rows.evaluate_all("gs => gs.map(g => g.dataset.feature)")
    assert set(names) == {"sepal length (cm)", "sepal width (cm)", LONG, "petal width (cm)"}
    shown = flowers.locator("text.mm-ex-name").all_text_contents()
    assert "sepal width (cm)" in shown and LONG not in shown and LONG[:23] + "…" in shown  # truncated…
    assert LONG in rows.nth(names.index(LONG)).locator("title").text_content()  # …with the full name as its tooltip
    widths = flowers.locator("rect.mm-ex-bar").evaluate_all("rs => rs.map(r => r.width.baseVal.value)")
    assert widths == sorted(widths, reverse=True) and widths[0] > 100  # largest permutation importance first
    if shapley.available():
        assert flowers.locator("rect.mm-ex-shap").count() == 4
        assert "mean |SHAP|" in flowers.text_content() and "TreeExplainer" in flowers.text_content()
    else:
        assert "SHAP: install mm_magics[shap]" in flowers.text_content()
    assert flowers.locator("path.mm-ex-whisker").count() >= 1  # the spread over the repeats

    assert cancer.locator("g.mm-ex-row").count() == 20 and "… 10 more features" in cancer.text_content()
    slug = "light" if "Light" in theme else "dark"
    flowers.scroll_into_view_if_needed()
    flowers.screenshot(path=str(SHOTS / f"explain-{slug}.png"))
    cancer.scroll_into_view_if_needed()
    cancer.screenshot(path=str(SHOTS / f"explain-many-{slug}.png"))
    _check_contrast(page)
    page.close()


def test_a_colleagues_untrusted_copy_shows_the_text_bars(browser, lab):
    page = _open(browser, lab, "colleague.ipynb", ready="mm_explain cancer")
    outputs = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output", has_text="permutation")
    output = outputs.first  # flowers@v1's
    output.wait_for(timeout=60_000)
    output.scroll_into_view_if_needed()
    output.screenshot(path=str(SHOTS / "explain-untrusted.png"))
    text = output.text_content()
    assert "█" in text and "permutation importance" in text and LONG in text  # the static picture, sanitised
    assert page.locator(".mm-explain").count() == 0  # no widget drawn from an untrusted notebook
    page.close()
