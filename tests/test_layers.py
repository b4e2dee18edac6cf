"""The layers contract: arrows point down, and no private name crosses a module.

Read from the source (every import, lazy ones inside functions included; ``if TYPE_CHECKING:`` blocks excepted, they
never run), so a violation fails here before it ships:

    faces       mm_magics.magics, cli, render, demo (later widgets/, server/)
    facade      engine.workspace, and engine.serving.server, steward_main (server and steward processes' entry points)
    services    engine.cards, lifecycle, reproduce, training, serving.*, monitoring.*
    core        engine.registry, diff, integrity, remotes
    primitives  everything else in the engine: errors, specs, layout, atomic, clock, records, documents, gitstore,
                index, artifacts, serialization, fingerprints, environment, probe, hosts, ledger, stages,
                metrics, estimators
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mm_magics"
NOTEBOOK_STACK = (
    "IPython",
    "ipywidgets",
    "ipykernel",
    "jupyter_server",
    "jupyterlab",
    "jupyter_client",
    "jupyter_core",
    "nbclient",
    "nbformat",
    "notebook",
    "traitlets",
    "anywidget",
)
FACES = (
    "mm_magics.magics",
    "mm_magics.cli",
    "mm_magics.render",
    "mm_magics.demo",
    "mm_magics.widgets",
    "mm_magics.server",
)
FACADE = {"mm_magics.engine.workspace", "mm_magics.engine.serving.server", "mm_magics.engine.serving.steward_main"}
SERVICES = (
    "mm_magics.engine.cards",
    "mm_magics.engine.lifecycle",
    "mm_magics.engine.reproduce",
    "mm_magics.engine.training",
    "mm_magics.engine.serving",
    "mm_magics.engine.monitoring",
)
CORE = {
    "mm_magics.engine.registry",
    "mm_magics.engine.diff",
    "mm_magics.engine.integrity",
    "mm_magics.engine.remotes",
    "mm_magics.engine.timeline",
}
RANK = {"primitives": 0, "core": 1, "services": 2, "facade": 3}


def layer(module: str) -> str:
    if module in FACADE:
        return "facade"
    if module.startswith(SERVICES):
        return "services"
    if module in CORE:
        return "core"
    return "primitives"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every import that can run (lazy ones too), resolved to absolute modules."""
    tree = ast.parse(path.read_text())
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names = [alias.name for alias in node.names]
            out.append((node.lineno, target, names))
            out += [(node.lineno, f"{target}.{n}", []) for n in names]  # `from . import layout` imports a module
    return out


ENGINE = sorted(p for p in (PACKAGE / "engine").rglob("*.py"))
ENGINE_MODULES = {module_name(p) for p in ENGINE}


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_engine_module_imports_point_down(path):
    me = module_name(path)
    problems = []
    for line, target, names in imports(path):
        top = target.split(".")[0]
        if top in NOTEBOOK_STACK or target.startswith(FACES):
            problems.append(f"line {line}: the engine imports {target} (a face or the notebook stack)")
            continue
        if target in ENGINE_MODULES and target != me and RANK[layer(target)] > RANK[layer(me)]:
            problems.append(f"line {line}: {layer(me)} module imports {target} ({layer(target)}): an arrow up")
        if target.startswith("mm_magics"):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                problems.append(f"line {line}: imports private {', '.join(private)} from {target}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_private_name_crosses_a_module(path):
    """``from X import _y`` anywhere in the package, and ``obj._attr`` on another module's object in the engine."""
    problems = []
    for line, target, names in imports(path):
        if target.startswith("mm_magics"):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private:
                problems.append(f"line {line}: imports private {', '.join(private)} from {target}")
    assert not problems, "\n".join(problems)


def test_the_contract_sees_a_violation(tmp_path, monkeypatch):
    """The checker itself: an engine module importing a face, lazily, is caught (a test that cannot fail is none)."""
    bad = PACKAGE / "engine" / "zz_contract_probe.py"
    bad.write_text("def f():\n    from mm_magics.render import to_html\n    from .registry import _x\n")
    try:
        with pytest.raises(AssertionError, match=r"imports mm_magics\.render"):
            test_engine_module_imports_point_down(bad)
        with pytest.raises(AssertionError, match="private _x"):
            test_no_private_name_crosses_a_module(bad)
    finally:
        bad.unlink()
