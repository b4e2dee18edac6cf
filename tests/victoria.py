"""A real VictoriaMetrics server for tests: Debian's ``victoria-metrics`` accepts InfluxDB's ``/api/v2/write`` line
protocol unchanged from influxdb-client (no InfluxDB 2 is installable here; see ../shared/ENVIRONMENT.md).

Points are read back through VictoriaMetrics' own API (``/internal/force_flush`` then ``/api/v1/export``): each field
is a series ``<measurement>_<field>``, tags are labels, timestamps are in ms and string fields are not kept.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

VM_BINARY = shutil.which("victoria-metrics")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Victoria:
    """A real victoria-metrics process on a loopback port, stoppable and restartable on the same port and data."""

    def __init__(self, data: Path, port: int, log: Path) -> None:
        self.data, self.port, self.log = data, port, log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert VM_BINARY
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    VM_BINARY,
                    f"-storageDataPath={self.data}",
                    f"-httpListenAddr=127.0.0.1:{self.port}",
                    "-retentionPeriod=100y",
                    "-search.latencyOffset=0s",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"victoria-metrics exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"victoria-metrics did not answer /health within 30 s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def flush(self) -> None:
        """Make what was ingested searchable now (VictoriaMetrics does so on its own within seconds)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass

    def export(self, match: str) -> list[dict]:
        self.flush()
        body = urllib.parse.urlencode({"match[]": match}).encode()
        with urllib.request.urlopen(f"{self.url}/api/v1/export", data=body, timeout=30) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]

    def series(self, match: str, expected_samples: int, timeout: float = 30.0) -> dict[tuple, list[tuple[int, float]]]:
        """{(name, sorted labels): [(ts_ms, value), ...]} once ``expected_samples`` samples are searchable.

        VictoriaMetrics makes freshly ingested samples searchable asynchronously (about a second), so poll.
        """
        deadline = time.monotonic() + timeout
        while True:
            found: dict[tuple, list[tuple[int, float]]] = {}
            for row in self.export(match):
                labels = dict(row["metric"])
                name = labels.pop("__name__")
                key = (name, tuple(sorted(labels.items())))
                found.setdefault(key, []).extend(zip(row["timestamps"], row["values"], strict=True))
            total = sum(len(v) for v in found.values())
            if total >= expected_samples or time.monotonic() > deadline:
                return {k: sorted(v) for k, v in found.items()}
            time.sleep(0.2)


@pytest.fixture
def victoria(tmp_path: Path):
    if VM_BINARY is None:
        if os.environ.get("CI"):
            pytest.fail("victoria-metrics is not installed: run `bash scripts/setup-servers.sh` (CI must not skip)")
        pytest.skip("victoria-metrics is not installed: run `bash scripts/setup-servers.sh` as root")
    server = Victoria(tmp_path / "vm-data", free_port(), tmp_path / "vm.log")
    server.start()
    yield server
    server.stop()
