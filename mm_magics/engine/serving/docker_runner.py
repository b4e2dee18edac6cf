"""The Docker runner: one container per deployed version, built and run through the docker SDK.

Why it is shaped this way:

* **No network during builds.** Containers here (and behind many corporate proxies) cannot reach PyPI, so every
  wheel is downloaded on the host into a cache (``$XDG_CACHE_HOME/mm_magics/wheels``) and put in the build context;
  builds run with ``network_mode="none"`` and ``pip install --no-index``.
* **Same packages as at training time.** The model's libraries are pinned to the versions recorded in the version's
  ``environment["packages"]``; the server's own libraries to the versions installed on the host.
* **A new version rebuilds one small layer.** Two images: a *runtime* image (base, then a venv with the pinned
  dependencies, then mm_magics itself as a wheel) tagged by a hash of everything that went into it and shared by
  every version with that environment; and a *version* image that is the runtime plus one ``COPY`` of the bundle
  (``version.json``, ``artifact.skops``, ``trusted.json``). Removing a version image never removes the runtime, so
  redeploys and rollbacks stay fast.
* **Prompt stop.** Containers run with an init process (``init=True``), so SIGTERM reaches uvicorn, which shuts down
  gracefully; stop waits a few seconds at most.
* **Loopback only.** The port is published on 127.0.0.1. Inside the container the server listens on 0.0.0.0, where
  it insists on a bearer token: the workspace token (``run/secrets/token``) is copied into the container before it
  starts (never baked into an image), and the record says ``token_required``.
* **Zero-downtime switch.** Start the new version's container, wait for its health check, point the record at it,
  let in-flight requests drain, then stop the old one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import file_lock
from ..clock import now_iso
from ..errors import DeploymentError, Fix
from ..hosts import check_port, free_port
from ..monitoring.influx_settings import resolve as resolve_influx
from .client import ServerClient
from .deployments import Deployment, DeploymentStore, pid_alive
from .image_context import (
    WheelCache,
    copy_package,
    link_or_copy,
    one_line,
    requirements_for,
    write_bundle,
)
from .local import workspace_secret

if TYPE_CHECKING:
    from ..records import Version
    from ..workspace import Workspace

DEFAULT_BASE_IMAGE = "python:3.11-slim"
LOCAL_BASE_IMAGE = "local/python:3.11"
BASE_IMAGE_ENV = "MM_DOCKER_BASE_IMAGE"
SETUP = "bash scripts/setup-docker.sh"
CONTAINER_PORT = 8080
RUN_MOUNT = "/mm-run"  # the workspace's run directory inside a container (metric store, InfluxDB spool)
TOKEN_DIR = "/run/mm"
TOKEN_PATH = f"{TOKEN_DIR}/token"
ADMIN_TOKEN_PATH = f"{TOKEN_DIR}/admin-token"
INFLUX_TOKEN_PATH = f"{TOKEN_DIR}/influx-token"
LABEL = "io.mm-magics"
RUNTIME_REPO = "mm-magics/runtime"
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
"""


@dataclass
class BuildResult:
    """What :meth:`DockerRunner.build` did: the image tags, whether the runtime had to be built, and the log."""

    image: str
    image_id: str
    runtime: str
    runtime_built: bool
    seconds: float
    log: list[str] = field(default_factory=list)

    @property
    def cached_steps(self) -> int:
        return sum(1 for line in self.log if "Using cache" in line)


def _secrets_tar(files: dict[str, str | None]) -> bytes:
    """A tar of ``mm/<name>`` files for ``put_archive`` into ``/run``: readable only by the server's user, and never
    in the image or the container's environment. ``None`` values are left out."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folder = tarfile.TarInfo("mm")
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o500, os.getuid(), os.getgid()
        tar.addfile(folder)
        for name, secret in files.items():
            if secret is None:
                continue
            data = secret.encode()
            info = tarfile.TarInfo(f"mm/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o400, os.getuid(), os.getgid()
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def server_command(host: str = "0.0.0.0", port: int = CONTAINER_PORT) -> list[str]:
    """The container's server command, listening on ``host:port`` (the bridge port, or the host's loopback)."""
    cmd = list(SERVER_CMD)
    cmd[cmd.index("--host") + 1] = host
    cmd[cmd.index("--port") + 1] = str(port)
    return cmd


def docker_sdk() -> Any:
    """The docker SDK (the ``[docker]`` extra), or a one-line error saying how to get it."""
    try:
        import docker
        import docker.errors
    except ImportError:
        raise DeploymentError(
            f"the docker SDK is not installed: pip install 'mm_magics[docker]' (and run `{SETUP}` for the engine)"
        ) from None
    return docker


# -- the runner ---------------------------------------------------------------------------------------------------
class DockerRunner:
    """Build, run, check, switch and stop version containers on the local Docker engine.

    ``base_image``: the image the runtime is built on. Default: ``$MM_DOCKER_BASE_IMAGE``, else
    ``python:3.11-slim``. Where no registry is reachable, ``bash scripts/setup-docker.sh`` builds ``local/python:3.11``.
    """

    def __init__(
        self,
        ws: Workspace,
        base_image: str | None = None,
        *,
        ready_timeout: float = 90.0,
        stop_timeout: float = 5.0,
        drain: float = 1.0,
        progress: Callable[[str], None] | None = None,
        http: ServerClient | None = None,
    ) -> None:
        self.ws = ws
        self.http = http or ServerClient()  # our server's routes; self.client is the Docker engine
        self.base_image = base_image or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.drain = drain
        self.progress = progress
        self.store = DeploymentStore(ws.run_dir)
        self.wheels = WheelCache(python_version="3.11")

    # -- the engine connection ---------------------------------------------------------------------------------
    @cached_property
    def client(self) -> Any:
        """The docker SDK client, connected on first use so constructing a runner never fails or blocks."""
        docker = docker_sdk()
        with self._errors("connect to the Docker engine"):
            client = docker.from_env(timeout=300)
            client.ping()
        return client

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn any docker SDK or transport error into a one-line :class:`DeploymentError` naming a fix."""
        try:
            yield
        except DeploymentError:
            raise
        except Exception as exc:
            if not _is_docker_error(exc):
                raise
            text = one_line(getattr(exc, "explanation", None) or exc)
            if _is_unreachable(exc):
                raise DeploymentError(
                    f"cannot {action}: the Docker engine is not reachable ({one_line(text, 160)}): start it with "
                    f"`{SETUP}` (as root; installs docker.io and starts dockerd) or set DOCKER_HOST"
                ) from None
            raise DeploymentError(
                f"Docker failed to {action}: {text} (check `docker info` and /tmp/dockerd.log; `{SETUP}` sets up "
                "the engine)"
            ) from None

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    # -- images ------------------------------------------------------------------------------------------------
    def ensure_base_image(self) -> str:
        """The base image's id, pulling it if missing; a one-line fix when it cannot be had."""
        docker = docker_sdk()

        with self._errors(f"look up the base image {self.base_image}"):
            try:
                return self.client.images.get(self.base_image).id
            except docker.errors.ImageNotFound:
                pass
        self._say(f"pulling {self.base_image}")
        try:
            return self.client.images.pull(self.base_image).id
        except Exception as exc:
            if not _is_docker_error(exc):
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
        version = self._version(version)
        start = time.perf_counter()
        base_id = self.ensure_base_image()
        runtime, runtime_built, log = self._ensure_runtime(version, base_id)
        tag = self.image_tag(version)
        self._say(f"building {tag}")
        with tempfile.TemporaryDirectory(prefix="mm-docker-") as tmp:
            ctx = Path(tmp)
            (ctx / "Dockerfile").write_text(VERSION_DOCKERFILE.format(runtime=runtime))
            write_bundle(self.ws, version, ctx / "bundle")
            labels = {
                f"{LABEL}.model": version.name,
                f"{LABEL}.version": version.id,
                f"{LABEL}.sha256": version.sha256,
                f"{LABEL}.workspace": str(self.ws.root),
            }
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
            with self._errors(f"look up the runtime image {tag}"):
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
        with self._errors(f"build {tag}"):
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

    # -- containers ----------------------------------------------------------------------------------------------
    def start(self, version: Version | str, *, port: int | None = None, batch: bool = False) -> Deployment:
        """Build the version's image, run it on 127.0.0.1, wait until it answers ready, record and return it."""
        version = self._version(version)
        check_port(port)  # before a build: a port that cannot be published fails in a second, not after a minute
        with self._lock(version.name):
            current = self.store.get(version.name)
            if current is not None:
                if current.runner == "docker" and self.status(current) == "running":
                    raise DeploymentError(
                        f"{version.name} already runs {current.version} in a container at {current.url}: switch it "
                        "(deploy another version, or DockerRunner.switch), or stop it with {fix}",
                        fix=Fix("undeploy", (version.name,)),
                    )
                if current.runner != "docker" and pid_alive(current.pid):
                    raise DeploymentError(
                        f"{version.name} is deployed locally ({current.version} at {current.url}): stop it with "
                        "{fix} first",
                        fix=Fix("undeploy", (version.name,)),
                    )
                if current.runner == "docker":  # stale or unhealthy: replace it, clearing what is left of it
                    self._remove_container(current.container_id, timeout=1)
                    if current.image and current.image != self.image_tag(version):
                        self._remove_image(current.image)
            image = self.build(version).image
            dep = self._launch(version, image, port=port, batch=batch)
            self.store.save(dep)
        dep.status = "running"
        return dep

    def _launch(self, version: Version, image: str, *, port: int | None, batch: bool) -> Deployment:
        """Create, arm (token), start and health-check one container; removes it again if it never gets ready."""
        influx = resolve_influx(self.ws.local_config)
        spec, listen_port, host_network = self._container_spec(version, image, port, batch, influx)
        self.ws.run_dir.mkdir(parents=True, exist_ok=True)
        with self._errors(f"create a container from {image}"):
            container = self.client.containers.create(image, **spec)
        try:
            with self._errors(f"start the container for {version.id}"):
                tokens = {
                    "token": self._secret("token"),
                    "admin-token": self._secret("admin-token"),
                    "influx-token": influx.token if influx else None,
                }
                container.put_archive("/run", _secrets_tar(tokens))
                self._start(container, port)
                host_port = listen_port
                if not host_network:
                    host_port = int(container.ports[f"{CONTAINER_PORT}/tcp"][0]["HostPort"])
            self._wait_ready(container, host_port, version)
        except BaseException:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            raise
        return Deployment(
            name=version.name,
            version=version.id,
            runner="docker",
            url=f"http://127.0.0.1:{host_port}",
            host="127.0.0.1",
            port=host_port,
            started=now_iso(),
            container_id=container.id,
            image=image,
            batch=batch,
            token_required=True,
        )

    def _container_spec(
        self, version: Version, image: str, port: int | None, batch: bool, influx: Any
    ) -> tuple[dict[str, Any], int, bool]:
        """``containers.create`` arguments, the port the server listens on, and whether it uses the host network.

        Metrics reach the workspace's embedded store like a local server's: the run directory is mounted and the
        server runs as the workspace owner's uid so it can write the SQLite files (WAL works across the mount,
        same kernel). InfluxDB settings (local.json, then the host's INFLUXDB_V2_* variables) travel as the
        client's own variables, the token as a file; none of it goes into the image. An InfluxDB on the host's
        loopback is unreachable from a bridge network, so such a container shares the host's network and its
        server listens on 127.0.0.1 itself (still behind the bearer token)."""
        host_network = influx is not None and influx.on_loopback
        listen_port = (port or free_port()) if host_network else CONTAINER_PORT
        command = server_command("127.0.0.1" if host_network else "0.0.0.0", listen_port)
        command += ["--metrics-db", f"{RUN_MOUNT}/metrics.sqlite", "--deployment", version.name]
        command += ["--admin-token-file", ADMIN_TOKEN_PATH]  # lets the monitor ask it to flush its metrics
        if influx is not None and influx.token:
            command += ["--influx-token-file", INFLUX_TOKEN_PATH]
        if batch:
            command.append("--batch")
        network: dict[str, Any] = (
            {"network_mode": "host"} if host_network else {"ports": {f"{CONTAINER_PORT}/tcp": ("127.0.0.1", port)}}
        )
        spec = {
            "command": command,
            "name": f"mm-{image.split('/', 1)[1].split(':')[0]}-v{version.number}-{secrets.token_hex(3)}",
            "init": True,
            "labels": {
                f"{LABEL}.model": version.name,
                f"{LABEL}.version": version.id,
                f"{LABEL}.workspace": str(self.ws.root),
            },
            "volumes": {str(self.ws.run_dir): {"bind": RUN_MOUNT, "mode": "rw"}},
            "user": f"{os.getuid()}:{os.getgid()}",
            "environment": influx.container_environment() if influx is not None else {},
            **network,
        }
        return spec, listen_port, host_network

    @staticmethod
    def _start(container: Any, port: int | None) -> None:
        """Start it; a requested host port that another process took is a one-line error, not the engine's text."""
        docker = docker_sdk()
        try:
            container.start()
        except docker.errors.APIError as exc:
            if port and ("allocated" in str(exc) or "address already in use" in str(exc)):
                raise DeploymentError(
                    f"port {port} on 127.0.0.1 is taken: pick another port or leave it out to get a free one"
                ) from None
            raise
        container.reload()

    def _wait_ready(self, container: Any, port: int, version: Version) -> None:
        deadline = time.monotonic() + self.ready_timeout
        next_check = 0.0
        while not self.http.ready(f"http://127.0.0.1:{port}", timeout=1.0):
            now = time.monotonic()
            if now >= next_check:  # ask the engine now and then whether the container died meanwhile
                next_check = now + 0.5
                with self._errors(f"inspect the container for {version.id}"):
                    container.reload()
                if container.status in ("exited", "dead"):
                    code = container.attrs.get("State", {}).get("ExitCode")
                    raise DeploymentError(
                        f"the container for {version.id} exited (status {code}) before it was ready: "
                        f"{self._tail(container)}"
                    )
            if now > deadline:
                raise DeploymentError(
                    f"the container for {version.id} was not ready after {self.ready_timeout:.0f}s: "
                    f"{self._tail(container)} (raise ready_timeout if the machine is just slow)"
                )
            time.sleep(0.05)

    @staticmethod
    def _tail(container: Any, lines: int = 6) -> str:
        try:
            text = container.logs(tail=lines).decode(errors="replace")
        except Exception:
            return "(no logs)"
        found = [ln.strip() for ln in text.splitlines() if ln.strip()]
        said = [ln.removeprefix("mm-serve: error: ") for ln in found if ln.startswith("mm-serve: error: ")]
        return said[-1] if said else "logs: " + (" | ".join(found) or "(empty)")

    def status(self, deployment: Deployment) -> str:
        """``running`` (container up and ready), ``unhealthy`` (up, not ready) or ``stale`` (gone or exited)."""
        docker = docker_sdk()

        if not deployment.container_id:
            return "stale"
        try:
            container = self.client.containers.get(deployment.container_id)
        except docker.errors.NotFound:
            return "stale"
        except DeploymentError:  # engine unreachable: judge by what answers on the port
            return "running" if self.http.ready(f"http://127.0.0.1:{deployment.port}") else "stale"
        except Exception as exc:
            if not _is_docker_error(exc):
                raise
            return "running" if self.http.ready(f"http://127.0.0.1:{deployment.port}") else "stale"
        if container.status not in ("running", "paused", "restarting"):  # created, exited, dead, removing
            return "stale"
        return "running" if self.http.ready(f"http://127.0.0.1:{deployment.port}") else "unhealthy"

    def stop(
        self, deployment: Deployment | str, keep_image: bool = False, *, timeout: float | None = None
    ) -> Deployment:
        """Stop (SIGTERM, then SIGKILL after ``timeout`` s) and remove the container, its image unless
        ``keep_image``, and the record. A container that is already gone is not an error."""
        dep = self._record(deployment)
        with self._lock(dep.name):
            self._remove_container(dep.container_id, timeout)
            if not keep_image and dep.image:
                self._remove_image(dep.image)
            current = self.store.get(dep.name)
            if current is not None and current.container_id == dep.container_id:
                self.store.delete(dep.name)
        dep.status = "stopped"
        return dep

    def switch(self, name: str, version: Version | str) -> Deployment:
        """Serve ``version`` instead of what ``name``'s container serves, without a failed request.

        Start-new-then-stop-old: the new container must answer ready before the record points at it; the old one
        keeps serving until ``drain`` seconds after that, then stops gracefully (in-flight requests finish).
        The new container gets a fresh host port (two containers cannot share one), so clients must read the URL
        from the record, as every mm_magics face does.
        """
        version = self._version(version)
        if version.name != name:
            raise DeploymentError(f"{version.id} is not a version of {name}: switch {name} to one of its own versions")
        with self._lock(name):
            old = self.store.get(name)
            if old is None or old.runner != "docker":
                raise DeploymentError(f"{name} has no Docker deployment to switch: deploy it with --docker first")
            image = self.build(version).image
            new = self._launch(version, image, port=None, batch=old.batch)
            new.history = list(old.history)
            self.store.save(new)
            time.sleep(self.drain)
            self._remove_container(old.container_id)
            if old.image and old.image != new.image:
                self._remove_image(old.image)
        new.status = "running"
        return new

    def _remove_container(self, container_id: str | None, timeout: float | None = None) -> None:
        docker = docker_sdk()

        if not container_id:
            return
        with self._errors(f"stop container {container_id[:12]}"):
            try:
                container = self.client.containers.get(container_id)
            except docker.errors.NotFound:
                return
            with contextlib.suppress(docker.errors.NotFound):
                if container.status == "running":
                    container.stop(timeout=int(self.stop_timeout if timeout is None else timeout))
                container.remove(force=True)

    def _remove_image(self, image: str) -> None:
        """Remove a version image; its shared runtime stays. An image still in use is left alone."""
        docker = docker_sdk()

        with self._errors(f"remove image {image}"), contextlib.suppress(docker.errors.ImageNotFound):
            try:
                self.client.images.remove(image)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: another container uses it
                    raise
                self._say(f"left image {image} in place: {one_line(exc.explanation, 160)}")

    # -- small helpers --------------------------------------------------------------------------------------------
    def _version(self, version: Version | str) -> Version:
        return self.ws.registry.get(version) if isinstance(version, str) else version

    def _record(self, deployment: Deployment | str) -> Deployment:
        if isinstance(deployment, Deployment):
            return deployment
        dep = self.store.get(deployment)
        if dep is None:
            raise DeploymentError(
                f"{deployment} is not deployed: nothing to stop (see {{fix}})", fix=Fix("deployments")
            )
        return dep

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """Serialise start/switch/stop of one model across kernels (two switches must not interleave)."""
        with file_lock(self.store.root / f".{name}.docker.lock"):
            yield

    def _secret(self, kind: str) -> str:
        """A workspace secret (``run/secrets/<kind>``: the bearer or admin token, shared with the local runner)."""
        return workspace_secret(self.ws.run_dir, kind)


def _is_docker_error(exc: BaseException) -> bool:
    """Errors from the docker SDK or its HTTP transport (requests/urllib3), not bugs in our code."""
    module = type(exc).__module__ or ""
    return module.startswith(("docker", "requests", "urllib3")) or isinstance(exc, ConnectionError)


def _is_unreachable(exc: BaseException) -> bool:
    text = str(exc)
    markers = ("Connection refused", "Connection aborted", "Error while fetching server", "Cannot connect to")
    return any(m in text for m in markers) or type(exc).__name__ in ("ConnectionError", "ConnectTimeout")
