"""The engine's one exception hierarchy.

Every face (magics, CLI, REST server) catches :class:`MMError` and shows ``str(err)`` as a single line, so each
message must name the problem *and* the fix. Anything that is not an ``MMError`` is a bug in mm_magics.
"""

from __future__ import annotations


class MMError(Exception):
    """Base of every error the engine raises on purpose; its text is shown to the user as is."""

    #: HTTP status a server face should answer with.
    status: int = 400


class WorkspaceError(MMError):
    """The workspace is missing, unreadable or of an unknown format."""


class CorruptRegistryError(WorkspaceError):
    """A document, ref or object in the workspace's git is damaged: the message names it and ``mm fsck``."""

    status = 409


class WorkspaceFormatError(WorkspaceError):
    """The workspace was written by a newer mm_magics than this one."""


class SpecError(MMError):
    """A model name or ``NAME@vN`` / ``NAME@alias`` string is malformed."""


class NotFoundError(MMError):
    """A model, version or alias does not exist."""

    status = 404


class UnknownModelError(NotFoundError):
    pass


class UnknownVersionError(NotFoundError):
    pass


class ModelError(MMError):
    """The object handed over is not something we can version (not an estimator, not fitted, ...)."""


class ArtifactError(MMError):
    """An artifact is missing, corrupted or unsafe to load."""


class ArtifactMissingError(ArtifactError):
    status = 404


class ArtifactCorruptError(ArtifactError):
    status = 500


class UntrustedTypesError(ArtifactError):
    """The artifact holds types outside the trusted set: loading it could run code nobody vetted."""


class GateError(MMError):
    """A gate expression is malformed."""


class TransitionError(MMError):
    """A lifecycle transition is not allowed by the graph or refused by a gate."""

    status = 409


class LifecycleConfigError(MMError):
    """The workspace's lifecycle configuration does not form a valid stage DAG."""


class ConcurrencyError(MMError):
    """Another process kept winning the race for the registry; the caller may retry."""

    status = 503


class RemoteError(MMError):
    """Pushing to or pulling from a remote failed."""


class DeploymentError(MMError):
    """A deployment could not be started, reached, switched or stopped."""

    status = 503
