"""The directory of metric snapshots that the workers of one `tracker serve` share.

One file per worker process (`<name>.worker.json`, replaced whole by each snapshot) and
`retired.json`: the lasting counts of every worker that has exited, folded in by the supervisor,
so that the directory holds at most one file per live worker plus one, however often workers are
restarted.

A fold writes the new retired.json (naming the folded worker) before it deletes the worker's
file, and a reader skips a file retired.json names: a sum never counts a worker twice. A reader
that saw retired.json change while it read the worker files reads again: a sum never misses one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from tracker.workermetrics.snapshot import (
    MAX_SNAPSHOT_BYTES,
    Snapshot,
    SnapshotError,
    decode,
    encode,
    lasting,
    merge,
)

log = logging.getLogger(__name__)

WORKER_SUFFIX = ".worker.json"
RETIRED = "retired.json"
READ_ATTEMPTS = 5


@dataclass(slots=True)
class Retired:
    counts: Snapshot = field(default_factory=dict)
    folded: frozenset[str] = frozenset()  # workers whose file may still exist, already counted


class SnapshotDirectory:
    def __init__(self, path: Path) -> None:
        self.path = path

    def save(self, worker: str, snapshot: Snapshot) -> None:
        self._replace(self._worker_file(worker), encode(snapshot))

    def others(self, worker: str) -> list[Snapshot]:
        """The retired counts and every other worker's last snapshot, consistent with a fold
        that runs meanwhile (see the module docstring)."""
        snapshots: list[Snapshot] = []
        for _ in range(READ_ATTEMPTS):
            before = self._retired_version()
            retired = self._load_retired()
            snapshots = [retired.counts, *self._workers(skip=retired.folded | {worker})]
            if self._retired_version() == before:
                break
        return snapshots

    def retire(self, worker: str) -> None:
        """Fold an exited worker's last snapshot into retired.json and delete its file."""
        target = self._worker_file(worker)
        try:
            dead = lasting(self._read(target))
        except FileNotFoundError:  # it died before its first snapshot
            dead = {}
        retired = self._load_retired()
        still_there = {name for name in retired.folded if self._worker_file(name).exists()}
        folded = Retired(merge(retired.counts, [dead]), frozenset({*still_there, worker}))
        self._replace(self.path / RETIRED, encode(folded.counts, folded=sorted(folded.folded)))
        target.unlink(missing_ok=True)
        _temporary(target).unlink(missing_ok=True)

    def _workers(self, skip: frozenset[str]) -> list[Snapshot]:
        snapshots = []
        for entry in os.scandir(self.path):
            worker = entry.name.removesuffix(WORKER_SUFFIX)
            if worker == entry.name or worker in skip:
                continue
            try:
                snapshots.append(self._read(Path(entry.path)))
            except FileNotFoundError:  # folded meanwhile: the retired version tells
                continue
        return snapshots

    def _load_retired(self) -> Retired:
        try:
            counts, extra = self._read_document(self.path / RETIRED)
        except FileNotFoundError:
            return Retired()
        folded = extra.get("folded")
        if not (isinstance(folded, list) and all(isinstance(name, str) for name in folded)):
            log.error("retired metrics snapshot has no list of folded workers; ignored")
            return Retired()
        return Retired(counts, frozenset(folded))

    def _read(self, path: Path) -> Snapshot:
        return self._read_document(path)[0]

    def _read_document(self, path: Path) -> tuple[Snapshot, dict[str, object]]:
        """A snapshot file; one that cannot be read as one counts as empty (and is logged)."""
        try:
            with path.open("rb") as file:
                return decode(file.read(MAX_SNAPSHOT_BYTES + 1))
        except FileNotFoundError:
            raise
        except (OSError, SnapshotError) as exc:
            log.error(
                "metrics snapshot unreadable, left out",
                extra={"file": path.name, "error": str(exc)},
            )
            return {}, {}

    def _retired_version(self) -> tuple[int, int] | None:
        try:
            stat = (self.path / RETIRED).stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def _worker_file(self, worker: str) -> Path:
        return self.path / f"{worker}{WORKER_SUFFIX}"

    @staticmethod
    def _replace(target: Path, data: bytes) -> None:
        """Readers see the old file or the new one, never a part (write, then rename over)."""
        temporary = _temporary(target)
        temporary.write_bytes(data)
        os.replace(temporary, target)


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp")
