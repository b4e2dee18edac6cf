"""``mm demo``: run the quick-start notebook headless on a real kernel and summarise what it did.

This is the README's first command: it proves the whole stack (kernel, magics, engine, git, artifact store) works
on a fresh machine with the embedded defaults, and leaves an executed notebook to open in JupyterLab.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .engine.errors import MMError

QUICKSTART = "01_quickstart.ipynb"
#: What `mm demo` runs, in order, in one workspace: the quick start, deployment, monitoring.
DEMO_NOTEBOOKS = (QUICKSTART, "02_deploy.ipynb", "03_monitor.ipynb")
MARKER = ".mm-demo"


def notebook_path(name: str) -> Path:
    """Where an example notebook lives: inside the installed package (wheel) or the source checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "example_notebooks", here.parent / "example_notebooks"):
        if (folder / name).is_file():
            return folder / name
    raise MMError(f"example notebook {name} is not installed: reinstall mm_magics (pip install mm_magics)")


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def execute_notebook(src: Path, workdir: Path, *, timeout: int = 600, env: dict[str, str] | None = None) -> Any:
    """Execute a notebook on a fresh ``python3`` kernel in ``workdir``; raises on the first failing cell."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(src, as_version=4)
    # IPC sockets in a private directory: a local kernel needs no TCP port (and ipykernel warns about plain TCP)
    sockets = Path(tempfile.mkdtemp(prefix="mm-kernel-"))
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / "kernel"))
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        store_widget_state=True,
    )
    with _env(**(env or {})):
        try:
            client.execute()
        except CellExecutionError as exc:
            where = f"cell {client.code_cells_executed}" if hasattr(client, "code_cells_executed") else "a cell"
            raise MMError(f"{src.name} failed at {where}: {exc.ename}: {exc.evalue}".splitlines()[0]) from None
        finally:
            if km.has_kernel:  # a client given its manager leaves the kernel running: shut it down ourselves
                km.shutdown_kernel(now=False)
            shutil.rmtree(sockets, ignore_errors=True)
    return nb


def _stop_servers(workspace: Path) -> None:
    """Stop every deployment the demo workspace still has (best effort: this runs on the way out of a failure)."""
    from .engine.serving.deployer import Deployer
    from .engine.workspace import Workspace

    with contextlib.suppress(Exception), Workspace.open(workspace, create=False) as ws:
        deployer = Deployer(ws)
        for dep in deployer.list():
            with contextlib.suppress(Exception):
                deployer.undeploy(dep.name)


def run_demo(directory: str | Path = "mm-demo") -> str:
    from .engine.workspace import Workspace

    root = Path(directory).resolve()
    root.mkdir(parents=True, exist_ok=True)
    workspace = root / ".mm"
    if workspace.exists():
        if not (root / MARKER).exists():
            raise MMError(f"{root} already holds a workspace that the demo did not make: pass --dir NEW_DIR")
        _stop_servers(workspace)  # a server of an earlier run must not outlive the workspace it serves from
        shutil.rmtree(workspace)
    (root / MARKER).write_text("made by `mm demo`; safe to delete\n")
    import nbformat

    ran = []
    try:
        for name in DEMO_NOTEBOOKS:
            src = notebook_path(name)
            started = time.perf_counter()
            nb = execute_notebook(src, root, env={"MM_HOME": str(workspace)})
            out = root / name
            nbformat.write(nb, out)
            cells = sum(1 for c in nb.cells if c.cell_type == "code")
            elapsed = time.perf_counter() - started
            ran.append(f"ran {name}: {cells} cells on a real kernel in {elapsed:.1f}s, no errors")
    except BaseException:  # a notebook that failed half-way never reached its own clean-up cell
        _stop_servers(workspace)
        raise
    with Workspace.open(workspace) as ws:
        models = ws.registry.models()
        log = ws.registry.log("cancer", limit=10)
    first = root / QUICKSTART
    lines = [
        *ran,
        f"workspace: {workspace}",
        *(f"  {m}" for m in models),
        str(log),
        f"executed notebooks: {', '.join(str(root / n) for n in DEMO_NOTEBOOKS)}",
        f"open them:  jupyter lab {first}",
        f"explore:  mm -C {workspace} diff cancer@v1 cancer@v3   |   git -C {workspace} log --oneline",
    ]
    return "\n".join(lines)
