"""The notebook as a data scientist sees it: a real JupyterLab on 127.0.0.1 and Debian's Chromium through Playwright.

Checks what only a browser shows: Tab completion after ``NAME@`` in a real cell, the computed alignment of a version
card, header contrast in the dark theme, ✓/✗ markers beside red and green, and a colleague's (untrusted) copy of the
notebook keeping its meaning after JupyterLab's sanitiser. Screenshots go to ``tests/e2e/screenshots/`` (git-ignored)
for a person to look at. Skipped only where no Chromium is installed and ``CI`` is unset; in CI that is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from unittest import mock

import nbformat
import pytest
from nbclient import NotebookClient

from .lab import jupyterlab, lab_env, open_notebook, use_theme

ALIGNS = "tds => tds.map(td => getComputedStyle(td).textAlign)"
SHOTS = Path(__file__).parent / "screenshots"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

CELLS = [
    "%load_ext mm_magics\nfrom sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True, as_frame=True)",
    "%%mm_train iris --commit -m 'logistic regression'\nfrom sklearn.linear_model import LogisticRegression\n"
    "model = LogisticRegression(max_iter=500)",
    "%%mm_train iris --commit -m 'a stump'\nfrom sklearn.tree import DecisionTreeClassifier\n"
    "model = DecisionTreeClassifier(max_depth=1)",
    "%mm_alias iris@v1 production",
    "from mm_magics.engine import Workspace\nWorkspace.open().registry.get('iris@v1')",
    "%mm_diff iris@v1 iris@v2",
    "%mm_log iris",
    "%mm_deploy iris@v1",
    "for i in range(40):\n    _ = %mm_predict iris X.iloc[[i]]\n%mm_probe iris -n 5",
    "%mm_monitor iris --window 10m",
    "%mm_undeploy iris",
    "from sklearn.datasets import load_breast_cancer\nXb, yb = load_breast_cancer(return_X_y=True, as_frame=True)",
    "%%mm_train cancer --data Xb yb\nfrom sklearn.linear_model import LogisticRegression\n"
    "model = LogisticRegression(max_iter=5000)",
]

# WCAG relative luminance and contrast of two CSS colours, and the colour actually behind an element
WIDGET_CELLS = [
    "%load_ext mm_magics\nfrom sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True, as_frame=True)",
    "%%mm_train flowers --commit -m 'good'\nfrom sklearn.linear_model import LogisticRegression\n"
    "model = LogisticRegression(max_iter=500)",
    "%%mm_train flowers --commit -m 'weak'\nfrom sklearn.tree import DecisionTreeClassifier\n"
    "model = DecisionTreeClassifier(max_depth=1)",
    '%mm_gate flowers "accuracy>=0.9"',
    "%mm_lifecycle flowers@v2",
]

TIMELINE_CELLS = [
    "%load_ext mm_magics\nfrom sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True, as_frame=True)",
    "%%mm_train blooms --commit -m 'good'\nfrom sklearn.linear_model import LogisticRegression\n"
    "model = LogisticRegression(max_iter=500)",
    "%%mm_train blooms --from blooms@v1 --commit -m 'weak'\nfrom sklearn.tree import DecisionTreeClassifier\n"
    "model = DecisionTreeClassifier(max_depth=1)",
    "%mm_log blooms",
    "%mm_monitor blooms --refresh 1s --for 5m --window 2m",
]
# a commit made by another process while the timeline is on screen
ELSEWHERE = """
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from mm_magics.engine import Workspace
X, y = load_iris(return_X_y=True)
with Workspace.open() as ws:
    ws.registry.commit("blooms", DummyClassifier().fit(X, y), message="from another process", metrics={"accuracy": 0.3})
"""

CONTRAST_JS = """
([sel, index]) => {
  const el = document.querySelectorAll(sel)[index];
  // rgb(r, g, b[, a]) in 0..255, or color(srgb r g b[ / a]) in 0..1 (what color-mix computes to)
  const parse = (c) => {
    const n = (c.match(/[\\d.]+/g) || []).map(Number);
    return c.startsWith('color(') ? n.map((v, i) => (i < 3 ? v * 255 : v)) : n;
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = [255, 255, 255], node = el;
  while (node) {
    const c = parse(getComputedStyle(node).backgroundColor);
    if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) { bg = c.slice(0, 3); break; }
    node = node.parentElement;
  }
  const fg = parse(getComputedStyle(el).color);
  const alpha = fg.length > 3 ? fg[3] : 1;  // a translucent text colour is blended onto its background
  const mixed = fg.slice(0, 3).map((v, i) => v * alpha + bg[i] * (1 - alpha));
  const [a, b] = [lum(mixed), lum(bg)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), color: getComputedStyle(el).color, background: bg, text: el.textContent};
}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a token, its own settings, and two copies of an executed notebook: one signed
    (trusted, as your own), one not (a colleague's, untrusted)."""
    root = tmp_path_factory.mktemp("lab")
    env = lab_env(root)
    data_dir = Path(env["JUPYTER_DATA_DIR"])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    # the kernel nbclient starts and the notary see this workspace and data dir; os.environ is restored afterwards
    with mock.patch.dict(os.environ, {"MM_HOME": env["MM_HOME"], "JUPYTER_DATA_DIR": env["JUPYTER_DATA_DIR"]}):
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
        nbformat.write(nb, root / "mine.ipynb")
        from nbformat.sign import NotebookNotary

        NotebookNotary(data_dir=str(data_dir)).sign(nb)  # what saving it in your own JupyterLab does
        nbformat.write(nb, root / "mine.ipynb")
        colleague = nbformat.read(root / "mine.ipynb", as_version=4)
        colleague.metadata["author"] = "a colleague"  # another file: its signature is not in this machine's notary
        nbformat.write(colleague, root / "colleague.ipynb")
        widgets = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in WIDGET_CELLS])
        widgets.metadata["kernelspec"] = nb.metadata["kernelspec"]
        nbformat.write(widgets, root / "widgets.ipynb")  # run live in JupyterLab: a widget needs its kernel
        timeline = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in TIMELINE_CELLS])
        timeline.metadata["kernelspec"] = nb.metadata["kernelspec"]
        nbformat.write(timeline, root / "timeline.ipynb")
    with jupyterlab(root, env) as server:
        yield {**server, "root": root, "env": env}


def _open(browser, lab, name: str, theme: str = "JupyterLab Light", ready: str = "predictions agree"):
    SHOTS.mkdir(exist_ok=True)
    return open_notebook(browser, lab, name, ready, theme)


def _output_with(page, text: str):
    """The output showing ``text`` in the notebook on screen (a hidden tab's outputs are in the DOM too)."""
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output", has_text=text).first


def test_version_card_reads_left_to_right_in_the_light_theme(browser, lab):
    page = _open(browser, lab, "mine.ipynb")
    card = _output_with(page, "artifact")
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(SHOTS / "version-card-light.png"))
    aligns = card.locator("table").first.locator("td").evaluate_all(ALIGNS)
    assert aligns and set(aligns) == {"left"}, aligns  # JupyterLab's rule right-aligned them, 870 px apart
    label, value = (
        card.locator("tr").first.locator("td").evaluate_all("tds => tds.map(td => td.getBoundingClientRect().left)")
    )
    assert value - label < 200, (label, value)
    page.screenshot(path=str(SHOTS / "notebook-light.png"), full_page=True)
    page.close()


def test_dark_theme_headers_and_marks_meet_wcag_aa(browser, lab):
    page = _open(browser, lab, "mine.ipynb", theme="JupyterLab Dark")
    diff = _output_with(page, "predictions agree")
    diff.scroll_into_view_if_needed()
    diff.screenshot(path=str(SHOTS / "diff-dark.png"))
    headers = page.locator(".mm th").count()
    assert headers > 5
    for i in range(headers):
        found = page.evaluate(CONTRAST_JS, [".mm th", i])
        assert found["ratio"] >= 4.5, found  # was #555 on #111: 2.5:1
    # a worse delta says so in text (✗), and its red still reads on the dark background
    worse = page.evaluate(
        "() => [...document.querySelectorAll('.mm span')].filter(s => s.textContent.includes('✗')).length"
    )
    assert worse > 0
    for i in range(worse):
        found = page.evaluate(
            CONTRAST_JS.replace("document.querySelectorAll(sel)[index]", "[...document.querySelectorAll(sel)]"
                                ".filter(s => s.textContent.includes('✗'))[index]"),
            [".mm span", i],
        )  # fmt: skip
        assert found["ratio"] >= 4.5, found
    page.screenshot(path=str(SHOTS / "notebook-dark.png"), full_page=True)
    page.close()


def test_a_colleagues_untrusted_copy_keeps_its_meaning(browser, lab):
    page = _open(browser, lab, "colleague.ipynb")
    page.screenshot(path=str(SHOTS / "notebook-untrusted.png"), full_page=True)
    assert page.locator(".jp-Notebook style").count() == 0  # nothing global to strip, nothing to leak
    monitor = _output_with(page, "requests per bucket")
    monitor.scroll_into_view_if_needed()
    monitor.screenshot(path=str(SHOTS / "monitor-untrusted.png"))
    text = monitor.text_content()
    assert any(block in text for block in "▁▂▃▄▅▆▇█"), text  # the sparklines survived the sanitiser
    assert "min " in text and "max " in text
    diff = _output_with(page, "predictions agree").text_content()
    assert "-0.3421 ✗" in diff  # which delta is worse reads without colour
    card = _output_with(page, "artifact")
    aligns = card.locator("table").first.locator("td").evaluate_all(ALIGNS)
    assert set(aligns) == {"left"}, aligns
    charts = _output_with(page, "larger: ROC curve")
    charts.scroll_into_view_if_needed()
    charts.screenshot(path=str(SHOTS / "charts-untrusted.png"))
    drawn = charts.locator("img").evaluate_all("imgs => imgs.map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    assert [ok for _, ok in drawn if not _.startswith("larger")] and all(ok for _, ok in drawn[:2]), drawn
    page.screenshot(path=str(SHOTS / "notebook-untrusted.png"), full_page=True)
    page.close()


def test_tab_after_name_at_offers_versions_and_aliases_only(browser, lab):
    page = _open(browser, lab, "mine.ipynb")
    page.wait_for_selector(".jp-DebuggerBugButton[aria-disabled='false']", timeout=60_000)  # the kernel is ready
    first = page.locator(".jp-Cell").first
    first.click()
    page.keyboard.press("Shift+Enter")  # %load_ext in this kernel
    page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-InputPrompt')][0].textContent.match(/\\[\\d+\\]/)", timeout=60_000
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:insert-cell-below')")
    page.keyboard.press("Enter")  # edit mode in the new cell
    page.keyboard.type("%mm_diff iris@")
    page.keyboard.press("Tab")
    page.wait_for_selector(".jp-Completer-item", timeout=30_000)
    items = page.locator(".jp-Completer-item .jp-Completer-match").all_text_contents()
    page.screenshot(path=str(SHOTS / "completion.png"))
    assert set(items) == {"iris@v1", "iris@v2", "iris@production"}, items  # it offered abs, AbstractSet, ...
    page.close()


def test_the_lifecycle_widget_draws_the_graph_and_answers_clicks_with_the_engine(browser, lab):
    page = _open(browser, lab, "widgets.ipynb", ready="mm_lifecycle")
    page.wait_for_selector(".jp-DebuggerBugButton[aria-disabled='false']", timeout=60_000)  # the kernel is ready
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    widget = page.locator(".mm-lifecycle")
    widget.wait_for(timeout=120_000)
    stages = widget.locator("g.mm-lc-stage")
    assert stages.count() == 6  # design, train, evaluate, deploy, maintain, retire
    assert widget.locator(".mm-lc-head").text_content() == "flowers: flowers@v2 is in evaluate"
    moves = widget.locator(".mm-lc-moves li").all_text_contents()
    assert any(m.startswith("✗ deploy: accuracy >= 0.9") for m in moves), moves  # refused, with the gate
    assert widget.locator("path.mm-lc-edge.refused").count() == 1
    widget.screenshot(path=str(SHOTS / "lifecycle-widget.png"))
    widget.locator("g.mm-lc-stage[data-stage='evaluate']").click()  # its versions, from the engine
    buttons = widget.locator(".mm-lc-versions button")
    buttons.first.wait_for(timeout=30_000)
    assert buttons.all_text_contents() == ["flowers@v2", "flowers@v1"]
    widget.locator(".mm-lc-versions button", has_text="flowers@v1").click()
    page.wait_for_function(
        "() => document.querySelector('.mm-lifecycle .mm-lc-head').textContent.includes('flowers@v1')",
        timeout=30_000,
    )
    assert any(m.startswith("✓ deploy") for m in widget.locator(".mm-lc-moves li").all_text_contents())
    stages.nth(2).focus()  # usable by keyboard: Enter on a focused stage does what a click does
    page.keyboard.press("Enter")
    widget.screenshot(path=str(SHOTS / "lifecycle-widget-v1.png"))
    page.close()


def test_a_saved_executed_notebook_redraws_its_widgets_from_saved_state(browser, lab):
    """nbclient (mm demo, nbconvert --execute) saves widget state: opened later, the timeline draws from it."""
    page = _open(browser, lab, "mine.ipynb")
    timeline = page.locator(".mm-timeline").first
    timeline.wait_for(timeout=60_000)
    timeline.scroll_into_view_if_needed()
    assert timeline.locator(".mm-tl-title").first.text_content() == "iris — 2 versions"
    page.wait_for_function("() => Number(document.querySelector('.mm-timeline').dataset.drawn) === 2")
    sparklines = page.locator(".mm-sparklines").first
    sparklines.wait_for(timeout=30_000)
    assert "requests/s" in sparklines.text_content()
    timeline.screenshot(path=str(SHOTS / "timeline-saved.png"))
    page.close()


def _post(url: str, rows: list) -> int:
    import json

    body = json.dumps({"instances": rows}).encode()
    req = urllib.request.Request(url + "/invocations", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def _line_points(page) -> int:
    """Points drawn on the latency card's p99 line (a bucket with no request is a gap, not a point)."""
    return page.evaluate(
        "() => { const p = document.querySelectorAll('.mm-sparklines .mm-sp-card')[1].querySelector('path.mm-sp-line');"
        " return p ? (p.getAttribute('d').match(/[ML]/g) || []).length : 0; }"
    )


@pytest.mark.parametrize("theme", ["JupyterLab Light"])
def test_the_timeline_deploys_a_version_and_follows_changes_made_elsewhere(browser, lab, theme):
    from sklearn.datasets import load_iris

    page = _open(browser, lab, "timeline.ipynb", theme=theme, ready="mm_log")
    page.wait_for_selector(".jp-DebuggerBugButton[aria-disabled='false']", timeout=60_000)  # the kernel is ready
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    timeline = page.locator(".mm-timeline")
    timeline.wait_for(timeout=180_000)
    title = timeline.locator(".mm-tl-head .mm-tl-title")
    assert title.text_content() == "blooms — 2 versions"
    assert "evaluate (2)" in timeline.locator(".mm-tl-legend").text_content()
    page.wait_for_function("() => Number(document.querySelector('.mm-timeline').dataset.drawn) === 2")
    # keyboard: focus the canvas, Home selects the first version; its details come from the engine
    timeline.locator("canvas.mm-tl-canvas").focus()
    page.keyboard.press("Home")
    details = timeline.locator(".mm-tl-details")
    details.wait_for(timeout=30_000)
    assert details.locator(".mm-tl-title").text_content().startswith("blooms@v1 — evaluate")
    page.keyboard.press("ArrowRight")  # the next version: its diff against its parent
    page.wait_for_function(
        "() => document.querySelector('.mm-timeline .mm-tl-details .mm-tl-title')?.textContent.startsWith('blooms@v2')"
    )
    assert "against its parent blooms@v1" in timeline.locator(".mm-tl-details").text_content()
    timeline.screenshot(path=str(SHOTS / "timeline-details.png"))
    page.keyboard.press("Home")
    page.wait_for_function(
        "() => document.querySelector('.mm-timeline .mm-tl-details .mm-tl-title')?.textContent.startsWith('blooms@v1')"
    )
    # deploy from the timeline: a confirmation that says what will happen, then one engine call
    timeline.get_by_role("button", name="Deploy…", exact=True).click()
    confirm = timeline.locator(".mm-tl-confirm")
    assert "a local server starts on 127.0.0.1" in confirm.text_content()
    confirm.locator("button.primary").click()
    ok = timeline.locator(".mm-tl-ok")
    ok.wait_for(timeout=120_000)
    message = ok.text_content()
    assert message.startswith("✓ blooms@v1 serves at http://127.0.0.1:"), message
    url = message.split(" serves at ")[1].split(" ")[0]
    X, _ = load_iris(return_X_y=True)
    assert _post(url, X[:2].tolist()) == 200  # the deploy from the timeline really serves
    # a commit from another process shows up while the timeline is on screen
    subprocess.run([sys.executable, "-c", ELSEWHERE], env=lab["env"], check=True, timeout=120)
    page.wait_for_function(
        "() => document.querySelector('.mm-timeline .mm-tl-head .mm-tl-title').textContent === 'blooms — 3 versions'",
        timeout=20_000,
    )
    page.wait_for_function("() => Number(document.querySelector('.mm-timeline').dataset.drawn) === 3")  # in view
    timeline.scroll_into_view_if_needed()
    timeline.screenshot(path=str(SHOTS / "timeline-live.png"))
    # zoom in by keyboard: fewer versions drawn; drag to pan; 0 fits everything again
    canvas = timeline.locator("canvas.mm-tl-canvas")
    canvas.focus()
    drawn = "() => Number(document.querySelector('.mm-timeline').dataset.drawn)"
    for _ in range(12):  # each + halves the span in view
        page.keyboard.press("+")
        if page.evaluate(drawn) < 3:
            break
    assert page.evaluate(drawn) < 3
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 - 300, box["y"] + 40, steps=5)
    page.mouse.up()
    page.keyboard.press("0")
    assert page.evaluate(drawn) == 3
    # the sparklines grow while traffic flows
    sparklines = page.locator(".mm-sparklines")
    sparklines.scroll_into_view_if_needed()
    before = _line_points(page)
    for i in range(6):
        for j in range(10):
            assert _post(url, X[i * 10 + j : i * 10 + j + 1].tolist()) == 200
        time.sleep(0.5)
    deadline = time.monotonic() + 20
    while _line_points(page) <= before and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert _line_points(page) > before
    assert "● live" in sparklines.locator(".mm-sp-state").text_content()
    sparklines.screenshot(path=str(SHOTS / "sparklines-live.png"))
    use_theme(page, "JupyterLab Dark", settle_ms=1500)
    sparklines.screenshot(path=str(SHOTS / "sparklines-dark.png"))
    timeline.scroll_into_view_if_needed()
    timeline.screenshot(path=str(SHOTS / "timeline-dark.png"))
    value = page.evaluate(CONTRAST_JS, [".mm-sparklines .mm-sp-title", 0])
    assert value["ratio"] >= 4.5, value
    subprocess.run([sys.executable, "-m", "mm_magics.cli", "undeploy", "blooms"], env=lab["env"], timeout=60)
    page.close()
