"""Which shards this worker reads: discovery, lease taking, balancing, renewal, shutdown.

Every `renew_seconds` the coordinator renews what it holds (a lease it cannot renew is dropped
and its reader cancelled at once), then looks at all leases: it takes expired or free ones up to
its fair share, and when none are free it steals one from a worker holding more than its share.
Every `discovery_seconds` it lists the stream's shards and adds leases for new ones. A child shard
(after a split or merge) becomes eligible only when all its parents are read to their end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from consumers.leases import HeldLease, Lease, LeaseLostError, LeaseTable
from consumers.settings import LeaseSettings
from tracker.task_stop import stop_tasks

if TYPE_CHECKING:
    from types_aiobotocore_kinesis.type_defs import ShardTypeDef

    from consumers.shard_reader import StreamWork

log = logging.getLogger(__name__)

# Within ECS's default 30 s between SIGTERM and SIGKILL.
SHUTDOWN_SECONDS = 20.0
ReaderFactory = Callable[[HeldLease, asyncio.Event], "asyncio.Task[None]"]


class _Seen(NamedTuple):
    counter: int
    owner: str | None
    since: float


class Coordinator:
    def __init__(
        self,
        work: StreamWork,
        table: LeaseTable,
        settings: LeaseSettings,
        start_reader: ReaderFactory,
    ) -> None:
        """Shares `work.stream`'s shards with the other workers through `table`, and runs
        `start_reader` on each shard it holds."""
        self._kinesis = work.kinesis
        self._stream = work.stream
        self._table = table
        self._settings = settings
        self._me = settings.worker_id
        self._metrics = work.metrics
        self._start_reader = start_reader
        self._held: dict[str, tuple[HeldLease, asyncio.Task[None]]] = {}
        self._seen: dict[str, _Seen] = {}
        self._stopping = asyncio.Event()
        self.last_cycle = time.monotonic()  # /healthz: when the loop last began a cycle

    @property
    def held_shards(self) -> list[str]:
        return sorted(self._held)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Coordinate until stop(); then let readers finish their batch and release leases."""
        next_discovery = 0.0
        try:
            while not self._stopping.is_set():
                self.last_cycle = time.monotonic()
                if time.monotonic() >= next_discovery:
                    next_discovery = time.monotonic() + self._settings.discovery_seconds
                    await self._guarded(self._discover)
                await self._renew_all()
                await self._guarded(self._balance)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self._settings.renew_seconds)
        finally:
            await self._shutdown()

    async def _guarded(self, step: Callable[[], Awaitable[None]]) -> None:
        try:
            await step()
        except (BotoCoreError, ClientError) as exc:
            log.warning("lease coordination step failed", extra={"error": str(exc)})

    async def _discover(self) -> None:
        known = {lease.shard_id for lease in await self._table.list()}
        for shard in await self._list_shards():
            if shard["ShardId"] in known:
                continue
            parents = tuple(
                p for p in (shard.get("ParentShardId"), shard.get("AdjacentParentShardId")) if p
            )
            await self._table.create(shard["ShardId"], parents)
            log.info("new shard", extra={"shard": shard["ShardId"], "parents": parents})

    async def _list_shards(self) -> list[ShardTypeDef]:
        shards: list[ShardTypeDef] = []
        page = await self._kinesis.list_shards(StreamName=self._stream)
        while True:
            shards.extend(page["Shards"])
            token = page.get("NextToken")
            if not token:
                return shards
            page = await self._kinesis.list_shards(NextToken=token)

    async def _renew_all(self) -> None:
        for shard_id, (held, task) in list(self._held.items()):
            if task.done():
                await self._finished(shard_id, held, task)
                continue
            try:
                await held.renew()
            except LeaseLostError:
                log.warning("lease lost to another worker", extra={"shard": shard_id})
                self._metrics.leases_lost.inc()
                self._drop(shard_id)
            except (BotoCoreError, ClientError) as exc:
                log.warning("lease renewal failed", extra={"shard": shard_id, "error": str(exc)})
                if held.stale:
                    self._drop(shard_id)

    async def _balance(self) -> None:
        leases = await self._table.list()
        now = time.monotonic()
        self._observe(leases, now)
        eligible = _eligible(leases)
        expired = [lease for lease in eligible if self._expired(lease, now)]
        live_owners = Counter(lease.owner for lease in eligible if lease not in expired)
        workers = len(set(live_owners) | {self._me})
        share = math.ceil(len(eligible) / workers) if eligible else 0
        wanted = share - len(self._held)
        for lease in sorted(expired, key=lambda lease: lease.shard_id)[: max(wanted, 0)]:
            await self._take(lease)
            wanted -= 1
        if wanted > 0:
            await self._steal_one(eligible, live_owners, share)

    async def _steal_one(
        self, eligible: list[Lease], owners: Counter[str | None], share: int
    ) -> None:
        richest, count = max(
            ((o, c) for o, c in owners.items() if o not in (None, self._me)),
            key=lambda pair: pair[1],
            default=(None, 0),
        )
        if richest is None or count <= share:
            return
        victim = min(
            (lease for lease in eligible if lease.owner == richest),
            key=lambda lease: lease.shard_id,
        )
        log.info("taking a lease to balance", extra={"shard": victim.shard_id, "from": richest})
        await self._take(victim)

    async def _take(self, lease: Lease) -> None:
        try:
            taken = await self._table.take(lease, self._me)
        except LeaseLostError:
            return  # another worker was quicker
        held = HeldLease(self._table, taken, self._settings.duration_seconds)
        self._held[taken.shard_id] = (held, self._start_reader(held, self._stopping))
        self._metrics.leases_held.set(len(self._held))
        log.info("lease taken", extra={"shard": taken.shard_id, "checkpoint": taken.checkpoint})

    def _observe(self, leases: list[Lease], now: float) -> None:
        for lease in leases:
            seen = self._seen.get(lease.shard_id)
            if seen is None or (seen.counter, seen.owner) != (lease.counter, lease.owner):
                self._seen[lease.shard_id] = _Seen(lease.counter, lease.owner, now)

    def _expired(self, lease: Lease, now: float) -> bool:
        if lease.shard_id in self._held:
            return False
        if lease.owner is None:
            return True
        return now - self._seen[lease.shard_id].since >= self._settings.duration_seconds

    async def _finished(self, shard_id: str, held: HeldLease, task: asyncio.Task[None]) -> None:
        """The reader ended: the shard is read to its end, or the reader failed. Either way the
        lease is released so that it is not left to expire."""
        self._forget(shard_id)
        if not task.cancelled() and task.exception() is not None:
            log.error("shard reader failed", extra={"shard": shard_id}, exc_info=task.exception())
        with contextlib.suppress(LeaseLostError, BotoCoreError, ClientError):
            await held.release()

    def _drop(self, shard_id: str) -> None:
        """Stop reading a shard at once: its lease is someone else's now."""
        _, task = self._held[shard_id]
        task.cancel()
        self._forget(shard_id)

    def _forget(self, shard_id: str) -> None:
        del self._held[shard_id]
        self._metrics.leases_held.set(len(self._held))

    async def _shutdown(self) -> None:
        """Readers finish their batch in hand; one stuck on a dead backend is cancelled after
        SHUTDOWN_SECONDS (its batch is re-read by the next owner: nothing is lost)."""
        self._stopping.set()
        held = list(self._held.values())
        tasks = [task for _, task in held]
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_SECONDS)
            await stop_tasks(stuck)
        for lease, _ in held:
            with contextlib.suppress(LeaseLostError, BotoCoreError, ClientError):
                await lease.release()
        self._held.clear()
        self._metrics.leases_held.set(0)
        log.info("leases released", extra={"shards": [lease.shard_id for lease, _ in held]})


def _eligible(leases: list[Lease]) -> list[Lease]:
    """Unfinished leases whose parent shards (if we know them) are read to their end."""
    by_shard = {lease.shard_id: lease for lease in leases}
    return [
        lease
        for lease in leases
        if not lease.finished and all(by_shard[p].finished for p in lease.parents if p in by_shard)
    ]


def stop_on_signals(coordinator: Coordinator) -> None:
    """SIGTERM or SIGINT: the coordinator stops its readers and releases its leases."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, coordinator.stop)


# A task a worker runs beside its shards until told to stop (the attribution matcher, the
# lake's commits); it finishes what it holds after the readers are done.
Companion = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def run_beside(coordinator: Coordinator, companion: Companion | None) -> None:
    """Run the coordinator and, beside it, `companion`, which is asked to stop only once the
    coordinator has stopped its readers and released its leases."""
    if companion is None:
        await coordinator.run()
        return
    stopping = asyncio.Event()
    beside = asyncio.create_task(companion(stopping))
    try:
        await coordinator.run()
    finally:
        stopping.set()
        await beside
