"""The automatic mode of a canary or shadow release: a small process that promotes or aborts when the rule decides.

``%mm_deploy NAME@vN --canary 10 --auto`` (or ``mm deploy ... --auto``) starts one beside the release. Every few
seconds it asks the Deployer what the promotion rule (:mod:`..monitoring.promotion`) says of the live comparison
since the release started, and acts through the same verbs a person uses: ``promote`` or ``abort``, each with the rule's
reason on the record (deployment history, lifecycle commits). It runs on the workspace's machine, whatever runs
the servers (local processes or Docker), and outlives the notebook that started it: a release left running over a
weekend is still decided.

It stops on its own once the release it was started for is over (promoted, aborted, replaced by another release,
or the deployment gone), and a person's promote, abort, switch or undeploy stops it at once. What it did is in
``run/deployments/NAME.steward.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MMError

if TYPE_CHECKING:
    from ..workspace import Workspace
    from .deployer import Deployer

#: How often the rule is checked unless the model's ``promote_check_s`` rule says otherwise.
EVERY_S = 30.0
#: An unchanged wait is said again this often.
QUIET_S = 600.0
ACTOR = "mm steward (automatic release)"
#: The steward process's entry point (a facade: it opens the workspace), started with ``python -m``.
ENTRY = "mm_magics.engine.serving.steward_main"
_started: dict[int, subprocess.Popen[bytes]] = {}  # stewards this process started, reaped when they exit


def start(ws: Workspace, name: str, version: str, every: float) -> int:
    """Start the steward of ``name``'s release of ``version``; its pid."""
    _reap()
    run = ws.run_dir / "deployments"
    run.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", ENTRY, "--workspace", str(ws.root), "--name", name, "--version", version]
    cmd.append(f"--every={every:g}")
    with open(run / f"{name}.steward.log", "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the notebook is not meant for it
            close_fds=True,
            cwd=str(ws.root),
            env={**os.environ, "MM_ACTOR": ACTOR},
        )
    _started[proc.pid] = proc
    deadline = time.monotonic() + 5.0  # until it has exec'd: a check made sooner would call it gone
    while not _is_steward(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc.pid


def stop(release: dict[str, Any] | None) -> None:
    """Stop the steward of ``release`` if one runs (and is not the caller: a steward promoting stops by itself)."""
    pid = ((release or {}).get("auto") or {}).get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or not _is_steward(pid):
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    proc = _started.get(pid)
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    _reap()


def running(release: dict[str, Any] | None) -> bool:
    """Whether the steward ``release`` was started with still runs (a machine restart ends it; the release stays)."""
    pid = ((release or {}).get("auto") or {}).get("pid")
    return isinstance(pid, int) and _is_steward(pid)


def _is_steward(pid: int) -> bool:
    """Whether ``pid`` is a steward (a recorded pid may have been reused by another process since)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return ENTRY.encode() in cmdline


def _reap() -> None:
    for pid, proc in list(_started.items()):
        if proc.poll() is not None:
            _started.pop(pid, None)


def watch(deployer: Deployer, name: str, version: str, every: float, say: Any = print) -> str:
    """Check the rule every ``every`` seconds until the release of ``version`` is decided or over; what ended it.
    A wait is said when its reason changes, else once every ``QUIET_S`` (an idle release checked every few seconds
    filled the log with the same line)."""
    said, said_at = "", 0.0
    while True:
        time.sleep(every)
        dep = deployer.get(name)
        release = dep.release if dep is not None else None
        if release is None or release.get("version") != version:
            return f"the release of {version} is over (decided elsewhere): stopping"
        if dep.status != "running":
            say(f"{name}'s deployment is {dep.status}: waiting")
            continue
        try:
            verdict = deployer.judge(name)
        except MMError as exc:
            say(f"could not judge the release: {exc}")
            continue
        if verdict.action == "wait":
            if verdict.why != said or time.monotonic() - said_at > QUIET_S:
                say(f"waiting: {verdict.why}")
                said, said_at = verdict.why, time.monotonic()
            continue
        reason = f"Automatic {verdict.action} by the promotion rule: {verdict.why}"
        try:
            if verdict.action == "promote":
                deployer.promote(name, reason=reason)  # the rule is checked again there: the same judgement
            else:
                deployer.abort(name, reason=reason)
        except MMError as exc:
            say(f"could not {verdict.action} {version}: {exc}")
            continue
        return reason
