"""A worker's side of shared metrics: it snapshots its registry every SNAPSHOT_SECONDS, before
answering a scrape, and at exit; a scrape answers with its own values merged with the others'.

A scrape's own snapshot is written before the answer, so that every count a scrape has shown is
on disk: when that worker then dies, even by SIGKILL, the next scrape (served by any worker)
shows no less. A worker killed with SIGKILL loses from the sum only what it counted after its
last snapshot and that no scrape has shown: at most SNAPSHOT_SECONDS of its counts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from tracker.task_stop import stop_tasks
from tracker.workermetrics.directory import SnapshotDirectory
from tracker.workermetrics.snapshot import Snapshot, merge, render, take

log = logging.getLogger(__name__)

SNAPSHOT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class WorkerSlot:
    """Where a worker writes its snapshots, and its name there (unique per process start)."""

    directory: Path
    name: str


class SharedMetrics:
    def __init__(self, registry: CollectorRegistry, slot: WorkerSlot) -> None:
        self._registry = registry
        self._name = slot.name
        self._directory = SnapshotDirectory(slot.directory)
        # One snapshot at a time: a file never goes back to older values than a scrape showed.
        self._writing = asyncio.Lock()
        self._failing = False

    async def exposition(self) -> bytes:
        """Prometheus text with every worker's values (see snapshot.py for how they combine)."""
        own = await self.save()
        try:
            others = await asyncio.to_thread(self._directory.others, self._name)
        except OSError as exc:  # e.g. the supervisor is gone, and its directory with it
            log.error("cannot read the other workers' metrics", extra={"error": str(exc)})
            others = []
        return render(merge(own, others))

    async def save(self) -> Snapshot:
        async with self._writing:
            snapshot = take(self._registry)
            await asyncio.to_thread(self._save, snapshot)
            return snapshot

    def save_final(self) -> None:
        """The last snapshot, after the worker's drain: its final counts stay in the sum."""
        self._save(take(self._registry))

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """An aiohttp cleanup context: the periodic snapshots."""
        task = asyncio.create_task(self._run(), name="metrics-snapshots")
        yield
        await stop_tasks([task])

    async def _run(self) -> None:
        while True:
            await self.save()
            await asyncio.sleep(SNAPSHOT_SECONDS)

    def _save(self, snapshot: Snapshot) -> None:
        # A failing disk must not break scrapes or the worker; it is logged once per episode.
        try:
            self._directory.save(self._name, snapshot)
        except OSError as exc:
            if not self._failing:
                log.error("cannot write the metrics snapshot", extra={"error": str(exc)})
            self._failing = True
        else:
            if self._failing:
                log.info("metrics snapshot written again")
            self._failing = False
