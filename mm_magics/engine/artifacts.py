"""Content-addressed artifact store (the ``.mm/objects/`` cache, like DVC's).

An object's name is the sha256 of its bytes, so identical artifacts are stored once and any corruption is caught
on read. Objects never go into git: the registry records only their hashes.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .atomic import FILE_MODE, atomic_write_bytes
from .errors import ArtifactCorruptError, ArtifactMissingError

_HEX = set("0123456789abcdef")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_sha(sha: str) -> str:
    if not isinstance(sha, str) or len(sha) != 64 or not set(sha) <= _HEX:
        raise ArtifactMissingError(f"{sha!r} is not a sha256 hex digest: pass the 64-character artifact id")
    return sha


@dataclass(frozen=True)
class GcReport:
    removed: list[str]
    kept: int
    freed_bytes: int


class ArtifactStore:
    """Objects at ``root/ab/cdef…``: two-character shards keep directories small at any scale."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        _check_sha(sha)
        return self.root / sha[:2] / sha[2:]

    def __contains__(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its sha256; storing the same bytes again is a no-op."""
        sha = sha256_bytes(data)
        target = self.path(sha)
        if not target.is_file():
            atomic_write_bytes(target, data)
        return sha

    def put_verified(self, sha: str, data: bytes) -> None:
        """Store ``data`` the caller has just hashed to ``sha`` (a fetch from a remote): hashing 100 MB twice cost
        a quarter of a second. Not fsynced: this is a cached copy of a remote object, and every read checks the
        hash, so a copy torn by a crash is refused and fetched again, never loaded."""
        target = self.path(sha)
        if not target.is_file():
            atomic_write_bytes(target, data, durable=False)

    def adopt(self, sha: str, path: str | Path) -> int:
        """Move the file at ``path`` (on this file system, e.g. a fetch's staging file) into place as object
        ``sha`` if it hashes to it; its size. Raises :class:`ArtifactCorruptError` ("hashes to …") otherwise, and the
        file stays where it was. Not fsynced, like :meth:`put_verified`: every read checks the hash."""
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != sha:
            raise ArtifactCorruptError(f"hashes to {digest.hexdigest()}")
        target = self.path(sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, FILE_MODE)
        size = os.path.getsize(path)
        os.replace(path, target)
        return size

    def get(self, sha: str, *, label: str | None = None) -> bytes:
        """Read an object and verify its hash: a damaged file is an error, never a silent load."""
        target = self.path(sha)
        label = label or f"artifact {sha[:12]}"
        try:
            data = target.read_bytes()
        except FileNotFoundError:
            raise ArtifactMissingError(
                f"{label} is missing from {self.root} (object {sha}); fetch it with `mm pull` from the artifact "
                "remote, or re-commit the model"
            ) from None
        actual = sha256_bytes(data)
        if actual != sha:
            raise ArtifactCorruptError(
                f"{label} is corrupted: object {sha} hashes to {actual}; restore it with `mm pull` from the "
                "artifact remote or re-commit the model (`mm fsck` lists every damaged object)"
            )
        return data

    def verify(self, sha: str) -> str | None:
        """Return a problem description, or None when the object is present and intact."""
        try:
            self.get(sha)
        except (ArtifactMissingError, ArtifactCorruptError) as exc:
            return str(exc)
        return None

    def __iter__(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for obj in sorted(shard.iterdir()):
                name = shard.name + obj.name
                if len(name) == 64 and set(name) <= _HEX:
                    yield name

    def gc(self, referenced: Iterable[str], *, grace_seconds: float = 3600.0) -> GcReport:
        """Remove objects nothing references.

        Objects younger than ``grace_seconds`` survive: a commit in another process writes its artifact before its
        git commit lands, and must not lose it to a concurrent gc (git's own gc keeps a grace period for the same
        reason).
        """
        keep = set(referenced)
        now = time.time()
        removed: list[str] = []
        freed = 0
        kept = 0
        for sha in list(self):
            path = self.path(sha)
            if sha in keep:
                kept += 1
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if now - st.st_mtime < grace_seconds:
                kept += 1
                continue
            path.unlink(missing_ok=True)
            removed.append(sha)
            freed += st.st_size
        return GcReport(removed=removed, kept=kept, freed_bytes=freed)
