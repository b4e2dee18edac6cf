"""`pip install` gives a working panel with no node step: the prebuilt extension and the server extension are
installed and enabled, and the panel's version is the package's (the handshake compares them)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from mm_magics import __version__

ROOT = Path(__file__).resolve().parents[2]


def jupyter(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120, check=True
    )
    return re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # without the colours


def test_the_prebuilt_panel_is_installed_and_enabled():
    listing = jupyter("labextension", "list")
    assert re.search(rf"mm-magics v{re.escape(__version__)} enabled\s+\S*OK", listing), listing


def test_the_server_extension_is_enabled():
    listing = jupyter("server", "extension", "list")
    assert re.search(r"mm_magics\.server enabled", listing), listing
    assert re.search(rf"mm_magics\.server {re.escape(__version__)} OK", listing), listing


def test_the_panel_the_package_and_the_handshake_share_one_version():
    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    source = (ROOT / "labextension" / "src" / "version.ts").read_text()
    assert package["version"] == __version__
    assert f"export const VERSION = '{__version__}';" in source
