"""Tab completion the way JupyterLab asks for it: a ``complete_request`` (whole cell, cursor offset) to a real kernel.

The first completion test handed the completer pre-split text and passed while Tab after ``NAME@`` offered Python
builtins in JupyterLab. This one goes through the Jupyter messaging protocol to an ipykernel, as a front end does.
"""

from __future__ import annotations

import os

import pytest
from jupyter_client.manager import start_new_kernel

from .test_monitor_interrupt import run

SETUP = """
%load_ext mm_magics
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
"""


@pytest.fixture(scope="module")
def kc(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("completion")
    env = {**os.environ, "MM_HOME": str(tmp / ".mm")}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp))
    try:
        run(kc, SETUP)
        run(kc, "%%mm_train cancer --commit -m 'one'\nmodel = LogisticRegression(max_iter=500)")
        run(kc, "%%mm_train cancer --commit -m 'two'\nmodel = LogisticRegression(max_iter=500, C=0.5)")
        run(kc, "%mm_alias cancer@v1 production")
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def ask(kc, code: str, cursor: int | None = None) -> tuple[list[str], str]:
    """The matches a front end would list, and the text they replace (from cursor_start to cursor_end)."""
    cursor = len(code) if cursor is None else cursor
    kc.complete(code, cursor)
    reply = kc.get_shell_msg(timeout=30)["content"]
    assert reply["status"] == "ok", reply
    return reply["matches"], code[reply["cursor_start"] : reply["cursor_end"]]


def test_tab_after_name_at_lists_versions_and_aliases_only(kc):
    matches, replaced = ask(kc, "%mm_diff cancer@")
    assert set(matches) == {"cancer@v1", "cancer@v2", "cancer@production"}
    assert (
        replaced == "cancer@"
    )  # the front end replaces the whole NAME@, so accepting gives cancer@v2, not cancer@cancer@v2


def test_a_prefix_after_at_narrows_to_aliases_not_builtins(kc):
    matches, replaced = ask(kc, "%mm_diff cancer@pr")
    assert matches == ["cancer@production"] and replaced == "cancer@pr"  # the defect: print, property, %prun


def test_an_empty_argument_lists_model_names_without_python_keywords(kc):
    matches, _ = ask(kc, "%mm_deploy ")
    assert matches == ["cancer"]


def test_a_magic_inside_a_longer_cell_completes_on_its_own_line(kc):
    code = "x = 1\n%mm_log can\nprint(x)"
    matches, replaced = ask(kc, code, cursor=code.index("can") + 3)
    assert matches == ["cancer"] and replaced == "can"
