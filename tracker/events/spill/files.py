"""The files of the on-disk log: part directories owned through a lock, and segment files.

Everything here blocks on the file system and runs on the log's own threads, never on the event
loop. A part directory is `part-<id>/` with a `lock` file and segments `<seq>.seg`; its owner
holds an exclusive flock on the lock file for as long as it lives. The kernel drops the lock when
the process dies however it dies, so a part whose lock can be taken belongs to a dead process and
may be adopted. (On NFS, EFS included, Linux turns flock into an NFSv4 lock held through the
client's lease: it outlives a vanished task by the lease time, then frees itself the same way.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PART_PREFIX = "part-"
STAGING_PREFIX = ".new-"
STAGING_GRACE_SECONDS = 60.0
LOCK_NAME = "lock"
SEGMENT_SUFFIX = ".seg"


@dataclass(slots=True)
class LockedPart:
    path: Path
    lock_fd: int
    segments: list[tuple[int, int]]  # (sequence number, size in bytes), oldest first


def segment_path(part: Path, seq: int) -> Path:
    return part / f"{seq:012d}{SEGMENT_SUFFIX}"


def create_part(spill_dir: Path) -> LockedPart:
    """A new part directory, locked before it gets the name other processes look for."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex[:16]
    staging = spill_dir / f"{STAGING_PREFIX}{name}"
    staging.mkdir()
    fd = os.open(staging / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    final = spill_dir / f"{PART_PREFIX}{name}"
    staging.rename(final)
    return LockedPart(final, fd, [])


def adopt_orphans(spill_dir: Path, held: set[Path]) -> list[LockedPart]:
    """Lock every part whose owner is gone (its lock is free), with its segments listed."""
    _remove_abandoned_staging(spill_dir)
    adopted = []
    for candidate in _parts(spill_dir):
        if candidate in held:
            continue
        part = _try_lock(candidate)
        if part is not None:
            adopted.append(part)
    return adopted


def bytes_outside(spill_dir: Path, held: set[Path]) -> int:
    """What the parts of other processes (live or not yet adopted) hold on disk."""
    total = 0
    for part in _parts(spill_dir):
        if part not in held:
            total += sum(size for _, size in _segments(part))
    return total


def _parts(spill_dir: Path, prefix: str = PART_PREFIX) -> list[Path]:
    try:
        with os.scandir(spill_dir) as entries:
            return [
                Path(e.path)
                for e in entries
                if e.name.startswith(prefix) and e.is_dir(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return []


def _remove_abandoned_staging(spill_dir: Path) -> None:
    """A process that died between creating its part and naming it leaves `.new-<id>/` with a
    lock file and nothing else (no segment is written before the rename). Old enough that no
    creator can be between its mkdir and its flock, and with a free lock, it is removed."""
    for staging in _parts(spill_dir, STAGING_PREFIX):
        with contextlib.suppress(OSError):
            if time.time() - staging.stat().st_mtime < STAGING_GRACE_SECONDS:
                continue
            if not (staging / LOCK_NAME).exists():
                staging.rmdir()  # died before even creating its lock file
                continue
            part = _try_lock(staging)
            if part is not None:
                release_part(part, remove=True)


def _try_lock(part: Path) -> LockedPart | None:
    try:
        fd = os.open(part / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None  # being created or removed
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None  # its owner lives
    if not (part / LOCK_NAME).exists():
        os.close(fd)  # another adopter finished and removed it between our open and lock
        return None
    return LockedPart(part, fd, _segments(part))


def _segments(part: Path) -> list[tuple[int, int]]:
    found = []
    try:
        with os.scandir(part) as entries:
            for e in entries:
                stem = e.name.removesuffix(SEGMENT_SUFFIX)
                if e.name.endswith(SEGMENT_SUFFIX) and stem.isdigit():
                    with contextlib.suppress(FileNotFoundError):
                        found.append((int(stem), e.stat().st_size))
    except FileNotFoundError:
        return []
    return sorted(found)


def release_part(part: LockedPart, remove: bool) -> None:
    """Let go of a part; `remove` deletes it (it must hold no segment by then)."""
    try:
        if remove:
            with contextlib.suppress(FileNotFoundError):
                (part.path / LOCK_NAME).unlink()
            with contextlib.suppress(FileNotFoundError, OSError):
                part.path.rmdir()
    finally:
        os.close(part.lock_fd)


def read_chunk(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read(size)


class SegmentWriter:
    """Appends to the newest segment of a part; used from a single thread.

    A failed write is cut back off the file (ftruncate to where it began), so a refused group
    leaves no half record behind for the reader to count as damage. If even that cut fails, it
    is made before the next write to that file, or that write fails too: the loop knows a
    segment's size as the sum of the writes that succeeded, and reads only that far, so a half
    record left in the middle would shift the later ones past where it stops.
    """

    def __init__(self, fsync: bool) -> None:
        self._fsync = fsync
        self._fd = -1
        self._path: Path | None = None
        self._uncut: tuple[Path, int] | None = None  # a file still holding a failed write

    def append(self, path: Path, data: bytes) -> None:
        if path != self._path:
            self.close()
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            self._path = path
        if self._uncut is not None and self._uncut[0] == path:
            os.ftruncate(self._fd, self._uncut[1])
            self._uncut = None
        start = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
            if self._fsync:
                os.fdatasync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError:
                self._uncut = (path, start)
            self.close()  # reopen next time: the descriptor may be what failed
            raise

    def remove(self, path: Path) -> None:
        if path == self._path:
            self.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._path = -1, None
