"""Gathers what the shard readers read and commits it every LAKE_COMMIT_SECONDS, sooner when
MAX_PENDING_ROWS are waiting (readers then wait: memory is bounded by the commit, not by the
backlog) or when a reader at its shard's end asks.

pyiceberg is synchronous: the commit runs in a thread so that lease renewals and reads go on.
A commit that fails (the catalog or the warehouse unreachable) keeps its rows, which stay
ahead of those read since, and is tried again after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import pyarrow as pa

from consumers.lake.committer import Committer, Outcome
from consumers.lake.pending import Pending
from consumers.metrics import ConsumerMetrics
from consumers.records import StreamRecord
from consumers.suppression import SuppressionList
from tracker.backoff import backoff_delay

log = logging.getLogger(__name__)

MAX_PENDING_ROWS = 200_000


class CommitLoop:
    """The lake's record processor: `process` only gathers; `run` commits."""

    def __init__(
        self,
        committer: Committer,
        metrics: ConsumerMetrics,
        commit_seconds: float,
        users: SuppressionList | None = None,
    ) -> None:
        """`users`: the suppression list whose users' events stay out (None: not checked)."""
        self._committer = committer
        self._users = users
        self._metrics = metrics
        self._commit_seconds = commit_seconds
        self.max_pending = MAX_PENDING_ROWS
        self._pending = Pending()
        # The rows waiting, counted when a batch is added and when a commit is done: a count
        # that reached MAX_PENDING_ROWS stays there while its commit runs, so readers wait for
        # it; the rows held are at most a commit's and MAX_PENDING_ROWS waiting.
        self._rows = 0
        self._wake = asyncio.Event()
        self._committed = asyncio.Condition()
        self._added = 0  # batches gathered so far
        self._done = 0  # batches gathered before the last successful commit
        self._failures = 0

    async def process(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        if self._rows >= self.max_pending:
            self._wake.set()
            async with self._committed:
                await self._committed.wait_for(lambda: self._rows < self.max_pending)
        self._pending.add(shard_id, records)
        self._rows = len(self._pending)
        self._metrics.lake_pending.set(self._rows)
        self._added += 1

    async def flush(self) -> None:
        """Return once everything gathered before this call is committed."""
        target = self._added
        self._wake.set()
        async with self._committed:
            await self._committed.wait_for(lambda: self._done >= target)

    async def position(self, shard_id: str) -> int | None:
        return await asyncio.to_thread(self._committer.position, shard_id)

    async def run(self, stopping: asyncio.Event) -> None:
        """Commit on time or when asked until `stopping`; then once more."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._asked_or(stopping), self._pause())
            self._wake.clear()
            await self.commit_now()
        await self.commit_now()

    async def commit_now(self) -> bool:
        taken, target = self._pending, self._added
        if taken.shards:
            self._pending = Pending()
            try:
                outcome = await self._commit(taken)
            except Exception as exc:  # noqa: BLE001 - whatever the catalog or store raised, the rows stay
                taken.put_back(self._pending)
                self._pending = taken
                self._failures += 1
                self._metrics.lake_commits.labels("failed").inc()
                log.warning("lake commit failed, rows kept", extra={"error": str(exc)})
                return False
            self._failures = 0
            # A commit's Arrow copies are ~3 times its rows' size; give them back to the system
            # rather than keep the peak for the next commit (docs/benchmarks.md, "Event lake").
            pa.default_memory_pool().release_unused()
            self._metrics.lake_commits.labels("committed").inc()
            self._metrics.lake_rows.inc(outcome.rows)
            self._metrics.lake_copies.inc(outcome.copies)
            self._metrics.lake_skipped.inc(sum(s.rows.skipped for s in taken.shards.values()))
        async with self._committed:
            self._done = target
            self._rows = len(self._pending)
            self._metrics.lake_pending.set(self._rows)
            self._committed.notify_all()
        return True

    async def _commit(self, taken: Pending) -> Outcome:
        """Commit without suppressed users' rows. A commit that outlasted the trust in its
        "not suppressed" answers asks again and erases what it stored of users suppressed
        meanwhile: erase's second pass may have come before it (consumers/privacy.py)."""
        keys = taken.user_keys() if self._users is not None else set()
        if self._users is None or not keys:
            return await asyncio.to_thread(self._committer.commit, taken)
        verdict = await self._users.check(keys)
        outcome = await asyncio.to_thread(self._committer.commit, taken, verdict.suppressed)
        if self._users.stale(verdict):
            late = await self._users.check(keys - verdict.suppressed, fresh=True)
            for user_key in late.suppressed:
                await asyncio.to_thread(self._committer.erase, user_key)
        return outcome

    def _pause(self) -> float:
        return self._commit_seconds if not self._failures else backoff_delay(self._failures)

    async def _asked_or(self, stopping: asyncio.Event) -> None:
        asked = asyncio.create_task(self._wake.wait())
        stop = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({asked, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()
            stop.cancel()
