"""Two lake workers forced onto one shard, in one process: each with its own table object,
commit loop and reader holding the same shard, as after a stolen lease whose former holder has
not noticed yet. Records arrive in chunks while both read, so that their commits interleave."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from consumers.aws import open_clients
from consumers.lake.catalog import open_catalog, open_table
from consumers.lake.commit_loop import CommitLoop
from consumers.lake.committer import Committer, Outcome
from consumers.lake.pending import Pending
from consumers.lake.reader import LakeShardReader
from consumers.leases import TRIM_HORIZON, HeldLease, Lease, LeaseTable
from consumers.metrics import ConsumerMetrics
from consumers.settings import ConsumerSettings
from consumers.shard_reader import StreamWork
from tests.support.consumers import put_records

CHUNKS = 10


class CountingCommitter(Committer):
    """A committer that adds up what its commits did."""

    total = Outcome(0, 0, 0)

    def commit(self, pending: Pending, suppressed: frozenset[str] = frozenset()) -> Outcome:
        outcome = super().commit(pending, suppressed)
        self.total = Outcome(*(a + b for a, b in zip(self.total, outcome, strict=True)))
        return outcome


async def race_on_one_shard(
    kinesalite_url: str, env: dict[str, str], events: list[bytes]
) -> list[Outcome]:
    """Put `events` in chunks while two workers read and commit the one shard; what each did."""
    settings = ConsumerSettings.from_env(env)
    stopping = asyncio.Event()
    async with AsyncExitStack() as stack:
        kinesis, dynamodb = await open_clients(settings, stack)
        shard = (await kinesis.list_shards(StreamName=settings.event_stream))["Shards"][0]
        leases = LeaseTable(dynamodb, settings.lease_table, settings.event_stream + "#race")
        committers, tasks = [], []
        for name, seconds in (("a", 0.2), ("b", 0.3)):
            committer = CountingCommitter(open_table(open_catalog(settings.lake), settings.lake))
            loop = CommitLoop(committer, ConsumerMetrics(), seconds)
            work = StreamWork(kinesis, settings.event_stream, loop, ConsumerMetrics(), 0.05)
            held = HeldLease(leases, Lease(shard["ShardId"], name, 0, TRIM_HORIZON, ()), 60)
            reader = LakeShardReader(work, held, stopping, loop)
            tasks += [asyncio.create_task(reader.run()), asyncio.create_task(loop.run(stopping))]
            committers.append(committer)
        size = len(events) // CHUNKS
        for start in range(0, len(events), size):
            await put_records(kinesalite_url, settings.event_stream, events[start : start + size])
            await asyncio.sleep(0.4)
        await asyncio.sleep(2)
        stopping.set()
        await asyncio.gather(*tasks)
    return [committer.total for committer in committers]
