"""The Docker engine as the runner and the image builder meet it: the SDK (an extra), and its errors in one line.

Every docker SDK or transport failure a user can meet (no SDK, no engine, a refused API call) becomes a one-line
:class:`DeploymentError` that names the fix; anything else is a bug in our code and propagates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ..errors import DeploymentError, one_line

SETUP = "mm docker-setup"  # ships with the package (mm_magics/data/setup-docker.sh); as root
LABEL = "io.mm-magics"  # label prefix on every container and image we make (model, version, workspace)


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


def connect() -> Any:
    """A docker SDK client for the engine ``DOCKER_HOST`` names (or the local socket), checked with a ping."""
    docker = docker_sdk()
    with engine_errors("connect to the Docker engine"):
        client = docker.from_env(timeout=300)
        client.ping()
    return client


@contextlib.contextmanager
def engine_errors(action: str) -> Iterator[None]:
    """Turn any docker SDK or transport error into a one-line :class:`DeploymentError` naming a fix."""
    try:
        yield
    except DeploymentError:
        raise
    except Exception as exc:
        if not is_docker_error(exc):
            raise
        text = one_line(getattr(exc, "explanation", None) or exc)
        if is_unreachable(exc):
            raise DeploymentError(
                f"cannot {action}: the Docker engine is not reachable ({one_line(text, 160)}): start it with "
                f"`{SETUP}` (as root; installs docker.io and starts dockerd) or set DOCKER_HOST"
            ) from None
        raise DeploymentError(
            f"Docker failed to {action}: {text} (check `docker info` and /tmp/dockerd.log; `{SETUP}` sets up "
            "the engine)"
        ) from None


def is_docker_error(exc: BaseException) -> bool:
    """Errors from the docker SDK or its HTTP transport (requests/urllib3), not bugs in our code."""
    module = type(exc).__module__ or ""
    return module.startswith(("docker", "requests", "urllib3")) or isinstance(exc, ConnectionError)


def is_unreachable(exc: BaseException) -> bool:
    text = str(exc)
    markers = ("Connection refused", "Connection aborted", "Error while fetching server", "Cannot connect to")
    return any(m in text for m in markers) or type(exc).__name__ in ("ConnectionError", "ConnectTimeout")
