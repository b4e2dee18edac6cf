"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so this imports as ``_bench``).

Only what the scripts had in common word for word or nearly: logging to stderr (stdout carries the JSON), medians
and rounding, the interleaving order, machine facts, the wrk binary, and stopping the servers a run started.
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def make_log(tag: str) -> Callable[[str], None]:
    """A progress logger to stderr: stdout is reserved for the benchmark's JSON document."""

    def log(message: str) -> None:
        print(f"[{tag} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    return log


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rotated(items: list[T], by: int) -> list[T]:
    """The measurement order of round ``by``: rotating it spreads a noisy neighbour's burst over every target."""
    by %= len(items)
    return items[by:] + items[:by]


def terminate_on_sigterm() -> None:
    """Turn SIGTERM/SIGHUP into SystemExit, so the finally blocks stop every server the run started."""

    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def wrk_info() -> dict[str, str]:
    """Debian's wrk (C, epoll): a load generator that is not the bottleneck on a 2-core machine."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(
            "wrk is not installed: apt-get update && apt-get install -y -o DPkg::Lock::Timeout=300 wrk "
            "(the benchmark needs a load generator that is not the bottleneck)"
        )
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()  # wrk prints its version and exits 1
    return {"name": "wrk", "path": path, "version": first[0] if first else "unknown"}


def stop_process(proc: subprocess.Popen[bytes], label: str, log: Callable[[str], None], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    log(f"stopping the {label} (pid {proc.pid})")
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
