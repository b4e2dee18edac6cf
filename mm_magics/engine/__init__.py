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
from .fingerprint import fingerprint, schema_of
from .records import Version, VersionDiff
from .specs import parse_spec


def __getattr__(name: str) -> object:
    """``Workspace`` loads on first use (PEP 562): a serving container imports the app without git at all."""
    if name == "Workspace":
        from .workspace import Workspace

        return Workspace
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
