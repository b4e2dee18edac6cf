"""The workspace's serving secrets: the bearer token clients send and the admin token our own tools send.

Kept in ``run/secrets/<kind>`` (mode 0600, never in git), created on first use and shared by every runner, so a
client's token works whichever way a model is served.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def workspace_secret(run_dir: Path, kind: str) -> str:
    """A per-workspace secret kept in ``run/secrets/<kind>`` (never in git), created on first use.

    The bearer and admin tokens: shared by every runner, so a client's token works whichever way a model is served.
    """
    path = run_dir / "secrets" / kind
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text().strip()
        if value:
            return value
    value = secrets.token_urlsafe(32)
    _write_secret(path, value)
    return value


def _write_secret(path: Path, value: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return path


def secret_path(run_dir: Path, kind: str) -> Path:
    """The file holding the secret (created first if need be), for a server that reads it with ``--token-file``."""
    workspace_secret(run_dir, kind)
    return run_dir / "secrets" / kind
