"""Which workspace a request means, and the engine objects that serve it.

The rule is the magics' own: ``MM_HOME`` when set, else the nearest ``.mm/`` at or above the server's root
directory; a request may name another workspace found under the root (``?workspace=REL``, a path relative to the
root, never outside it). Engine objects hold SQLite connections, which belong to the thread that opened them, so
every engine call runs on a small pool of threads (never on the server's event loop) and each thread keeps its own
open workspaces.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ..engine.errors import MMError, WorkspaceError
from ..engine.workspace import Workspace

T = TypeVar("T")
#: Threads running engine calls: reads stay quick while a long action (a Docker deploy) holds one.
THREADS = 4
#: How deep under the server's root workspaces are looked for (the picker lists them).
SEARCH_DEPTH = 3


class Workspaces:
    """The workspaces this server serves, resolved per request, and the threads that run engine calls."""

    def __init__(self, root_dir: str | Path) -> None:
        self.root = Path(root_dir).resolve()
        self._pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="mm-api")
        self._local = threading.local()

    def default(self) -> Path | None:
        """MM_HOME, else the nearest ``.mm`` at or above the root (the magics' rule); None when there is none."""
        home = os.environ.get("MM_HOME")
        if home:
            return Path(home).expanduser().resolve()
        for folder in (self.root, *self.root.parents):
            if (folder / ".mm").is_dir():
                return (folder / ".mm").resolve()
        return None

    def resolve(self, relative: str | None) -> Path:
        """The workspace a request names (relative to the root), or the default; one-line errors otherwise."""
        if not relative:
            found = self.default()
            if found is None:
                raise WorkspaceError(
                    f"no workspace at or above {self.root}: commit a model from a notebook here (%mm_commit) "
                    "or start JupyterLab with MM_HOME set"
                )
            return found
        path = (self.root / relative).resolve()
        if path.name != ".mm":
            path = path / ".mm"
        if not path.is_relative_to(self.root):
            raise MMError(f"workspace {relative!r} is outside the server's root {self.root}: pick one under it")
        if not path.is_dir():
            raise WorkspaceError(f"no workspace at {relative!r}: GET /mm/api/workspaces lists the ones found")
        return path

    def found(self) -> list[str]:
        """Workspaces under the root (relative paths of their parent folders), nearest first."""
        out = []
        for depth in range(SEARCH_DEPTH + 1):
            for mm in sorted(self.root.glob("/".join(["*"] * depth + [".mm"]))):
                if (mm / "mm.json").exists() or (mm / ".git").exists():
                    out.append(str(mm.parent.relative_to(self.root)) or ".")
        return out

    def open(self, path: Path) -> Workspace:
        """This thread's open workspace at ``path`` (each engine thread keeps its own connections)."""
        cache: dict[Path, Workspace] = self._local.__dict__.setdefault("cache", {})
        ws = cache.get(path)
        if ws is None:
            ws = cache[path] = Workspace.open(path, create=False)
        return ws

    async def run(self, path: Path, call: Callable[[Workspace], T]) -> T:
        """Run ``call(workspace)`` on an engine thread; the event loop waits without blocking."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: call(self.open(path)))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
