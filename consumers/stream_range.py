"""Reading one failed batch back from its shard: from its first sequence number to its last.

Records stay in the stream until its retention ends, so a batch Lambda gave up on can be read
again: GetShardIterator AT_SEQUENCE_NUMBER at the batch's start, GetRecords until the batch's end.
What cannot be read is said, never skipped quietly: a start Kinesis refuses (trimmed, or never in
this shard), a first record later than the start (the head was trimmed), or a shard that ends or
runs dry before the end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, NamedTuple

from botocore.exceptions import ClientError

from consumers.failure_messages import FailedBatch
from consumers.get_records import GET_RECORDS_INTERVAL, GET_RECORDS_LIMIT, CallPacer
from consumers.records import StreamRecord

if TYPE_CHECKING:
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_kinesis.type_defs import RecordTypeDef

MAX_EMPTY_READS = 20  # Kinesis may answer empty pages while it is behind; not for ever
UNREADABLE_CODES = frozenset({"InvalidArgumentException", "ResourceNotFoundException"})
OnPage = Callable[[list[StreamRecord]], Awaitable[None]]


class RangeUnreadableError(Exception):
    """Kinesis refuses the batch's start: the stream, the shard or the record is gone."""


class RangeRead(NamedTuple):
    records: int  # records of the batch found and handed to on_page
    head_missing: bool  # the batch's first record is not in the stream any more
    tail_missing: bool  # the shard ended or ran dry before the batch's last record

    @property
    def complete(self) -> bool:
        return not (self.head_missing or self.tail_missing)


async def read_range(kinesis: KinesisClient, batch: FailedBatch, on_page: OnPage) -> RangeRead:
    """Hand the batch's records to on_page, page by page, in stream order."""
    iterator: str | None = await _start(kinesis, batch)
    found, empty_reads, first = 0, 0, None
    # Paced like the shard readers: the shard's other readers share Kinesis' 5 calls a second.
    pacer, loop = CallPacer(GET_RECORDS_INTERVAL), asyncio.get_running_loop()
    while iterator is not None and empty_reads <= MAX_EMPTY_READS:
        await asyncio.sleep(pacer.wait_before_call(loop.time()))
        page = await kinesis.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
        iterator = page.get("NextShardIterator")
        if not page["Records"]:
            if page.get("MillisBehindLatest", 0) == 0:
                break  # at the tip of the shard: nothing more will come for this batch
            empty_reads += 1
            continue
        first = first or page["Records"][0]["SequenceNumber"]
        wanted, done = _within(page["Records"], batch, found)
        if wanted:
            await on_page(wanted)
            found += len(wanted)
        if done:
            return RangeRead(found, head_missing=first != batch.start, tail_missing=False)
    return RangeRead(found, head_missing=first != batch.start, tail_missing=True)


async def _start(kinesis: KinesisClient, batch: FailedBatch) -> str:
    try:
        answer = await kinesis.get_shard_iterator(
            StreamName=batch.stream,
            ShardId=batch.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=batch.start,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in UNREADABLE_CODES:
            raise RangeUnreadableError(str(exc)) from None
        raise
    return answer["ShardIterator"]


def _within(
    records: list[RecordTypeDef], batch: FailedBatch, found: int
) -> tuple[list[StreamRecord], bool]:
    """The page's records that belong to the batch, and whether the batch's end was reached.
    Without an end sequence number the batch is `size` records long."""
    wanted: list[StreamRecord] = []
    end = int(batch.end) if batch.end is not None else None
    for record in records:
        sequence = record["SequenceNumber"]
        if end is not None and int(sequence) > end:
            return wanted, True
        wanted.append(StreamRecord(sequence, record["PartitionKey"], record["Data"]))
        if (end is not None and int(sequence) == end) or (
            end is None and found + len(wanted) >= batch.size
        ):
            return wanted, True
    return wanted, False
