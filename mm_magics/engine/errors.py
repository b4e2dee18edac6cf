"""The engine's one exception hierarchy.

Every face (magics, CLI, REST server) catches :class:`MMError` and shows ``str(err)`` as a single line, so each
message must name the problem *and* the fix. Anything that is not an ``MMError`` is a bug in mm_magics.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Verbs that exist only in a notebook (they run or take the user's Python objects): no shell spelling.
NOTEBOOK_ONLY = ("train", "commit")


@dataclass(frozen=True)
class Fix:
    """The next step an error or an alert advises, as data: a verb and its arguments.

    The engine never spells it; each face does, its own way (``%mm_deploy iris`` in a notebook, ``mm deploy iris``
    in a shell, ``{"verb": "deploy", "args": ["iris"]}`` over REST)."""

    verb: str
    args: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"verb": self.verb, "args": list(self.args)}

    def __str__(self) -> str:
        return shell_spelling(self)


def shell_spelling(fix: Fix) -> str:
    """``mm VERB ARGS`` (a notebook-only verb is named as the magic to run in a notebook)."""
    if fix.verb in NOTEBOOK_ONLY:
        return f"{magic_spelling(fix)} in a notebook"
    return shlex.join(["mm", fix.verb, *fix.args])


def magic_spelling(fix: Fix) -> str:
    """``%mm_VERB ARGS`` (``%%mm_train`` is a cell magic)."""
    prefix = "%%" if fix.verb == "train" else "%"
    return " ".join([f"{prefix}mm_{fix.verb}", *(shlex.quote(a) for a in fix.args)])


def one_line(text: Any, limit: int = 400) -> str:
    """``text`` (an exception, a server's answer) as one line of at most ``limit`` characters, for a message."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class MMError(Exception):
    """Base of every error the engine raises on purpose; its text is shown to the user as is.

    A message may hold ``{fix}``, where the face's spelling of :attr:`fix` goes (``str()`` spells it for a shell;
    the magics call :meth:`render` with theirs)."""

    #: HTTP status a server face should answer with.
    status: int = 400

    def __init__(self, message: str = "", *, fix: Fix | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def render(self, spell: Callable[[Fix], str] = shell_spelling) -> str:
        if self.fix is None or "{fix}" not in self.message:
            return self.message
        return self.message.replace("{fix}", spell(self.fix))

    def __str__(self) -> str:
        return self.render()


class WorkspaceError(MMError):
    """The workspace is missing, unreadable or of an unknown format."""


class CorruptRegistryError(WorkspaceError):
    """A document, ref or object in the workspace's git is damaged: the message names it and ``mm fsck``."""

    status = 409


class WorkspaceFormatError(WorkspaceError):
    """The workspace was written by a newer mm_magics than this one."""


class SpecError(MMError):
    """A model name or ``NAME@vN`` / ``NAME@alias`` string is malformed."""


class UsageError(MMError):
    """An argument other than a spec is malformed (an image reference, a Kubernetes name): the message names the
    rule and a valid example."""


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


class NotDeployedError(DeploymentError):
    """The model has no deployment to act on: the caller's mistake, not the server's (a 404, never a 5xx)."""

    status = 404
