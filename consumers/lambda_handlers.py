"""AWS Lambda adapters: the same processors, fed by Lambda's Kinesis event source.

Configure the event source mapping with `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
Records are processed in order in chunks; at the first chunk that cannot be stored (after a few
quick retries, since a Lambda has a deadline) the handler reports that chunk's first sequence
number, and Lambda retries the batch from there. Undecodable records are dead-lettered, not
failed, so one bad record never blocks its shard. Events of suppressed users are not stored,
exactly as in the worker (the same processor); each invocation starts with an empty suppression
cache.

Handlers: `consumers.lambda_handlers.events_handler`, `consumers.lambda_handlers.programs_handler`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import redis.asyncio as redis

from consumers.aws import open_clients
from consumers.dead_letters import DeadLetterTable
from consumers.events_processor import build_events_processor
from consumers.metrics import ConsumerMetrics
from consumers.programs_processor import ProgramsProcessor
from consumers.records import RecordProcessor, StreamRecord
from consumers.retrying import TRANSIENT, UnprocessedItemsError
from consumers.settings import ConsumerSettings
from tracker.programs.redis_writer import ProgramWriter

log = logging.getLogger(__name__)

CHUNK = 100
MAX_ATTEMPTS = 3
BatchResponse = dict[str, list[dict[str, str]]]


def events_handler(event: dict[str, Any], context: object = None) -> BatchResponse:
    return asyncio.run(_handle(event, "events"))


def programs_handler(event: dict[str, Any], context: object = None) -> BatchResponse:
    return asyncio.run(_handle(event, "programs"))


def parse_event(event: dict[str, Any]) -> list[tuple[str, StreamRecord]]:
    """(shard id, record) for each record of a Lambda Kinesis event, in delivery order."""
    parsed = []
    for entry in event.get("Records", []):
        kinesis = entry["kinesis"]
        shard_id = entry.get("eventID", "").split(":", 1)[0] or "unknown-shard"
        record = StreamRecord(
            kinesis["sequenceNumber"],
            kinesis.get("partitionKey", ""),
            base64.b64decode(kinesis["data"]),
        )
        parsed.append((shard_id, record))
    return parsed


async def _handle(event: dict[str, Any], kind: str) -> BatchResponse:
    settings = ConsumerSettings.from_env()
    records = parse_event(event)
    async with AsyncExitStack() as stack:
        processor = await _processor(settings, kind, stack)
        return {"batchItemFailures": await process_in_order(processor, records)}


async def process_in_order(
    processor: RecordProcessor, records: Sequence[tuple[str, StreamRecord]]
) -> list[dict[str, str]]:
    """Process chunk by chunk; on the first failure name the chunk's first record and stop."""
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        shard_id = chunk[0][0]
        try:
            await processor.process(shard_id, [record for _, record in chunk])
        except (*TRANSIENT, UnprocessedItemsError) as exc:
            first = chunk[0][1].sequence_number
            log.warning(
                "batch failed; Lambda will retry from a record",
                extra={"sequence_number": first, "error": str(exc)},
            )
            return [{"itemIdentifier": first}]
    return []


async def _processor(
    settings: ConsumerSettings, kind: str, stack: AsyncExitStack
) -> RecordProcessor:
    metrics = ConsumerMetrics()
    _, dynamodb = await open_clients(settings, stack)
    dead_letters = DeadLetterTable(
        dynamodb, settings.dead_letter_table, metrics, MAX_ATTEMPTS, settings.dead_letter_ttl_days
    )
    if kind == "events":
        # Suppressed users' events are dropped here too: the same processor as the worker's.
        return build_events_processor(settings, dynamodb, dead_letters, metrics, MAX_ATTEMPTS)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    stack.push_async_callback(client.aclose)
    return ProgramsProcessor(
        settings.program_stream,
        ProgramWriter(client, settings.program_channel),
        dead_letters,
        metrics,
        MAX_ATTEMPTS,
    )
