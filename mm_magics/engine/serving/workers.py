"""Several server processes behind one port (``--workers N``), so a deployment can use every core.

The first process binds the public socket, then forks the others before it opens the workspace or starts a thread
(GitPython's pipes and the recorder's thread must not be shared across a fork): every worker accepts on the same
socket, loads the model itself, and records the requests it answers, so each request is recorded exactly once.
Each worker also listens on a private loopback port. An admin call that must reach every worker (a version swap, a
metrics flush) is passed on by whichever worker received it to the others' private ports, and a scrape of
``/metrics`` or ``/mm/v1/status`` is summed over all of them: clients, Prometheus and the Deployer see one server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

#: Header on a call passed from one worker to another: the receiver acts on it alone and passes nothing on.
PEER_HEADER = "x-mm-peer"
MAX_WORKERS = 64


@dataclass
class Workers:
    """This process's place among a deployment's workers."""

    index: int = 0
    ports: list[int] = field(default_factory=list)  # each worker's private loopback port, by index
    children: list[int] = field(default_factory=list)  # forked pids (the first worker only)

    @property
    def count(self) -> int:
        return max(1, len(self.ports))

    @property
    def peers(self) -> list[str]:
        """The other workers' private base URLs."""
        return [f"http://127.0.0.1:{p}" for i, p in enumerate(self.ports) if i != self.index]


def fork(n: int) -> tuple[Workers, socket.socket | None]:
    """Fork ``n - 1`` workers; each process gets its place and its private listening socket (None for one worker).

    Call it after binding the public socket and before anything starts a thread or opens a pipe."""
    if n <= 1:
        return Workers(), None
    private = []
    for _ in range(n):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        private.append(sock)
    ports = [s.getsockname()[1] for s in private]
    children = []
    for index in range(1, n):
        pid = os.fork()
        if pid == 0:
            _die_with_parent()
            for i, sock in enumerate(private):
                if i != index:
                    sock.close()
            return Workers(index, ports), private[index]
        children.append(pid)
    for sock in private[1:]:
        sock.close()
    return Workers(0, ports, children), private[0]


def _die_with_parent() -> None:
    """A worker whose first process is killed outright (SIGKILL) gets SIGTERM, never serves on unowned (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(0)


def stop_children(workers: Workers, timeout: float = 8.0) -> None:
    """SIGTERM the forked workers (each drains and writes what it recorded), SIGKILL what outlives ``timeout``."""
    for pid in workers.children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    pending = set(workers.children)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                pending.discard(pid)
        time.sleep(0.02)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


async def pass_on(peers: list[str], path: str, token: str, body: Any = None) -> list[tuple[str, int, Any]]:
    """POST ``body`` to ``path`` on every peer, all at once: (peer, status, JSON answer) each; status 0 when the
    peer did not answer."""
    import httpx

    headers = {"Authorization": f"Bearer {token}", PEER_HEADER: "1"}
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(peer: str) -> tuple[str, int, Any]:
            try:
                resp = await client.post(peer + path, json=body, headers=headers)
            except httpx.HTTPError as exc:
                return peer, 0, {"error": f"{type(exc).__name__}: {exc}"}
            try:
                return peer, resp.status_code, resp.json()
            except ValueError:
                return peer, resp.status_code, {"error": resp.text[:200]}

        return list(await asyncio.gather(*(one(p) for p in peers)))


async def gather_get(peers: list[str], path: str, token: str | None) -> list[tuple[int, bytes]]:
    """GET ``path`` from every peer: (status, body) each, status 0 when the peer did not answer."""
    import httpx

    headers = {PEER_HEADER: "1", **({"Authorization": f"Bearer {token}"} if token else {})}
    async with httpx.AsyncClient(timeout=10) as client:

        async def one(peer: str) -> tuple[int, bytes]:
            try:
                resp = await client.get(peer + path, headers=headers)
            except httpx.HTTPError:
                return 0, b""
            return resp.status_code, resp.content

        return list(await asyncio.gather(*(one(p) for p in peers)))


def merge_expositions(texts: list[str]) -> bytes:
    """One Prometheus exposition from every worker's: counters, histograms and summaries summed by label set,
    gauges (model load time) their largest value, so a scrape reads the same whatever the worker count."""
    from prometheus_client.core import Metric
    from prometheus_client.exposition import generate_latest
    from prometheus_client.parser import text_string_to_metric_families
    from prometheus_client.registry import CollectorRegistry

    families: dict[str, Metric] = {}
    values: dict[tuple[str, str, tuple[tuple[str, str], ...]], float] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            families.setdefault(family.name, family)
            for sample in family.samples:
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                if key not in values:
                    values[key] = sample.value
                elif family.type == "gauge":
                    values[key] = max(values[key], sample.value)
                else:
                    values[key] += sample.value
    merged = []
    for name, family in families.items():
        metric = Metric(name, family.documentation, family.type, family.unit)
        for (fam, sample_name, labels), value in values.items():
            if fam == name:
                metric.add_sample(sample_name, dict(labels), value)
        merged.append(metric)

    class Merged:
        def collect(self) -> list[Metric]:
            return merged

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Merged())
    return generate_latest(registry)
