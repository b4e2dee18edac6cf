"""``mm image``: a version's image pushed to a real OCI registry (Debian's ``docker-registry`` on 127.0.0.1), removed
locally, pulled back, run standalone the way a platform team runs it (``docker run -p …:8000 IMAGE``), and asked
for predictions over both protocols; its OCI labels name the version, the artifact's sha256 and the commit."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from typing import Any

import pytest

from mm_magics.engine.errors import UsageError
from mm_magics.engine.serving.publish import parse_reference

from ...conftest import commit_kwargs
from ...victoria import free_port
from ...waiting import wait_until
from .test_docker import post, v2_body

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]


@pytest.fixture
def iris_v1(ws, iris, models):
    X, y = iris
    return ws.registry.commit("iris", models["logreg"], message="logreg", **commit_kwargs(X, y))


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def test_push_remove_pull_run_standalone_and_predict(
    ws, deployer, docker_client: Any, oci_registry: str, iris, models, iris_v1
):
    X, _ = iris
    target = f"{oci_registry}/team/iris"
    published = deployer.image("iris@v1", push=target)
    assert published.pushed == f"{target}:v1"
    assert published.digest.startswith("sha256:")
    assert published.pinned == f"{target}@{published.digest}"
    labels = published.labels
    assert labels["org.opencontainers.image.version"] == "v1"
    assert labels["org.opencontainers.image.title"] == "iris"
    assert labels["org.opencontainers.image.revision"] == iris_v1.commit == ws.registry.get("iris@v1").commit
    assert labels["io.mm-magics.sha256"] == iris_v1.sha256
    assert str(ws.root) not in json.dumps(labels)  # a pushed image does not carry the user's paths

    # the registry holds it: its own API lists the tag
    with urllib.request.urlopen(f"http://{oci_registry}/v2/team/iris/tags/list", timeout=5) as r:
        assert json.loads(r.read())["tags"] == ["v1"]

    # remove every local name of the image, then pull it from the registry by digest
    docker_client.images.remove(published.pushed, force=True)
    docker_client.images.remove(published.image, force=True)
    pulled = docker_client.images.pull(published.pinned)
    assert pulled.labels["io.mm-magics.version"] == "iris@v1"

    port = free_port()
    container = docker_client.containers.run(published.pinned, detach=True, ports={"8000/tcp": ("127.0.0.1", port)})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), "the standalone container to answer", timeout=60)
        expected = models["logreg"].predict(X).tolist()
        status, body = post(f"{url}/v2/models/iris/infer", v2_body(X), None)
        assert status == 200, body
        assert body["outputs"][0]["data"] == expected
        split = {"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}}
        status, body = post(f"{url}/invocations", split, None)
        assert status == 200, body
        assert body["predictions"] == expected
        wait_until(
            lambda: 'mm_requests_total{model="iris",status="200",version="1"} 2.0' in _get(f"{url}/metrics"),
            "the two requests in /metrics (counted at the recorder's flush)",
        )
        assert "answering every client without one" in container.logs().decode()
    finally:
        container.remove(force=True)
        docker_client.images.remove(published.pinned, force=True)


def test_a_mounted_token_is_required_of_every_client(ws, deployer, docker_client: Any, tmp_path, iris, iris_v1):
    X, _ = iris
    published = deployer.image("iris@v1")
    assert published.pushed is None and published.digest is None
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_text("s3cret-token\n")
    secret.chmod(0o755)
    (secret / "token").chmod(0o644)
    port = free_port()
    container = docker_client.containers.run(
        published.image,
        detach=True,
        ports={"8000/tcp": ("127.0.0.1", port)},
        volumes={str(secret): {"bind": "/run/mm", "mode": "ro"}},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url), "the standalone container to answer", timeout=60)
        assert post(f"{url}/v2/models/iris/infer", v2_body(X.iloc[:2]), None)[0] == 401
        status, body = post(f"{url}/v2/models/iris/infer", v2_body(X.iloc[:2]), "s3cret-token")
        assert status == 200, body
    finally:
        container.remove(force=True)


@pytest.mark.parametrize(
    "bad",
    [
        "Registry.example.com/Team/Iris",
        "-rm",
        "host:5000/repo:",
        "host/repo:tag with space",
        "repo//x",
        "",
        "host/repo@sha256:" + "0" * 64,  # a digest names what was pushed, not where to push
    ],
)
def test_bad_references_are_refused_in_one_line(bad: str):
    with pytest.raises(UsageError) as err:
        parse_reference(bad, "v1")
    assert "\n" not in str(err.value) and "REGISTRY/REPO[:TAG]" in str(err.value)


def test_references_split_into_repository_and_tag():
    assert parse_reference("127.0.0.1:5000/team/iris", "v3") == ("127.0.0.1:5000/team/iris", "v3")
    assert parse_reference("127.0.0.1:5000/team/iris:prod", "v3") == ("127.0.0.1:5000/team/iris", "prod")
    assert parse_reference("iris", "v3") == ("iris", "v3")


def test_mm_image_refuses_a_bad_reference_with_exit_2(ws, iris_v1):
    cmd = [sys.executable, "-m", "mm_magics.cli", "-C", str(ws.root), "image", "iris@v1", "--push", "Bad/Ref"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.startswith("mm: error: 'Bad/Ref' is not an image reference") and run.stderr.count("\n") == 1
