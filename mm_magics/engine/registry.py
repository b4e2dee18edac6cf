"""Versions in git: commit, get, log, diff, checkout, rollback, aliases, remotes, fsck and gc.

Every change is one git commit made through the :class:`~.ledger.Ledger` (compare-and-swap on the branch), so
concurrent kernels each get their own version number and a crash leaves the half-made version invisible.

Why one module of ~550 lines: it is the registry's facade, and its verbs share the private read caches (the
index, the loaded-model LRU, the tree view of the branch head) that keep ``get`` at a fraction of a millisecond at
10 000 versions. What needs none of them lives in its own module and is only entered here: diff, integrity (fsck,
gc), remotes, estimator checks, documents, the ledger.
"""

from __future__ import annotations

import copy
import difflib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from . import documents, explain, layout, ledger, probe, serialization
from .artifacts import GcReport
from .clock import now_iso
from .environment import capture_environment, project_state
from .errors import (
    ArtifactError,
    ArtifactMissingError,
    CorruptRegistryError,
    Fix,
    MMError,
    UnknownModelError,
    UnknownVersionError,
)
from .estimators import check_model, task_of
from .fingerprints import estimator_params, jsonable
from .gitstore import BRANCH
from .index import Index
from .ledger import Change, Ledger, TreeView, dump_json, parse_trailers
from .records import (
    AliasChange,
    AuditEntry,
    FsckReport,
    LogPage,
    ModelSummary,
    Version,
    VersionDiff,
)
from .specs import VersionSpec, check_alias, check_name, parse_spec, version_id
from .stages import entry_path, new_stage_doc

if TYPE_CHECKING:
    from .timeline import Timeline
    from .workspace import Workspace

MAX_ATTEMPTS = 200
MAX_PAGE = 10_000
_MODEL_CACHE = 16


class Registry:
    """The versions of every model in one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.git = workspace.git
        self.objects = workspace.objects
        self.index = Index(workspace.cache_dir / "index.sqlite", workspace.git)
        self.ledger = Ledger(workspace.git, self.index, workspace.actor)
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._loaded_lock = threading.Lock()

    def close(self) -> None:
        self.index.close()

    # -- commit ----------------------------------------------------------------------------------------------------
    def commit(
        self,
        name: str,
        model: Any,
        *,
        message: str = "",
        params: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        code: str | None = None,
        schema: dict[str, Any] | None = None,
        parent: str | None = None,
        probe_data: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> Version:
        """Version a fitted model: artifact into the object store, metadata into one git commit.

        ``probe_data`` (typically the training X) is sampled and kept as an artifact so that ``diff`` can report
        how often two versions agree; pass None, or set the workspace's ``probe_rows`` to 0, for sensitive data.
        """
        check_name(name)
        _check_fields(
            message=message,
            params=params,
            metrics=metrics,
            data=data,
            code=code,
            schema=schema,
            parent=parent,
            extra=extra,
        )
        check_model(model)
        blob = serialization.dumps(model)
        artifact = {
            "sha256": self.objects.put(blob),
            "size": len(blob),
            "format": serialization.FORMAT,
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
        }
        fields = {
            "artifact": artifact,
            "estimator": artifact["class"],
            "task": task_of(model),
            "params": jsonable(params) if params is not None else estimator_params(model),
            "metrics": jsonable(metrics or {}),
            "data": jsonable(data or {}),
            "code": code,
            "schema": jsonable(schema or {}),
            "environment": capture_environment(),
            "project": project_state(exclude=self.ws.root),
            "extra": jsonable(extra or {}),
        }
        sample, fields["probe"] = self._store_probe(probe_data)
        fields["explanation"] = self._store_explanation(model, sample, fields["task"])
        parent_id = self._resolve_parent(parent)
        return self._commit_version(name, fields, message or f"Commit {name}", parent_id, action="commit")

    def _commit_version(
        self,
        name: str,
        fields: dict[str, Any],
        message: str,
        parent_id: str | None,
        *,
        action: str,
        rollback_of: str | None = None,
    ) -> Version:
        entry = entry_path(bool(fields.get("metrics")))
        actor = self.ws.actor

        def build(snap: TreeView) -> Change:
            created = now_iso()
            mdoc = snap.json(layout.model_file(name)) or {
                "name": name,
                "created": created,
                "latest": 0,
                "gates": [],
                "aliases": {},
            }
            number = int(mdoc["latest"]) + 1
            mdoc["latest"] = number
            vdoc = {
                "format": 1,
                "model": name,
                "version": number,
                "parent": parent_id,
                "created": created,
                "actor": actor,
                "message": message,
                "rollback_of": rollback_of,
                **fields,
            }
            sdoc = new_stage_doc(entry, actor=actor, when=created, reason=message)
            msg = ledger.message(
                message, action=action, model=name, version=number, parent=parent_id, actor=actor, stage=entry[-1]
            )
            files = {
                layout.model_file(name): dump_json(mdoc),
                layout.version_file(name, number): dump_json(vdoc),
                layout.stage_file(name, number): dump_json(sdoc),
            }
            return Change(files, msg, [layout.tag(name, number)], number)

        number, _ = self.ledger.transact(build)
        try:
            return self.get(version_id(name, number))
        except UnknownVersionError:  # published, so it exists: the index cache lags (e.g. damaged); rebuild it
            self.index.rebuild()
            return self.get(version_id(name, number))

    def _store_probe(self, X: Any) -> tuple[Any, dict[str, Any] | None]:
        """The probe sample kept for agreement (and explanations), and its metadata."""
        rows = int(self.ws.config.get("probe_rows", 0) or 0)
        if X is None or rows <= 0:
            return None, None
        try:
            sample = probe.sample(X, rows)
            data, fmt = probe.encode(sample)
        except Exception:  # a probe is a convenience; odd data must never block a commit
            return None, None
        return sample, {"sha256": self.objects.put(data), "rows": len(sample), "format": fmt}

    def _store_explanation(self, model: Any, sample: Any, task: str | None) -> dict[str, Any] | None:
        """Permutation importance on the probe sample (:mod:`.explain`), kept as an artifact; its summary, or None
        (no sample, ``explain`` off in the workspace settings, or a model it cannot score)."""
        if sample is None or self.ws.config.get("explain", True) is False:
            return None
        doc = explain.explain(model, sample, task)
        if doc is None:
            return None
        return explain.summary(doc, self.objects.put(explain.encode(doc)))

    def explanation(self, spec: str | VersionSpec) -> explain.Explanation:
        """The explanation computed when ``spec`` was committed (hash-verified); a one-line error if it has none."""
        version = self.get(spec)
        if not version.explanation:
            raise ArtifactMissingError(
                f"{version.id} has no explanation: it was committed without a probe sample (training data), with "
                "probe_rows 0 or explain off, or by an mm_magics before explanations; commit it again from training"
            )
        data = self._artifact_bytes(version.explanation["sha256"], f"explanation of {version.id}")
        return explain.decode(data, version.id)

    def _resolve_parent(self, parent: str | None) -> str | None:
        if parent is None:
            return None
        return self.get(parent).id

    # -- reading ---------------------------------------------------------------------------------------------------
    def resolve(self, spec: str | VersionSpec) -> tuple[str, int]:
        """``(name, number)`` for ``NAME``, ``NAME@vN``, ``NAME@ALIAS`` or ``NAME@latest``."""
        spec = parse_spec(spec) if isinstance(spec, str) else spec
        if self.index.sync() is None:
            raise CorruptRegistryError(
                f"the registry branch ({BRANCH}) is missing in {self.git.git_dir}: run `mm fsck` to diagnose it"
            )
        mdoc = self.index.model_doc(spec.name)
        if mdoc is None:
            self.index.require_intact(layout.model_file(spec.name))
            known = self.index.model_names()
            close = difflib.get_close_matches(spec.name, known, n=1, cutoff=0.6)
            if close:  # a typo: name the model meant, not how to create a new one
                raise UnknownModelError(
                    f"unknown model {spec.name!r}: did you mean {close[0]!r}? (models: {', '.join(known[:10])})"
                )
            hint = f" (models: {', '.join(known[:10])})" if known else " (the registry is empty)"
            raise UnknownModelError(
                f"unknown model {spec.name!r}{hint}: check the name, or commit a model under it ({{fix}})",
                fix=Fix("commit", (spec.name, "-m", "WHY")),
            )
        if spec.alias is not None:
            number = mdoc.get("aliases", {}).get(spec.alias)
            if number is None:
                aliases = ", ".join(sorted(mdoc.get("aliases", {}))) or "none"
                raise UnknownVersionError(
                    f"model {spec.name!r} has no alias {spec.alias!r} (aliases: {aliases}); set it with {{fix}}",
                    fix=Fix("alias", (f"{spec.name}@vN", spec.alias)),
                )
            return spec.name, int(number)
        latest = int(mdoc["latest"])
        number = spec.number if spec.number is not None else latest
        if number < 1 or number > latest or self.index.version_doc(spec.name, number) is None:
            if 1 <= number <= latest:
                self.index.require_intact(layout.version_file(spec.name, number))
            raise UnknownVersionError(f"{spec.name}@v{number} does not exist: {spec.name} has versions v1..v{latest}")
        return spec.name, number

    def get(self, spec: str | VersionSpec) -> Version:
        name, number = self.resolve(spec)
        return self._version(name, number)

    def _version(self, name: str, number: int, doc: dict[str, Any] | None = None, stage: str | None = None) -> Version:
        doc = doc or self.index.version_doc(name, number)
        if doc is None:
            raise UnknownVersionError(f"{name}@v{number} does not exist")
        if stage is None:
            sdoc = self.index.stage_doc(name, number)
            if sdoc is None:
                self.index.require_intact(layout.stage_file(name, number))
            stage = sdoc["stage"] if sdoc else None
        mdoc = self.index.model_doc(name) or {}
        aliases = sorted(a for a, n in mdoc.get("aliases", {}).items() if n == number)
        return Version.from_doc(doc, stage=stage, aliases=aliases, commit=self.ledger.commit_of(name, number))

    def models(self) -> list[ModelSummary]:
        self.index.sync()
        out = []
        for name in self.index.model_names():
            mdoc = self.index.model_doc(name) or {}
            out.append(
                ModelSummary(
                    name=name,
                    latest=int(mdoc.get("latest", 0)),
                    aliases=dict(mdoc.get("aliases", {})),
                    stages=self.index.stage_counts(name),
                    created=mdoc.get("created", ""),
                )
            )
        return out

    def log(self, name: str, *, limit: int = 20, before: int | None = None) -> LogPage:
        """Newest first, ``limit`` at a time; pass ``before=page.next_before`` for the next page."""
        spec = parse_spec(name)
        if not (_whole(limit) and 1 <= limit <= MAX_PAGE):
            raise MMError(f"limit must be a whole number from 1 to {MAX_PAGE}, not {limit!r}")
        if before is not None and not (_whole(before) and before >= 1):
            raise MMError(f"before must be a version number >= 1, not {before!r}")
        self.resolve(spec.name)
        mdoc = self.index.model_doc(spec.name) or {}
        by_number: dict[int, list[str]] = {}
        for alias, n in mdoc.get("aliases", {}).items():
            by_number.setdefault(int(n), []).append(alias)
        versions = []
        for number, doc, stage in self.index.page(spec.name, max(1, limit), before):
            v = Version.from_doc(doc, stage=stage, aliases=sorted(by_number.get(number, [])))
            v.commit = self.ledger.commit_of(spec.name, number)
            versions.append(v)
        total = int(mdoc.get("latest", 0))  # versions are never deleted, so no COUNT(*) over the table
        nxt = versions[-1].number if versions and versions[-1].number > 1 and len(versions) == limit else None
        return LogPage(name=spec.name, versions=versions, total=total, next_before=nxt)

    def version_graph(self, name: str) -> nx.DiGraph:
        """The version DAG of one model: an edge parent -> child for each retrain, tuning or rollback."""
        check_name(name)
        self.resolve(name)
        graph = nx.DiGraph(name=name)
        stages = dict(self.index.query("SELECT number, stage FROM stages WHERE model=?", (name,)))
        for number, parent in self.index.edges(name):
            vid = version_id(name, number)
            graph.add_node(vid, number=number, stage=stages.get(number))
            if parent:
                graph.add_edge(parent, vid)
        return graph

    def history(self, name: str | None = None, *, limit: int | None = 100) -> list[AuditEntry]:
        """The audit log: every commit (version, alias, transition, config) newest first."""
        if name is not None:
            self.resolve(check_name(name))
        paths = [layout.model_dir(name)] if name else None
        out = []
        for c in self.git.history(paths, max_count=limit):
            t = parse_trailers(c.message)
            out.append(
                AuditEntry(
                    commit=c.sha,
                    time=c.time.isoformat(),
                    actor=t.get("actor", c.author),
                    action=t.get("action", "edit"),
                    model=t.get("model"),
                    summary=c.message.split("\n", 1)[0],
                )
            )
        return out

    # -- artifacts -------------------------------------------------------------------------------------------------
    def _artifact_bytes(self, sha: str, label: str) -> bytes:
        try:
            return self.objects.get(sha, label=label)
        except ArtifactMissingError:
            remote = self.ws.local_config.get("artifact_remote")
            if remote:
                from .object_remote import ObjectRemote

                if ObjectRemote(str(remote)).fetch(self.objects, [sha]).copied:
                    return self.objects.get(sha, label=label)
            raise

    def artifact_problem(self, version: Version) -> str | None:
        """Why ``version``'s artifact cannot be read (missing here and on the artifact remote, or corrupt), or None."""
        try:
            self._artifact_bytes(version.sha256, f"artifact of {version.id}")
        except ArtifactError as exc:
            return str(exc)
        return None

    def checkout(self, spec: str | VersionSpec) -> Any:
        """A fresh model object for a version, loaded only after its sha256 checks out.

        Loaded models are kept by sha256 (:meth:`cached_model`), and each checkout is a deep copy of the one loaded:
        a second checkout of a 100-tree forest costs a copy (~15 ms) instead of skops' reconstruction (~170 ms), and
        a caller that refits its copy changes nothing anyone else gets. The stored bytes are hashed again every time
        (~3 ms for 5 MB), so a damaged or missing artifact is reported even when its model is already loaded."""
        version = self.get(spec)
        model = self.cached_model(version, verify=True)
        try:
            return copy.deepcopy(model)
        except Exception:  # an estimator holding something uncopyable: a fresh load is still correct
            return self._load(version)

    def _load(self, version: Version) -> Any:
        data = self._artifact_bytes(version.sha256, f"artifact of {version.id}")
        trusted = self.ws.config.get("trusted_types", [])
        return serialization.loads(data, trusted=trusted, label=f"artifact of {version.id}")

    def cached_model(self, version: Version, *, verify: bool = False) -> Any:
        """Loaded models, shared and never to be changed (diff, serving; :meth:`checkout` hands out copies), keyed by
        content hash: a version's artifact is named by its sha256, so an entry can never be stale or another's.
        ``verify``: check the stored bytes still hash to it even when the model is cached."""
        sha = version.sha256
        with self._loaded_lock:  # a monitor thread and a cell may diff at once
            model = self._loaded.get(sha)
            if model is not None:
                self._loaded.move_to_end(sha)
        if model is not None:
            if verify:
                self._artifact_bytes(sha, f"artifact of {version.id}")
            return model
        model = self._load(version)
        with self._loaded_lock:
            self._loaded[sha] = model
            if len(self._loaded) > _MODEL_CACHE:
                self._loaded.popitem(last=False)
        return model

    def probe_data(self, spec: str | VersionSpec) -> Any:
        version = self.get(spec)
        if not version.probe:
            return None
        data = self._artifact_bytes(version.probe["sha256"], f"probe sample of {version.id}")
        return probe.decode(data, version.probe["format"])

    # -- rollback and aliases ------------------------------------------------------------------------------------
    def rollback(self, name: str, to: str | int, message: str = "") -> Version:
        """A NEW version equal to ``to``: history is kept, the parent edge records where it came from.

        The target is loaded (hash verified) before anything is written, so a rollback to a broken artifact fails
        cleanly instead of recording a version that cannot serve.
        """
        check_name(name)
        target_spec = f"{name}@v{to}" if isinstance(to, int) else (to if "@" in str(to) else f"{name}@{to}")
        target = self.get(target_spec)
        if target.name != name:
            raise UnknownVersionError(f"cannot roll {name} back to {target.id}: pick a version of {name}")
        self._load(target)
        current = self.get(name)
        fields = {
            k: getattr(target, k)
            for k in (
                "artifact",
                "estimator",
                "task",
                "params",
                "metrics",
                "data",
                "code",
                "schema",
                "environment",
                "project",
                "probe",
                "explanation",
                "extra",
            )
        }
        msg = message or f"Roll back {name} from {current.id} to {target.id}"
        return self._commit_version(name, fields, msg, target.id, action="rollback", rollback_of=current.id)

    def set_alias(self, spec: str, alias: str, message: str = "") -> AliasChange:
        """Point ``alias`` (e.g. ``production``) at a version; the move is a commit, so it is audited."""
        check_alias(alias)
        name, number = self.resolve(spec)
        return self._alias(name, alias, number, message or f"Set {name}@{alias} to v{number}")

    def delete_alias(self, name: str, alias: str, message: str = "") -> AliasChange:
        check_alias(alias)
        self.resolve(name)
        if alias not in (self.index.model_doc(name) or {}).get("aliases", {}):
            raise UnknownVersionError(f"model {name!r} has no alias {alias!r}: nothing to delete")
        return self._alias(name, alias, None, message or f"Delete {name}@{alias}")

    def aliases(self, name: str) -> dict[str, int]:
        self.resolve(name)
        return dict((self.index.model_doc(name) or {}).get("aliases", {}))

    def _alias(self, name: str, alias: str, number: int | None, message: str) -> AliasChange:
        actor = self.ws.actor

        def build(snap: TreeView) -> Change:
            mdoc = snap.json(layout.model_file(name))
            if mdoc is None:
                raise UnknownModelError(f"unknown model {name!r}")
            old = mdoc.setdefault("aliases", {}).get(alias)
            if number is None:
                mdoc["aliases"].pop(alias, None)
            else:
                mdoc["aliases"][alias] = number
            msg = ledger.message(
                message,
                action="alias",
                model=name,
                alias=alias,
                old=f"v{old}" if old else "-",
                new=f"v{number}" if number else "-",
                actor=actor,
            )
            return Change({layout.model_file(name): dump_json(mdoc)}, msg, result=old)

        old, commit = self.ledger.transact(build)
        return AliasChange(name=name, alias=alias, old=old, new=number, commit=commit)

    # -- model-level and workspace-level settings ---------------------------------------------------------------
    def update_model(self, name: str, mutate: Callable[[dict[str, Any]], None], message: str, action: str) -> str:
        """Apply ``mutate`` to ``model.json`` in one audited commit (used for gates and other model settings)."""
        self.resolve(name)
        actor = self.ws.actor

        def build(snap: TreeView) -> Change:
            mdoc = snap.json(layout.model_file(name))
            if mdoc is None:
                raise UnknownModelError(f"unknown model {name!r}")
            mutate(mdoc)
            msg = ledger.message(message, action=action, model=name, actor=actor)
            return Change({layout.model_file(name): dump_json(mdoc)}, msg)

        return self.ledger.transact(build)[1]

    def model_doc(self, name: str) -> dict[str, Any]:
        self.resolve(name)
        return dict(self.index.model_doc(name) or {})

    def update_config(self, mutate: Callable[[dict[str, Any]], None], message: str) -> str:
        actor = self.ws.actor

        def build(snap: TreeView) -> Change:
            doc = snap.json(layout.CONFIG) or {}
            mutate(doc)
            msg = ledger.message(message, action="config", actor=actor)
            return Change({layout.CONFIG: dump_json(doc)}, msg)

        return self.ledger.transact(build)[1]

    def trust(self, types: Iterable[str], message: str = "") -> list[str]:
        """Add types to the workspace's trusted set for loading artifacts (an audited, shared decision)."""
        if isinstance(types, str):  # one type, not its letters
            types = [types]
        new = sorted(set(types))
        bad = [t for t in new if not isinstance(t, str) or not _TYPE_NAME.fullmatch(t)]
        if bad or not new:
            raise MMError(
                f"not a type name: {', '.join(map(repr, bad)) or 'none given'}: name each type by its full dotted "
                "path, e.g. mm trust mypkg.models.MyEstimator"
            )

        def mutate(doc: dict[str, Any]) -> None:
            doc["trusted_types"] = sorted(set(doc.get("trusted_types", [])) | set(new))

        self.update_config(mutate, message or f"Trust types: {', '.join(new)}")
        return self.ws.config["trusted_types"]

    # -- diff, integrity, remotes: one module each, entered here --------------------------------------------------
    def diff(self, a: str, b: str, *, agreement: bool = True) -> VersionDiff:
        """Everything that differs between two versions, and how often their predictions agree."""
        from .diff import compare

        return compare(self, a, b, agreement=agreement)

    def head(self) -> str | None:
        """The registry branch's commit: reading one ref file, the cheap "did anything change?" a face polls
        (another kernel, the ``mm`` command or a teammate's pull moves it)."""
        return self.git.read_ref()

    def timeline(self, name: str, *, metric: str | None = None, since: str | None = None) -> Timeline:
        """The model's history as compact columns for a timeline view, or a patch since registry head ``since``."""
        from .timeline import build

        return build(self, name, metric=metric, since=since)

    def referenced_objects(self) -> set[str]:
        """Every artifact and probe sample some version references."""
        from .integrity import referenced_objects

        return referenced_objects(self)

    def fsck(self, *, repair: bool = False, remote: bool = False) -> FsckReport:
        """Check every ref, tag, document, git object and artifact (see :mod:`.integrity`); with ``remote``, also
        that the artifact remote holds every object a version references."""
        from .integrity import fsck

        report = fsck(self, repair=repair)
        if remote:
            from .object_remote import ObjectRemote

            url = self.ws.local_config.get("artifact_remote")
            if not url:
                report.problems.append("no artifact remote configured: run `mm remote GIT_URL ARTIFACT_URL`")
            else:
                art = ObjectRemote(str(url))
                for sha in art.missing(self.referenced_objects()):
                    report.problems.append(f"object {sha} is missing from the artifact remote {art.url}: mm push")
        return report

    def gc(self, *, grace_seconds: float = 3600.0) -> GcReport:
        """Delete artifacts no version references (older than the grace period)."""
        return self.objects.gc(self.referenced_objects(), grace_seconds=grace_seconds)

    def set_remote(self, url: str, artifacts: str | Path | None = None) -> dict[str, Any]:
        """Remember the git remote and artifact location used by push and pull (machine-local, never committed)."""
        from .remotes import set_remote

        return set_remote(self, url, artifacts)

    def push(self, remote: str | None = None, artifacts: str | Path | None = None) -> dict[str, Any]:
        """Send artifacts first, then git, atomically (see :mod:`.remotes`)."""
        from .remotes import push

        return push(self, remote, artifacts)

    def pull(
        self, remote: str | None = None, artifacts: str | Path | None = None, *, fetch: bool = False
    ) -> dict[str, Any]:
        """Fast-forward to the remote registry; ``fetch`` also downloads every artifact (see :mod:`.remotes`)."""
        from .remotes import pull

        return pull(self, remote, artifacts, fetch=fetch)


_TYPE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fields(**fields: Any) -> None:
    """Refuse, with the field named, what would be stored and then break every later read of the version."""
    for key in ("params", "metrics", "data", "schema", "extra"):
        value = fields[key]
        if value is not None and not isinstance(value, dict):
            raise MMError(f"{key} must be a dict (e.g. {key}={{'accuracy': 0.9}}), not {type(value).__name__}")
        if value is not None and not all(isinstance(k, str) for k in value):
            raise MMError(f"{key} must have string keys")
    for metric, value in (fields["metrics"] or {}).items():
        if isinstance(value, bool) or not (
            documents.finite_number(value) or isinstance(value, (list, dict, str)) or value is None
        ):
            raise MMError(f"metric {metric!r} must be a finite number (or a list/table), not {value!r}")
    for key in ("message", "code", "parent"):
        value = fields[key]
        if value is not None and not isinstance(value, str):
            raise MMError(f"{key} must be a string, not {type(value).__name__}")
