"""A version's image, published: built by the Docker path a deploy uses, tagged, pushed to any OCI registry.

The image a deploy runs and the image a platform team pulls are the same image: the version layer on the shared
runtime, with a command that serves standalone (``docker run -p 8000:8000 IMAGE``) and OCI labels naming the version,
its artifact's sha256 and the workspace commit. Pushing goes through the docker SDK, so credentials are the engine's
own (``docker login`` writes them to ``~/.docker/config.json``) and a user string never reaches a command line.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import DeploymentError, UsageError, one_line
from ..records import Record
from . import image_refs
from .docker_engine import docker_sdk, engine_errors

if TYPE_CHECKING:
    from ..records import Version
    from .docker_images import ImageBuilder

REFERENCE_HELP = "REGISTRY/REPO[:TAG], e.g. registry.example.com:5000/team/iris:v3 (lowercase repository path)"


@dataclass
class PublishedImage(Record):
    """What ``mm image`` did: the local image, and where it was pushed (with the registry's digest)."""

    version: str
    image: str
    image_id: str
    labels: dict[str, str] = field(default_factory=dict)
    pushed: str | None = None
    digest: str | None = None
    seconds: float = 0.0

    @property
    def pinned(self) -> str | None:
        """``REPO@sha256:…``: the reference a manifest should use, immune to a tag moving."""
        if not (self.pushed and self.digest):
            return None
        return f"{self.pushed.rsplit(':', 1)[0]}@{self.digest}"  # pushed always ends in its tag

    def __str__(self) -> str:
        lines = [f"{self.version}: image {self.image} ({self.image_id[:19]}) in {self.seconds:.1f}s"]
        if self.pushed:
            lines.append(f"pushed {self.pushed}, digest {self.digest}")
            lines.append(f"pull by digest: {self.pinned}")
        lines.append("runs standalone: docker run -p 8000:8000 " + (self.pushed or self.image))
        return "\n".join(lines)


def parse_reference(reference: str, default_tag: str) -> tuple[str, str]:
    """``(repository, tag)`` of a push target; ``default_tag`` when it names none. A one-line error otherwise (a
    digest names content already pushed, not a place to push to)."""
    found = image_refs.match(reference.strip())
    if found is None or found["digest"] or reference.startswith("-"):
        raise UsageError(f"{reference!r} is not an image reference to push to: use {REFERENCE_HELP}")
    tag = found["tag"] or default_tag
    repository = reference.strip() if not found["tag"] else reference.strip()[: -len(found["tag"]) - 1]
    return repository, tag


def publish(builder: ImageBuilder, version: Version, push: str | None = None) -> PublishedImage:
    """Build (or reuse) ``version``'s image; with ``push``, tag it so and push it, reporting the registry's digest."""
    target = parse_reference(push, f"v{version.number}") if push else None
    start = time.perf_counter()
    built = builder.build(version)
    result = PublishedImage(version.id, built.image, built.image_id, labels=_labels(builder, built.image))
    if target is not None:
        repository, tag = target
        result.pushed = f"{repository}:{tag}"
        result.digest = _push(builder.client, built.image, repository, tag)
    result.seconds = time.perf_counter() - start
    return result


def _labels(builder: ImageBuilder, image: str) -> dict[str, str]:
    with engine_errors(f"inspect {image}"):
        return dict(builder.client.images.get(image).labels or {})


def _push(client: Any, image: str, repository: str, tag: str) -> str:
    """Push ``image`` as ``repository:tag``; the manifest digest the registry answered with."""
    docker_sdk()
    with engine_errors(f"tag {image} as {repository}:{tag}"):
        client.api.tag(image, repository, tag)
    digest = ""
    with engine_errors(f"push {repository}:{tag}"):
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                detail = one_line(chunk.get("errorDetail", {}).get("message") or chunk["error"], 300)
                raise DeploymentError(
                    f"pushing {repository}:{tag} failed: {detail} (check the registry is reachable and "
                    "`docker login REGISTRY` has been run if it needs credentials)"
                )
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
    if not digest:
        raise DeploymentError(f"the registry did not confirm the push of {repository}:{tag} (no digest came back)")
    return digest
