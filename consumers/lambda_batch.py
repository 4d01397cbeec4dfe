"""One Lambda batch: Lambda's Kinesis event parsed strictly, then stored in order, chunk by chunk.

What `ReportBatchItemFailures` needs from us: every record before the reported one is stored, so
Lambda checkpoints up to it and retries from it (the whole rest of the batch, bisected or not).
We stop at the first chunk that cannot be stored and report that chunk's first record. Part of
that chunk may have been written already; the retry writes it again, which changes nothing: an
event's item key comes from the event itself (one item per message_id), a dead letter's from the
record's place in the stream, and a program update applies only if its version is newer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from consumers.records import RecordProcessor, StreamRecord
from consumers.retrying import TRANSIENT, UnprocessedItemsError

log = logging.getLogger(__name__)

CHUNK = 100
MAX_RECORDS = 10_000  # the largest batch an event source mapping hands a function
# Kept back from the invocation's deadline: enough to cancel a chunk and answer before Lambda
# kills the function (a killed invocation is a function error: the whole batch comes again).
DEADLINE_MARGIN_SECONDS = 1.0
_SEQUENCE = re.compile(r"[0-9]{1,128}")
_SHARD = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class MalformedEventError(ValueError):
    """The invocation's event is not a Kinesis batch; the function fails, Lambda retries it."""


class ShardRecord(NamedTuple):
    shard_id: str
    record: StreamRecord


def parse_event(event: object) -> list[ShardRecord]:
    """(shard id, record) for each record of a Lambda Kinesis event, in delivery order."""
    if not isinstance(event, dict) or not isinstance(event.get("Records"), list):
        raise MalformedEventError("the event has no Records list")
    entries: list[Any] = event["Records"]
    if len(entries) > MAX_RECORDS:
        raise MalformedEventError(f"{len(entries)} records, more than {MAX_RECORDS}")
    return [_parse_entry(n, entry) for n, entry in enumerate(entries)]


def _parse_entry(n: int, entry: object) -> ShardRecord:
    if not isinstance(entry, dict) or not isinstance(entry.get("kinesis"), dict):
        raise MalformedEventError(f"record {n} has no kinesis object")
    kinesis = entry["kinesis"]
    sequence = kinesis.get("sequenceNumber")
    if not isinstance(sequence, str) or not _SEQUENCE.fullmatch(sequence):
        raise MalformedEventError(f"record {n} has no valid sequenceNumber")
    data, key = kinesis.get("data"), kinesis.get("partitionKey", "")
    if not isinstance(data, str) or not isinstance(key, str):
        raise MalformedEventError(f"record {n} ({sequence}): data or partitionKey is no string")
    try:
        raw = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise MalformedEventError(f"record {n} ({sequence}): data is not base64") from None
    shard_id = str(entry.get("eventID", "")).split(":", 1)[0]
    if not _SHARD.fullmatch(shard_id):
        shard_id = "unknown-shard"
    return ShardRecord(shard_id, StreamRecord(sequence, key, raw))


def deadline_of(context: object, loop: asyncio.AbstractEventLoop) -> float | None:
    """The loop time by which the work must stop, from Lambda's context; None without one."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    return loop.time() + int(remaining()) / 1000 - DEADLINE_MARGIN_SECONDS


async def process_in_order(
    processor: RecordProcessor, records: Sequence[ShardRecord], deadline: float | None
) -> str | None:
    """Store chunk by chunk; the sequence number to retry from, or None when all are stored."""
    loop = asyncio.get_running_loop()
    for start in range(0, len(records), CHUNK):
        chunk = records[start : start + CHUNK]
        first = chunk[0].record.sequence_number
        if deadline is not None and loop.time() >= deadline:
            log.warning(
                "out of time: Lambda will retry from a record", extra={"sequence_number": first}
            )
            return first  # not even started: nothing of it was written
        budget = asyncio.timeout_at(deadline)
        try:
            async with budget:
                await processor.process(chunk[0].shard_id, [r.record for r in chunk])
        except (*TRANSIENT, UnprocessedItemsError) as exc:
            error = "out of time" if budget.expired() else str(exc)
            log.warning(
                "batch not stored: Lambda will retry from a record",
                extra={"sequence_number": first, "error": error},
            )
            return first
    return None
