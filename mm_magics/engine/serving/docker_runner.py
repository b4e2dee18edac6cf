"""The Docker runner: one container per deployed version, run through the docker SDK from its version image.

Why it is shaped this way (how the images are built: :mod:`.docker_images`):

* **Prompt stop.** Containers run with an init process (``init=True``), so SIGTERM reaches uvicorn, which shuts down
  gracefully; stop waits a few seconds at most.
* **Loopback only.** The port is published on 127.0.0.1. Inside the container the server listens on 0.0.0.0, where
  it insists on a bearer token: the workspace token (``run/secrets/token``) is copied into the container before it
  starts (never baked into an image), and the record says ``token_required``.
* **Zero-downtime switch.** Start the new version's container, wait for its health check, point the record at it
  (the Deployer's ``publish``), let in-flight requests drain, then stop the old one.
* **Releases in place.** A canary or shadow is the candidate's bundle handed to the running container
  (:meth:`DockerRunner.deliver`); its server loads it beside the image's version, and promote installs it there. The
  URL stays, no image is built, and the runtime (the champion's packages) is the one the candidate must load in.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import tarfile
import time
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..clock import now_iso
from ..errors import DeploymentError, one_line
from ..hosts import check_port, free_port, is_loopback
from ..monitoring.influx_settings import resolve as resolve_influx
from .client import ServerClient
from .deployments import Deployment
from .docker_engine import LABEL, connect, docker_sdk, engine_errors, is_docker_error
from .docker_images import CANDIDATES_DIR, CONTAINER_PORT, SERVER_CMD, TOKEN_DIR, BuildResult, ImageBuilder
from .tokens import workspace_secret

if TYPE_CHECKING:
    from ..records import Version
    from ..workspace import Workspace

RUN_MOUNT = "/mm-run"  # the workspace's run directory inside a container (metric store, InfluxDB spool)
ADMIN_TOKEN_PATH = f"{TOKEN_DIR}/admin-token"
INFLUX_TOKEN_PATH = f"{TOKEN_DIR}/influx-token"


def _tar(prefix: str, files: dict[str, bytes]) -> bytes:
    """A tar of ``files`` under ``prefix/`` for ``put_archive``: directories 0500, files 0400, owned by the server's
    user (the workspace owner's uid), so only the server reads them. Secrets and a release's bundle both go in so,
    never in an image or a container's environment."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        parts = Path(prefix).parts
        for depth in range(1, len(parts) + 1):
            folder = tarfile.TarInfo("/".join(parts[:depth]))
            folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o500, os.getuid(), os.getgid()
            tar.addfile(folder)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{prefix}/{name}")
            info.size, info.mode, info.uid, info.gid = len(data), 0o400, os.getuid(), os.getgid()
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def server_command(host: str = "0.0.0.0", port: int = CONTAINER_PORT) -> list[str]:
    """The container's server command, listening on ``host:port`` (the bridge port, or the host's loopback)."""
    cmd = list(SERVER_CMD)
    cmd[cmd.index("--host") + 1] = host
    cmd[cmd.index("--port") + 1] = str(port)
    return cmd


# -- the runner ---------------------------------------------------------------------------------------------------
class DockerRunner:
    """A :class:`~.deployments.Runner`: build, run, check, switch and stop version containers on the local Docker
    engine.

    ``base_image``: the image the runtime is built on. Default: ``$MM_DOCKER_BASE_IMAGE``, else
    ``python:3.11-slim``. Where no registry is reachable, ``mm docker-setup`` builds ``local/python:3.11``.
    """

    kind = "docker"

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
        self.images = ImageBuilder(ws, lambda: self.client, base_image, progress)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.drain = drain
        self.progress = progress

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    @cached_property
    def client(self) -> Any:
        """The docker SDK client, connected on first use so constructing a runner never fails or blocks."""
        return connect()

    @property
    def base_image(self) -> str:
        return self.images.base_image

    def ensure_base_image(self) -> str:
        """The base image's id, pulling it if missing; a one-line fix when it cannot be had."""
        return self.images.ensure_base_image()

    def build(self, version: Version | str) -> BuildResult:
        """Build (or reuse) the runtime image, then the version image on top of it. Needs no network."""
        return self.images.build(version)

    def image_tag(self, version: Version) -> str:
        return self.images.image_tag(version)

    # -- containers ----------------------------------------------------------------------------------------------
    def start(
        self,
        version: Version | str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        batch: bool = False,
        workers: int = 1,
    ) -> Deployment:
        """Build the version's image, run it published on 127.0.0.1, and return once it answers ready."""
        version = self._version(version)
        self.check_host(host)
        check_port(port)  # before a build: a port that cannot be published fails in a second, not after a minute
        image = self.build(version).image
        return self._launch(version, image, port=port, batch=batch, workers=workers)

    def _launch(self, version: Version, image: str, *, port: int | None, batch: bool, workers: int = 1) -> Deployment:
        """Create, arm (token), start and health-check one container; removes it again if it never gets ready."""
        influx = resolve_influx(self.ws.local_config)
        spec, listen_port, host_network = self._container_spec(version, image, port, batch, influx, workers)
        self.ws.run_dir.mkdir(parents=True, exist_ok=True)
        with engine_errors(f"create a container from {image}"):
            container = self.client.containers.create(image, **spec)
        try:
            with engine_errors(f"start the container for {version.id}"):
                tokens = {
                    "token": self._secret("token"),
                    "admin-token": self._secret("admin-token"),
                    "influx-token": influx.token if influx else None,
                }
                container.put_archive("/run", _tar("mm", {k: v.encode() for k, v in tokens.items() if v is not None}))
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
            workers=workers,
            token_required=True,
        )

    def _container_spec(
        self, version: Version, image: str, port: int | None, batch: bool, influx: Any, workers: int = 1
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
        command += ["--candidates", CANDIDATES_DIR]  # where a canary's or shadow's bundle is handed over
        if influx is not None and influx.token:
            command += ["--influx-token-file", INFLUX_TOKEN_PATH]
        if batch:
            command.append("--batch")
        if workers > 1:
            command.append(f"--workers={workers}")
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
                with engine_errors(f"inspect the container for {version.id}"):
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
            if not is_docker_error(exc):
                raise
            return "running" if self.http.ready(f"http://127.0.0.1:{deployment.port}") else "stale"
        if container.status not in ("running", "paused", "restarting"):  # created, exited, dead, removing
            return "stale"
        return "running" if self.http.ready(f"http://127.0.0.1:{deployment.port}") else "unhealthy"

    @staticmethod
    def check_host(host: str) -> None:
        """Containers are published on loopback only (the workspace token guards them; nothing else does)."""
        if not is_loopback(host):
            raise DeploymentError(
                f"a Docker deployment is published on 127.0.0.1 only, not {host}: leave out the host, or serve it "
                "locally on that address (without --docker)"
            )

    def stop(self, dep: Deployment, *, timeout: float | None = None, keep_image: bool = False) -> None:
        """Stop (SIGTERM, then SIGKILL after ``timeout`` s) and remove the container, and its image unless
        ``keep_image``. A container that is already gone is not an error."""
        self._remove_container(dep.container_id, timeout)
        if not keep_image and dep.image:
            self._remove_image(dep.image)

    def switch(
        self,
        dep: Deployment,
        version: Version | str,
        *,
        reason: str = "",
        force: bool = False,
        publish: Callable[[Deployment], None] | None = None,
    ) -> Deployment:
        """Serve ``version`` instead of what ``dep``'s container serves, without a failed request.

        Start-new-then-stop-old: the new container must answer ready before ``publish`` points the record at it;
        the old one keeps serving until ``drain`` seconds after that, then stops gracefully (in-flight requests
        finish). The new container gets a fresh host port (two containers cannot share one), so clients must read
        the URL from the record, as every mm_magics face does. (The image was checked against the deploy gates by
        the caller; ``reason`` and ``force`` are there for the protocol's sake.)
        """
        version = self._version(version)
        if version.name != dep.name:
            raise DeploymentError(
                f"{version.id} is not a version of {dep.name}: switch {dep.name} to one of its own versions"
            )
        image = self.build(version).image
        new = self._launch(version, image, port=None, batch=dep.batch, workers=dep.workers)
        new.history = list(dep.history)
        if publish is not None:
            publish(new)
        time.sleep(self.drain)
        self.stop(dep, keep_image=dep.image == new.image)
        return new

    def deliver(self, dep: Deployment, version: Version) -> None:
        """Hand ``version``'s bundle to ``dep``'s running container (``CANDIDATES_DIR/vN``), so the server there
        can load it as a canary or shadow beside the version its image holds. The bundle is written from the
        workspace (artifact hash-verified on the way out, and again by the server before it loads it); the files
        are readable only by the server's user. The runtime is the champion's: a candidate needing other packages
        fails its load, and the release is refused with the server's reason."""
        import tempfile

        from .image_context import write_bundle

        with tempfile.TemporaryDirectory(prefix="mm-candidate-") as tmp:
            bundle = write_bundle(self.ws, version, Path(tmp) / "bundle")
            files = {path.name: path.read_bytes() for path in sorted(bundle.iterdir())}
            data = _tar(f"{Path(CANDIDATES_DIR).name}/v{version.number}", files)
        with engine_errors(f"hand {version.id} to the container of {dep.name}"):
            container = self.client.containers.get(dep.container_id)
            if not container.put_archive(str(Path(CANDIDATES_DIR).parent), data):
                raise DeploymentError(f"the Docker engine did not take {version.id}'s bundle: redeploy {dep.name}")

    def _remove_container(self, container_id: str | None, timeout: float | None = None) -> None:
        docker = docker_sdk()

        if not container_id:
            return
        with engine_errors(f"stop container {container_id[:12]}"):
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

        with engine_errors(f"remove image {image}"), contextlib.suppress(docker.errors.ImageNotFound):
            try:
                self.client.images.remove(image)
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: another container uses it
                    raise
                self._say(f"left image {image} in place: {one_line(exc.explanation, 160)}")

    # -- small helpers --------------------------------------------------------------------------------------------
    def _version(self, version: Version | str) -> Version:
        return self.ws.registry.get(version) if isinstance(version, str) else version

    def _secret(self, kind: str) -> str:
        """A workspace secret (``run/secrets/<kind>``: the bearer or admin token, shared with the local runner)."""
        return workspace_secret(self.ws.run_dir, kind)
