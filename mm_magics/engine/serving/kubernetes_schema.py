"""Offline validation of Kubernetes manifests, as strictly as the API server would check them.

No cluster runs where manifests are exported, and a manifest the platform team's ``kubectl apply`` rejects (or, worse,
silently prunes a misspelt field from) is found too late. So before a file is written it is checked against the real
schemas:

- built-in kinds (Deployment, Service) against the official OpenAPI schemas of Kubernetes :data:`K8S_VERSION`, as
  bundled by the ``kubernetes-validate`` package (the ``k8s`` extra), in its strict mode: an unknown field is an
  error, as with ``kubectl apply --validate=strict``. We pin an older version on purpose: what passes 1.30 is accepted
  by every newer cluster, not the other way round;
- KServe's InferenceService against the ``openAPIV3Schema`` of KServe's own CRD (``mm_magics/data/``, its source and
  licence in its ``$comment``) with ``jsonschema``, plus what the API server adds to a CRD schema: unknown fields are
  errors (strict field validation of a structural schema), keys of ``x-kubernetes-list-type: map`` lists and items of
  ``set`` lists are unique, and ``metadata`` is an ObjectMeta;
- a few rules the API server enforces in code, not in any schema: a container needs an image, a Deployment's selector
  must match its pod labels, object names must be DNS names.

Each failure is one line naming the object, the field path and the problem.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

import jsonschema

from ..errors import MMError, UsageError, one_line

K8S_VERSION = "1.30"
KSERVE_API = "serving.kserve.io/v1beta1"
KSERVE_SCHEMA = "kserve-inferenceservice-v1beta1.schema.json"
_LABEL_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # Service and InferenceService names
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_KIND = re.compile(r"[A-Za-z][A-Za-z0-9]*")

Problem = tuple[str, str]  # (field path, what is wrong with it)


def validate_manifests(manifests: list[dict]) -> None:
    """Raise :class:`UsageError` on the first manifest the API server would refuse; return None when all pass.

    Needs ``kubernetes-validate`` for the built-in kinds (and for an InferenceService's metadata)."""
    for index, manifest in enumerate(manifests):
        if not isinstance(manifest, dict):
            raise UsageError(
                f"manifest #{index + 1} is a {type(manifest).__name__}, not a mapping: pass Kubernetes objects"
            )
        problem = _shape_problem(manifest)
        if problem is None:
            if (manifest["apiVersion"], manifest["kind"]) == (KSERVE_API, "InferenceService"):
                problem = _kserve_problem(manifest)
            else:
                problem = _kubernetes_problem(manifest)
        problem = problem or _server_rule_problem(manifest)
        if problem is not None:
            path, what = problem
            raise UsageError(f"{_describe(manifest, index)}: {path}: {one_line(what, 240)}")


def _describe(manifest: dict, index: int) -> str:
    meta = manifest.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{manifest.get('kind') or f'manifest #{index + 1}'} {name or '(unnamed)'}"


def _shape_problem(manifest: dict) -> Problem | None:
    for key in ("apiVersion", "kind"):
        if not isinstance(manifest.get(key), str) or not manifest[key]:
            return key, "required field missing"
    if not _KIND.fullmatch(manifest["kind"]):
        return "kind", f"{manifest['kind']!r} is not a kind"
    if not isinstance(manifest.get("metadata"), dict):
        return "metadata", "required field missing"
    return None


# --- built-in kinds: kubernetes-validate -------------------------------------------------------------------------


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        raise MMError(
            "validating Kubernetes manifests needs the kubernetes-validate package: pip install 'mm_magics[k8s]'"
        ) from None
    return kubernetes_validate


def _kubernetes_problem(manifest: dict) -> Problem | None:
    """Strict validation against the official schema of ``manifest``'s kind in Kubernetes :data:`K8S_VERSION`."""
    kv = _kubernetes_validate()
    version = _schema_version(kv)
    try:
        kv.validate(manifest, version, strict=True)
    except kv.SchemaNotFoundError:
        return "apiVersion", f"Kubernetes {version} has no kind {manifest['kind']} in {manifest['apiVersion']}"
    except kv.ValidationError as err:
        return _schema_problem(err)
    return None


def _schema_version(kv: Any) -> str:
    """:data:`K8S_VERSION`, or the oldest version a later kubernetes-validate still bundles once it dropped that."""
    bundled = sorted({tuple(int(n) for n in v.split(".")[:2]) for v in kv.utils.all_versions()})
    wanted = tuple(int(n) for n in K8S_VERSION.split("."))
    newer = [v for v in bundled if v >= wanted]
    return "{}.{}".format(*min(newer)) if newer else K8S_VERSION


def _schema_problem(err: jsonschema.ValidationError) -> Problem:
    """A jsonschema error as (field path, problem), naming the field itself for an unknown or a missing one."""
    path = _path(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        known = err.schema.get("properties", {})
        extra = [k for k in err.instance if k not in known]
        if extra:
            return _join(path, extra[0]), "unknown field"
    if err.validator == "required" and isinstance(err.instance, dict):
        missing = [k for k in err.validator_value if k not in err.instance]
        if missing:
            return _join(path, missing[0]), "required field missing"
    return path or "(top level)", err.message


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out = f"{out}[{part}]" if isinstance(part, int) else _join(out, str(part))
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- KServe's InferenceService: its CRD's schema -----------------------------------------------------------------


@functools.cache
def kserve_schema() -> dict:
    """The v1beta1 ``openAPIV3Schema`` of KServe's InferenceService CRD shipped in ``mm_magics/data``."""
    return json.loads((resources.files("mm_magics") / "data" / KSERVE_SCHEMA).read_text("utf-8"))


def _kserve_problem(manifest: dict) -> Problem | None:
    # metadata is typed only as `object` in a CRD: the API server checks it as the ObjectMeta of any object, so do we
    stand_in = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest["metadata"]}
    problem = _kubernetes_problem(stand_in)
    if problem is not None:
        return problem
    schema = kserve_schema()
    error = jsonschema.exceptions.best_match(jsonschema.Draft4Validator(schema).iter_errors(manifest))
    if error is not None:
        return _schema_problem(error)
    return _structural_problem(manifest, schema, "")


def _structural_problem(value: Any, schema: dict, path: str) -> Problem | None:
    """What the API server adds to a CRD's schema: unknown fields and duplicate list keys are errors.

    An object schema keeps only the fields its ``properties`` (or ``additionalProperties``) name, unless it says
    ``x-kubernetes-preserve-unknown-fields``; the root's ``metadata`` is ObjectMeta, checked on its own."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = _join(path, key)
            if where == "metadata":
                continue
            if key in properties:
                child = properties[key]
            elif isinstance(extra, dict):
                child = extra
            elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields"):
                continue
            else:
                return where, "unknown field"
            if found := _structural_problem(item, child, where):
                return found
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        if found := _duplicate_problem(value, schema, path):
            return found
        for index, item in enumerate(value):
            if found := _structural_problem(item, schema["items"], f"{path}[{index}]"):
                return found
    return None


def _duplicate_problem(items: list, schema: dict, path: str) -> Problem | None:
    kind = schema.get("x-kubernetes-list-type")
    if kind == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        identity = [tuple(i.get(k) for k in keys) if isinstance(i, dict) else None for i in items]
        what = "duplicate " + "/".join(keys)
    elif kind == "set":
        identity = [json.dumps(i, sort_keys=True) for i in items]
        what = "duplicate item"
    else:
        return None
    seen: set = set()
    for index, ident in enumerate(identity):
        if ident in seen:
            return f"{path}[{index}]", f"{what} {ident[0] if isinstance(ident, tuple) and len(ident) == 1 else ident}"
        seen.add(ident)
    return None


# --- rules the API server enforces in code -----------------------------------------------------------------------


def _server_rule_problem(manifest: dict) -> Problem | None:
    kind, meta = manifest["kind"], manifest["metadata"]
    name = meta.get("name")
    if not name:
        return "metadata.name", "required field missing"
    rule = _LABEL_1035 if kind in ("Service", "InferenceService") else _SUBDOMAIN
    limit = 63 if rule is _LABEL_1035 else 253
    if not isinstance(name, str) or len(name) > limit or not rule.fullmatch(name):
        start = "a letter" if rule is _LABEL_1035 else "a letter or digit"
        return "metadata.name", (
            f"{name!r} is not a {kind} name: use lowercase letters, digits and '-', start with {start}, end with a "
            f"letter or digit, at most {limit} characters"
        )
    spec = manifest.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") if kind == "Deployment" else spec.get("predictor")
    if kind in ("Deployment", "InferenceService") and isinstance(pod, dict):
        prefix = "spec.template.spec" if kind == "Deployment" else "spec.predictor"
        for index, container in enumerate(pod.get("containers") or []):
            if isinstance(container, dict) and not container.get("image"):
                return f"{prefix}.containers[{index}].image", "required field missing"
    if kind == "Deployment":
        wanted = (spec.get("selector") or {}).get("matchLabels") or {}
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            return "spec.template.metadata.labels", "do not match spec.selector.matchLabels"
    return None
