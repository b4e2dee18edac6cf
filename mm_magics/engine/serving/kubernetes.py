"""Kubernetes manifests for one version's image: a KServe InferenceService, and a plain Deployment + Service.

``mm export kubernetes NAME@vN --image REF`` hands a platform team files to ``kubectl apply``: nothing here talks to a
cluster. The manifests only *reference* what the team owns: the image (built by :mod:`.docker_images`, pushed by
them) and two Secrets, the bearer token (mounted as the file the image's server reads with ``--token-file``) and the
InfluxDB settings (environment). No secret value is ever written into a manifest.

Both shapes run the same pod, built once (:meth:`_Plan.pod_spec`), so what was tried on a cluster without KServe is
what KServe runs. The image's own CMD starts the server on port 8000 (V2 + MLflow ``/invocations``, Prometheus
``/metrics`` without a token), as user 65534, with its request log at ``/tmp/mm/metrics.sqlite``: the manifests set no
command, mount a scratch ``/tmp`` under a read-only root, and probe the V2 health routes (which need no token).

KServe learns that a custom container speaks V2 from the container's ``PROTOCOL`` environment variable (``v2``;
KServe's ``CustomPredictor.GetProtocol``): its CRD has no ``protocolVersion`` for a custom predictor, only for
``predictor.model`` and the built-in frameworks.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..atomic import atomic_write_text
from ..errors import UsageError
from ..records import Record
from . import image_refs
from .kubernetes_schema import KSERVE_API, validate_manifests

if TYPE_CHECKING:
    from ..records import Version

__all__ = ["KubernetesExport", "k8s_name", "kubernetes_manifests", "validate_manifests", "write_manifests"]

PORT = 8000  # the image's EXPOSE and its server's --port
TOKEN_DIR = "/run/mm"  # the image's server reads --token-file /run/mm/token
RUN_AS = 65534  # the image's USER
CONTAINER = "kserve-container"  # the name KServe looks the predictor's container up by
PART_OF = "mm-magics"
ANNOTATION = "mm-magics.io"
#: KServe names the predictor's host ``NAME-predictor``, one DNS label of at most 63 characters.
MAX_NAME = 63 - len("-predictor")
FILES = {"InferenceService": "inferenceservice.yaml", "Deployment": "deployment.yaml", "Service": "deployment.yaml"}

# A name a Service and KServe accept: a DNS-1035 label (a DNS-1123 label that starts with a letter).
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A Kubernetes quantity (resource.Quantity), positive: 250m, 0.5, 512Mi, 1G, 1e3
_QUANTITY = re.compile(r"\+?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]+)?")


@dataclass(repr=False)
class KubernetesExport(Record):
    """What ``mm export kubernetes`` wrote: the files, and the objects in them (validated before writing)."""

    version: str
    image: str
    files: list[str]
    manifests: list[dict] = field(default_factory=list)

    def __str__(self) -> str:
        kinds = ", ".join(f"{m['kind']} {m['metadata']['name']}" for m in self.manifests)
        lines = [
            f"{self.version} from {self.image}: {kinds}",
            "validated offline against Kubernetes' and KServe's schemas",
        ]
        lines += [f"  wrote {f}" for f in self.files]
        lines.append("apply with: kubectl apply -f " + " -f ".join(self.files))
        return "\n".join(lines)


class FileMode(int):
    """A file mode: written to YAML in octal (``0440``, as kubectl reads it), an ``int`` everywhere else."""


def kubernetes_manifests(
    version: Version,
    image: str,
    *,
    name: str | None = None,
    namespace: str | None = None,
    replicas: int = 1,
    cpu: str = "250m",
    memory: str = "512Mi",
    token_secret: str | None = None,
    influx_secret: str | None = None,
    kserve: bool = True,
    plain: bool = True,
) -> list[dict]:
    """The objects to ``kubectl apply`` for ``version`` served from ``image``, in apply order.

    ``kserve`` adds a KServe InferenceService; ``plain`` a Deployment and its ClusterIP Service, for clusters without
    KServe. ``name`` defaults to :func:`k8s_name` of the model; ``cpu`` is the CPU request (no CPU limit: a throttled
    server answers late rather than faster), ``memory`` the memory request and limit (a server over it is killed,
    not left to swap). ``token_secret`` (default ``NAME-token``, key ``token``) must exist: without the token the pod
    does not start, rather than serve anyone; ``influx_secret`` (default ``NAME-influx``, ``INFLUXDB_V2_*`` keys) is
    optional. Raises :class:`UsageError` on a malformed argument."""
    if not (kserve or plain):
        raise UsageError("nothing to export: ask for the KServe InferenceService, the plain Deployment, or both")
    name = k8s_name(version.name) if name is None else check_name(name)
    plan = _Plan(
        version=version,
        name=name,
        namespace=None if namespace is None else _check(namespace, "namespace", _DNS_LABEL, 63),
        image=check_image(image),
        replicas=_check_replicas(replicas),
        cpu=_check_quantity(cpu, "cpu", "250m"),
        memory=_check_quantity(memory, "memory", "512Mi"),
        token_secret=_check(token_secret or f"{name}-token", "token Secret name", _SUBDOMAIN, 253),
        influx_secret=_check(influx_secret or f"{name}-influx", "InfluxDB Secret name", _SUBDOMAIN, 253),
    )
    manifests = [_inference_service(plan)] if kserve else []
    if plain:
        manifests += [_deployment(plan), _service(plan)]
    return manifests


def k8s_name(model: str) -> str:
    """The Kubernetes name for a model: lowercase letters, digits and '-' (``Iris_Model`` → ``iris-model-1a2b3c``).

    A name that had to change gets a hash of the model's own name, so two models never share one."""
    name = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"m-{name}".rstrip("-")
    if name != model or len(name) > MAX_NAME:
        digest = hashlib.sha256(model.encode()).hexdigest()[:6]
        name = f"{name[: MAX_NAME - 7].rstrip('-')}-{digest}"
    return name


def check_name(name: str) -> str:
    """``name`` if Kubernetes (and KServe) accept it as the objects' name, else a :class:`UsageError` with a fix."""
    if isinstance(name, str) and len(name) <= MAX_NAME and _NAME.fullmatch(name):
        return name
    hint = f" (e.g. {k8s_name(name)})" if isinstance(name, str) and re.match(r"[A-Za-z]", name) else ""
    raise UsageError(
        f"name {name!r} is not a Kubernetes name: use lowercase letters, digits and '-', start with a letter, end "
        f"with a letter or digit, at most {MAX_NAME} characters{hint}"
    )


def check_image(image: str) -> str:
    """``image`` if it is a valid image reference, else a :class:`UsageError` with the grammar and an example."""
    if image_refs.match(image) is not None:
        return image
    raise UsageError(
        f"image {image!r} is not an image reference: expected [REGISTRY[:PORT]/]PATH[:TAG][@sha256:DIGEST] "
        "with a lowercase PATH (e.g. registry.example.com/team/iris:v3)"
    )


def _check(value: str, what: str, rule: re.Pattern[str], limit: int) -> str:
    if isinstance(value, str) and len(value) <= limit and rule.fullmatch(value):
        return value
    raise UsageError(
        f"{what} {value!r} is not valid in Kubernetes: use lowercase letters, digits and '-'"
        f"{' and .' if rule is _SUBDOMAIN else ''}, starting and ending with a letter or digit, at most {limit} "
        "characters"
    )


def _check_replicas(replicas: int) -> int:
    if isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 0:
        return replicas
    raise UsageError(f"replicas {replicas!r} is not a number of pods: give a whole number, 0 or more (e.g. 2)")


def _check_quantity(value: str, what: str, example: str) -> str:
    if isinstance(value, str) and _QUANTITY.fullmatch(value):
        return value
    raise UsageError(f"{what} {value!r} is not a Kubernetes quantity: give e.g. {example}")


@dataclass(frozen=True)
class _Plan:
    """Everything the manifests are made of; each method returns fresh dicts (YAML would alias shared ones)."""

    version: Version
    name: str
    namespace: str | None
    image: str
    replicas: int
    cpu: str
    memory: str
    token_secret: str
    influx_secret: str

    def selector(self) -> dict[str, str]:
        # never the version: a Deployment's selector cannot change, and the next version rolls out under it
        return {"app.kubernetes.io/name": self.name, "app.kubernetes.io/part-of": PART_OF}

    def labels(self) -> dict[str, str]:
        return {**self.selector(), "app.kubernetes.io/version": f"v{self.version.number}"}

    def annotations(self) -> dict[str, str]:
        """Which version, which exact artifact and which workspace commit: provenance a cluster can show."""
        out = {f"{ANNOTATION}/version": self.version.id, f"{ANNOTATION}/sha256": self.version.sha256}
        if self.version.commit:
            out[f"{ANNOTATION}/commit"] = self.version.commit
        return out

    def metadata(self) -> dict[str, Any]:
        namespace = {"namespace": self.namespace} if self.namespace else {}
        return {"name": self.name, **namespace, "labels": self.labels(), "annotations": self.annotations()}

    def pod_annotations(self) -> dict[str, str]:
        scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT), "prometheus.io/path": "/metrics"}
        return {**self.annotations(), **scrape}

    def container(self) -> dict[str, Any]:
        def probe(path: str, **timing: int) -> dict[str, Any]:
            return {"httpGet": {"path": path, "port": PORT}, "timeoutSeconds": 2, "failureThreshold": 3, **timing}

        return {
            "name": CONTAINER,
            "image": self.image,
            # unnamed: Knative (KServe's serverless mode) refuses port names other than http1 and h2c
            "ports": [{"containerPort": PORT, "protocol": "TCP"}],
            "env": [{"name": "PROTOCOL", "value": "v2"}],  # how KServe learns a custom container speaks V2
            "envFrom": [{"secretRef": {"name": self.influx_secret, "optional": True}}],
            "resources": {"requests": {"cpu": self.cpu, "memory": self.memory}, "limits": {"memory": self.memory}},
            # up to 2 minutes to load a model before liveness counts: a slow load is not a hung server
            "startupProbe": probe("/v2/health/live", periodSeconds=2, failureThreshold=60),
            "readinessProbe": probe("/v2/health/ready", periodSeconds=5),
            "livenessProbe": probe("/v2/health/live", periodSeconds=10),
            "volumeMounts": [
                {"name": "token", "mountPath": TOKEN_DIR, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        }

    def pod_spec(self) -> dict[str, Any]:
        token = {
            "secretName": self.token_secret,
            "items": [{"key": "token", "path": "token"}],
            "defaultMode": FileMode(0o440),
        }
        return {
            "automountServiceAccountToken": False,  # the server never calls the Kubernetes API
            "enableServiceLinks": False,  # no *_SERVICE_HOST variables of other Services in our environment
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,  # the token file is 0440: readable through its group, which fsGroup makes ours
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [self.container()],
            "volumes": [{"name": "token", "secret": token}, {"name": "tmp", "emptyDir": {}}],
        }


def _inference_service(plan: _Plan) -> dict[str, Any]:
    predictor = {
        "minReplicas": plan.replicas,
        "labels": plan.labels(),
        "annotations": plan.pod_annotations(),
        **plan.pod_spec(),
    }
    metadata = plan.metadata()
    # KServe's raw mode runs the predictor as a plain Deployment, so the pod-level securityContext (fsGroup, which
    # lets user 65534 read the 0440 token) is accepted; Knative's serverless mode refuses it unless the cluster enables
    # kubernetes.podspec-securitycontext, and a refused InferenceService is worse than one without scale-to-zero
    metadata["annotations"] = {**metadata["annotations"], "serving.kserve.io/deploymentMode": "RawDeployment"}
    return {
        "apiVersion": KSERVE_API,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


def _deployment(plan: _Plan) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": plan.metadata(),
        "spec": {
            "replicas": plan.replicas,
            "selector": {"matchLabels": plan.selector()},
            # a new pod must be ready before an old one goes: a rollout never drops capacity
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": plan.labels(), "annotations": plan.pod_annotations()},
                "spec": plan.pod_spec(),
            },
        },
    }


def _service(plan: _Plan) -> dict[str, Any]:
    port = {"name": "http", "port": 80, "targetPort": PORT, "protocol": "TCP"}
    spec = {"type": "ClusterIP", "selector": plan.selector(), "ports": [port]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": plan.metadata(), "spec": spec}


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with no ``&id001`` anchors, whichever dicts a caller's manifests share."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


_Dumper.add_representer(FileMode, lambda dumper, mode: dumper.represent_scalar("tag:yaml.org,2002:int", f"0{mode:o}"))


def write_manifests(manifests: list[dict], out: Path) -> list[Path]:
    """Write ``manifests`` into the directory ``out`` (created if need be), one multi-document file per group.

    ``inferenceservice.yaml`` holds the InferenceService, ``deployment.yaml`` the Deployment and its Service (any
    other kind goes to ``KIND.yaml``); file names come from kinds only, so nothing is written outside ``out``. Each
    file is replaced atomically (a symlink in its place is replaced, never followed). Returns the paths written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is not a directory: give a directory to write the manifests into")
    groups: dict[str, list[dict]] = {}
    for index, manifest in enumerate(manifests):
        kind = manifest.get("kind") if isinstance(manifest, dict) else None
        if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", kind):
            raise UsageError(f"manifest #{index + 1} has no valid kind: pass Kubernetes objects")
        groups.setdefault(FILES.get(kind, f"{kind.lower()}.yaml"), []).append(manifest)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for file, docs in groups.items():
        text = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
        atomic_write_text(out / file, _header(docs) + text)
        paths.append(out / file)
    return paths


def _header(docs: list[dict]) -> str:
    """Comment lines saying where the file came from and which Secrets it needs (never their values)."""
    versions = {d.get("metadata", {}).get("annotations", {}).get(f"{ANNOTATION}/version") for d in docs} - {None}
    lines = [f"# mm_magics: {', '.join(sorted(versions)) or 'manifests'}; apply with: kubectl apply -f <this file>"]
    for secret, optional in sorted(s for s in _secrets(docs) if s[0]):
        need = "optional, INFLUXDB_V2_URL/_ORG/_BUCKET/_TOKEN" if optional else "required, key `token`"
        lines.append(f"# Secret {secret} ({need}) is referenced, not created here")
    return "\n".join(lines) + "\n"


def _secrets(docs: list[dict]) -> set[tuple[str, bool]]:
    found = set()
    for doc in docs:
        spec = doc.get("spec") or {}
        pod = spec.get("predictor") or (spec.get("template") or {}).get("spec") or {}
        for volume in pod.get("volumes") or []:
            if "secret" in volume:
                found.add((volume["secret"].get("secretName"), bool(volume["secret"].get("optional"))))
        for container in pod.get("containers") or []:
            for source in container.get("envFrom") or []:
                if "secretRef" in source:
                    found.add((source["secretRef"].get("name"), bool(source["secretRef"].get("optional"))))
    return found
