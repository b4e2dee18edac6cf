"""``mm export kubernetes``'s engine part: manifests for a real committed version, checked offline against the official
Kubernetes schemas (kubernetes-validate, strict) and KServe's own InferenceService CRD schema, written to files that
parse back to the same objects. The validator is shown to fail on broken manifests, naming the field."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from mm_magics.engine.errors import UsageError
from mm_magics.engine.serving.kubernetes import (
    MAX_NAME,
    k8s_name,
    kubernetes_manifests,
    validate_manifests,
    write_manifests,
)
from mm_magics.engine.serving.kubernetes_schema import kserve_schema
from mm_magics.engine.serving.tokens import workspace_secret

from ...conftest import commit_kwargs

IMAGE = "registry.example.com:5000/team/iris:v1"
DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.fixture
def validator():
    """kubernetes-validate is an optional dependency: a CI run without it fails, a developer's run skips."""
    if importlib.util.find_spec("kubernetes_validate") is None:
        reason = "kubernetes-validate is not installed: pip install 'mm_magics[k8s]' (or [test])"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def version(ws, iris, models):
    """A real committed version of a model whose name is no Kubernetes name, in a workspace whose token exists."""
    X, y = iris
    return ws.registry.commit("Iris_Model", models["logreg"], message="logreg", **commit_kwargs(X, y))


def by_kind(manifests: list[dict]) -> dict[str, dict]:
    return {m["kind"]: m for m in manifests}


def containers(manifests: list[dict]) -> list[dict]:
    kinds = by_kind(manifests)
    return [
        kinds["InferenceService"]["spec"]["predictor"]["containers"][0],
        kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0],
    ]


def pods(manifests: list[dict]) -> list[dict]:
    kinds = by_kind(manifests)
    return [kinds["InferenceService"]["spec"]["predictor"], kinds["Deployment"]["spec"]["template"]["spec"]]


# --- the manifests ------------------------------------------------------------------------------------------------


def test_manifests_validate_against_kubernetes_and_kserve_schemas(version, validator):
    manifests = kubernetes_manifests(version, IMAGE, namespace="ml", replicas=3, cpu="500m", memory="1Gi")
    assert [m["kind"] for m in manifests] == ["InferenceService", "Deployment", "Service"]
    validate_manifests(manifests)
    validate_manifests(kubernetes_manifests(version, f"{IMAGE}@{DIGEST}", kserve=False))
    validate_manifests(kubernetes_manifests(version, IMAGE, plain=False))


def test_one_pod_for_both_shapes_with_probes_ports_resources_and_hardening(version):
    manifests = kubernetes_manifests(version, IMAGE, replicas=2, cpu="1", memory="768Mi")
    kserve_pod, plain_pod = pods(manifests)
    shared = {k: v for k, v in kserve_pod.items() if k not in ("minReplicas", "labels", "annotations")}
    assert shared == plain_pod  # the same pod, whichever way it runs
    container = plain_pod["containers"][0]
    assert container["name"] == "kserve-container" and container["image"] == IMAGE
    assert "command" not in container and "args" not in container  # the image's CMD serves
    assert container["ports"] == [{"containerPort": 8000, "protocol": "TCP"}]
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]  # how KServe learns a custom container speaks V2
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8000}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8000}
    assert container["startupProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8000}
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 60
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "768Mi"}, "limits": {"memory": "768Mi"}}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    pod_security = plain_pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == pod_security["runAsGroup"] == 65534
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in plain_pod["volumes"]}
    assert volumes[mounts["/tmp"]["name"]] == {"name": "tmp", "emptyDir": {}}  # the request log under a read-only root
    deployment = by_kind(manifests)["Deployment"]["spec"]
    assert (
        deployment["replicas"] == 2 and by_kind(manifests)["InferenceService"]["spec"]["predictor"]["minReplicas"] == 2
    )
    assert deployment["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}


def test_service_targets_the_pods_on_port_8000(version):
    kinds = by_kind(kubernetes_manifests(version, IMAGE))
    service, deployment = kinds["Service"], kinds["Deployment"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8000, "protocol": "TCP"}]
    template_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    assert "app.kubernetes.io/version" not in service["spec"]["selector"]  # the next version rolls out under it


def test_labels_and_annotations_carry_the_version(version):
    name = k8s_name("Iris_Model")
    for manifest in kubernetes_manifests(version, IMAGE):
        meta = manifest["metadata"]
        assert meta["name"] == name and "namespace" not in meta
        assert meta["labels"] == {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/part-of": "mm-magics",
            "app.kubernetes.io/version": "v1",
        }
        raw = {"serving.kserve.io/deploymentMode": "RawDeployment"} if manifest["kind"] == "InferenceService" else {}
        assert meta["annotations"] == {
            "mm-magics.io/version": "Iris_Model@v1",
            "mm-magics.io/sha256": version.sha256,
            "mm-magics.io/commit": version.commit,
            **raw,  # KServe's raw mode accepts the pod-level securityContext that Knative's refuses by default
        }
    kinds = by_kind(kubernetes_manifests(version, IMAGE))
    for pod_annotations in (
        kinds["InferenceService"]["spec"]["predictor"]["annotations"],
        kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"],
    ):
        assert pod_annotations["prometheus.io/scrape"] == "true"
        assert pod_annotations["prometheus.io/port"] == "8000"
        assert pod_annotations["prometheus.io/path"] == "/metrics"
        assert pod_annotations["mm-magics.io/version"] == "Iris_Model@v1"
    assert len(version.commit) == 40 and len(version.sha256) == 64


def test_namespace_is_set_only_when_given(version):
    for manifest in kubernetes_manifests(version, IMAGE, namespace="ml-prod"):
        assert manifest["metadata"]["namespace"] == "ml-prod"


# --- secrets: referenced, never written ---------------------------------------------------------------------------


def test_secrets_are_references_and_no_token_reaches_a_file(ws, version, tmp_path):
    token = workspace_secret(ws.run_dir, "token")  # the workspace's real bearer token exists
    manifests = kubernetes_manifests(version, IMAGE)
    name = k8s_name("Iris_Model")
    for pod, container in zip(pods(manifests), containers(manifests), strict=True):
        volumes = {v["name"]: v for v in pod["volumes"]}
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/run/mm")
        assert mount["readOnly"] is True
        assert volumes[mount["name"]]["secret"] == {
            "secretName": f"{name}-token",
            "items": [{"key": "token", "path": "token"}],  # the file /run/mm/token the server reads
            "defaultMode": 0o440,
        }
        assert "optional" not in volumes[mount["name"]]["secret"]  # no token, no pod: never an open server
        assert pod["securityContext"]["fsGroup"] == 65534  # so the 0440 file is readable by the server's group
        assert container["envFrom"] == [{"secretRef": {"name": f"{name}-influx", "optional": True}}]
        assert not any("value" in e and "INFLUX" in e["name"] for e in container["env"])
    paths = write_manifests(manifests, tmp_path / "k8s")
    text = "".join(p.read_text() for p in paths)
    assert token not in text and token not in json.dumps(manifests)
    assert "defaultMode: 0440" in text  # octal, as kubectl reads it
    assert "kind: Secret" not in text


def test_secret_names_can_be_given(version, validator):
    manifests = kubernetes_manifests(version, IMAGE, token_secret="iris.bearer", influx_secret="influx-prod")
    validate_manifests(manifests)
    for pod, container in zip(pods(manifests), containers(manifests), strict=True):
        assert pod["volumes"][0]["secret"]["secretName"] == "iris.bearer"
        assert container["envFrom"][0]["secretRef"]["name"] == "influx-prod"
    with pytest.raises(UsageError, match="token Secret name 'Bad_Secret'"):
        kubernetes_manifests(version, IMAGE, token_secret="Bad_Secret")


# --- names --------------------------------------------------------------------------------------------------------


def test_names_are_derived_from_the_model_and_never_collide():
    assert k8s_name("iris") == "iris"
    assert k8s_name("iris-2") == "iris-2"
    derived = k8s_name("Iris_Model")
    assert re.fullmatch(r"iris-model-[0-9a-f]{6}", derived)
    others = {k8s_name(n) for n in ("Iris_Model", "iris_model", "iris.model", "IRIS-MODEL", "iris-model")}
    assert len(others) == 5  # names differing only in case or punctuation get different objects
    long = k8s_name("A" + "b" * 63)
    assert len(long) <= MAX_NAME and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", long)
    assert k8s_name("a" * 64) != k8s_name("a" * 63)  # truncated ones keep their hash


def test_explicit_name_is_used_or_refused_with_the_rule(version):
    manifests = kubernetes_manifests(version, IMAGE, name="iris-prod")
    assert {m["metadata"]["name"] for m in manifests} == {"iris-prod"}
    for bad in ("Iris", "iris_prod", "-iris", "iris-", "9iris", "i" * (MAX_NAME + 1), ""):
        with pytest.raises(UsageError) as caught:
            kubernetes_manifests(version, IMAGE, name=bad)
        message = str(caught.value)
        assert "\n" not in message and "lowercase letters, digits and '-'" in message
        assert f"at most {MAX_NAME} characters" in message
    with pytest.raises(UsageError, match=r"e\.g\. iris-prod-[0-9a-f]{6}"):
        kubernetes_manifests(version, IMAGE, name="Iris_Prod")  # the fix: a valid spelling


def test_bad_namespace_replicas_and_quantities_are_refused(version):
    for kwargs, pattern in [
        ({"namespace": "ML"}, "namespace 'ML'"),
        ({"namespace": "a" * 64}, "at most 63"),
        ({"replicas": -1}, "replicas -1"),
        ({"replicas": "2"}, "replicas '2'"),
        ({"replicas": True}, "replicas True"),
        ({"cpu": "lots"}, "cpu 'lots' is not a Kubernetes quantity"),
        ({"memory": "512MB"}, "memory '512MB'"),
        ({"kserve": False, "plain": False}, "nothing to export"),
    ]:
        with pytest.raises(UsageError, match=pattern):
            kubernetes_manifests(version, IMAGE, **kwargs)


# --- image references ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "iris",
        "mm-magics/iris:v1-0123abcd",
        "localhost:5000/team/iris:v3",
        "registry.example.com/a/b__c/d-e:1.0",
        f"ghcr.io/team/iris@{DIGEST}",
        f"ghcr.io/team/iris:v3@{DIGEST}",
        "127.0.0.1:5000/iris:latest",
    ],
)
def test_image_references_are_accepted(version, image):
    assert (
        by_kind(kubernetes_manifests(version, image))["Deployment"]["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        == image
    )


@pytest.mark.parametrize(
    "image",
    [
        "Iris:v1",
        "registry.example.com/Team/iris:v1",
        "iris:",
        "iris:-v1",
        "iris@sha256:abc",
        "iris:v1 ",
        "",
        "http://registry.example.com/iris:v1",
        "iris:v1; rm -rf /",
        "registry.example.com/iris_:v1",
    ],
)
def test_bad_image_references_are_refused_in_one_line(version, image):
    with pytest.raises(UsageError) as caught:
        kubernetes_manifests(version, image)
    message = str(caught.value)
    assert "\n" not in message
    assert "[REGISTRY[:PORT]/]PATH[:TAG][@sha256:DIGEST]" in message and "lowercase" in message


# --- files --------------------------------------------------------------------------------------------------------


def test_write_manifests_parse_back_to_the_same_objects(version, tmp_path):
    manifests = kubernetes_manifests(version, IMAGE, namespace="ml")
    out = tmp_path / "deep" / "k8s"
    paths = write_manifests(manifests, out)
    assert paths == [out / "inferenceservice.yaml", out / "deployment.yaml"]
    isvc = list(yaml.safe_load_all(paths[0].read_text()))
    plain = list(yaml.safe_load_all(paths[1].read_text()))
    assert isvc == manifests[:1] and plain == manifests[1:]
    assert paths[1].read_text().count("\n---\n") == 1  # Deployment, then Service
    assert "&id" not in paths[0].read_text()  # no YAML anchors
    header = paths[0].read_text().splitlines()[0]
    assert header.startswith("# mm_magics: Iris_Model@v1")
    assert sorted(p.name for p in out.iterdir()) == ["deployment.yaml", "inferenceservice.yaml"]  # no temp files


def test_write_manifests_replaces_files_and_refuses_a_file_as_directory(version, tmp_path):
    out = tmp_path / "k8s"
    write_manifests(kubernetes_manifests(version, IMAGE), out)
    write_manifests(kubernetes_manifests(version, IMAGE, replicas=4, plain=False), out)
    assert yaml.safe_load(out.joinpath("inferenceservice.yaml").read_text())["spec"]["predictor"]["minReplicas"] == 4
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        write_manifests(kubernetes_manifests(version, IMAGE), afile)
    with pytest.raises(UsageError, match="no valid kind"):
        write_manifests([{"kind": "../../etc/passwd"}], out)


# --- the validator can fail ---------------------------------------------------------------------------------------


def broken(manifests: list[dict], kind: str, change) -> list[dict]:
    manifests = copy.deepcopy(manifests)
    change(by_kind(manifests)[kind])
    return manifests


def assert_refused(manifests: list[dict], *fragments: str) -> None:
    with pytest.raises(UsageError) as caught:
        validate_manifests(manifests)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_unknown_container_field_is_refused(version, validator):
    good = kubernetes_manifests(version, IMAGE)
    name = k8s_name("Iris_Model")

    def typo(manifest, pod_path):
        pod = manifest["spec"]
        for key in pod_path:
            pod = pod[key]
        pod["containers"][0]["imagePullPolicyy"] = "Always"

    assert_refused(
        broken(good, "Deployment", lambda m: typo(m, ["template", "spec"])),
        f"Deployment {name}:",
        "spec.template.spec.containers[0].imagePullPolicyy: unknown field",
    )
    assert_refused(
        broken(good, "InferenceService", lambda m: typo(m, ["predictor"])),
        f"InferenceService {name}:",
        "spec.predictor.containers[0].imagePullPolicyy: unknown field",
    )


def test_wrong_type_for_replicas_is_refused(version, validator):
    good = kubernetes_manifests(version, IMAGE)
    assert_refused(
        broken(good, "Deployment", lambda m: m["spec"].update(replicas="3")), "spec.replicas:", "not of type"
    )
    assert_refused(
        broken(good, "InferenceService", lambda m: m["spec"]["predictor"].update(minReplicas="3")),
        "spec.predictor.minReplicas:",
        "not of type",
    )


def test_missing_image_is_refused(version, validator):
    good = kubernetes_manifests(version, IMAGE)
    assert_refused(
        broken(good, "Deployment", lambda m: m["spec"]["template"]["spec"]["containers"][0].pop("image")),
        "spec.template.spec.containers[0].image: required field missing",
    )
    assert_refused(
        broken(good, "InferenceService", lambda m: m["spec"]["predictor"]["containers"][0].pop("image")),
        "spec.predictor.containers[0].image: required field missing",
    )


def test_kserve_schema_has_no_predictor_protocol_version(version, validator):
    """The CRD declares no protocolVersion on a custom predictor (only on `model` and frameworks): KServe reads the
    container's PROTOCOL variable instead, and our strict check refuses the field KServe would drop."""
    predictor = kserve_schema()["properties"]["spec"]["properties"]["predictor"]["properties"]
    assert "protocolVersion" not in predictor and "protocolVersion" in predictor["model"]["properties"]
    good = kubernetes_manifests(version, IMAGE)
    assert_refused(
        broken(good, "InferenceService", lambda m: m["spec"]["predictor"].update(protocolVersion="v2")),
        "spec.predictor.protocolVersion: unknown field",
    )


def test_kserve_strictness_beyond_the_schema(version, validator):
    good = kubernetes_manifests(version, IMAGE)

    def twin(manifest):  # env is an x-kubernetes-list-type: map keyed by name
        env = manifest["spec"]["predictor"]["containers"][0]["env"]
        env.append({"name": "PROTOCOL", "value": "v1"})

    assert_refused(
        broken(good, "InferenceService", twin), "spec.predictor.containers[0].env[1]: duplicate name PROTOCOL"
    )
    assert_refused(
        broken(good, "InferenceService", lambda m: m["metadata"]["labels"].update(replicas=3)),
        "metadata.labels.replicas:",
    )
    assert_refused(broken(good, "InferenceService", lambda m: m.update(specc={})), "specc: unknown field")
    assert_refused(
        broken(good, "InferenceService", lambda m: m["metadata"].update(name="Iris")), "metadata.name:", "lowercase"
    )


def test_other_server_rules_are_checked(version, validator):
    good = kubernetes_manifests(version, IMAGE)
    assert_refused(
        broken(good, "Deployment", lambda m: m["spec"]["selector"]["matchLabels"].update(tier="x")),
        "spec.template.metadata.labels: do not match spec.selector.matchLabels",
    )
    assert_refused(broken(good, "Service", lambda m: m["spec"].update(ports="80")), "Service", "spec.ports:")
    assert_refused([{"kind": "Deployment", "metadata": {}}], "apiVersion: required field missing")
    assert_refused([{"apiVersion": "apps/v1", "kind": "Deploymint", "metadata": {"name": "x"}}], "has no kind")


def _mm(ws, *args: str, cwd=None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mm_magics.cli", "-C", str(ws.root), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_mm_export_kubernetes_writes_validated_files_and_refuses_bad_input_with_exit_2(
    ws, version, validator, tmp_path
):
    out = tmp_path / "deploy"
    run = _mm(ws, "export", "kubernetes", "Iris_Model@v1", "--image", IMAGE, "--out", str(out), "--namespace", "ml")
    assert run.returncode == 0, run.stderr
    assert "validated offline" in run.stdout and "kubectl apply -f" in run.stdout
    docs = [d for f in sorted(out.iterdir()) for d in yaml.safe_load_all(f.read_text())]
    assert sorted(d["kind"] for d in docs) == ["Deployment", "InferenceService", "Service"]
    assert all(d["metadata"]["namespace"] == "ml" for d in docs)
    validate_manifests(docs)  # what was written parses back to valid objects

    for bad in (["--image", "Bad/Ref"], ["--image", IMAGE, "--name=Bad_Name"], ["--image", IMAGE, "--cpu", "lots"]):
        run = _mm(ws, "export", "kubernetes", "Iris_Model@v1", *bad, "--out", str(tmp_path / "no"))
        assert run.returncode == 2, (bad, run.stdout, run.stderr)
        assert run.stderr.startswith("mm: error: ") and run.stderr.count("\n") == 1, run.stderr
        assert not (tmp_path / "no").exists()
