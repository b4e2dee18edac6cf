"""One way for a test to wait for something that happens off its thread: a condition polled until a deadline.

Never a fixed sleep (too short on a busy machine, wasted on a quiet one), never a timing assertion: the deadline
only bounds a wait that normally ends in milliseconds, and running out of it says what never happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, *, timeout: float = 30.0, every: float = 0.02) -> T:
    """Return the first truthy value of ``condition()``; fail with ``what`` if none comes within ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}")
        time.sleep(every)
