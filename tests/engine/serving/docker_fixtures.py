"""The Docker fixtures the Docker and publishing tests share: a real engine (skipped without one unless ``CI`` is
set), the base image, a runner and a deployer on the test's workspace that remove every container and image of that
workspace afterwards."""

from __future__ import annotations

import os
from typing import Any

import pytest

from mm_magics.engine.serving.deployer import Deployer
from mm_magics.engine.serving.docker_images import workspace_id
from mm_magics.engine.serving.docker_runner import LABEL, DockerRunner


@pytest.fixture(scope="session")
def docker_client() -> Any:
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        reason = f"no Docker engine reachable ({' '.join(str(exc).split())[:200]}): run mm docker-setup (as root)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so a missing engine is a failure: {reason}")
        pytest.skip(reason)
    yield client
    client.close()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    import docker.errors

    if os.environ.get("MM_DOCKER_BASE_IMAGE"):
        return os.environ["MM_DOCKER_BASE_IMAGE"]
    try:
        docker_client.images.get("local/python:3.11")
        return "local/python:3.11"
    except docker.errors.ImageNotFound:
        return "python:3.11-slim"


def _remove_everything_of(ws, docker_client: Any) -> None:
    label = f"{LABEL}.workspace={ws.root}"
    for container in docker_client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    label = f"{LABEL}.workspace-id={workspace_id(ws.root)}"
    for image in docker_client.images.list(filters={"label": label}):
        docker_client.images.remove(image.id, force=True)


@pytest.fixture
def runner(ws, base_image: str, docker_client: Any):
    """A runner on the test's workspace; afterwards every container and version image of that workspace goes."""
    yield DockerRunner(ws, base_image, drain=1.0)
    _remove_everything_of(ws, docker_client)


@pytest.fixture
def deployer(ws, base_image: str, docker_client: Any, monkeypatch):
    """The Deployer (records, lock, lifecycle) deploying with ``--docker`` on the test's workspace."""
    monkeypatch.setenv("MM_DOCKER_BASE_IMAGE", base_image)
    deployer = Deployer(ws)
    deployer.docker().drain = 1.0
    yield deployer
    deployer.close()
    _remove_everything_of(ws, docker_client)
