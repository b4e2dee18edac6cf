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
    """A version packed into a directory (``version.json``, ``artifact.skops``, ``trusted.json``): Docker images.

    ``candidates``: where a canary or shadow release's bundle is delivered into a running container
    (``<candidates>/vN/``, written by the Docker runner before it asks the server to start the release). The image's
    own bundle is the only version it serves otherwise; a candidate is verified the same way (sha256 before load).
    """

    def __init__(self, root: Path, candidates: Path | None = None) -> None:
        self.root = Path(root)
        self.candidates = Path(candidates) if candidates else None

    def _bundle(self, spec: str | None) -> Path:
        if spec is None:
            return self.root
        doc = json.loads((self.root / "version.json").read_text())
        name, number = identity(doc)
        if spec == f"{name}@v{number}":
            return self.root
        wanted, _, n = spec.partition("@v")
        folder = self.candidates / f"v{n}" if self.candidates and wanted == name and n.isdigit() else None
        if folder is None or not (folder / "version.json").is_file():
            raise DeploymentError(
                f"this container serves only {name}@v{number} and was handed no bundle of {spec}: switch with "
                f"mm deploy {spec}, or start a release with mm deploy {spec} --canary 10"
            )
        if identity(json.loads((folder / "version.json").read_text())) != (name, int(n)):
            raise DeploymentError(f"the bundle delivered for {spec} holds another version: start the release again")
        return folder

    def admit(self, spec: str, reason: str, force: bool) -> None:
        """A container has no lifecycle to check: the workspace's gates were checked before a bundle was handed
        over, so any version it holds a bundle of may serve."""
        self._bundle(spec)

    def load(self, spec: str | None = None) -> tuple[dict[str, Any], Any]:
        from .. import serialization
        from ..artifacts import sha256_bytes
        from ..errors import ArtifactCorruptError

        root = self._bundle(spec)
        doc = json.loads((root / "version.json").read_text())
        data = (root / "artifact.skops").read_bytes()
        if sha256_bytes(data) != doc["artifact"]["sha256"]:
            raise ArtifactCorruptError(f"bundle artifact in {root} does not match its sha256: rebuild the image")
        trusted_file = root / "trusted.json"
        trusted = json.loads(trusted_file.read_text()) if trusted_file.exists() else []
        name, number = identity(doc)
        label = f"artifact of {name}@v{number}"
        return doc, serialization.loads(data, trusted=trusted, label=label)
