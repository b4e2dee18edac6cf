"""Real servers from Debian packages, started by the suite on free loopback ports (``scripts/setup-servers.sh``
installs them): an OCI registry (CNCF distribution, ``docker-registry``) and Prometheus.

Each runs with a generated config and a temporary data directory and is stopped at the end; without its binary a
test skips on a developer machine and fails in CI (``CI`` set), so CI can never pass by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .victoria import free_port


def _require(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        message = f"{binary} is not installed: run `bash scripts/setup-servers.sh` as root"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must not skip)")
        pytest.skip(message)
    return path


class Daemon:
    """One server process: started, waited for until ``health`` answers 200, stopped (SIGTERM, then SIGKILL)."""

    def __init__(self, argv: list[str], health: str, log: Path) -> None:
        self.argv, self.health, self.log = argv, health, log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.argv[0]} exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.health, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        tail = self.log.read_text()[-2000:]
        pytest.fail(f"{self.argv[0]} did not answer {self.health} within {timeout:.0f} s: {tail}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


REGISTRY_CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a real registry (Docker treats loopback registries as insecure, so plain HTTP works)."""
    binary = _require("docker-registry")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(REGISTRY_CONFIG.format(root=root / "data", port=port))
    daemon = Daemon([binary, "serve", str(config)], f"http://127.0.0.1:{port}/v2/", root / "registry.log")
    daemon.start()
    yield f"127.0.0.1:{port}"
    daemon.stop()


class Prometheus(Daemon):
    """A real Prometheus scraping the given targets every 250 ms; :meth:`query` asks its HTTP API."""

    def __init__(self, root: Path, targets: dict[str, str]) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        jobs = [
            {
                "job_name": job,
                "scrape_interval": "250ms",
                "scrape_timeout": "200ms",
                "static_configs": [{"targets": [urllib.parse.urlsplit(url).netloc]}],
                "metrics_path": urllib.parse.urlsplit(url).path or "/metrics",
            }
            for job, url in targets.items()
        ]
        config = root / "prometheus.yml"
        config.write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}))  # JSON is YAML
        argv = [
            _require("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        super().__init__(argv, f"{self.url}/-/ready", root / "prometheus.log")

    def query(self, promql: str) -> list[dict]:
        """The instant vector ``promql`` evaluates to now (the ``result`` of ``/api/v1/query``)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]["result"]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[type]:
    """A factory: ``prometheus({"job": "http://127.0.0.1:PORT/metrics"})`` starts a Prometheus scraping those."""
    started: list[Prometheus] = []

    def start(targets: dict[str, str]) -> Prometheus:
        server = Prometheus(tmp_path / f"prometheus-{len(started)}", targets)
        started.append(server)
        server.start()
        return server

    yield start  # type: ignore[misc]
    for server in started:
        server.stop()
