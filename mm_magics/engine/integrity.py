"""Integrity: ``fsck`` checks every ref, tag, document, git object and artifact, never raises, and never says ok over
damage; with ``repair`` it re-points or deletes tags that are not on the branch and re-creates lost ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import documents, layout
from .errors import CorruptRegistryError, MMError
from .gitstore import BRANCH
from .object_remote import ObjectRemote
from .records import FsckReport
from .specs import parse_spec, version_id

if TYPE_CHECKING:
    from .registry import Registry


def referenced_objects(registry: Registry) -> set[str]:
    registry.index.sync()
    refs: set[str] = set()
    for _model, _number, doc in registry.index.artifacts():
        d = json.loads(doc)
        refs.add(d["artifact"]["sha256"])
        for key in ("probe", "explanation"):
            if d.get(key):
                refs.add(d[key]["sha256"])
    return refs


def fsck(registry: Registry, *, repair: bool = False) -> FsckReport:
    """Check every ref, tag, document, git object and artifact; never raises, never says ok over damage.

    ``repair`` fixes what can be fixed without a person's judgement: tags off the branch are re-pointed at the
    commit that added their version (or deleted when the branch has no such version), lost tags are re-created,
    and the index is rebuilt from git. A damaged document is reported with the file to restore.
    """
    problems: list[str] = []
    repaired: list[str] = []
    head = _guard(problems, "registry branch", registry.git.read_ref)
    if head is None and not problems:
        problems.append(f"the registry branch {BRANCH} is missing: restore it from a remote (mm pull)")
    if head is not None:
        problems += _guard(problems, "documents", lambda: _check_documents(registry, head)) or []
        problems += _guard(problems, "git objects", registry.git.object_problems) or []
    _guard(problems, "index", registry.index.rebuild)
    if head is not None:
        tag_problems, fixes = _guard(problems, "tags", lambda: _check_tags(registry, repair)) or ([], [])
        problems += tag_problems
        repaired += fixes
        if fixes:
            _guard(problems, "index", registry.index.rebuild)
    count, artifact_problems = _guard(problems, "artifacts", lambda: _check_artifacts(registry)) or (0, [])
    problems += artifact_problems
    refs = _guard(problems, "artifacts", registry.referenced_objects) or set()
    objects = _guard(problems, "object store", lambda: list(registry.objects)) or []
    orphans = [sha for sha in objects if sha not in refs]
    return FsckReport(
        versions=count,
        objects=len(objects),
        problems=problems,
        orphans=orphans,
        index_rebuilt=True,
        repaired=repaired,
    )


def _check_documents(registry: Registry, head: str) -> list[str]:
    """Every document parses and has its kind's shape; every model has mm.json's, its own and each version's."""
    out = []
    tree = registry.git.commit_tree(head)
    versions: dict[str, set[int]] = {}
    latest: dict[str, int] = {}
    for path, blob in sorted(registry.git.changed_paths(None, tree).items()):
        kind, name, number = layout.classify(path)
        if kind == "other" or blob is None:
            continue
        try:
            doc = documents.parse(path, registry.git.read_blob(blob))
        except CorruptRegistryError as exc:
            out.append(str(exc).split(": run `mm fsck`")[0])
            doc = None
        if kind == "versions" and name is not None and number is not None:
            versions.setdefault(name, set()).add(number)
        if kind == "model" and name is not None and doc is not None:
            latest[name] = int(doc["latest"])
    restore = "restore it from the registry's history (git -C .mm log -- PATH)"
    if registry.git.read(tree, layout.CONFIG) is None:
        out.append(f"{layout.CONFIG} is missing: {restore}")
    for name, _binsha, _mode in registry.git.list_dir(tree, "models"):
        if registry.git.read(tree, layout.model_file(name)) is None:
            out.append(f"{layout.model_file(name)} is missing: {restore}")
        lost = [n for n in range(1, latest.get(name, 0) + 1) if n not in versions.get(name, set())]
        for n in lost[:20]:
            out.append(f"{layout.version_file(name, n)} is missing ({name} has v1..v{latest[name]}): {restore}")
    return out


def _check_tags(registry: Registry, repair: bool) -> tuple[list[str], list[str]]:
    """Tags must name a version on the branch and point at a commit on it."""
    problems, fixes = [], []
    on_branch = registry.git.tags(merged=BRANCH)
    for ref, sha in registry.git.tags().items():
        vid = ref.removeprefix("refs/tags/")
        try:
            spec = parse_spec(vid)
        except MMError:
            continue  # a tag of the user's own, not a version
        if spec.number is None:
            continue
        added = registry.git.commit_adding(layout.version_file(spec.name, spec.number))
        if ref in on_branch and added is not None:
            continue
        problems.append(
            f"tag {vid} points to {sha[:8]}, which is not on the registry branch (a refused push or a diverged "
            "pull left it): `mm fsck --repair` " + ("re-points it" if added else "deletes it")
        )
        if repair:
            registry.git.delete_refs([ref])
            if added is not None:
                registry.git.update_refs([(ref, added, None)], attempts=3)
            fixes.append(f"tag {vid} " + (f"re-pointed to {added[:8]}" if added else "deleted"))
    if problems and repair:
        problems = []
    return problems, fixes


def _check_artifacts(registry: Registry) -> tuple[int, list[str]]:
    on_remote = _remote_lookup(registry)
    problems: list[str] = []
    count = 0
    for model, number, doc in registry.index.artifacts():
        count += 1
        d = json.loads(doc)
        vid = version_id(model, number)
        if registry.ledger.commit_of(model, number) is None:
            problems.append(f"{vid}: no commit on the main branch adds it: the registry history was rewritten")
        stage_file = layout.stage_file(model, number)
        if registry.index.stage_doc(model, number) is None and not registry.index.broken(stage_file):
            problems.append(
                f"{vid}: no lifecycle record ({layout.stage_file(model, number)} is missing): restore it from "
                "the registry's history (git -C .mm log -- PATH)"
            )
        metas = (("artifact", d["artifact"]), ("probe sample", d.get("probe")), ("explanation", d.get("explanation")))
        for what, meta in metas:
            if meta:
                if meta["sha256"] not in registry.objects and on_remote(meta["sha256"]):
                    continue  # not fetched yet: a checkout fetches it from the artifact remote (a lazy pull)
                problem = registry.objects.verify(meta["sha256"])
                if problem:
                    problems.append(f"{vid} {what}: {problem}")
    return count, problems


def _guard(problems: list[str], what: str, check: Callable[[], Any]) -> Any:
    """Run one fsck check; damage it trips over becomes a problem line, never a traceback (fsck must finish)."""
    try:
        return check()
    except Exception as exc:
        text = str(exc).split(": run `mm fsck`")[0] if isinstance(exc, MMError) else f"{type(exc).__name__}: {exc}"
        problems.append(f"{what}: {text}")
        return None


def _remote_lookup(registry: Registry) -> Callable[[str], bool]:
    """Whether the artifact remote holds an object: one listing, made only if a local object is missing."""
    listing: set[str] | None = None

    def has(sha: str) -> bool:
        nonlocal listing
        url = registry.ws.local_config.get("artifact_remote")
        if not url:
            return False
        if listing is None:
            try:
                listing = ObjectRemote(str(url)).listing()
            except MMError:
                listing = set()  # unreachable: the local object counts as missing, as before
        return sha in listing

    return has
