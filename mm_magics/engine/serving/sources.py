"""Where a server's versions come from: the workspace's registry (a local server), or a bundle directory baked
into a container image. Both verify the artifact's sha256 before loading, and never unpickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import DeploymentError
from .state import identity


class WorkspaceSource:
    """Versions straight from the workspace's registry (hash verified, never unpickled)."""

    def __init__(self, workspace: Any) -> None:
        self.ws = workspace

    def load(self, spec: str) -> tuple[dict[str, Any], Any]:
        """The version and its model, shared from the registry's sha256-keyed cache: a server never changes a model,
        so switching back to a version it served before costs a hash check, not a reload."""
        version = self.ws.registry.get(spec)
        return version.to_dict(), self.ws.registry.cached_model(version, verify=True)

    def admit(self, spec: str, reason: str, force: bool) -> None:
        from ..lifecycle import SERVING

        version = self.ws.registry.get(spec)
        if version.stage not in SERVING:
            self.ws.lifecycle.preflight(version.id, "deploy", reason, force=force)


class BundleSource:
    """A version packed into a directory (``version.json``, ``artifact.skops``, ``trusted.json``): Docker images."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def admit(self, spec: str, reason: str, force: bool) -> None:
        doc = json.loads((self.root / "version.json").read_text())
        name, number = identity(doc)
        if spec != f"{name}@v{number}":
            raise DeploymentError(f"this container serves only {name}@v{number}: switch with mm deploy {spec}")

    def load(self, spec: str | None = None) -> tuple[dict[str, Any], Any]:
        from .. import serialization
        from ..artifacts import sha256_bytes
        from ..errors import ArtifactCorruptError

        doc = json.loads((self.root / "version.json").read_text())
        data = (self.root / "artifact.skops").read_bytes()
        if sha256_bytes(data) != doc["artifact"]["sha256"]:
            raise ArtifactCorruptError(f"bundle artifact in {self.root} does not match its sha256: rebuild the image")
        trusted_file = self.root / "trusted.json"
        trusted = json.loads(trusted_file.read_text()) if trusted_file.exists() else []
        name, number = identity(doc)
        label = f"artifact of {name}@v{number}"
        return doc, serialization.loads(data, trusted=trusted, label=label)
