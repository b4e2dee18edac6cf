"""The InfluxDB sink's disk spool: points that could not be written wait here, in order, until the server is back.

Segments of line protocol, each with a read position, appended with one write and fsync'ed in groups; a process owns
its spool directory through a kernel lock (so a crashed process's spool is adopted by a live one, never replayed
twice), and a torn last line from a crash is skipped on replay.

The spool is a directory of append-only segment files, ``<stream>.<first seq>.lp``: one line-protocol line per point,
each segment holding a contiguous run of sequence numbers (a new segment starts whenever the run breaks), so sorting
segments by (stream, first sequence number) gives write order even when a batch that was in flight when the server
failed is spooled after newer ones. Segments are fsync'd by the writer thread (the caller never fsyncs) and replayed
in chunks of ``batch_size``; after each chunk the byte offset reached is saved beside the segment (``.pos``, atomic
rename), and a drained segment is deleted. A crash can only tear the last line of a segment: replay uses only lines
that end in a newline, so a torn tail is ignored.

Several servers share one spool directory (every deployment of a workspace records into its run directory, Docker
containers included through the mount). Each sink is one *stream* holding an ``flock`` on ``<stream>.lock`` for its
lifetime; a sink that finds another stream's segments whose lock it can take (their writer died or closed with data
still spooled) adopts them and replays them before its own, at start and then every minute.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no adoption of other processes' spool
    fcntl = None  # type: ignore[assignment]

SEGMENT_MAX_BYTES = 16 * 1024 * 1024  # a segment is read whole on replay: this bounds replay memory


def _try_lock(path: Path) -> int | None:
    """An exclusive flock on ``path`` (created if missing), or None if someone holds it or it was just replaced."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    if fcntl is None:  # no flock (not POSIX): one process per spool directory, and no adoption
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:  # unlinked by its last owner between our open and flock
            raise BlockingIOError
    except OSError:
        os.close(fd)
        return None
    return fd


def _parse_segment(name: str) -> tuple[str, int] | None:
    parts = name.rsplit(".", 2)
    if len(parts) != 3 or parts[2] != "lp" or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def _read_pos(segment: Path) -> int:
    try:
        return int(Path(f"{segment}.pos").read_text().strip() or 0)
    except (OSError, ValueError):
        return 0  # lost or torn offset: replay the segment from the start (at-least-once)


def complete_lines(segment: Path) -> tuple[int, list[bytes]]:
    """(start offset, the complete lines after it): a torn last line (no newline) and NUL-damaged lines are skipped.

    NUL lines are kept in the list as empty entries so offsets stay exact; callers skip empty lines.
    """
    start = _read_pos(segment)
    with open(segment, "rb") as fh:
        fh.seek(start)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    return start, [b"" if b"\x00" in line else line for line in lines]


def _count(segment: Path) -> int:
    try:
        return sum(1 for line in complete_lines(segment)[1] if line)
    except OSError:
        return 0


class Spool:
    """Append-only segment files in one directory. Not thread-safe: the sink's lock guards every call but reads."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.stream = self._new_stream()
        self.count = 0  # complete points on disk, own and adopted
        self.locks: dict[str, int] = {}  # stream -> flock fd (our own and the ones we adopted)
        self._fh: BinaryIO | None = None
        self._path: Path | None = None
        self._next = -1
        self._size = 0
        self._dirty = False
        self._dir_dirty = False
        self._retired: list[BinaryIO] = []  # rotated segments, fsync'd and closed by the writer outside the lock

    @staticmethod
    def _new_stream() -> str:
        return f"{time.time_ns():019d}-{os.getpid()}-{secrets.token_hex(4)}"

    @property
    def open_path(self) -> Path | None:
        return self._path

    def busy(self) -> bool:
        return self.count > 0 or self._fh is not None

    def _own(self) -> None:
        if self.stream in self.locks:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = _try_lock(self.dir / f"{self.stream}.lock")
            if fd is not None:
                self.locks[self.stream] = fd
                return
            self.stream = self._new_stream()
        raise OSError(f"cannot lock a spool stream in {self.dir}")

    def append(self, seq: int, lines: list[str]) -> None:
        """Append points ``seq .. seq+len-1``; a break in the sequence or a full segment starts a new segment."""
        data = ("\n".join(lines) + "\n").encode()
        if self._fh is None or seq != self._next or self._size + len(data) > SEGMENT_MAX_BYTES:
            self._rotate(seq)
        assert self._fh is not None
        try:
            view = memoryview(data)
            while view:
                view = view[self._fh.write(view) or 0 :]
        except OSError:
            self._retire()  # never append after a partial write: the torn tail stays the segment's last line
            raise
        self._size += len(data)
        self._next = seq + len(lines)
        self.count += len(lines)
        self._dirty = True

    def _rotate(self, seq: int) -> None:
        self._retire()
        self._own()
        path = self.dir / f"{self.stream}.{seq:016d}.lp"
        self._fh = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open across appends
        self._path, self._next, self._size = path, seq, 0
        self._dir_dirty = True

    def _retire(self) -> None:
        if self._fh is not None:
            self._retired.append(self._fh)
        self._fh, self._path, self._next, self._size = None, None, -1, 0

    def seal(self) -> None:
        """Stop appending to the open segment so it can be replayed; the next append starts a new one."""
        self._retire()

    def take_sync(self) -> tuple[list[int], list[BinaryIO], bool]:
        """What the writer must fsync outside the lock: dup'd fds of the open segment, retired files, the directory."""
        fds = []
        if self._dirty and self._fh is not None:
            fds.append(os.dup(self._fh.fileno()))
        self._dirty = False
        retired, self._retired = self._retired, []
        dir_dirty, self._dir_dirty = self._dir_dirty, False
        return fds, retired, dir_dirty

    def sealed(self) -> list[Path]:
        """Segments of our own and adopted streams, in replay order, except the one still open for appends."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.dir):
                parsed = _parse_segment(entry.name)
                if parsed and parsed[0] in self.locks and self.dir / entry.name != self._path:
                    found.append((parsed, self.dir / entry.name))
        return [path for _, path in sorted(found)]

    def orphans(self) -> dict[str, tuple[int, int]]:
        """Lock other streams whose writer is gone: {stream: (lock fd, complete points)}. Call without the lock."""
        if fcntl is None:
            return {}
        streams: set[str] = set()
        try:
            for entry in os.scandir(self.dir):
                if entry.name.endswith(".lock"):
                    streams.add(entry.name[: -len(".lock")])
                elif parsed := _parse_segment(entry.name):
                    streams.add(parsed[0])
        except FileNotFoundError:
            return {}
        adopted = {}
        for stream in streams - set(self.locks):
            fd = _try_lock(self.dir / f"{stream}.lock")
            if fd is None:
                continue
            segments = [p for p in self.dir.glob(f"{stream}.*.lp") if _parse_segment(p.name)]
            count = sum(_count(p) for p in segments)
            if not count:  # nothing replayable (e.g. only a torn line): clear it so the stream can be released
                for segment in segments:
                    self.finish(segment)
            adopted[stream] = (fd, count)
        return adopted

    def finish(self, segment: Path) -> None:
        """A fully replayed segment: delete it (and its offset file)."""
        with contextlib.suppress(FileNotFoundError):
            segment.unlink()
        with contextlib.suppress(FileNotFoundError):
            Path(f"{segment}.pos").unlink()

    def release(self, stream: str) -> None:
        """Forget an adopted (or our own, at close) stream with no segment left: remove its lock file, then unlock."""
        fd = self.locks.pop(stream, None)
        if fd is None:
            return
        for stray in self.dir.glob(f"{stream}.*.lp.pos*"):  # offsets (and a .tmp a crash left) of gone segments
            with contextlib.suppress(FileNotFoundError):
                stray.unlink()
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{stream}.lock").unlink()
        os.close(fd)

    def streams_without_segments(self) -> list[str]:
        have = {p[0] for e in os.scandir(self.dir) if (p := _parse_segment(e.name))} if self.dir.exists() else set()
        return [s for s in self.locks if s not in have and s != self.stream]


def save_pos(segment: Path, offset: int) -> None:
    tmp = Path(f"{segment}.pos.tmp")
    tmp.write_text(str(offset))
    os.replace(tmp, f"{segment}.pos")


def fsync_all(fds: list[int], retired: list[BinaryIO], directory: Path | None) -> None:
    for fd in fds:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for fh in retired:
        with contextlib.suppress(OSError):
            os.fsync(fh.fileno())
        fh.close()
    if directory is not None:
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
