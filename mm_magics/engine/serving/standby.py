"""A warm serving process that becomes the next local deployment.

A cold server process spends ~2.4 s importing scikit-learn, skops (which scans every estimator), pandas and
uvicorn before it loads a model that takes milliseconds. A standby (``server.py --standby=POOL``) has done all of
that already and waits, idle, on a Unix socket; a deploy hands it the server's command line, working directory,
environment and log file, and it turns into that server, through the same ``main`` a cold start runs. The runner
then starts the next standby in the background, so every deploy after the first is warm.

This module is both sides: the runner's (:func:`claim`, :func:`spawn`) and the waiting process's (:func:`listen`,
:func:`become`). One pool per Python environment and package version (a standby never serves code older than the
caller's), in a directory only this user can enter; the standby also checks the connecting process's uid.
``MM_STANDBY=0`` turns it off; a standby exits by itself after ``MM_STANDBY_IDLE`` seconds (600) without an order.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..._version import __version__
from .deployments import pid_alive

IDLE_S = 600.0
#: AF_UNIX paths are limited to 108 bytes; a pool whose socket paths would not fit is not used.
MAX_SOCKET_PATH = 100
_spawned: dict[int, subprocess.Popen[bytes]] = {}  # standbys this process started, reaped by the local runner


def enabled() -> bool:
    return os.environ.get("MM_STANDBY", "1").strip().lower() not in ("0", "false", "no", "off")


def pool_dir() -> Path:
    """This environment's pool, private to the user: keyed by interpreter, package version and location, and the
    newest change to the engine's code (an editable install's edit must not be served by a standby from before)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or Path.home() / ".cache") / "mm_magics" / "standby"
    engine = Path(__file__).resolve().parents[1]
    changed = max((p.stat().st_mtime_ns for p in engine.rglob("*.py")), default=0)
    key = f"{sys.executable}\0{__version__}\0{engine}\0{changed}"
    path = base / hashlib.sha256(key.encode()).hexdigest()[:12]
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _usable_pool() -> Path | None:
    """The pool, or None when standbys are off or its directory cannot be made."""
    if not enabled():
        return None
    try:
        return pool_dir()
    except OSError:
        return None


def claim(argv: list[str], *, cwd: Path, log: Path) -> int | None:
    """Hand a server command line (``server.py``'s arguments) to a waiting standby; its pid, or None when none is
    ready (the caller starts a cold process). The order carries this process's environment, never written to disk."""
    pool = _usable_pool()
    if pool is None:
        return None
    order = json.dumps({"argv": argv, "cwd": str(cwd), "log": str(log), "env": dict(os.environ)}).encode()
    for path in sorted(pool.glob("*.sock")):
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.settimeout(5)
        try:
            conn.connect(str(path))
            conn.sendall(order)
            conn.shutdown(socket.SHUT_WR)
            reply = json.loads(_read_all(conn) or b"{}")
        except (OSError, ValueError):
            if not pid_alive(_pid_of(path)):
                path.unlink(missing_ok=True)  # left by a standby that was killed
            continue
        finally:
            conn.close()
        if isinstance(reply.get("pid"), int):
            return reply["pid"]
    return None


def spawn() -> int | None:
    """Start a standby in the background unless one is ready or warming up; its pid."""
    pool = _usable_pool()
    if pool is None or len(str(pool / "4194304.sock")) > MAX_SOCKET_PATH:
        return None
    for path in [*pool.glob("*.sock"), *pool.glob("*.warming")]:
        if pid_alive(_pid_of(path)):
            return None
        path.unlink(missing_ok=True)
    with open(pool / "standby.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mm_magics.engine.serving.server", f"--standby={pool}"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=str(pool),  # ``-m`` puts the working directory on sys.path: never a notebook's folder
        )
    (pool / f"{proc.pid}.warming").touch()
    _spawned[proc.pid] = proc
    return proc.pid


def reap(pid: int | None) -> None:
    """Collect a standby this process started once it has exited (after serving as a deployment, or idle)."""
    proc = _spawned.get(pid) if pid else None
    if proc is not None and proc.poll() is not None:
        _spawned.pop(proc.pid, None)


def stop_all() -> int:
    """Stop every idle standby of this environment (``mm standby --stop``, a test session's end); how many."""
    import signal

    stopped = 0
    with contextlib.suppress(OSError):
        for path in [*pool_dir().glob("*.sock"), *pool_dir().glob("*.warming")]:
            pid = _pid_of(path)
            if pid_alive(pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
                    stopped += 1
            path.unlink(missing_ok=True)
    return stopped


def _pid_of(path: Path) -> int | None:
    return int(path.stem) if path.stem.isdigit() else None


def _read_all(conn: socket.socket, limit: int = 16 * 1024 * 1024) -> bytes:
    chunks, size = [], 0
    while chunk := conn.recv(65536):
        size += len(chunk)
        if size > limit:
            raise ValueError("order too large")
        chunks.append(chunk)
    return b"".join(chunks)


def listen(pool: Path, idle: float) -> tuple[socket.socket, dict[str, Any]] | None:
    """Listen until an order from this user arrives (the connection and the order), or ``idle`` seconds pass."""
    path = pool / f"{os.getpid()}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(1)
        (pool / f"{os.getpid()}.warming").unlink(missing_ok=True)
        listener.settimeout(idle)
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return None
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
            try:
                order = json.loads(_read_all(conn)) if uid == os.getuid() else None
            except (OSError, ValueError):
                order = None
            if isinstance(order, dict) and _valid(order):
                return conn, order
            conn.close()
    finally:
        listener.close()
        path.unlink(missing_ok=True)


def _valid(order: dict[str, Any]) -> bool:
    argv, env = order.get("argv"), order.get("env")
    return (
        isinstance(argv, list)
        and all(isinstance(a, str) for a in argv)
        and isinstance(env, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
        and isinstance(order.get("cwd"), str)
        and isinstance(order.get("log"), str)
    )


def become(conn: socket.socket, order: dict[str, Any]) -> list[str]:
    """Turn this process into the ordered server: its command line (as ``ps`` shows it), directory, environment and
    log; answer the caller with this pid; return the server's arguments. ``setproctitle`` must have been imported
    while the original environment was intact (it finds the memory it rewrites through it)."""
    import setproctitle

    argv = order["argv"]
    setproctitle.setproctitle(" ".join([sys.executable, "-m", "mm_magics.engine.serving.server", *argv]))
    os.chdir(order["cwd"])
    os.environ.clear()
    os.environ.update(order["env"])
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(order["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    with contextlib.suppress(OSError):
        conn.sendall(json.dumps({"pid": os.getpid()}).encode())
    conn.close()
    return argv


def idle_seconds() -> float:
    try:
        return float(os.environ.get("MM_STANDBY_IDLE", IDLE_S))
    except ValueError:
        return IDLE_S
