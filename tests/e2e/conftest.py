"""The browser the e2e tests share: Debian's Chromium driven by Playwright (never Playwright's own download), one
per test module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .lab import CHROMIUM, chromium_or_skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()
