"""The supervisor's private directory for its workers' metric snapshots.

Made with mkdtemp under TMPDIR (mode 0700, never in SPILL_DIR) and removed when the supervisor
exits. A supervisor killed with SIGKILL cannot remove it, so it holds a flock on the directory
for its whole life, and every supervisor that starts removes the directories of ours (our user,
our prefix) whose lock is free and that have not changed for STALE_SECONDS (a live one changes
every second; the age also covers the moment between mkdtemp and flock).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "tracker-metrics-"
STALE_SECONDS = 60.0


class MetricsHome:
    def __init__(self) -> None:
        self._path: Path | None = None
        self._lock: int | None = None

    def open(self) -> Path:
        """A new private directory, after removing abandoned ones; OSError if TMPDIR refuses."""
        remove_abandoned(Path(tempfile.gettempdir()))
        self._path = Path(tempfile.mkdtemp(prefix=PREFIX))
        self._lock = os.open(self._path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        return self._path

    def close(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
        if self._lock is not None:
            os.close(self._lock)
        self._path = self._lock = None


def remove_abandoned(temp: Path) -> None:
    for path in temp.glob(f"{PREFIX}*"):
        if _abandoned(path):
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed the metrics directory of a stopped tracker", extra={"dir": path.name})


def _abandoned(path: Path) -> bool:
    try:
        info = path.lstat()
        if (
            not stat.S_ISDIR(info.st_mode)
            or info.st_uid != os.getuid()
            or time.time() - info.st_mtime < STALE_SECONDS
        ):
            return False
        lock = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:  # gone meanwhile, or not ours to open
        return False
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # its supervisor is alive
        return False
    finally:
        os.close(lock)  # nobody locks an old directory again: supervisors only make new ones
    return True
