"""Safe, deterministic model serialization with skops.

Two properties matter to a content-addressed registry:

* **Safety.** Loading never runs code nobody vetted: skops reconstructs objects from a schema and refuses types
  outside a trusted set. Nothing in mm_magics ever unpickles.
* **Determinism.** The same fitted model must give the same bytes, or committing it twice stores two objects.
  skops writes ``id()`` values and wall-clock zip timestamps into its archive; :func:`dumps` renumbers the ids in
  document order and pins the timestamps, which skops' loader accepts unchanged (ids are only memo keys).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable
from typing import Any

from .errors import ArtifactCorruptError, UntrustedTypesError

FORMAT = "skops"
_EPOCH = (1980, 1, 1, 0, 0, 0)
#: zlib level of the canonical archive. A 100-tree forest (22.6 MB of arrays) deflates in 178 ms to 5.1 MB at level
#: 1 and in 505 ms to 4.1 MB at the default 6 (benchmarks/registry.py --large-only): a commit is waited on in a
#: notebook, so the fast level wins; loading is the same speed either way.
COMPRESSLEVEL = 1

#: scikit-learn's own internal data holders that common estimators contain (trees, neighbour indexes, optimizer
#: state, CV splitters). skops restores them through its dedicated loaders, not by running their code, but lists
#: them as untrusted; we trust this fixed list so a random forest loads without ceremony. Anything else must be
#: trusted explicitly per workspace (``Registry.trust`` / ``mm trust``).
_DISTANCES = ("Euclidean", "SEuclidean", "Manhattan", "Chebyshev", "Minkowski", "Haversine", "Mahalanobis")
SKLEARN_INTERNALS = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.metrics._scorer._PassthroughScorer",
        "sklearn.metrics._scorer._Scorer",
        "sklearn.model_selection._split.KFold",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.model_selection._split.ShuffleSplit",
        "sklearn.model_selection._split.StratifiedShuffleSplit",
        *(f"sklearn.metrics._dist_metrics.{d}Distance{bits}" for d in _DISTANCES for bits in ("64", "32")),
    }
)


def _canonical_ids(schema: Any) -> dict[str, str]:
    """Map every ``__id__`` (and the ``.npy`` file named after it) to a small counter, in document order."""
    mapping: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and str(value) not in mapping:
                    mapping[str(value)] = str(len(mapping) + 1)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return mapping


def _rewrite(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "__id__":
                out[key] = int(mapping.get(str(value), value))
            elif key == "file" and isinstance(value, str) and value.endswith(".npy"):
                stem = value[: -len(".npy")]
                out[key] = f"{mapping.get(stem, stem)}.npy"
            else:
                out[key] = _rewrite(value, mapping)
        return out
    if isinstance(node, list):
        return [_rewrite(item, mapping) for item in node]
    return node


def canonicalize(data: bytes) -> bytes:
    """Return skops bytes whose content depends only on the model, not on memory addresses or the clock."""
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))
    mapping = _canonical_ids(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESSLEVEL) as dst:
        entries = []
        for info in src.infolist():
            name = info.filename
            payload = src.read(name)
            if name == "schema.json":
                payload = json.dumps(_rewrite(schema, mapping), separators=(",", ":")).encode()
            elif name.endswith(".npy"):
                stem = name[: -len(".npy")]
                name = f"{mapping.get(stem, stem)}.npy"
            entries.append((name, payload))
        for name, payload in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, payload, compresslevel=COMPRESSLEVEL)
    return out.getvalue()


def _skops() -> Any:
    """skops.io, imported on first use: importing it scans every scikit-learn estimator (~2 s)."""
    import skops.io as sio

    return sio


def dumps(model: Any) -> bytes:
    """Serialize ``model`` with skops into canonical bytes (same model, same bytes)."""
    return canonicalize(_skops().dumps(model))


def untrusted_types(data: bytes) -> list[str]:
    """The types in ``data`` that skops does not trust by default."""
    try:
        return sorted(_skops().get_untrusted_types(data=data))
    except Exception as exc:  # skops raises a variety of errors on a damaged archive
        raise ArtifactCorruptError(f"artifact is not a readable skops archive ({exc}); re-commit the model") from None


def loads(data: bytes, *, trusted: Iterable[str] = (), label: str = "artifact") -> Any:
    """Load skops bytes, refusing types outside skops' defaults plus ``trusted``.

    ``trusted`` is the explicit, per-workspace list a user opted into after reading what it contains. skops audits
    the whole tree against it before constructing anything, so one pass does both (asking for the untrusted types
    first read every array of the archive twice: a third of a large forest's load).
    """
    allowed = set(trusted) | SKLEARN_INTERNALS
    sio = _skops()
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return sio.loads(data, trusted=sorted(allowed))
    except UntrustedTypesFoundException:
        unknown = [t for t in untrusted_types(data) if t not in allowed]
        raise UntrustedTypesError(
            f"{label} holds types outside the trusted set: {', '.join(unknown)}; if you trust them, run "
            f"`mm trust {' '.join(unknown)}` (or workspace.registry.trust([...])) and load again"
        ) from None
    except Exception as exc:  # skops raises a variety of errors on a damaged archive
        raise ArtifactCorruptError(f"{label} could not be loaded by skops ({type(exc).__name__}: {exc})") from None
