"""Deployment records: which version serves where, kept as run-time state (``.mm/run/deployments/``, not git).

One JSON file per model, written atomically, so a kernel restart, another kernel or the ``mm`` command all see
the same picture. A record whose process or container is gone is reported as stale, never silently trusted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..atomic import atomic_write_text
from ..errors import DeploymentError, MMError
from ..records import Record
from ..specs import check_name

if TYPE_CHECKING:
    from ..records import Version


@dataclass(repr=False)
class Deployment(Record):
    """A running (or once-running) server for one version of one model."""

    name: str
    version: str  # NAME@vN
    runner: str  # "local" or "docker"
    url: str  # base URL, e.g. http://127.0.0.1:8123
    host: str
    port: int
    started: str
    pid: int | None = None
    container_id: str | None = None
    image: str | None = None
    batch: bool = False
    workers: int = 1  # server processes sharing the port
    log: str | None = None
    token_required: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    status: str = "unknown"  # filled in by the runner's health check: running / stale / unhealthy
    note: str | None = None  # what the health check found that the record does not say
    stage: str | None = None  # the served version's lifecycle stage when this record was made
    forced: bool = False  # the deploy overrode refused gates (the audit log has the reason)
    gates: list[dict[str, Any]] = field(default_factory=list)  # the deploy gates checked: gate, passed, detail
    release: dict[str, Any] | None = None  # a candidate beside the served version: version, mode, percent, started

    def __str__(self) -> str:
        where = f"pid {self.pid}" if self.runner == "local" else f"container {(self.container_id or '')[:12]}"
        if self.workers > 1:
            where += f", {self.workers} workers"
        text = f"{self.name}: {self.version} at {self.url} ({self.runner}, {where}, {self.status})"
        if self.forced:
            refused = [g["gate"] for g in self.gates if not g.get("passed")]
            text += f"; FORCED past {', '.join(refused) or 'its gates'}"
        if self.release:
            r = self.release
            share = f"{r['percent']:g} % of requests" if r["mode"] == "canary" else "every request, answering none"
            text += f"; {r['mode']} {r['version']} takes {share}"
            if r.get("auto"):
                text += f" (decided automatically by the promotion rule, checked every {r['auto']['every']:g}s)"
        if self.token_required:
            text += "; clients need the workspace token (Authorization: Bearer ...; `mm token` prints it)"
        return f"{text}; {self.note}" if self.note else text

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Deployment:
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


class Runner(Protocol):
    """How one kind of server is started, checked, switched and stopped (a local process, a Docker container).

    Runners keep no records and take no locks: the :class:`~.deployer.Deployer` owns both, so the rules about what
    may be deployed when (one deploy of a model at a time, gates, the audit trail) live in one place whatever the
    runner. ``publish`` hands the Deployer a record the moment it becomes true (a switch's new server takes traffic
    before the old one is stopped, and clients read the URL from the record)."""

    kind: str

    def start(self, version: Version, *, port: int | None, host: str, batch: bool, workers: int = 1) -> Deployment:
        """Start a server for ``version`` and return once it answers ready (nothing left behind if it never does)."""
        ...

    def status(self, dep: Deployment) -> str:
        """``running``, ``unhealthy`` (up, not ready) or ``stale`` (gone); may correct ``dep`` to what really serves."""
        ...

    def switch(
        self, dep: Deployment, version: Version, *, reason: str, force: bool, publish: Callable[[Deployment], None]
    ) -> Deployment:
        """Serve ``version`` in ``dep``'s place without a failed request; returns the record that is now true."""
        ...

    def stop(self, dep: Deployment, *, timeout: float | None = None, keep_image: bool = False) -> None:
        """Stop the server and remove what belongs to it; a server already gone is not an error."""
        ...


class DeploymentStore:
    def __init__(self, run_dir: Path) -> None:
        self.root = Path(run_dir) / "deployments"

    def path(self, name: str) -> Path:
        return self.root / f"{check_name(name)}.json"

    def save(self, dep: Deployment) -> None:
        doc = asdict(dep)
        doc.pop("status", None)
        doc.pop("note", None)
        atomic_write_text(self.path(dep.name), json.dumps(doc, indent=2, sort_keys=True) + "\n")

    def get(self, name: str) -> Deployment | None:
        path = self.path(name)
        try:
            doc = json.loads(path.read_text())
            return Deployment.from_dict(doc)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, AttributeError, RecursionError):
            raise DeploymentError(
                f"the deployment record {path} is damaged: stop the server it names by hand and delete the file"
            ) from None

    def all(self) -> list[Deployment]:
        if not self.root.is_dir():
            return []
        out = []
        for path in sorted(self.root.glob("*.json")):
            if path.name.endswith(".state.json"):
                continue
            try:
                dep = self.get(path.stem)
            except MMError:  # a stray or damaged file must not hide every other deployment
                continue
            if dep is not None:
                out.append(dep)
        return out

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return True


@dataclass(repr=False)
class DeploymentList(Record):
    deployments: list[Deployment]

    def __str__(self) -> str:
        if not self.deployments:
            return "nothing deployed: deploying a version starts a server for it"
        return "\n".join(str(d) for d in self.deployments)


@dataclass(repr=False)
class Prediction(Record):
    """A prediction made through the real endpoint, with the latency split the server reported."""

    version: str
    request_id: str | None
    outputs: dict[str, Any]
    latency_ms: dict[str, float]

    def __str__(self) -> str:
        lat = self.latency_ms
        return (
            f"{self.version} -> {self.outputs.get('predict', self.outputs)}  (request {self.request_id}; "
            f"{lat['total']:.1f} ms = processing {lat['processing']:.2f} + queue {lat['queue']:.2f} + "
            f"server overhead {max(lat['server'] - lat['processing'] - lat['queue'], 0):.2f} + "
            f"network {lat['network']:.2f})"
        )
