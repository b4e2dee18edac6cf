"""A canary release in the live sparklines, in a real JupyterLab and Debian's Chromium: the rate chart draws the
champion's and the challenger's lines on the same axes, a legend names both versions, each chart shows both values,
and the challenger's line and value keep their contrast on the light and the dark theme. Screenshots go to
``$MM_SHOTS`` (default ``tests/e2e/screenshots/``, git-ignored) for a person to look at."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from .lab import chromium_or_skip, jupyterlab, lab_env, use_theme

SHOTS = Path(os.environ.get("MM_SHOTS") or Path(__file__).parent / "screenshots")
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

CELLS = [
    "%load_ext mm_magics\nimport time\nfrom sklearn.datasets import load_iris\n"
    "X, y = load_iris(return_X_y=True, as_frame=True)",
    "%%mm_train petals --commit -m 'logistic regression'\nfrom sklearn.linear_model import LogisticRegression\n"
    "model = LogisticRegression(max_iter=500)",
    "%%mm_train petals --commit -m 'a one-split tree'\nfrom sklearn.tree import DecisionTreeClassifier\n"
    "model = DecisionTreeClassifier(max_depth=1)",
    "%mm_deploy petals@v1",
    # the tree is worse on the holdout, so its gate refuses it: forced with a reason, which is what a canary is for
    "%mm_deploy petals@v2 --canary 30 --force -m 'see how the tree does on live traffic'",
    # traffic over ~20 one-second buckets, then its ground truth; the last bucket settles before the monitor reads
    "ids, labels = [], []\nfor i in range(150):\n    p = %mm_predict petals X.iloc[[i]]\n"
    "    ids.append(p.request_id)\n    labels.append(int(y.iloc[i]))\n    time.sleep(0.1)\n"
    "%mm_feedback petals labels --ids ids\ntime.sleep(4)",
    "%mm_monitor petals --window 1m",
]

# WCAG contrast of an element's text colour (or an SVG element's stroke) against the background behind it
CONTRAST_JS = """
([sel, prop]) => {
  const el = document.querySelector(sel);
  const probe = document.createElement('canvas').getContext('2d');
  const rgb = (c) => {  // any CSS colour (color-mix, color(srgb ...)) to [r, g, b, a] through a canvas
    probe.clearRect(0, 0, 1, 1); probe.fillStyle = '#000'; probe.fillStyle = c; probe.fillRect(0, 0, 1, 1);
    const d = probe.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2], d[3] / 255];
  };
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = [255, 255, 255], node = el.closest('.mm-sp-card') || el;
  while (node) {
    const c = getComputedStyle(node).backgroundColor;
    if (c && c !== 'transparent' && rgb(c)[3] > 0.5) { bg = rgb(c).slice(0, 3); break; }
    node = node.parentElement;
  }
  const value = getComputedStyle(el)[prop];
  const fg = rgb(value);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return {ratio: (a + 0.05) / (b + 0.05), color: value, background: bg};
}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    chromium_or_skip()
    root = tmp_path_factory.mktemp("release")
    env = lab_env(root)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "release.ipynb")  # run live in JupyterLab: the widget needs its kernel
    with jupyterlab(root, env) as server:
        yield {**server, "root": root, "env": env}
        subprocess.run([sys.executable, "-m", "mm_magics.cli", "undeploy", "petals"], env=env, timeout=60)


def test_a_canary_draws_beside_the_champion_with_a_legend_on_both_themes(browser, lab):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{lab['url']}/lab/tree/release.ipynb?reset&token={lab['token']}")
    page.wait_for_selector(".jp-DebuggerBugButton[aria-disabled='false']", timeout=90_000)  # the kernel is ready
    use_theme(page, "JupyterLab Light", settle_ms=1500)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    widget = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .mm-sparklines")
    legend = widget.locator(".mm-sp-legend")
    legend.wait_for(timeout=300_000)
    assert "petals@v1 champion" in legend.text_content()
    assert "petals@v2 canary 30 %" in legend.text_content()

    rate = widget.locator(".mm-sp-card").first
    assert rate.locator(".mm-sp-title").text_content() == "requests/s"
    lines = rate.locator("path.mm-sp-line")
    assert lines.count() == 2  # the champion's and the challenger's, on one chart
    drawn = [(lines.nth(i).get_attribute("class"), lines.nth(i).get_attribute("d") or "") for i in range(2)]
    assert "challenger" in drawn[1][0] and all(d.count("L") >= 10 for _, d in drawn), drawn
    assert widget.locator(".mm-sp-line.challenger").count() == 5  # rate, p99, errors, quality + the legend's key
    value = rate.locator(".mm-sp-value").text_content()
    assert value.startswith("v1 ") and " · v2 " in value, value  # both values beside the chart
    drift = widget.locator(".mm-sp-card").nth(4)
    assert drift.locator("path.mm-sp-line.challenger").count() == 0  # drift stays the champion's
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=str(SHOTS / "sparklines-canary-light.png"))
    _contrast(page)

    use_theme(page, "JupyterLab Dark", settle_ms=1500)
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=str(SHOTS / "sparklines-canary-dark.png"))
    _contrast(page)
    page.close()


def _contrast(page) -> None:
    """The challenger's line reads as a graphic (3:1), its value as text (4.5:1); the champion's line as a graphic."""
    line = page.evaluate(CONTRAST_JS, [".mm-sparklines .mm-sp-card path.mm-sp-line.challenger", "stroke"])
    assert line["ratio"] >= 3, line
    mine = page.evaluate(CONTRAST_JS, [".mm-sparklines .mm-sp-card path.mm-sp-line", "stroke"])
    assert mine["ratio"] >= 3, mine
    text = page.evaluate(CONTRAST_JS, [".mm-sparklines .mm-sp-theirs", "color"])
    assert text["ratio"] >= 4.5, text
