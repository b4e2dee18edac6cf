"""The registry's git layer, built on GitPython's object database.

Why not ``index.add`` + ``index.commit``: the staging index and the work tree are shared mutable state, so two
kernels committing at once would corrupt each other, and rewriting an index of thousands of entries makes every
commit slower as the registry grows. Instead we write blobs, trees and commits straight into the object database
(immutable, so safe under any concurrency) and publish them with one compare-and-swap ref transaction
(``git update-ref --stdin``, which uses git's own lock files). A process killed at any point leaves only unreferenced
objects behind: the half-made version is invisible and the registry stays readable.

Threads: a kernel reads the registry from a ``%mm_monitor --refresh`` thread while a cell commits. GitPython's
``Repo`` is not thread-safe (its persistent ``git cat-file --batch`` is one request/response stream, so two threads
reading at once receive each other's objects), so each thread gets its own ``Repo``.

Why one module of ~500 lines: it is one concept, the only place that runs git, and its parts share one discipline
(every user string after ``--``, every ref change under one flock, objects written before refs move). Splitting it
would spread that discipline over modules whose private helpers would have to cross between them.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path

import git
from git.objects.fun import tree_entries_from_data, tree_to_stream
from gitdb import LooseObjectDB
from gitdb.base import IStream

from .atomic import file_lock
from .errors import ConcurrencyError, CorruptRegistryError, RemoteError, WorkspaceError

BRANCH = "refs/heads/main"
REMOTE_BRANCH = "refs/remotes/origin/main"
REMOTE_TAGS = "refs/mm-remote-tags/"  # fetched tags wait here until checked against the branch
BLOB_MODE = 0o100644
TREE_MODE = 0o040000
NULL_SHA = "0" * 40


#: git options that keep a remote URL from running anything: the ext:: transport runs a command by design
_SAFE_GIT = ["-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never"]


def check_remote_url(url: object) -> str:
    """Refuse a git remote that git could take for an option (``--upload-pack=...`` runs a command) or a command.

    Every user string that reaches git's command line also goes after ``--``; this check is the clear error."""
    if not isinstance(url, str) or not url.strip():
        raise RemoteError("empty remote URL: pass a git URL or path, e.g. mm remote /srv/registry.git")
    if url.startswith("-"):
        raise RemoteError(f"remote {url!r} starts with '-', which git would read as an option: pass a URL or a path")
    if any(ch in url for ch in "\0\n\r") or url.lower().startswith(("ext::", "fd::")):
        raise RemoteError(f"remote {url!r} is not a plain git URL (no ext::, fd:: or control characters): pass a URL")
    return url


Entry = tuple[bytes, int, str]  # (binsha, mode, name), GitPython's tree entry tuple


def _sort_key(entry: Entry) -> str:
    # git orders tree entries as if directory names ended with '/'
    return entry[2] + "/" if entry[1] == TREE_MODE else entry[2]


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    message: str
    author: str
    time: datetime
    parents: tuple[str, ...]


class GitStore:
    """Low-level, concurrency-safe access to the workspace's git repository."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self._local.repo = git.Repo(self.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise WorkspaceError(
                f"{self.path} is not a git repository; remove it or point MM_HOME at a valid workspace"
            ) from None
        self.git_dir = Path(self.repo.git_dir)
        # Writes go through gitdb's in-process loose-object writer (GitPython's default odb forks `git` per
        # object); reads keep using GitPython's persistent `git cat-file --batch`, which also sees packs.
        self._loose = LooseObjectDB(str(self.git_dir / "objects"))
        self._trees: OrderedDict[bytes, list[Entry]] = OrderedDict()
        self._trees_lock = threading.Lock()
        self._packed: dict[str, str] = {}
        self._packed_key: tuple[int, int, int] | None = None
        #: tags whose update a killed writer left half-done (their lock was stale): the registry re-creates them
        self.crashed_tags: set[str] = set()

    @classmethod
    def init(cls, path: Path) -> GitStore:
        """Create the repository: non-bare layout (``.mm/.git``) flagged bare, since we never use a work tree."""
        path = Path(path)
        if not (path / ".git").exists():
            git.Repo.init(path, mkdir=True, initial_branch="main")
        store = cls(path)
        with store.repo.config_writer() as cw:
            cw.set_value("core", "bare", "true")
            cw.set_value("gc", "auto", "0")
            cw.set_value("core", "logAllRefUpdates", "always")
        return store

    @property
    def repo(self) -> git.Repo:
        """This thread's ``Repo`` (made on first use; it closes its git processes when the thread ends)."""
        repo = getattr(self._local, "repo", None)
        if repo is None:
            repo = self._local.repo = git.Repo(self.path)
        return repo

    def close(self) -> None:
        """Close this thread's ``Repo``; other threads' close with them."""
        repo = getattr(self._local, "repo", None)
        if repo is not None:
            repo.close()
            self._local.repo = None

    # -- refs ---------------------------------------------------------------------------------------------------
    def read_ref(self, ref: str = BRANCH) -> str | None:
        """Current value of a ref, read straight from disk (microseconds: called before every cached read).

        A ref file that exists but holds no commit id is damage, never "no ref": reading it as missing would let the
        index forget every version and a commit start a new history."""
        try:
            value = (self.git_dir / ref).read_text(errors="replace").strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return self._packed_refs().get(ref)
        if len(value) == 40 and all(c in "0123456789abcdef" for c in value):
            return value
        if value.startswith("ref: "):  # a symbolic ref: follow it once
            return self.read_ref(value[5:].strip()) if value[5:].strip() != ref else None
        raise CorruptRegistryError(
            f"{self.git_dir / ref} does not hold a commit id ({value[:20]!r}): run `mm fsck` to diagnose the workspace"
        )

    def _packed_refs(self) -> dict[str, str]:
        """``packed-refs`` as a dict, re-read only when the file changes (a clone or ``git gc`` packs all tags)."""
        path = self.git_dir / "packed-refs"
        try:
            st = path.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._packed_key != key:
            refs = {}
            with open(path) as fh:
                for line in fh:
                    if len(line) > 41 and line[40] == " " and not line.startswith("#"):
                        refs[line[41:].rstrip("\n")] = line[:40]
            self._packed, self._packed_key = refs, key
        return self._packed

    def update_refs(self, updates: Iterable[tuple[str, str, str | None]], *, attempts: int = 200) -> bool:
        """Apply ``(ref, new, old)`` updates as one transaction; ``old=None`` means the ref must not exist yet.

        Returns False when another writer got there first (the caller rebuilds on the new head and retries).
        Note that git's files backend makes the transaction atomic against other writers but not against a crash:
        a process killed while git renames the lock files can publish the branch without the tag. The branch is
        the source of truth, so readers repair a missing tag (:meth:`Ledger.commit_of`).
        """
        lines = []
        for ref, new, old in updates:
            lines.append(f"update {ref} {new} {old or NULL_SHA}")
        payload = "\n".join(lines) + "\n"
        for _ in range(attempts):
            # Every ref update of ours runs under one kernel lock (flock), which dies with its holder. So a git
            # ``.lock`` file seen while we hold it was left by a killed process: it is removed at once instead of
            # after an age threshold (which stalled the next writer ~10 s after a kill).
            with self.ref_lock():
                # no lock timeout: git would wait 100 ms on a lock that, under our flock, nobody alive holds
                proc = subprocess.run(
                    [
                        self._git_exe(),
                        "-c",
                        "core.filesRefLockTimeout=0",
                        "--git-dir",
                        str(self.git_dir),
                        "update-ref",
                        "--stdin",
                    ],
                    input=payload,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode == 0:
                    return True
                err = proc.stderr
                stale = self._stale_locks(err)
                if stale:  # a writer died mid-transaction: its other locks (a tag's, say) are stale too
                    stale += [p for p in (self.git_dir / "refs").rglob("*.lock") if p not in stale]
                for lock in stale:
                    lock.unlink(missing_ok=True)
                    ref = lock.relative_to(self.git_dir).as_posix().removesuffix(".lock")
                    if ref.startswith("refs/tags/"):
                        self.crashed_tags.add(ref)
            if stale:
                continue
            if "but expected" in err or "already exists" in err or "reference already exists" in err:
                return False
            if ".lock': File exists" in err or "Unable to create" in err:
                time.sleep(0.002)  # a git process outside mm_magics holds the lock
                continue
            raise WorkspaceError(f"git refused to update the registry refs: {err.strip().splitlines()[-1]}")
        if attempts < 200:
            return False
        raise ConcurrencyError("the registry stayed locked by another process for too long; try again")

    @contextlib.contextmanager
    def ref_lock(self) -> Iterator[None]:
        """The workspace's ref-update lock (kernel-held: a killed holder can never leave it behind)."""
        with file_lock(self.git_dir / "mm-refs.flock"):
            yield

    def _stale_locks(self, err: str) -> list[Path]:
        """git lock files named in ``err`` (called with :meth:`ref_lock` held, so no live writer of ours owns them)."""
        out = []
        for part in err.split("'"):
            if part.endswith(".lock"):
                lock = Path(part)
                if not lock.is_absolute():
                    lock = self.git_dir / lock
                if lock.exists() and self.git_dir.resolve() in lock.resolve().parents:
                    out.append(lock)
        return out

    @staticmethod
    def _git_exe() -> str:
        return git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"

    # -- objects ------------------------------------------------------------------------------------------------
    def _store(self, kind: bytes, data: bytes) -> bytes:
        return self._loose.store(IStream(kind, len(data), BytesIO(data))).binsha

    def write_blob(self, data: bytes) -> bytes:
        return self._store(b"blob", data)

    def _read_tree(self, binsha: bytes) -> list[Entry]:
        with self._trees_lock:
            entries = self._trees.get(binsha)
            if entries is not None:
                self._trees.move_to_end(binsha)
                return entries
        entries = tree_entries_from_data(self._object(binsha, "tree"))
        with self._trees_lock:
            self._trees[binsha] = entries
            if len(self._trees) > 4096:
                self._trees.popitem(last=False)
        return entries

    def _write_tree(self, entries: list[Entry]) -> bytes:
        buf = BytesIO()
        entries = sorted(entries, key=_sort_key)
        tree_to_stream(entries, buf.write)
        data = buf.getvalue()
        binsha = self._store(b"tree", data)
        with self._trees_lock:
            self._trees[binsha] = entries
        return binsha

    def commit_tree(self, commit_sha: str) -> bytes:
        data = self._object(bytes.fromhex(commit_sha), "commit")
        first = data.split(b"\n", 1)[0]
        if not first.startswith(b"tree "):
            raise CorruptRegistryError(
                f"git object {commit_sha} is not a commit: run `mm fsck` to diagnose the workspace"
            )
        return bytes.fromhex(first.split(b" ")[1].decode())

    def read(self, tree: bytes | None, path: str) -> bytes | None:
        """Bytes of the blob at ``path`` in ``tree``, or None."""
        binsha = self.lookup(tree, path)
        if binsha is None or binsha[1] != BLOB_MODE:
            return None
        return self._object(binsha[0], f"blob {path}")

    def lookup(self, tree: bytes | None, path: str) -> tuple[bytes, int] | None:
        node = tree
        mode = TREE_MODE
        for part in path.split("/"):
            if node is None or mode != TREE_MODE:
                return None
            found = None
            for binsha, emode, name in self._read_tree(node):
                if name == part:
                    found = (binsha, emode)
                    break
            if found is None:
                return None
            node, mode = found
        return (node, mode) if node is not None else None

    def list_dir(self, tree: bytes | None, path: str) -> list[tuple[str, bytes, int]]:
        """Entries ``(name, binsha, mode)`` of the directory at ``path`` (empty when absent)."""
        found = self.lookup(tree, path) if path else ((tree, TREE_MODE) if tree else None)
        if found is None or found[1] != TREE_MODE:
            return []
        return [(name, binsha, mode) for binsha, mode, name in self._read_tree(found[0])]

    def write_changes(self, base: bytes | None, changes: Mapping[str, bytes | None]) -> bytes:
        """A new tree: ``base`` with each path set to the given bytes (or removed for None).

        Only the trees on changed paths are read and rewritten, so a commit costs the same at 10 or 10 000 versions.
        """
        grouped: dict[str, dict[str, bytes | None]] = {}
        leaves: dict[str, bytes | None] = {}
        for path, data in changes.items():
            head, _, rest = path.partition("/")
            if rest:
                grouped.setdefault(head, {})[rest] = data
            else:
                leaves[head] = data
        entries = {name: (binsha, mode) for binsha, mode, name in (self._read_tree(base) if base else [])}
        for name, data in leaves.items():
            if data is None:
                entries.pop(name, None)
            else:
                entries[name] = (self.write_blob(data), BLOB_MODE)
        for name, sub in grouped.items():
            current = entries.get(name)
            sub_base = current[0] if current and current[1] == TREE_MODE else None
            new_sub = self.write_changes(sub_base, sub)
            if self._read_tree(new_sub):
                entries[name] = (new_sub, TREE_MODE)
            else:
                entries.pop(name, None)
        return self._write_tree([(binsha, mode, name) for name, (binsha, mode) in entries.items()])

    def write_commit(
        self, tree: bytes, parents: list[str], message: str, author: tuple[str, str], when: datetime
    ) -> str:
        """Serialize a commit with GitPython's Commit object and store it in-process."""
        stamp = int(when.timestamp())
        commit = git.Commit(
            self.repo,
            git.Commit.NULL_BIN_SHA,
            git.Tree(self.repo, tree),
            git.Actor(*author),
            stamp,
            0,
            git.Actor("mm_magics", "mm@localhost"),
            stamp,
            0,
            message,
            [git.Commit(self.repo, bytes.fromhex(p)) for p in parents],
            "UTF-8",
        )
        buf = BytesIO()
        commit._serialize(buf)
        return self._store(b"commit", buf.getvalue()).hex()

    def changed_paths(self, old: bytes | None, new: bytes | None, prefix: str = "") -> dict[str, bytes | None]:
        """Blob paths that differ between two trees, mapped to the new blob (None when deleted).

        Walks only subtrees whose hashes differ: an incremental index sync after one commit reads a handful of trees.
        """
        if old == new:
            return {}
        a = {name: (binsha, mode) for binsha, mode, name in (self._read_tree(old) if old else [])}
        b = {name: (binsha, mode) for binsha, mode, name in (self._read_tree(new) if new else [])}
        out: dict[str, bytes | None] = {}
        for name in a.keys() | b.keys():
            ea, eb = a.get(name), b.get(name)
            if ea == eb:
                continue
            path = f"{prefix}{name}"
            ta = ea[0] if ea and ea[1] == TREE_MODE else None
            tb = eb[0] if eb and eb[1] == TREE_MODE else None
            if ta or tb:
                out.update(self.changed_paths(ta, tb, path + "/"))
            if ea and ea[1] != TREE_MODE and not (eb and eb[1] != TREE_MODE):
                out[path] = None
            if eb and eb[1] != TREE_MODE:
                out[path] = eb[0]
        return out

    def read_blob(self, binsha: bytes) -> bytes:
        return self._object(binsha, "blob")

    def _object(self, binsha: bytes, what: str) -> bytes:
        """The raw data of one object; a lost or unreadable object is named, with the command that diagnoses it."""
        try:
            return self.repo.odb.stream(binsha).read()
        except (ValueError, git.BadObject, git.BadName, OSError) as exc:
            raise CorruptRegistryError(
                f"git object {binsha.hex()} ({what}) is missing or unreadable in {self.git_dir} "
                f"({type(exc).__name__}): run `mm fsck` to diagnose the workspace"
            ) from None

    def history(self, paths: list[str] | None = None, max_count: int | None = None) -> list[CommitInfo]:
        """Commits on the main branch newest first, optionally only those touching ``paths`` (the audit log)."""
        if self.read_ref() is None:
            return []
        kwargs = {"max_count": max_count} if max_count else {}
        commits = self.repo.iter_commits(BRANCH, paths=paths or "", **kwargs)
        return [
            CommitInfo(
                sha=c.hexsha,
                message=c.message,
                author=f"{c.author.name} <{c.author.email}>",
                time=c.authored_datetime,
                parents=tuple(p.hexsha for p in c.parents),
            )
            for c in commits
        ]

    def commit_adding(self, path: str) -> str | None:
        """The commit on the main branch that added ``path`` (used to re-create a version tag lost in a crash)."""
        out = self.repo.git.log("--format=%H", "--diff-filter=A", "-1", BRANCH, "--", path)
        return out.strip() or None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.repo.is_ancestor(ancestor, descendant)

    def descends_from(self, ancestor: str, descendant: str, *, walk: int = 256) -> bool:
        """Whether ``ancestor`` is ``descendant`` or one of its ancestors.

        The registry's history is a line of single-parent commits and the index is usually a few commits behind,
        so walking parents in-process (microseconds a step) answers without forking git; past ``walk`` steps git's
        own merge-base decides."""
        sha = descendant
        for _ in range(walk):
            if sha == ancestor:
                return True
            parents = self.parents(sha)
            if len(parents) != 1:
                if not parents:
                    return False
                break
            sha = parents[0]
        try:
            return self.repo.is_ancestor(ancestor, descendant)
        except git.GitCommandError:
            return False

    def object_problems(self) -> list[str]:
        """What ``git fsck`` finds wrong with the objects reachable from the refs (missing, corrupt, broken links)."""
        proc = subprocess.run(
            [self._git_exe(), "--git-dir", str(self.git_dir), "fsck", "--no-dangling", "--no-progress"],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        bad = [ln for ln in lines if not ln.startswith(("Checking", "notice:"))]
        if proc.returncode != 0 and not bad:
            bad = [f"git fsck exited with status {proc.returncode}"]
        return [f"git: {ln}" for ln in bad[:20]] + ([f"git: ... {len(bad) - 20} more"] if len(bad) > 20 else [])

    def parents(self, commit_sha: str) -> list[str]:
        data = self._object(bytes.fromhex(commit_sha), "commit")
        out = []
        for line in data.split(b"\n")[1:]:
            if not line.startswith(b"parent "):
                break
            out.append(line[7:].decode())
        return out

    # -- remotes ------------------------------------------------------------------------------------------------
    def push(self, url: str) -> None:
        """Branch and tags in one atomic push: a refused branch update publishes none of the tags either."""
        self._remote_cmd(["push", "--porcelain", "--atomic"], url, [f"{BRANCH}:{BRANCH}", "refs/tags/*:refs/tags/*"])

    def fetch(self, url: str) -> str | None:
        """Fetch the remote's main branch; returns its commit (None if the remote is empty)."""
        self._remote_cmd(["fetch", "--no-tags"], url, [f"+{BRANCH}:{REMOTE_BRANCH}"])
        return self.read_ref(REMOTE_BRANCH)

    def fetch_tags(self, url: str) -> None:
        """The remote's tags into a quarantine namespace; :meth:`adopt_tags` keeps those on the branch."""
        self._remote_cmd(["fetch", "--no-tags"], url, [f"+refs/tags/*:{REMOTE_TAGS}*"])

    def tags(self, prefix: str = "refs/tags/", *, merged: str | None = None) -> dict[str, str]:
        """``{ref: commit}`` of the refs under ``prefix`` (only those reachable from ``merged`` when given)."""
        args = [self._git_exe(), "--git-dir", str(self.git_dir), "for-each-ref", "--format=%(objectname) %(refname)"]
        if merged:
            args.append(f"--merged={merged}")
        proc = subprocess.run([*args, "--", prefix], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise CorruptRegistryError(f"git cannot list {prefix} ({proc.stderr.strip()}): run `mm fsck`")
        out = {}
        for line in proc.stdout.splitlines():
            sha, _, ref = line.partition(" ")
            out[ref] = sha
        return out

    def delete_refs(self, refs: Iterable[str]) -> None:
        payload = "".join(f"delete {ref}\n" for ref in refs)
        if payload:
            with self.ref_lock():
                subprocess.run(
                    [self._git_exe(), "--git-dir", str(self.git_dir), "update-ref", "--stdin"],
                    input=payload,
                    capture_output=True,
                    text=True,
                    check=False,
                )

    def _remote_cmd(self, args: list[str], url: str, refspecs: list[str]) -> None:
        """Run ``git ARGS -- URL REFSPECS``: the ``--`` keeps any URL from being read as an option."""
        check_remote_url(url)
        cmd = [self._git_exe(), *_SAFE_GIT, "--git-dir", str(self.git_dir), *args, "--", url, *refspecs]
        try:
            self.repo.git.execute(cmd)
        except git.GitCommandError as exc:
            detail = (exc.stderr or "").strip().splitlines()
            msg = detail[-1].strip() if detail else str(exc)
            raise RemoteError(f"git {args[0]} to {url} failed: {msg.removeprefix('stderr: ')}") from None
