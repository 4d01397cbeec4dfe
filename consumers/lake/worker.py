"""`consumers lake`: the event stream -> the lake, with leases of its own.

The lake's leases live in LEASE_TABLE under the stream's name plus `#lake`, apart from those of
`consumers events`: both read every shard, independently. SIGTERM or SIGINT: readers stop,
what was read is committed, leases are released.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from consumers.aws import open_clients
from consumers.coordinator import Coordinator, run_beside, stop_on_signals
from consumers.get_records import LAKE_GET_RECORDS_INTERVAL, LAKE_GET_RECORDS_LIMIT
from consumers.lake.catalog import ensure_table, open_catalog
from consumers.lake.commit_loop import CommitLoop
from consumers.lake.committer import Committer
from consumers.lake.reader import LakeShardReader
from consumers.leases import HeldLease, LeaseTable
from consumers.metrics import ConsumerMetrics
from consumers.ops_server import serve_ops
from consumers.settings import ConsumerSettings
from consumers.shard_reader import StreamWork
from consumers.suppression import SuppressionList
from consumers.table_check import check_tables

log = logging.getLogger(__name__)

TABLE_CHECK_ATTEMPTS = 5


def lake_lease_group(stream: str) -> str:
    return f"{stream}#lake"


async def run_lake_worker(settings: ConsumerSettings) -> None:
    metrics = ConsumerMetrics()
    async with AsyncExitStack() as stack:
        kinesis, dynamodb = await open_clients(settings, stack)
        tables = [settings.lease_table, settings.privacy.table]
        await check_tables(dynamodb, settings, tables, TABLE_CHECK_ATTEMPTS)
        table = await asyncio.to_thread(
            lambda: ensure_table(open_catalog(settings.lake), settings.lake)
        )
        users = SuppressionList(dynamodb, settings.privacy, metrics)
        loop = CommitLoop(Committer(table), metrics, settings.lake.commit_seconds, users)
        work = StreamWork(
            kinesis,
            settings.event_stream,
            loop,
            metrics,
            settings.poll_seconds,
            settings.tip_wait_seconds,
            read_interval=LAKE_GET_RECORDS_INTERVAL,
            read_limit=LAKE_GET_RECORDS_LIMIT,
        )

        def start_reader(held: HeldLease, stopping: asyncio.Event) -> asyncio.Task[None]:
            reader = LakeShardReader(work, held, stopping, loop)
            return asyncio.create_task(reader.run(), name=f"lake-{held.shard_id}")

        leases = LeaseTable(dynamodb, settings.lease_table, lake_lease_group(work.stream))
        coordinator = Coordinator(work, leases, settings.leases, start_reader)
        await serve_ops(stack, settings, coordinator, metrics)
        stop_on_signals(coordinator)
        log.info("lake worker started", extra={"table": settings.lake.table})
        # The commits beside the shards; the last one after the readers have stopped.
        await run_beside(coordinator, loop.run)
    log.info("lake worker stopped")
