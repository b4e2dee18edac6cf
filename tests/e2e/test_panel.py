"""The Models side panel in a real JupyterLab and Chromium: it lists what the engine committed, follows a commit
made by another process without a reload, opens a model view drawn by the widgets' own modules, deploys from
it (a server the test then calls) and rolls back from it (the deployment switches)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from mm_magics.engine import Workspace, schema_of

from .lab import CHROMIUM, chromium_or_skip, jupyterlab, lab_env, use_theme
from .test_browser import CONTRAST_JS

SHOTS = Path(__file__).parent / "screenshots"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
ELSEWHERE = """
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from mm_magics.engine import Workspace
X, y = load_iris(return_X_y=True)
with Workspace.open() as ws:
    ws.registry.commit("petals", DummyClassifier().fit(X, y), message="from another process", metrics={"accuracy": 0.3})
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("panel")
    env = lab_env(root)
    X, y = load_iris(return_X_y=True, as_frame=True)
    common = {"schema": schema_of(X), "probe_data": X}
    with Workspace.open(root / ".mm") as ws:
        ws.registry.commit("iris", LogisticRegression(max_iter=500).fit(X, y), message="first",
                           metrics={"accuracy": 0.97}, **common)  # fmt: skip
        ws.registry.commit("iris", DecisionTreeClassifier(max_depth=1).fit(X, y), message="stump",
                           metrics={"accuracy": 0.66}, parent="iris@v1", **common)  # fmt: skip
    with jupyterlab(root, env) as server:
        yield {**server, "root": root, "env": env, "X": X}
    with Workspace.open(root / ".mm") as ws:
        if ws.deployments.get("iris") is not None:
            ws.deployments.undeploy("iris")


@pytest.fixture(scope="module")
def page(lab):
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{lab['url']}/lab?reset&token={lab['token']}")
        page.wait_for_selector("#jupyterlab-splash", state="detached", timeout=60_000)
        page.wait_for_function("() => window.jupyterapp.commands.hasCommand('mm:open-models-panel')", timeout=60_000)
        # after the layout is restored: a restore that comes later would collapse the side bar again
        page.evaluate(
            "async () => { await window.jupyterapp.restored;"
            " await window.jupyterapp.commands.execute('mm:open-models-panel'); }"
        )
        yield page
        browser.close()


def post(url: str, rows: list) -> int:
    body = json.dumps({"instances": rows}).encode()
    req = urllib.request.Request(url + "/invocations", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def test_the_panel_lists_the_models_and_follows_a_commit_made_elsewhere(page, lab):
    row = page.locator(".mm-models-row[data-model='iris']")
    row.wait_for(timeout=30_000)
    assert "iris  v2" in row.text_content() and "evaluate 2" in row.text_content()
    assert page.locator(".mm-models-where").text_content() == f"workspace: {lab['root'] / '.mm'}"
    page.locator("#mm-models-panel").screenshot(path=str(SHOTS / "panel-light.png"))
    subprocess.run([sys.executable, "-c", ELSEWHERE], env=lab["env"], check=True, timeout=120)
    page.locator(".mm-models-row[data-model='petals']").wait_for(timeout=5_000)  # no reload; polled, ETag moved


def test_the_model_view_draws_the_timeline_and_the_graph(page, lab):
    page.locator(".mm-models-row[data-model='iris']").click()
    view = page.locator(".mm-model-view")
    view.wait_for(timeout=30_000)
    title = view.locator(".mm-timeline .mm-tl-head .mm-tl-title")
    title.wait_for(timeout=30_000)
    assert title.text_content() == "iris — 2 versions"
    assert view.locator(".mm-view-status").text_content() == "iris — not deployed"
    view.locator(".mm-view-tabs button", has_text="Lifecycle").click()
    view.locator(".mm-lifecycle g.mm-lc-stage").first.wait_for(timeout=30_000)
    assert view.locator(".mm-lifecycle g.mm-lc-stage").count() == 6
    view.locator(".mm-lifecycle g.mm-lc-stage[data-stage='evaluate']").click()  # answered over REST
    view.locator(".mm-lc-versions button", has_text="iris@v1").wait_for(timeout=30_000)
    view.screenshot(path=str(SHOTS / "panel-lifecycle.png"))
    view.locator(".mm-view-tabs button", has_text="Timeline").click()


def test_deploy_and_roll_back_from_the_panel(page, lab):
    view = page.locator(".mm-model-view")
    timeline = view.locator(".mm-timeline")
    timeline.locator("canvas.mm-tl-canvas").focus()
    page.keyboard.press("Home")  # iris@v1
    page.wait_for_function(
        "() => document.querySelector('.mm-model-view .mm-tl-details .mm-tl-title')?.textContent.startsWith('iris@v1')",
        timeout=30_000,
    )
    timeline.get_by_role("button", name="Deploy…", exact=True).click()
    assert "a local server starts on 127.0.0.1" in timeline.locator(".mm-tl-confirm").text_content()
    timeline.locator(".mm-tl-confirm button.primary").click()
    ok = timeline.locator(".mm-tl-ok")
    ok.wait_for(timeout=120_000)
    url = ok.text_content().split(" serves at ")[1].split(" ")[0]
    assert post(url, lab["X"].iloc[:2].to_numpy().tolist()) == 200
    page.wait_for_function(
        "() => document.querySelector('.mm-model-view .mm-view-status').textContent.includes('● iris@v1 running')",
        timeout=10_000,
    )
    page.keyboard.press("End")  # iris@v2 ... roll back to v1 instead: select it again
    timeline.locator("canvas.mm-tl-canvas").focus()
    page.keyboard.press("Home")
    page.wait_for_function(
        "() => document.querySelector('.mm-model-view .mm-tl-details .mm-tl-title')?.textContent.startsWith('iris@v1')",
        timeout=30_000,
    )
    timeline.get_by_role("button", name="Roll back to…").click()
    timeline.locator(".mm-tl-confirm button.primary").click()
    page.wait_for_function(
        "() => document.querySelector('.mm-model-view .mm-tl-ok')?.textContent.startsWith('✓ rolled back: iris@v3')",
        timeout=120_000,
    )
    with Workspace.open(lab["root"] / ".mm") as ws:
        assert ws.deployments.get("iris").version == "iris@v3"  # the running deployment switched
    assert post(url, lab["X"].iloc[:2].to_numpy().tolist()) == 200
    page.wait_for_function(
        "() => document.querySelector('.mm-model-view .mm-tl-head .mm-tl-title').textContent === 'iris — 3 versions'"
    )
    view.screenshot(path=str(SHOTS / "panel-model-view.png"))
    row = page.locator(".mm-models-row[data-model='iris']")
    page.wait_for_function(
        "() => document.querySelector(\".mm-models-row[data-model='iris']\").textContent.includes('v3 running')",
        timeout=10_000,
    )
    assert "● v3 running" in row.text_content()
    use_theme(page, "JupyterLab Dark", settle_ms=800)
    page.screenshot(path=str(SHOTS / "panel-dark.png"))
    for selector in (".mm-models-name", ".mm-models-detail", ".mm-models-where", ".mm-view-status"):
        found = page.evaluate(CONTRAST_JS, [selector, 0])
        assert found["ratio"] >= 4.5, (selector, found)  # WCAG AA in the dark theme
