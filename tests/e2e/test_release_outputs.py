"""What a release, a model description and a model card look like in a real JupyterLab (Debian's Chromium through
Playwright): a notebook a data scientist would write (train two versions, describe the model, deploy, shadow the
second with the automatic mode, send traffic and labels, monitor, read the card) executed by a real kernel, then
opened trusted in the light and dark themes and as a colleague's untrusted copy. Screenshots go to
``tests/e2e/screenshots/`` for a person to look at."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import nbformat
import pytest
from nbclient import NotebookClient

from .lab import jupyterlab, lab_env, open_notebook
from .test_browser import CONTRAST_JS

SHOTS = Path(__file__).parent / "screenshots"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

CELLS = [
    "%load_ext mm_magics\nfrom sklearn.datasets import load_iris\nX, y = load_iris(return_X_y=True, as_frame=True)",
    "%%mm_train iris --commit -m 'logistic regression'\nfrom sklearn.linear_model import LogisticRegression\n"
    "model = LogisticRegression(max_iter=500)",
    "%%mm_train iris --commit -m 'a stump'\nfrom sklearn.tree import DecisionTreeClassifier\n"
    "model = DecisionTreeClassifier(max_depth=1)",
    "%mm_describe iris --owner 'flower <desk>' --use 'sorting irises at the counter' --not-for 'medical use'",
    "from mm_magics.engine import Workspace\nws = Workspace.open()\n"
    "_ = ws.monitor.set_rules('iris', promote_check_s=600)  # the steward stays out of the way of this notebook",
    "%mm_deploy iris@v1",
    "%mm_deploy iris@v2 --shadow --auto --force -m 'see the stump on live traffic'",
    "ids = [ws.deployments.predict('iris', X.iloc[[i % 150]]).request_id for i in range(240)]\n"
    "_ = ws.monitor.record_feedback('iris', ids, [[int(y.iloc[i % 150])] for i in range(240)])",
    "%mm_monitor iris --window 10m",
    "%mm_card iris@v1",
    "%mm_undeploy iris",
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The notebook executed once, saved signed (yours) and unsigned (a colleague's), served by JupyterLab."""
    root = tmp_path_factory.mktemp("releases")
    env = lab_env(root)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with mock.patch.dict(os.environ, {"MM_HOME": env["MM_HOME"], "JUPYTER_DATA_DIR": env["JUPYTER_DATA_DIR"]}):
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
        from nbformat.sign import NotebookNotary

        NotebookNotary(data_dir=env["JUPYTER_DATA_DIR"]).sign(nb)
        nbformat.write(nb, root / "release.ipynb")
        colleague = nbformat.read(root / "release.ipynb", as_version=4)
        colleague.metadata["author"] = "a colleague"
        nbformat.write(colleague, root / "colleague.ipynb")
    with jupyterlab(root, env) as server:
        yield {**server, "root": root, "nb": nb}


def _open(browser, lab, name: str, theme: str = "JupyterLab Light"):
    SHOTS.mkdir(exist_ok=True)
    return open_notebook(browser, lab, name, "Model card", theme)


def _output(page, text: str):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output", has_text=text).first


def _outputs_text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") + str((o.get("data") or {}).get("text/plain", "")))
    return "\n".join(out)


def test_the_notebook_ran_the_release_as_a_user_would(lab):
    text = _outputs_text(lab["nb"])
    assert "shadow iris@v2 takes every request, answering none" in text
    assert "decided automatically by the promotion rule, checked every 600s" in text
    assert "verdict: iris@v1 better on F1 by" in text  # 240 labelled requests seen by both: decided


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_comparison_and_the_card_read_in_both_themes(browser, lab, theme):
    page = _open(browser, lab, "release.ipynb", theme)
    tag = "light" if "Light" in theme else "dark"
    deployed = _output(page, "the promotion rule promotes or aborts it")
    deployed.scroll_into_view_if_needed()
    deployed.screenshot(path=str(SHOTS / f"release-deployment-{tag}.png"))
    comparison = _output(page, "verdict")
    comparison.scroll_into_view_if_needed()
    comparison.screenshot(path=str(SHOTS / f"release-comparison-{tag}.png"))
    assert "iris@v1 better on F1" in comparison.text_content()
    card = _output(page, "Model card: iris@v1")
    card.scroll_into_view_if_needed()
    card.screenshot(path=str(SHOTS / f"release-card-{tag}.png"))
    card_text = card.text_content()
    assert "Intended use: sorting irises at the counter" in card_text and "Owner: flower <desk>" in card_text
    assert "Not meant for: medical use" in card_text
    for selector in (".jp-OutputArea-output th", ".jp-OutputArea-output td", ".jp-OutputArea-output li"):
        for i in range(min(page.locator(selector).count(), 40)):
            found = page.evaluate(CONTRAST_JS, [selector, i])
            assert found["ratio"] >= 4.5, found
    # the card's tables: text left, numbers right (the training ranges of the feature table)
    aligns = (
        card.locator("table")
        .first.locator("tr")
        .nth(1)
        .locator("td")
        .evaluate_all("tds => tds.map(td => getComputedStyle(td).textAlign)")
    )
    assert aligns[0] == "left" and aligns[-1] == "right", aligns
    page.close()


def test_a_colleagues_untrusted_copy_keeps_the_verdict_and_the_card(browser, lab):
    page = _open(browser, lab, "colleague.ipynb")
    comparison = _output(page, "verdict")
    comparison.scroll_into_view_if_needed()
    comparison.screenshot(path=str(SHOTS / "release-comparison-untrusted.png"))
    text = comparison.text_content()
    assert "iris@v1 better on F1" in text and "iris@v2" in text
    card = _output(page, "Model card: iris@v1")
    for heading in ("Intended use and owner", "Training data", "Evaluation and gates", "Known limits"):
        assert heading in card.text_content()
    assert card.locator("b", has_text="desk").count() == 0  # the owner's "<desk>" stayed text
    assert page.locator(".jp-Notebook script").count() == 0
    page.close()
