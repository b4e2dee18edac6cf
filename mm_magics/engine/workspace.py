"""The workspace: a ``.mm/`` directory that is a git repository of its own.

Layout::

    .mm/
      .git/            the registry (metadata, aliases, lifecycle): the source of truth and the audit log
      objects/         content-addressed artifacts (never in git)
      cache/           rebuildable caches (the SQLite index of the registry)
      run/             run-time state: deployments, metric stores (never in git)
      local.json       machine-local settings (artifact remote, secrets): never committed

It never touches the user's project repository; it records that repository's HEAD in each version instead.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import documents
from .artifacts import ArtifactStore
from .atomic import atomic_write_text, file_lock
from .clock import utcnow
from .errors import CorruptRegistryError, WorkspaceError, WorkspaceFormatError
from .gitstore import BRANCH, GitStore

if TYPE_CHECKING:
    from .cards import ModelCard, ModelDescription
    from .lifecycle import Lifecycle
    from .monitoring.live import Monitor
    from .records import ModelList, ModelOverview, VersionDetails
    from .registry import Registry
    from .serving.deployer import Deployer

FORMAT = 1
DIRNAME = ".mm"
ENV_HOME = "MM_HOME"
DEFAULT_CONFIG: dict[str, Any] = {
    "format": FORMAT,
    "probe_rows": 200,
    "trusted_types": [],
    "lifecycle": {"stages": [], "edges": []},
}
IGNORED = "objects/\ncache/\nrun/\nlocal.json\n"


def default_actor() -> str:
    """Who is acting, for the audit log: ``MM_ACTOR`` if set, else ``user@host``."""
    actor = os.environ.get("MM_ACTOR")
    if actor:
        return actor
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _initialized(root: Path) -> bool:
    """A workspace is usable once its first commit is on the branch (not merely once ``.git`` exists)."""
    git_dir = root / ".git"
    if (git_dir / "refs" / "heads" / "main").is_file():
        return True
    try:
        return " refs/heads/main\n" in (git_dir / "packed-refs").read_text()
    except (FileNotFoundError, NotADirectoryError):
        return False


def _refuse_foreign_repository(root: Path) -> None:
    """A git repository that is not a workspace (the user's project, say) is never opened or initialised as one:
    mm_magics would add its branch, commits and folders to someone else's history."""
    git_dir = root / ".git"
    if not git_dir.exists():
        return
    if _initialized(root):
        # a workspace's marks: its folder name, its artifact store, its config (any one: a damaged workspace whose
        # mm.json is gone must still open, for fsck)
        if root.name == DIRNAME or (root / "objects").is_dir() or _has_config(root):
            return
    elif (root / ".init.lock").exists():
        return  # a workspace being created by another process: its creator holds the lock
    raise WorkspaceError(
        f"{root} is a git repository but not an mm_magics workspace, which mm_magics never writes into: point -C "
        f"(or MM_HOME) at its workspace, {root / DIRNAME}, or create one there with mm -C {root / DIRNAME} init"
    )


def _has_config(root: Path) -> bool:
    """Whether the workspace branch holds ``mm.json`` (what every workspace's first commit writes)."""
    store = GitStore(root)
    try:
        head = store.read_ref()
        return head is not None and store.read(store.commit_tree(head), "mm.json") is not None
    except Exception:
        return False
    finally:
        store.close()


def find_root(start: Path | None = None) -> Path | None:
    """The nearest ``.mm/`` at or above ``start``, like git finds ``.git``."""
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / DIRNAME
        if (candidate / ".git").is_dir():
            return candidate
    return None


class Workspace:
    """Entry point to the engine: ``Workspace.open()`` finds or creates ``.mm/`` and hands out its parts."""

    def __init__(self, root: Path, *, actor: str | None = None) -> None:
        self.root = Path(root).resolve()
        if not (self.root / ".git").is_dir():
            raise WorkspaceError(f"no workspace at {self.root}: create one with Workspace.open({str(self.root)!r})")
        self.git = GitStore(self.root)
        self.objects = ArtifactStore(self.root / "objects")
        self.cache_dir = self.root / "cache"
        self.run_dir = self.root / "run"
        self.actor = actor or default_actor()
        self._check_format()

    # -- finding and creating ----------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path | None = None, *, create: bool = True, actor: str | None = None) -> Workspace:
        """Open the workspace at ``path``, else ``$MM_HOME``, else the nearest ``.mm/`` upward, else create one.

        ``path`` and ``MM_HOME`` name the workspace directory itself; creation happens in the current directory.
        """
        if path is None and os.environ.get(ENV_HOME):
            path = os.environ[ENV_HOME]
        root = Path(path).expanduser() if path is not None else find_root()
        if root is None:
            root = Path(os.getcwd()) / DIRNAME
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root} is a file, not a workspace directory: point -C (or MM_HOME) at a directory")
        if root.name != DIRNAME and (root / DIRNAME / ".git").is_dir():
            root = root / DIRNAME  # -C at the project folder: its workspace, as `mm` finds it from inside
        _refuse_foreign_repository(root)
        if not _initialized(root):
            if not create and not (root / ".git").is_dir():
                raise WorkspaceError(f"no workspace at {root}: run `mm init` there or set MM_HOME")
            cls.create(root)  # takes the init lock: waits for a concurrent creator to finish its first commit
        return cls(root, actor=actor)

    @classmethod
    def create(cls, root: Path) -> None:
        """Initialise ``root``; safe when several processes race to create the same workspace."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        with file_lock(root / ".init.lock"):
            store = GitStore.init(root)
            for sub in ("objects", "cache", "run"):
                (root / sub).mkdir(exist_ok=True)
            exclude = Path(store.git_dir) / "info" / "exclude"
            exclude.parent.mkdir(exist_ok=True)
            atomic_write_text(exclude, IGNORED + ".init.lock\n")
            if store.read_ref() is None:
                files = {
                    "mm.json": (json.dumps(DEFAULT_CONFIG, indent=2, sort_keys=True) + "\n").encode(),
                    ".gitignore": IGNORED.encode(),
                    "README.md": (
                        b"# mm_magics workspace\n\nManaged by mm_magics: one commit per version, alias change or "
                        b"lifecycle transition.\nArtifacts live in objects/ (content-addressed, not in git).\n"
                    ),
                }
                tree = store.write_changes(None, files)
                commit = store.write_commit(
                    tree,
                    [],
                    "Create mm_magics workspace\n\nMM-Action: init\n",
                    ("mm_magics", "mm@localhost"),
                    utcnow(),
                )
                store.update_refs([(BRANCH, commit, None)])
            store.close()

    def _check_format(self) -> None:
        try:
            fmt = self.config.get("format", FORMAT)
        except CorruptRegistryError:
            return  # damage is reported by whoever reads (and by fsck, which must be able to open the workspace)
        if fmt > FORMAT:
            raise WorkspaceFormatError(
                f"workspace {self.root} has format {fmt}, newer than this mm_magics reads ({FORMAT}); "
                "upgrade with `pip install -U mm_magics`"
            )

    # -- configuration -----------------------------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """Workspace settings committed in ``mm.json`` (shared with everyone who pulls the workspace)."""
        head = self.git.read_ref()
        if head is None:
            return dict(DEFAULT_CONFIG)
        raw = self.git.read(self.git.commit_tree(head), "mm.json")
        if raw is None:
            return dict(DEFAULT_CONFIG)
        return {**DEFAULT_CONFIG, **documents.parse("mm.json", raw)}

    @property
    def local_config(self) -> dict[str, Any]:
        """Machine-local settings (``local.json``): never committed, so secrets can live here."""
        path = self.root / "local.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        except (ValueError, RecursionError):
            raise WorkspaceError(f"{path} is not valid JSON: fix or delete it") from None
        if not isinstance(data, dict):
            raise WorkspaceError(f"{path} must hold a JSON object of settings: fix or delete it")
        return data

    def set_local(self, **values: Any) -> None:
        with file_lock(self.run_dir / ".local.lock"):
            data = self.local_config
            for key, value in values.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value
            atomic_write_text(self.root / "local.json", json.dumps(data, indent=2, sort_keys=True) + "\n")

    # -- parts ---------------------------------------------------------------------------------------------------
    @cached_property
    def registry(self) -> Registry:
        from .registry import Registry

        return Registry(self)

    @cached_property
    def lifecycle(self) -> Lifecycle:
        from .lifecycle import Lifecycle

        return Lifecycle(self)

    @cached_property
    def deployments(self) -> Deployer:
        """Deploy, switch, undeploy, predict: the serving verbs (made on first use)."""
        from .serving.deployer import Deployer

        return Deployer(self)

    @cached_property
    def monitor(self) -> Monitor:
        """Live metrics, feedback, drift and alerts of deployed models (made on first use)."""
        from .monitoring.live import Monitor

        return Monitor(self)

    def models(self) -> ModelList:
        """Every model with its latest version, aliases, versions per stage, and what a deployment serves now (the
        *deploy* stage says where a version is in its lifecycle, not whether a server runs it)."""
        from .records import ModelList

        models = self.registry.models()
        if (self.run_dir / "deployments").is_dir():  # a workspace that never deployed starts no serving machinery
            serving = {d.name: d for d in self.deployments.list()}
            for m in models:
                dep = serving.get(m.name)
                if dep is not None:
                    m.serving, m.serving_status = dep.version, dep.status
        if (self.run_dir / "metrics.sqlite").exists():  # a workspace that never served opens no metric store
            alerts = self.monitor.store.alerts(None)
            counts = alerts["model"].value_counts().to_dict() if len(alerts) else {}
            for m in models:
                m.open_alerts = int(counts.get(m.name, 0))
        return ModelList(models=models)

    def details(self, spec: str, *, agreement: bool = True) -> VersionDetails:
        """One version as a timeline shows it when selected: the version, its diff against its parent (params,
        metric deltas, prediction agreement), the verdict on each next stage (a dry run), and whether a deployment
        serves it now. Reads only."""
        from .records import VersionDetails

        version = self.registry.get(spec)
        diff = self.registry.diff(version.parent, version.id, agreement=agreement) if version.parent else None
        moves = self.lifecycle.picture(version.id).moves
        out = VersionDetails(version=version, diff=diff, moves=moves)
        if (self.run_dir / "deployments").is_dir():
            dep = self.deployments.get(version.name)
            if dep is not None:
                out.serving, out.serving_status = dep.version, dep.status
        return out

    def describe(self, name: str, message: str = "", **fields: str | None) -> ModelDescription:
        """Set (or, with no fields, read) who owns model ``name`` and what it is for: ``owner``, ``intended_use``,
        ``out_of_scope`` (:func:`.cards.describe`); model cards read it. One audited commit."""
        from .cards import describe

        return describe(self, name, message, **fields)

    def card(self, spec: str, *, window: str = "24h") -> ModelCard:
        """``spec``'s model card (:mod:`.cards`): everything recorded about it, as Markdown. Reads only."""
        from .cards import build

        return build(self, spec, window=window)

    def overview(self, name: str, *, window: str | float = "5m", metric: str | None = None) -> ModelOverview:
        """A model at a glance, for the model view: its timeline, its lifecycle graph, its live series over
        ``window`` and its deployment. Reads only (a workspace that never deployed starts no serving machinery)."""
        from .records import ModelOverview

        timeline = self.registry.timeline(name, metric=metric)
        deployment = None
        if (self.run_dir / "deployments").is_dir():
            deployment = self.deployments.get(name)
        series = self.monitor.series(name, window, deployment=deployment).advance()
        return ModelOverview(
            name=name,
            timeline=timeline,
            lifecycle=self.lifecycle.picture(name),
            series=series,
            deployment=deployment,
        )

    def close(self) -> None:
        """Close everything this workspace opened (index and metric store connections, HTTP clients, git)."""
        for part in ("monitor", "deployments", "registry"):
            if part in self.__dict__:
                self.__dict__[part].close()
        self.git.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"
