"""JupyterLab on 127.0.0.1 for the browser tests: its own settings (every cell rendered, no news pop-up), a token,
started and stopped for real."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a JupyterLab (and the kernels it starts) whose settings live under ``root``."""
    data_dir = root / ".jupyter-data"
    data_dir.mkdir(exist_ok=True)
    settings = root / ".lab-settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True, exist_ok=True)
    # every cell rendered (not windowed), so what is below the fold can be measured like what is above it
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    (settings / "apputils-extension").mkdir(parents=True, exist_ok=True)
    news = settings / "apputils-extension" / "notification.jupyterlab-settings"
    news.write_text('{"fetchNews": "false"}')  # no pop-up over the cells
    return {
        **os.environ,
        "MM_HOME": str(root / ".mm"),
        "JUPYTER_DATA_DIR": str(data_dir),
        "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces"),
        **extra,
    }


@contextmanager
def jupyterlab(root: Path, env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A running JupyterLab serving ``root``: ``{"url", "token"}``; stopped (and its log kept) afterwards."""
    port, token = free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
        f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", "--expose-app-in-browser",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
    ]  # fmt: skip
    log = open(root / "lab.log", "wb")  # noqa: SIM115 - closed below, after the server stops
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((root / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.3)
        yield {"url": url, "token": token}
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def chromium_or_skip() -> None:
    """Skip where no Chromium is installed and CI is unset; in CI that is a failure."""
    if not Path(CHROMIUM).exists():
        reason = f"no Chromium at {CHROMIUM}: run bash scripts/setup-browser.sh (as root)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so a missing browser is a failure: {reason}")
        pytest.skip(reason)


def use_theme(page: Any, theme: str, settle_ms: int = 500) -> None:
    """Switch JupyterLab's theme the way its menu does, and wait until it applies: the body's attribute flips
    first, the theme's stylesheet a little later (``settle_ms``)."""
    page.evaluate("t => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", theme)
    light = "true" if "Light" in theme else "false"
    page.wait_for_selector(f"body[data-jp-theme-light='{light}']", state="attached", timeout=30_000)
    page.wait_for_timeout(settle_ms)


def open_notebook(
    browser: Any, lab: dict[str, Any], name: str, ready: str, theme: str = "JupyterLab Light", width: int = 1400
) -> Any:
    """A new page showing only notebook ``name`` (``?reset``), once a cell holding ``ready`` is on screen, in
    ``theme``."""
    page = browser.new_page(viewport={"width": width, "height": 1000})
    page.goto(f"{lab['url']}/lab/tree/{name}?reset&token={lab['token']}")
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", has_text=ready).first.wait_for(timeout=60_000)
    use_theme(page, theme)
    return page
