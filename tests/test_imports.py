"""The engine must stay importable and usable with no notebook stack loaded at all."""

from .conftest import run_python
from .test_layers import NOTEBOOK_STACK as FACES  # one list of what the engine must never load


def test_engine_and_cli_import_no_notebook_packages(tmp_path):
    code = f"""
import sys
import mm_magics, mm_magics.engine, mm_magics.cli
from mm_magics.engine import Workspace
from sklearn.linear_model import LogisticRegression
ws = Workspace.open({str(tmp_path / ".mm")!r})
ws.registry.commit("m", LogisticRegression().fit([[0.0], [1.0]], [0, 1]), probe_data=[[0.0], [1.0]])
ws.registry.diff("m", "m@v1")
ws.lifecycle.transition("m", "retire", "done")
print(sorted({{m.split('.')[0] for m in sys.modules}} & set({FACES!r})))
"""
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
