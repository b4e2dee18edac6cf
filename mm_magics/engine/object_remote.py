"""Artifact remotes: any fsspec URL holding the workspace's objects, named by sha256 as in the local store.

A directory, ``s3://bucket/prefix`` (s3fs: ``pip install 'mm_magics[s3]'``; credentials from the AWS chain, and
``AWS_ENDPOINT_URL`` for an S3-compatible server), or any other backend fsspec has installed. Nothing secret is
stored in the workspace: the URL names a place, the backend's own chain supplies who may write there.

* A push lists the remote once and uploads only what it lacks, in parallel. Every upload is checked by its sha256:
  on S3 the server itself checks it (``x-amz-checksum-sha256`` on the PUT, refused on a mismatch, echoed when
  accepted), elsewhere the object is read back and hashed. An object on the remote is whole or absent, and a push
  killed midway resumes where it stopped.
* A fetch verifies the sha256 before anything lands in the local store: a tampered remote object is refused.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ArtifactCorruptError, RemoteError

if TYPE_CHECKING:
    from .artifacts import ArtifactStore

#: The extra that brings each well-known scheme's fsspec backend.
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure", "abfss": "azure"}
PARALLEL = 16  # uploads and downloads in flight (network-bound: threads wait on sockets, not the GIL)
SINGLE_PUT = 100 * 2**20  # s3fs sends smaller objects in one PutObject (larger ones go multipart)
RANGED = 32 * 2**20  # objects larger than this are fetched as parallel byte ranges
RANGE_PART = 16 * 2**20
RETRY_WAITS = (0.2, 0.5, 1.0, 2.0)  # an object store's "internal error, please try again" is retried, as SDKs do


@dataclass
class Transfer:
    """What a push or fetch moved."""

    copied: int = 0
    bytes: int = 0
    present: int = 0  # already on the other side


class ObjectRemote:
    """The objects at one artifact URL."""

    def __init__(self, url: str) -> None:
        text = str(url).strip()
        if not text or text.startswith("-"):
            raise RemoteError(f"artifact location {str(url)!r} is not a directory or URL: pass one (e.g. s3://b/p)")
        import fsspec
        from fsspec.utils import get_protocol

        scheme = get_protocol(text)
        if scheme == "file":
            text = os.path.abspath(os.path.expanduser(text.removeprefix("file://")))
        try:
            self.fs, root = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as exc:
            extra = EXTRAS.get(scheme)
            fix = f"pip install 'mm_magics[{extra}]'" if extra else f"install the fsspec backend for {scheme}://"
            raise RemoteError(f"no installed backend handles {scheme}:// artifact URLs ({exc}): {fix}") from None
        self.url = text
        self.scheme = scheme
        self.local = scheme == "file"
        self.root = root.rstrip("/")

    def key(self, sha: str) -> str:
        return f"{self.root}/{sha[:2]}/{sha[2:]}"

    def listing(self) -> set[str]:
        """Every object name on the remote, in one listing (a no-op push costs this and nothing more)."""
        return set(self._sizes())

    def _sizes(self) -> dict[str, int]:
        """Every object on the remote with its size, from one listing."""
        try:
            paths = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            return set()
        except Exception as exc:
            raise RemoteError(
                f"cannot list the artifact remote {self.url} ({_reason(exc)}): check it and its access"
            ) from None
        found = {}
        for path, info in paths.items():
            parts = str(path).rstrip("/").split("/")
            if len(parts) >= 2 and len(parts[-2]) == 2 and len(parts[-1]) == 62:
                found[parts[-2] + parts[-1]] = int(info.get("size") or 0)
        return found

    def push(self, store: ArtifactStore, shas: Iterable[str]) -> Transfer:
        """Upload the objects the remote lacks, in parallel, each read back and checked by its sha256."""
        wanted = sorted(set(shas))
        there = self.listing()
        todo = [s for s in wanted if s not in there]
        report = Transfer(present=len(wanted) - len(todo))
        if self.local:
            os.makedirs(self.root, exist_ok=True)

        def upload(sha: str) -> int:
            data = store.get(sha)
            if not _retry(self._put, sha, data):  # the server did not vouch for it: read it back
                back = _retry(self.fs.cat_file, self.key(sha))
                if hashlib.sha256(back).hexdigest() != sha:
                    raise ArtifactCorruptError(f"object {sha} did not arrive whole at {self.url}: push again")
            return len(data)

        for size in self._parallel(upload, todo, "upload to"):
            report.copied += 1
            report.bytes += size
        return report

    def _put(self, sha: str, data: bytes) -> bool:
        """Store one object; True when the server verified its sha256 on arrival."""
        key = self.key(sha)
        if self.local:  # a rename is atomic on a file system: a killed push never leaves half an object
            os.makedirs(os.path.dirname(key), exist_ok=True)
            part = f"{key}.part-{secrets.token_hex(4)}"
            with open(part, "wb") as fh:
                fh.write(data)
            os.replace(part, key)
            return False
        if self.scheme in ("s3", "s3a") and len(data) < SINGLE_PUT:  # an object store's PUT is atomic by itself
            checksum = base64.b64encode(bytes.fromhex(sha)).decode()
            answer = self.fs.pipe_file(key, data, ChecksumSHA256=checksum)
            return isinstance(answer, dict) and answer.get("ChecksumSHA256") == checksum
        self.fs.pipe_file(key, data)
        return False

    def fetch(self, store: ArtifactStore, shas: Iterable[str]) -> Transfer:
        """Download the objects the local store lacks and the remote has; each is verified before it lands.

        Objects are copied by the backend's own bulk ``get`` (s3fs: asynchronous, many in flight) into a staging
        directory inside the store, a large one as parallel byte ranges; then each file is hashed and moved into
        place only if it is what its name says. Nothing passes through memory whole."""
        wanted = [s for s in sorted(set(shas)) if s not in store]
        report = Transfer()
        if not wanted:
            return report
        sizes = self._sizes()
        present = [s for s in wanted if s in sizes]
        store.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".fetch-", dir=store.root) as tmp:
            staged = {sha: os.path.join(tmp, sha) for sha in present}
            small = [s for s in present if sizes[s] <= RANGED]
            self._get_all(small, staged)
            for sha in present:
                if sizes[sha] > RANGED:
                    self._get_ranges(sha, sizes[sha], staged[sha])
                try:
                    report.bytes += store.adopt(sha, staged[sha])
                except ArtifactCorruptError as exc:
                    raise ArtifactCorruptError(
                        f"remote object {sha} at {self.url} {exc}: it was damaged or replaced there; push it again "
                        "from a workspace that has it intact"
                    ) from None
                report.copied += 1
        return report

    def _get_all(self, shas: list[str], staged: dict[str, str]) -> None:
        """The backend's bulk copy of ``shas`` into their staging files; after a failure, one by one with retries."""
        if not shas:
            return
        try:
            self.fs.get([self.key(s) for s in shas], [staged[s] for s in shas])
            return
        except (FileNotFoundError, PermissionError) as exc:
            raise RemoteError(f"could not download from {self.url} ({_reason(exc)}): check it and its access") from None
        except Exception:  # transient or not: the per-object path below retries, then names what failed
            pass
        self._parallel(lambda sha: _retry(self.fs.get_file, self.key(sha), staged[sha]), shas, "download from")

    def _get_ranges(self, sha: str, size: int, path: str) -> None:
        """A large object as parallel byte-range reads written at their offsets: one stream leaves an object store's
        bandwidth unused (4 ranges took 0.21 s for 100 MB where one GET took 0.30 s, SeaweedFS on 127.0.0.1)."""
        key, step = self.key(sha), max(RANGE_PART, -(-size // PARALLEL))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:

            def part(start: int) -> int:
                data = _retry(lambda: self.fs.cat_file(key, start=start, end=min(size, start + step)))
                os.pwrite(fd, data, start)
                return len(data)

            self._parallel(part, list(range(0, size, step)), "download from")
        finally:
            os.close(fd)

    def missing(self, shas: Iterable[str]) -> list[str]:
        """The given objects the remote lacks (``mm fsck --remote``)."""
        there = self.listing()
        return sorted(s for s in set(shas) if s not in there)

    def _parallel(self, fn: Any, shas: list[Any], what: str) -> list[int]:
        if not shas:
            return []
        with ThreadPoolExecutor(min(PARALLEL, len(shas)), thread_name_prefix="mm-objects") as pool:
            futures = [pool.submit(fn, sha) for sha in shas]
            out = []
            for future in futures:
                try:
                    out.append(future.result())
                except (ArtifactCorruptError, RemoteError):
                    raise
                except Exception as exc:
                    raise RemoteError(f"could not {what} {self.url} ({_reason(exc)}): run it again to resume") from None
            return out


def _retry(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, tried again after a transient failure (a 5xx, a dropped connection); a missing object or a
    refused permission is an answer, not a hiccup."""
    for wait in RETRY_WAITS:
        try:
            return fn(*args)
        except (FileNotFoundError, PermissionError):
            raise
        except OSError:
            time.sleep(wait)
    return fn(*args)


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
