"""Version images: a shared runtime image per environment, and one small layer per version on top of it.

Why it is shaped this way:

* **No network during builds.** Containers here (and behind many corporate proxies) cannot reach PyPI, so every
  wheel is downloaded on the host into a cache (``$XDG_CACHE_HOME/mm_magics/wheels``) and put in the build context;
  builds run with ``network_mode="none"`` and ``pip install --no-index``.
* **Same packages as at training time.** The model's libraries are pinned to the versions recorded in the version's
  ``environment["packages"]``; the server's own libraries to the versions installed on the host.
* **A new version rebuilds one small layer.** Two images: a *runtime* image (base, then a venv with the pinned
  dependencies, then mm_magics itself copied as installed) tagged by a hash of everything that went into it and
  shared by every version with that environment; and a *version* image that is the runtime plus one ``COPY`` of the
  bundle (``version.json``, ``artifact.skops``, ``trusted.json``). Removing a version image never removes the
  runtime, so redeploys and rollbacks stay fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DeploymentError, one_line
from .docker_engine import LABEL, SETUP, docker_sdk, engine_errors, is_docker_error
from .image_context import WheelCache, copy_package, link_or_copy, requirements_for, write_bundle

if TYPE_CHECKING:
    from ..records import Version
    from ..workspace import Workspace

DEFAULT_BASE_IMAGE = "python:3.11-slim"
LOCAL_BASE_IMAGE = "local/python:3.11"
BASE_IMAGE_ENV = "MM_DOCKER_BASE_IMAGE"
RUNTIME_REPO = "mm-magics/runtime"
CONTAINER_PORT = 8000  # what `docker run -p 8000:8000 IMAGE` and a Kubernetes pod expect
TOKEN_DIR = "/run/mm"
TOKEN_PATH = f"{TOKEN_DIR}/token"
#: Where a canary's or shadow's bundle is delivered into a running container (``vN/``), beside the image's own.
CANDIDATES_DIR = "/run/mm-candidates"
SERVER_CMD = [
    "/opt/mm/bin/python",
    "-m",
    "mm_magics.engine.serving.server",
    "--bundle",
    "/bundle",
    "--host",
    "0.0.0.0",
    "--port",
    str(CONTAINER_PORT),
    "--token-file",
    TOKEN_PATH,
]

RUNTIME_DOCKERFILE = """\
# mm_magics runtime image: shared by every version whose environment resolves to the same wheels.
# Stage 1 installs the pinned dependencies offline from the wheels in the build context; only the resulting venv
# is copied into the final image, so the wheels themselves never end up in it.
FROM {base} AS deps
COPY wheels/ /tmp/wheels/
RUN python3 -m venv /opt/mm \\
 && /opt/mm/bin/python -m pip install --no-cache-dir --no-index --find-links /tmp/wheels \\
      -r /tmp/wheels/requirements.txt

FROM {base}
# (b) the dependencies: changes only when the pinned environment changes
COPY --from=deps /opt/mm /opt/mm
# (c) mm_magics itself, copied as installed on the host: changes when mm_magics changes; small
COPY pkg/ /opt/mm-pkg/
ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PATH=/opt/mm/bin:$PATH PYTHONPATH=/opt/mm-pkg
USER 65534:65534
EXPOSE {port}
CMD {cmd}
"""

VERSION_DOCKERFILE = """\
# (d) one version of one model: the only layer a new version adds
FROM {runtime}
COPY bundle/ /bundle/
# standalone (`docker run -p 8000:8000 IMAGE`, a Kubernetes pod): a token mounted at {token} is required of every
# client, none means none; requests are logged under /tmp. A deploy from the workspace passes its own command.
CMD {cmd}
"""


def standalone_command(name: str) -> list[str]:
    """The version image's own command: the server as a published image runs it, with no workspace around it."""
    return [*SERVER_CMD, "--allow-no-token", "--metrics-db", "/tmp/mm/metrics.sqlite", f"--deployment={name}"]


def workspace_id(root: Path) -> str:
    """Which workspace built an image, without putting its path (a home directory, a user name) into an image that
    may be pushed anywhere: a hash of the path, for ``docker images --filter label=…``."""
    return hashlib.sha256(str(root).encode()).hexdigest()[:16]


def oci_labels(version: Version) -> dict[str, str]:
    """The OCI annotation keys a registry, ``docker inspect`` and scanners read, plus our own: which version, which
    bytes (the artifact's sha256) and which workspace commit an image serves, wherever the image travels."""
    labels = {
        "org.opencontainers.image.title": version.name,
        "org.opencontainers.image.version": f"v{version.number}",
        "org.opencontainers.image.created": version.created,
        "org.opencontainers.image.description": f"{version.id} served over Open Inference Protocol V2 and MLflow "
        "/invocations by mm_magics",
        f"{LABEL}.model": version.name,
        f"{LABEL}.version": version.id,
        f"{LABEL}.sha256": version.sha256,
    }
    if version.commit:
        labels["org.opencontainers.image.revision"] = version.commit
        labels[f"{LABEL}.commit"] = version.commit
    return labels


@dataclass
class BuildResult:
    """What :meth:`ImageBuilder.build` did: the image tags, whether the runtime had to be built, and the log."""

    image: str
    image_id: str
    runtime: str
    runtime_built: bool
    seconds: float
    log: list[str] = field(default_factory=list)

    @property
    def cached_steps(self) -> int:
        return sum(1 for line in self.log if "Using cache" in line)


class ImageBuilder:
    """Builds (or reuses) the images a version is served from, on the engine ``client()`` returns."""

    def __init__(
        self,
        ws: Workspace,
        client: Callable[[], Any],
        base_image: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.ws = ws
        self._client = client
        self.base_image = base_image or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE
        self.progress = progress
        self.wheels = WheelCache(python_version="3.11")

    @property
    def client(self) -> Any:
        return self._client()

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    def ensure_base_image(self) -> str:
        """The base image's id, pulling it if missing; a one-line fix when it cannot be had."""
        docker = docker_sdk()

        with engine_errors(f"look up the base image {self.base_image}"):
            try:
                return self.client.images.get(self.base_image).id
            except docker.errors.ImageNotFound:
                pass
        self._say(f"pulling {self.base_image}")
        try:
            return self.client.images.pull(self.base_image).id
        except Exception as exc:
            if not is_docker_error(exc):
                raise
            reason = one_line(getattr(exc, "explanation", None) or exc, 160)
            raise DeploymentError(
                f"base image {self.base_image} is missing and cannot be pulled ({reason}): run `{SETUP}` to build "
                f"{LOCAL_BASE_IMAGE} and use it as the base image (docker_base_image setting or "
                f"{BASE_IMAGE_ENV}={LOCAL_BASE_IMAGE})"
            ) from None

    def image_tag(self, version: Version) -> str:
        """``mm-magics/NAME:vN-HASH``: unique per workspace and artifact, valid for any model name."""
        repo = re.sub(r"[^a-z0-9]+", "-", version.name.lower()).strip("-") or "model"
        if repo != version.name:  # names that differ only in case or punctuation must not share a tag
            repo = f"{repo}-{hashlib.sha256(version.name.encode()).hexdigest()[:6]}"
        ident = hashlib.sha256(f"{self.ws.root}\0{version.id}\0{version.sha256}".encode()).hexdigest()[:10]
        return f"mm-magics/{repo}:v{version.number}-{ident}"

    def build(self, version: Version | str) -> BuildResult:
        """Build (or reuse) the runtime image, then the version image on top of it. Needs no network."""
        version = self.ws.registry.get(version) if isinstance(version, str) else version
        start = time.perf_counter()
        base_id = self.ensure_base_image()
        runtime, runtime_built, log = self._ensure_runtime(version, base_id)
        tag = self.image_tag(version)
        self._say(f"building {tag}")
        with tempfile.TemporaryDirectory(prefix="mm-docker-") as tmp:
            ctx = Path(tmp)
            cmd = json.dumps(standalone_command(version.name))
            (ctx / "Dockerfile").write_text(VERSION_DOCKERFILE.format(runtime=runtime, token=TOKEN_PATH, cmd=cmd))
            write_bundle(self.ws, version, ctx / "bundle")
            labels = {**oci_labels(version), f"{LABEL}.workspace-id": workspace_id(self.ws.root)}
            image_id, version_log = self._build(ctx, tag, labels)
        return BuildResult(tag, image_id, runtime, runtime_built, time.perf_counter() - start, log + version_log)

    def _ensure_runtime(self, version: Version, base_id: str) -> tuple[str, bool, list[str]]:
        docker = docker_sdk()

        requirements = requirements_for(version)
        wheels = self.wheels.resolve(requirements)
        with tempfile.TemporaryDirectory(prefix="mm-docker-runtime-") as tmp:
            ctx = Path(tmp)
            package_hash = copy_package(ctx / "pkg")
            dockerfile = RUNTIME_DOCKERFILE.format(
                base=self.base_image, port=CONTAINER_PORT, cmd=json.dumps(SERVER_CMD)
            )
            deps = hashlib.sha256(json.dumps([base_id, dockerfile, [w.name for w in wheels]]).encode()).hexdigest()
            key = hashlib.sha256(f"{deps}\0{package_hash}".encode()).hexdigest()[:16]
            tag = f"{RUNTIME_REPO}:{key}"
            with engine_errors(f"look up the runtime image {tag}"):
                try:
                    self.client.images.get(tag)
                    return tag, False, []
                except docker.errors.ImageNotFound:
                    pass
            self._say(f"building the runtime image {tag} ({len(wheels)} wheels; once per environment)")
            (ctx / "wheels").mkdir()
            for wheel in wheels:
                link_or_copy(wheel, ctx / "wheels" / wheel.name)
            (ctx / "wheels" / "requirements.txt").write_text("\n".join(requirements) + "\n")
            (ctx / "Dockerfile").write_text(dockerfile)
            _, log = self._build(ctx, tag, {f"{LABEL}.runtime": key, f"{LABEL}.deps": deps[:16]})
        self._untag_older_runtimes(tag, deps[:16])
        return tag, True, log

    def _untag_older_runtimes(self, keep: str, deps: str) -> None:
        """Drop the tags of runtimes with the same dependencies but an older mm_magics (one per code change while
        developing). Only the tag goes: images built on them keep their layers, and the shared venv layer stays."""
        with contextlib.suppress(Exception):
            for image in self.client.images.list(name=RUNTIME_REPO, filters={"label": f"{LABEL}.deps={deps}"}):
                for tag in image.tags:
                    if tag != keep:
                        self.client.api.remove_image(tag)

    def _build(self, ctx: Path, tag: str, labels: dict[str, str]) -> tuple[str, list[str]]:
        """Build ``ctx`` as ``tag`` with the classic builder and no network; the log lines, or a one-line error."""
        log: list[str] = []
        image_id = ""
        with engine_errors(f"build {tag}"):
            stream = self.client.api.build(
                path=str(ctx), tag=tag, rm=True, forcerm=True, decode=True, labels=labels, network_mode="none"
            )
            for chunk in stream:
                if "error" in chunk:
                    tail = " | ".join(line for line in log[-4:] if line)
                    raise DeploymentError(
                        f"building {tag} failed: {one_line(chunk['error'], 300)} (last steps: {one_line(tail, 300)})"
                    )
                text = chunk.get("stream")
                if text:
                    for line in text.splitlines():
                        if line.strip():
                            log.append(line.rstrip())
                            if line.startswith("Step "):
                                self._say(line.strip())
                aux = chunk.get("aux")
                if isinstance(aux, dict) and aux.get("ID"):
                    image_id = aux["ID"]
            if not image_id:
                image_id = self.client.images.get(tag).id
        return image_id, log
