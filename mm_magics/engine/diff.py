"""What differs between two versions: params, metric deltas, data, code, schema, environment, artifact, and how
often the two predict alike on a probe sample kept at commit time."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

import numpy as np

from . import explain, metrics
from .records import MetricDelta, Version, VersionDiff
from .specs import parse_spec

if TYPE_CHECKING:
    from .registry import Registry


def compare(registry: Registry, a: str, b: str, *, agreement: bool = True) -> VersionDiff:
    """Everything that differs between two versions, and how often their predictions agree."""
    sa, sb = parse_spec(a), parse_spec(b)  # both well-formed before either is looked up
    va, vb = registry.get(sa), registry.get(sb)
    out = VersionDiff(
        a=va.id,
        b=vb.id,
        params=_dict_changes(va.params, vb.params),
        metrics=_metric_deltas(va.metrics, vb.metrics),
        data_changed=va.data.get("hash") != vb.data.get("hash"),
        data=_dict_changes(_data_summary(va.data), _data_summary(vb.data)),
        code_diff="".join(
            difflib.unified_diff(
                _lines(va.code),
                _lines(vb.code),
                fromfile=va.id,
                tofile=vb.id,
            )
        ),
        schema=_dict_changes(va.schema, vb.schema),
        environment=_dict_changes(_flat_env(va.environment), _flat_env(vb.environment)),
        artifact_changed=va.sha256 != vb.sha256,
        estimator=(va.estimator, vb.estimator) if va.estimator != vb.estimator else None,
    )
    if agreement:
        _agreement(registry, va, vb, out)
    else:
        out.agreement_note = "not computed (agreement=False)"
    if va.explanation and vb.explanation:
        out.importance_shift = explain.shift(registry.explanation(va.id), registry.explanation(vb.id))
    return out


def _agreement(registry: Registry, va: Version, vb: Version, out: VersionDiff) -> None:
    source = vb if vb.probe else va
    if not source.probe:
        out.agreement_note = "no probe sample recorded (probe_rows is 0 or no training data was given)"
        return
    if not out.artifact_changed:
        out.agreement, out.agreement_rows = 1.0, int(source.probe["rows"])
        return
    try:
        X = registry.probe_data(source.id)
        pa = np.asarray(registry.cached_model(va).predict(X))
        pb = np.asarray(registry.cached_model(vb).predict(X))
    except Exception as exc:  # different feature sets etc.: say why, don't fail the diff
        out.agreement_note = f"not comparable on {source.id}'s probe sample ({type(exc).__name__}: {exc})"
        return
    if pa.dtype.kind in "fc" or pb.dtype.kind in "fc":
        same = np.isclose(pa.astype(float), pb.astype(float), rtol=1e-3, atol=1e-9)
    else:
        same = pa == pb
    out.agreement = float(np.mean(same)) if len(same) else None
    out.agreement_rows = len(same)


def _lines(code: str | None) -> list[str]:
    return [line + "\n" for line in (code or "").splitlines()]


def _dict_changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _metric_deltas(a: dict[str, Any], b: dict[str, Any]) -> list[MetricDelta]:
    out = []
    for k in metrics.ordered(a.keys() | b.keys()):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, (list, dict)) or isinstance(vb, (list, dict)):
            if va != vb:
                out.append(MetricDelta(k, va, vb, None))
            continue
        num = isinstance(va, (int, float)) and isinstance(vb, (int, float))
        out.append(MetricDelta(k, va, vb, (vb - va) if num else None))
    return out


def _data_summary(fp: dict[str, Any]) -> dict[str, Any]:
    return {k: fp.get(k) for k in ("hash", "rows", "columns", "dtypes") if k in fp}


def _flat_env(env: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in env.items() if k != "packages"}
    flat.update(env.get("packages", {}))
    return flat
