"""The local runner: a uvicorn server in its own detached process on 127.0.0.1.

Detached (new session, no inherited stdio) so it outlives a kernel restart; started through ``server.py``, which
writes a state file only after the model is loaded and health-checked, so "started" here always means "ready". A
warm standby process (``standby.py``) becomes the server when one is waiting, so only the first deploy pays for
importing scikit-learn.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import now_iso
from ..errors import DeploymentError
from ..hosts import check_port, is_loopback
from . import standby
from .client import ServerClient
from .deployments import Deployment, pid_alive
from .tokens import secret_path, workspace_secret

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..records import Version
    from ..workspace import Workspace

READY_TIMEOUT = 60.0


class LocalRunner:
    """A :class:`~.deployments.Runner` whose servers are detached processes on this machine."""

    kind = "local"

    def __init__(self, workspace: Workspace, client: ServerClient | None = None) -> None:
        self.ws = workspace
        self.client = client or ServerClient()
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def start(
        self,
        version: Version,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        batch: bool = False,
        workers: int = 1,
    ) -> Deployment:
        """Start a server on ``host``; off loopback it insists on the workspace's bearer token."""
        check_port(port, host)
        token_required = not is_loopback(host)
        run = self.ws.run_dir / "deployments"
        run.mkdir(parents=True, exist_ok=True)
        state_file = run / f"{version.name}-{int(time.time() * 1000)}.state.json"
        log_file = run / f"{version.name}.log"
        cmd = self._command(version, host, port, batch, state_file, token_required)
        if workers > 1:
            cmd.append(f"--workers={workers}")
        with open(log_file, "ab") as log:
            log_start = log.tell()
        pid = standby.claim(cmd[3:], cwd=self.ws.root, log=log_file)  # warm: imports done, ~0.3 s to ready
        if pid is None:  # cold: a new interpreter imports scikit-learn, skops, pandas, uvicorn (~2.5 s)
            with open(log_file, "ab") as log:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                    cwd=str(self.ws.root),
                )
            self._children[proc.pid] = proc
            pid = proc.pid
        try:
            state = self._wait_started(pid, version, host, state_file, (log_file, log_start))
        except BaseException:  # not ready, or Ctrl-C while waiting: no server may outlive a deployment never recorded
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            self._reap(pid, wait=True)
            raise
        finally:
            standby.spawn()  # the next deploy's warm process, started in the background
        return Deployment(
            name=version.name,
            version=version.id,
            runner="local",
            url=f"http://{host}:{state['port']}",
            host=host,
            port=int(state["port"]),
            started=now_iso(),
            pid=pid,
            batch=batch,
            workers=workers,
            log=str(log_file),
            token_required=token_required,
        )

    def _command(
        self,
        version: Version,
        host: str,
        port: int | None,
        batch: bool,
        state_file: Path,
        token_required: bool,
    ) -> list[str]:
        """The server's command line: every value rides in ``--option=value`` form, so no string, whatever it
        holds, can become an option of its own."""
        cmd = [
            sys.executable,
            "-m",
            "mm_magics.engine.serving.server",
            f"--workspace={self.ws.root}",
            f"--version={version.id}",
            f"--host={host}",
            f"--port={port or 0}",
            f"--state-file={state_file}",
            f"--metrics-db={self.ws.run_dir / 'metrics.sqlite'}",
            f"--deployment={version.name}",
        ]
        if batch:
            cmd.append("--batch")
        if token_required:
            cmd.append(f"--token-file={secret_path(self.ws.run_dir, 'token')}")
        cmd.append(f"--admin-token-file={secret_path(self.ws.run_dir, 'admin-token')}")
        return cmd

    def _wait_started(
        self, pid: int, version: Version, host: str, state_file: Path, log: tuple[Path, int]
    ) -> dict[str, Any]:
        """The server's state (pid, port) once it has written it and answers ready; its one-line reason if it died."""
        log_file, log_start = log
        deadline = time.monotonic() + READY_TIMEOUT
        try:
            while not state_file.exists():
                self._reap(pid)
                if not pid_alive(pid):
                    raise DeploymentError(
                        f"the server for {version.id} stopped before it was ready: {_tail(log_file, log_start)} "
                        f"(full log: {log_file})"
                    )
                if time.monotonic() > deadline:
                    raise DeploymentError(
                        f"the server for {version.id} was not ready after {READY_TIMEOUT:.0f}s: see {log_file}"
                    )
                time.sleep(0.02)
            state = json.loads(state_file.read_text())
            self.client.wait_ready(f"http://{host}:{state['port']}", deadline, alive=lambda: self._alive(pid))
            return state
        finally:
            state_file.unlink(missing_ok=True)

    def stop(self, dep: Deployment, *, timeout: float | None = None, keep_image: bool = False) -> None:
        """SIGTERM (the server writes what it recorded and exits), SIGKILL after ``timeout`` s (10 by default)."""
        if not pid_alive(dep.pid):
            return
        assert dep.pid is not None
        os.kill(dep.pid, signal.SIGTERM)
        deadline = time.monotonic() + (10.0 if timeout is None else timeout)
        while pid_alive(dep.pid) and time.monotonic() < deadline:
            self._reap(dep.pid)
            time.sleep(0.02)
        if pid_alive(dep.pid):
            os.kill(dep.pid, signal.SIGKILL)
        self._reap(dep.pid)

    def _reap(self, pid: int, *, wait: bool = False) -> None:
        """Collect ``pid``'s exit status if this process started it (as a server or a standby): no zombies."""
        proc = self._children.get(pid)
        if proc is not None:
            if wait:
                proc.wait()
            if proc.poll() is not None:
                self._children.pop(pid, None)
        standby.reap(pid)

    def _alive(self, pid: int) -> bool:
        self._reap(pid)
        return pid_alive(pid)

    def status(self, dep: Deployment) -> str:
        """``running``, ``unhealthy`` or ``stale``; if the server serves another version than the record says (a
        swap over ``/mm/v1/load`` by someone else), ``dep`` is corrected to what really serves, with a note."""
        if dep.pid:
            self._reap(dep.pid)
        if not pid_alive(dep.pid):
            return "stale"
        token = workspace_secret(self.ws.run_dir, "token") if dep.token_required else None
        served = (self.client.served(dep.url, token) or {}).get(dep.name)
        if not isinstance(served, str):
            return "unhealthy"
        if served != dep.version:
            dep.note = f"the record says {dep.version}, but the server serves {served} (swapped outside mm deploy)"
            dep.version = served
        return "running"

    def switch(
        self,
        dep: Deployment,
        version: Version,
        *,
        reason: str = "",
        force: bool = False,
        publish: Callable[[Deployment], None] | None = None,
    ) -> Deployment:
        """Load ``version`` into the running server in place; it only takes traffic once loaded and health-checked
        (the server checks the same deploy gates, with the same ``reason`` and ``force``). Same URL, same process."""
        admin_token = workspace_secret(self.ws.run_dir, "admin-token")
        self.client.load(dep.url, version.id, admin_token, reason=reason, force=force)
        dep.version = version.id
        if publish is not None:
            publish(dep)
        return dep


def _tail(path: Path, offset: int = 0) -> str:
    """The server's own last word since ``offset``: its ``mm-serve: error:`` line (never the traceback above it)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            text = fh.read().decode(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    said = [line.removeprefix("mm-serve: error: ") for line in text if line.startswith("mm-serve: error: ")]
    if said:
        return said[-1]
    return (text[-1] if text else "(empty log)")[:300]
