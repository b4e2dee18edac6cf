"""The mm_magics engine: plain Python, no IPython, ipywidgets or Jupyter imports.

Every face (magics, widgets, the JupyterLab server extension, the ``mm`` command) is a thin layer over these.
"""

from .errors import (
    ArtifactCorruptError,
    ArtifactError,
    ArtifactMissingError,
    ConcurrencyError,
    GateError,
    LifecycleConfigError,
    MMError,
    ModelError,
    NotFoundError,
    RemoteError,
    SpecError,
    TransitionError,
    UnknownModelError,
    UnknownVersionError,
    UntrustedTypesError,
    WorkspaceError,
    WorkspaceFormatError,
)
from .records import Version, VersionDiff
from .specs import parse_spec

# Heavier parts load on first use (PEP 562): `%load_ext` stays instant, and a serving container imports the app
# without git at all.
_LAZY = {"Workspace": ".workspace", "fingerprint": ".fingerprints", "schema_of": ".fingerprints"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArtifactCorruptError",
    "ArtifactError",
    "ArtifactMissingError",
    "ConcurrencyError",
    "GateError",
    "LifecycleConfigError",
    "MMError",
    "ModelError",
    "NotFoundError",
    "RemoteError",
    "SpecError",
    "TransitionError",
    "UnknownModelError",
    "UnknownVersionError",
    "UntrustedTypesError",
    "Version",
    "VersionDiff",
    "Workspace",
    "WorkspaceError",
    "WorkspaceFormatError",
    "fingerprint",
    "parse_spec",
    "schema_of",
]
