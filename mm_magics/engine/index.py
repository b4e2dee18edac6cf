"""A SQLite index over the registry, so ``get`` and ``log`` stay flat in the number of versions.

It is only a cache: git is the source of truth. The index records the commit it reflects; before each read it
compares that with the branch head (one small file read) and applies just the paths that changed between the two
trees. If the file is lost or damaged it is rebuilt from git. Several processes may sync it at once: SQLite in WAL
mode with ``BEGIN IMMEDIATE`` serialises the writers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import documents, layout
from .errors import CorruptRegistryError
from .gitstore import GitStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS models (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions (
    model TEXT NOT NULL, number INTEGER NOT NULL, doc TEXT NOT NULL, parent TEXT, artifact TEXT,
    UNIQUE (model, number)
);
CREATE TABLE IF NOT EXISTS stages (
    model TEXT NOT NULL, number INTEGER NOT NULL, stage TEXT NOT NULL, doc TEXT NOT NULL,
    UNIQUE (model, number)
);
CREATE INDEX IF NOT EXISTS stages_by_stage ON stages (model, stage);
CREATE TABLE IF NOT EXISTS broken (path TEXT PRIMARY KEY, problem TEXT NOT NULL);
"""
# Rowid tables with narrow unique indexes, not WITHOUT ROWID: each row holds a multi-kilobyte JSON document, and a
# page-1 range scan must walk the small index, not every document (SQLite's own advice for large rows).
INDEX_VERSION = "3"


class Index:
    def __init__(self, path: Path, git: GitStore) -> None:
        self.path = Path(path)
        self.git = git
        self._synced: str | None = None
        # A connection per thread, like a connection per process: WAL and BEGIN IMMEDIATE already make those safe,
        # whereas threads sharing one connection would share (and break) each other's transactions.
        self._local = threading.local()
        self._db = self._connect()

    @property
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    @_db.setter
    def _db(self, db: sqlite3.Connection) -> None:
        self._local.db = db

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(2):
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA mmap_size=268435456")
                db.executescript(SCHEMA)
                row = db.execute("SELECT value FROM meta WHERE key='index_version'").fetchone()
                if row is None:
                    db.execute("INSERT OR IGNORE INTO meta VALUES ('index_version', ?)", (INDEX_VERSION,))
                elif row[0] != INDEX_VERSION:
                    raise sqlite3.DatabaseError("index written by another mm_magics version")
                return db
            except sqlite3.DatabaseError:
                if attempt:
                    raise
                self._discard()
        raise AssertionError("unreachable")

    def _discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        """Close this thread's connection; other threads' close when those threads end."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- keeping up with git -------------------------------------------------------------------------------------
    def sync(self) -> str | None:
        """Bring the index up to the branch head; returns that head."""
        head = self.git.read_ref()
        if head is not None and head == self._synced:
            return head
        try:
            self._sync_to(head)
        except sqlite3.DatabaseError:
            self._db.close()
            self._discard()
            self._db = self._connect()
            self._sync_to(head)
        self._synced = head
        return head

    def _sync_to(self, head: str | None) -> None:
        """Move the shared index to ``head``, forwards only.

        Several processes share this file. One that read the branch just before another committed holds a stale
        ``head``: applying the backwards tree diff would hide a version that is already published from everyone.
        So the index moves only to a head that descends from the one it holds; a ``head`` the index is already
        past is left alone (reads then see the newer state), and anything else (history replaced) is a rebuild.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT value FROM meta WHERE key='head'").fetchone()
            old = row[0] if row else None
            if old != head:
                self._move(old, head)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _move(self, old: str | None, head: str | None) -> None:
        """Apply what changed from ``old`` to ``head`` (inside the caller's transaction)."""
        db = self._db
        # forward first: the usual case (the index one or a few commits behind) answers in one parent step; asking
        # "is the index already past head?" first would walk the whole history back on every sync
        forward = bool(old and head and self.git.descends_from(old, head))
        if not forward and old and head and self.git.descends_from(head, old):
            return  # the index is already past the head this process read: leave it
        old_tree = self.git.commit_tree(old) if forward and old else None
        if old_tree is None:  # a rebuild (no head recorded) or a replaced history: start from nothing
            for table in ("models", "versions", "stages", "broken"):
                db.execute(f"DELETE FROM {table}")
        new_tree = self.git.commit_tree(head) if head else None
        for path, blob in self.git.changed_paths(old_tree, new_tree).items():
            self._apply(path, None if blob is None else self.git.read_blob(blob))
        db.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?)", (head,))

    def _apply(self, path: str, raw: bytes | None) -> None:
        """Index one document; a damaged one is remembered as broken (readers name it) instead of failing the sync."""
        kind, name, number = layout.classify(path)
        db = self._db
        if kind == "other":
            return
        db.execute("DELETE FROM broken WHERE path=?", (path,))
        data, doc = raw, None
        if raw is not None:
            try:
                doc = documents.parse(path, raw)
            except CorruptRegistryError as exc:
                db.execute("INSERT OR REPLACE INTO broken VALUES (?, ?)", (path, str(exc)))
                data = None  # what the index held for this path is no longer what git says: drop it
        if kind == "config":
            db.execute("INSERT OR REPLACE INTO meta VALUES ('config', ?)", (data.decode() if data else None,))
        elif kind == "model":
            if data is None:
                db.execute("DELETE FROM models WHERE name=?", (name,))
            else:
                db.execute("INSERT OR REPLACE INTO models VALUES (?, ?)", (name, data.decode()))
        elif kind == "versions":
            if data is None:
                db.execute("DELETE FROM versions WHERE model=? AND number=?", (name, number))
            else:
                assert doc is not None
                db.execute(
                    "INSERT OR REPLACE INTO versions VALUES (?, ?, ?, ?, ?)",
                    (name, number, data.decode(), doc.get("parent"), doc["artifact"]["sha256"]),
                )
        elif kind == "stages":
            if data is None:
                db.execute("DELETE FROM stages WHERE model=? AND number=?", (name, number))
            else:
                assert doc is not None
                db.execute(
                    "INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?)", (name, number, doc["stage"], data.decode())
                )

    def rebuild(self) -> None:
        """Forget everything and re-read the whole tree from git (what ``fsck`` does)."""
        self._db.execute("DELETE FROM meta WHERE key='head'")
        self._synced = None
        self.sync()

    # -- queries (callers sync first) ----------------------------------------------------------------------------
    def broken(self, path: str | None = None) -> list[tuple[str, str]]:
        """``(path, problem)`` of damaged documents (all, or the one at ``path``)."""
        if path is None:
            return self._db.execute("SELECT path, problem FROM broken ORDER BY path").fetchall()
        return self._db.execute("SELECT path, problem FROM broken WHERE path=?", (path,)).fetchall()

    def require_intact(self, path: str) -> None:
        """Raise the stored problem if the document at ``path`` is damaged (readers call it when a doc is absent)."""
        found = self.broken(path)
        if found:
            raise CorruptRegistryError(found[0][1])

    def head(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key='head'").fetchone()
        return row[0] if row else None

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, args).fetchall()

    def model_doc(self, name: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT doc FROM models WHERE name=?", (name,)).fetchone()
        return json.loads(row[0]) if row else None

    def version_doc(self, name: str, number: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT doc FROM versions WHERE model=? AND number=?", (name, number)).fetchone()
        return json.loads(row[0]) if row else None

    def stage_doc(self, name: str, number: int) -> dict[str, Any] | None:
        row = self._db.execute("SELECT doc FROM stages WHERE model=? AND number=?", (name, number)).fetchone()
        return json.loads(row[0]) if row else None

    def model_names(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM models ORDER BY name")]

    def page(self, name: str, limit: int, before: int | None) -> Iterator[tuple[int, dict[str, Any], str | None]]:
        before = before if before is not None else 2**62
        rows = self._db.execute(
            "SELECT v.number, v.doc, s.stage FROM versions v LEFT JOIN stages s "
            "ON s.model = v.model AND s.number = v.number "
            "WHERE v.model=? AND v.number < ? ORDER BY v.number DESC LIMIT ?",
            (name, before, limit),
        )
        for number, doc, stage in rows:
            yield number, json.loads(doc), stage

    def stage_counts(self, name: str) -> dict[str, int]:
        rows = self._db.execute("SELECT stage, COUNT(*) FROM stages WHERE model=? GROUP BY stage", (name,))
        return dict(rows.fetchall())

    def in_stages(self, name: str, stages: tuple[str, ...]) -> list[int]:
        marks = ",".join("?" * len(stages))
        rows = self._db.execute(
            f"SELECT number FROM stages WHERE model=? AND stage IN ({marks}) ORDER BY number DESC", (name, *stages)
        )
        return [r[0] for r in rows]

    def edges(self, name: str) -> list[tuple[int, str | None]]:
        return self._db.execute("SELECT number, parent FROM versions WHERE model=? ORDER BY number", (name,)).fetchall()

    def timeline_rows(
        self, name: str, metric: str | None, numbers: list[int] | None = None
    ) -> list[tuple[int, str | None, str | None, Any, str | None, str | None]]:
        """``(number, parent, created, metric value, rollback_of, stage)`` per version, oldest first (only
        ``numbers`` if given). SQLite's JSON functions read the fields, so a 10 000-version model costs no document
        parsed in Python."""
        path = '$.metrics."' + metric.replace('"', "") + '"' if metric else "$.__no_metric__"
        sql = (
            "SELECT v.number, v.parent, json_extract(v.doc, '$.created'), json_extract(v.doc, ?), "
            "json_extract(v.doc, '$.rollback_of'), s.stage FROM versions v LEFT JOIN stages s "
            "ON s.model = v.model AND s.number = v.number WHERE v.model = ?"
        )
        args: list[Any] = [path, name]
        if numbers is not None:
            sql += f" AND v.number IN ({','.join('?' * len(numbers))})"
            args += numbers
        return self._db.execute(sql + " ORDER BY v.number", args).fetchall()

    def artifacts(self) -> list[tuple[str, int, str]]:
        return self._db.execute("SELECT model, number, doc FROM versions").fetchall()
