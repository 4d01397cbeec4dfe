"""Running a consumer worker: clients, leases, readers, metrics endpoint and signal handling.

Before anything is read, the tables the worker uses are checked (consumers/table_check.py): one
missing or keyed otherwise ends the run with UnusableTableError, nothing read or checkpointed.

SIGTERM or SIGINT: every reader finishes the batch in hand and checkpoints it, leases are
released so that other workers take the shards over at once, and the process exits.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import redis.asyncio as redis

from consumers.attribution.matcher import build_matcher
from consumers.aws import attribution_calls, open_clients, open_lean_calls
from consumers.coordinator import Coordinator, run_beside, stop_on_signals
from consumers.dead_letters import DeadLetterTable
from consumers.events_processor import build_events_processor
from consumers.leases import HeldLease, LeaseTable
from consumers.metrics import ConsumerMetrics
from consumers.ops_server import serve_ops
from consumers.programs_processor import ProgramsProcessor
from consumers.records import RecordProcessor
from consumers.settings import ConsumerSettings
from consumers.shard_reader import ShardReader, StreamWork
from consumers.table_check import check_tables, tables_used
from tracker.programs.redis_writer import ProgramWriter

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_kinesis import KinesisClient

    from consumers.processors import Kind

log = logging.getLogger(__name__)

# DescribeTable attempts at start (botocore retries within each); a DynamoDB still unreachable
# after them ends the run with its error, and the orchestrator starts the worker again.
TABLE_CHECK_ATTEMPTS = 5


async def run_worker(settings: ConsumerSettings, kind: Kind) -> None:
    """Run the `events` or `programs` worker until SIGTERM/SIGINT."""
    metrics = ConsumerMetrics()
    async with AsyncExitStack() as stack:
        kinesis, dynamodb = await open_clients(settings, stack)
        tables = tables_used(settings, kind, leases=True)
        await check_tables(dynamodb, settings, tables, TABLE_CHECK_ATTEMPTS)
        # What is loaded now (botocore's service models, the clients, our modules) lives as long
        # as the process: frozen, no later collection walks it again, and a batch's garbage
        # costs only itself.
        gc.collect()
        gc.freeze()
        dead_letters = DeadLetterTable(
            dynamodb, settings.dead_letter_table, metrics, ttl_days=settings.dead_letter_ttl_days
        )
        matcher = None
        if kind == "events":
            stream = settings.event_stream
            lean = await open_lean_calls(dynamodb, stack)
            processor: RecordProcessor = build_events_processor(
                settings, dynamodb, dead_letters, metrics, lean=lean
            )
            matcher = build_matcher(settings, dynamodb, metrics, attribution_calls(lean))
        else:
            stream = settings.program_stream
            client = redis.Redis.from_url(
                settings.redis_url, socket_connect_timeout=5, socket_timeout=10
            )
            stack.push_async_callback(client.aclose)
            processor = ProgramsProcessor(
                stream, ProgramWriter(client, settings.program_channel), dead_letters, metrics
            )
        coordinator = _coordinator(settings, stream, kinesis, dynamodb, processor, metrics)
        await serve_ops(stack, settings, coordinator, metrics)
        stop_on_signals(coordinator)
        log.info(
            "consumer started",
            extra={"kind": kind, "stream": stream, "worker": settings.leases.worker_id},
        )
        # The parked conversions beside the shards (events workers only).
        await run_beside(coordinator, matcher.run if matcher else None)
    log.info("consumer stopped", extra={"kind": kind})


def _coordinator(
    settings: ConsumerSettings,
    stream: str,
    kinesis: KinesisClient,
    dynamodb: DynamoDBClient,
    processor: RecordProcessor,
    metrics: ConsumerMetrics,
) -> Coordinator:
    work = StreamWork(
        kinesis, stream, processor, metrics, settings.poll_seconds, settings.tip_wait_seconds
    )

    def start_reader(held: HeldLease, stopping: asyncio.Event) -> asyncio.Task[None]:
        reader = ShardReader(work, held, stopping)
        return asyncio.create_task(reader.run(), name=f"shard-{held.shard_id}")

    table = LeaseTable(dynamodb, settings.lease_table, stream)
    return Coordinator(work, table, settings.leases, start_reader)
