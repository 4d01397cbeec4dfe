"""A lake worker's reader of one shard: it starts after the shard's position in the table (the
lake's own record of what is stored, not the lease's checkpoint) and hands batches to the
commit loop. The lease is checkpointed only at the shard's end, after its rows are committed,
so that child shards start then."""

from __future__ import annotations

import asyncio
import logging

from consumers.lake.commit_loop import CommitLoop
from consumers.leases import TRIM_HORIZON, HeldLease
from consumers.records import StreamRecord
from consumers.shard_reader import ShardReader, StreamWork
from tracker.backoff import backoff_delay

log = logging.getLogger(__name__)


class LakeShardReader(ShardReader):
    def __init__(
        self, work: StreamWork, held: HeldLease, stopping: asyncio.Event, loop: CommitLoop
    ) -> None:
        super().__init__(work, held, stopping)
        self._loop = loop
        self._start = TRIM_HORIZON
        self._last_read: str | None = None

    async def run(self) -> None:
        if await self._find_start():
            await super().run()

    async def _find_start(self) -> bool:
        attempt = 0
        while not self._stopping.is_set():
            try:
                position = await self._loop.position(self._held.shard_id)
            except Exception as exc:  # noqa: BLE001 - the catalog's errors are many kinds
                attempt += 1
                log.warning("lake position unreadable", extra={"error": str(exc)})
                await self._pause(backoff_delay(attempt))
                continue
            self._start = TRIM_HORIZON if position is None else str(position)
            return True
        return False

    async def _deliver(self, batch: list[StreamRecord]) -> None:
        await self._loop.process(self._held.shard_id, batch)
        self._last_read = batch[-1].sequence_number

    async def _finish(self) -> None:
        await self._loop.flush()
        await super()._finish()

    def _position(self) -> str:
        return self._last_read or self._start
