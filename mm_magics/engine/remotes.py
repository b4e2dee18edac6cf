"""Sharing a workspace: the registry through a git remote (atomic push, fast-forward pull, remote tags adopted only
when they lie on the branch), the artifacts through any fsspec URL (:mod:`.object_remote`: a directory, S3, ...).
Every URL is checked and reaches git after ``--``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConcurrencyError, RemoteError
from .gitstore import BRANCH, REMOTE_TAGS, check_remote_url
from .object_remote import ObjectRemote

if TYPE_CHECKING:
    from .registry import Registry


def _remotes(registry: Registry, remote: str | None, artifacts: str | Path | None) -> tuple[str, ObjectRemote | None]:
    local = registry.ws.local_config
    url = remote or local.get("remote")
    if not url:
        raise RemoteError("no git remote configured: pass one (mm push URL) or run `mm remote URL [ARTIFACT_URL]`")
    check_remote_url(url)  # a URL stored before this check existed is refused too
    art = artifacts or local.get("artifact_remote")
    return str(url), ObjectRemote(str(art)) if art else None


def push(registry: Registry, remote: str | None = None, artifacts: str | Path | None = None) -> dict[str, Any]:
    """Send artifacts first, then git: a version is never visible remotely before its artifact is there."""
    url, art = _remotes(registry, remote, artifacts)
    sent = art.push(registry.objects, registry.referenced_objects()) if art else None
    registry.git.push(url)
    return {
        "remote": url,
        "artifact_remote": art.url if art else None,
        "objects_copied": sent.copied if sent else 0,
        "bytes_copied": sent.bytes if sent else 0,
        "objects_already_there": sent.present if sent else 0,
    }


def pull(
    registry: Registry, remote: str | None = None, artifacts: str | Path | None = None, *, fetch: bool = False
) -> dict[str, Any]:
    """Fast-forward to the remote registry; with ``fetch``, also download every artifact it references (by default
    none: a checkout or deploy fetches the one it needs, verified, from the artifact remote).

    Diverged histories are refused: two workspaces may have numbered different versions alike.
    """
    url, art = _remotes(registry, remote, artifacts)
    fetched = registry.git.fetch(url)
    head = registry.git.read_ref()
    moved = False
    if fetched and fetched != head:
        registry.index.sync()
        fresh = not registry.index.model_names()
        if head is None or fresh or registry.git.is_ancestor(head, fetched):
            if not registry.git.update_refs([(BRANCH, fetched, head)]):
                raise ConcurrencyError("the registry changed while pulling; pull again")
            moved = True
        elif not registry.git.is_ancestor(fetched, head):
            raise RemoteError(
                f"local and remote registries have diverged ({head[:8]} vs {fetched[:8]}): push from one "
                "workspace at a time, or start a fresh workspace and pull into it"
            )
    ignored = _adopt_remote_tags(registry, url) if moved else []
    registry.index.sync()
    got = art.fetch(registry.objects, registry.referenced_objects()) if art and fetch else None
    out: dict[str, Any] = {"remote": url, "updated": moved, "objects_copied": got.copied if got else 0}
    if ignored:
        out["ignored_tags"] = ignored
        out["note"] = (
            f"ignored {len(ignored)} remote tag(s) not on the remote's branch ({', '.join(ignored[:5])}): "
            "the remote holds tags from a refused push; `mm fsck --repair` there removes them"
        )
    return out


def _adopt_remote_tags(registry: Registry, url: str) -> list[str]:
    """Copy the remote's version tags that lie on our (now fast-forwarded) branch; return the others' names.

    A tag off the branch names a version the branch lacks: adopting it would make every later commit of that
    model fail, so it stays out."""
    registry.git.fetch_tags(url)
    try:
        fetched = registry.git.tags(REMOTE_TAGS)
        good = registry.git.tags(REMOTE_TAGS, merged=BRANCH)
        local = registry.git.tags()
        updates = []
        for ref, sha in good.items():
            tag = "refs/tags/" + ref.removeprefix(REMOTE_TAGS)
            if local.get(tag) != sha:
                updates.append((tag, sha, local.get(tag)))
        if updates:
            registry.git.update_refs(updates, attempts=3)
        return sorted(ref.removeprefix(REMOTE_TAGS) for ref in fetched if ref not in good)
    finally:
        registry.git.delete_refs(registry.git.tags(REMOTE_TAGS))


def set_remote(registry: Registry, url: str, artifacts: str | Path | None = None) -> dict[str, Any]:
    """Remember the git remote and artifact location used by push and pull (machine-local, never committed). The
    artifact URL must be one an installed fsspec backend handles; credentials are never part of it."""
    check_remote_url(url)
    art = ObjectRemote(str(artifacts)).url if artifacts is not None else None
    registry.ws.set_local(remote=url, artifact_remote=art)
    return {"remote": url, "artifact_remote": art}
