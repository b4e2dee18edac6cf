"""The registry's one write path: a git transaction that is compare-and-swap on the branch.

Every change (a version, an alias, a gate, a stage transition, a setting) is one commit built by
:meth:`Ledger.transact`: read the branch head, let ``build`` compute the new files from that snapshot, write the
objects, then publish with a compare-and-swap of the branch (plus any new tags) in one ref transaction. Losing the
race means rebuilding on the new head, so concurrent kernels each get their own version number and nothing is lost;
a crash before the swap leaves only unreferenced objects. Registry and lifecycle both write through here; neither
reaches into the other.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import documents, layout
from .clock import utcnow
from .errors import ConcurrencyError, CorruptRegistryError, MMError
from .gitstore import BRANCH, GitStore
from .index import Index
from .specs import parse_spec

MAX_ATTEMPTS = 200


@dataclass
class Change:
    """What one registry commit writes: files (None deletes), the commit message, new tags, and a result."""

    files: dict[str, bytes | None]
    message: str
    tags: list[str] = field(default_factory=list)
    result: Any = None


class TreeView:
    """Read-only view of the registry tree at one commit, handed to transaction builders."""

    def __init__(self, git: GitStore, head: str) -> None:
        self.head = head
        self._git = git
        self.tree = git.commit_tree(head)

    def json(self, path: str) -> dict[str, Any] | None:
        """The document at ``path``, checked (a damaged one raises before anything is built on it), or None."""
        raw = self._git.read(self.tree, path)
        return documents.parse(path, raw) if raw is not None else None


def dump_json(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def trailers(**values: Any) -> str:
    return "\n".join(f"MM-{k.title()}: {v}" for k, v in values.items() if v is not None)


def message(summary: str, **values: Any) -> str:
    """A commit message: the user's reason, then ``MM-*`` trailers (``mm history`` reads them back)."""
    return f"{summary}\n\n{trailers(**values)}\n"


def parse_trailers(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("MM-") and ": " in line:
            key, _, value = line.partition(": ")
            out[key[3:].lower()] = value
    return out


class Ledger:
    def __init__(self, git: GitStore, index: Index, actor: str) -> None:
        self.git = git
        self.index = index
        self.actor = actor

    def transact(self, build: Callable[[TreeView], Change]) -> tuple[Any, str]:
        """Apply ``build`` on the current head and publish it atomically; rebuild and retry if another writer won."""
        for attempt in range(MAX_ATTEMPTS):
            head = self.git.read_ref()
            if head is None:
                raise ConcurrencyError("the registry branch is missing; run `mm fsck` to diagnose the workspace")
            view = TreeView(self.git, head)
            change = build(view)
            tree = self.git.write_changes(view.tree, change.files)
            commit = self.git.write_commit(tree, [head], change.message, _author(self.actor), utcnow())
            updates: list[tuple[str, str, str | None]] = [(BRANCH, commit, head)]
            updates += [(ref, commit, None) for ref in change.tags]
            if self.git.update_refs(updates):
                # published: from here on nothing may report the change as failed (the user would make it twice)
                with contextlib.suppress(MMError, sqlite3.Error):
                    self.index.sync()
                    self._repair_crashed_tags()
                return change.result, commit
            if self.git.read_ref() == head:
                self._refuse_stale_tags(change.tags)
            time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
        raise ConcurrencyError(
            f"gave up after {MAX_ATTEMPTS} attempts: other processes kept committing first; try again"
        )

    def commit_of(self, name: str, number: int) -> str | None:
        """The version's commit via its tag, re-creating the tag if a crash lost it (the branch has the truth)."""
        tag = layout.tag(name, number)
        sha = self.git.read_ref(tag)
        if sha is None:
            sha = self.git.commit_adding(layout.version_file(name, number))
            if sha is not None:
                self.git.update_refs([(tag, sha, None)], attempts=3)
        return sha

    def _repair_crashed_tags(self) -> None:
        """Re-create the tags a killed writer lost (git found their locks stale): at once, not at the next read."""
        while self.git.crashed_tags:
            ref = self.git.crashed_tags.pop()
            with contextlib.suppress(MMError):
                spec = parse_spec(ref.removeprefix("refs/tags/"))
                if spec.number is not None:
                    self.commit_of(spec.name, spec.number)

    def _refuse_stale_tags(self, tags: list[str]) -> None:
        """The branch did not move yet our update failed: a tag we create already exists off the branch (left by
        a diverged push or pull). Retrying can never succeed, so say what it is and how to repair it."""
        for ref in tags:
            if self.git.read_ref(ref) is not None:
                raise CorruptRegistryError(
                    f"tag {ref.removeprefix('refs/tags/')} already exists but is not on the registry branch (left by "
                    "a refused push or a diverged pull): run `mm fsck --repair`, then commit again"
                )


def _author(actor: str) -> tuple[str, str]:
    user, _, host = actor.partition("@")
    return (actor, f"{user or 'mm'}@{host or 'localhost'}")
