"""Reading one leased shard: GetRecords, hand the batch to the processor, then checkpoint.

The checkpoint moves only after the processor has stored the batch, so a crash re-reads at most
the batch in hand (at-least-once; the writes are idempotent). A checkpoint that fails its
condition means another worker holds the shard now, and this reader stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from consumers.get_records import GET_RECORDS_INTERVAL, GET_RECORDS_LIMIT, CallPacer
from consumers.leases import SHARD_END, TRIM_HORIZON, HeldLease, LeaseLostError
from consumers.metrics import ConsumerMetrics
from consumers.records import RecordProcessor, StreamRecord
from tracker.backoff import backoff_delay

if TYPE_CHECKING:
    from types_aiobotocore_kinesis import KinesisClient

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StreamWork:
    """One worker's stream and what it does with the records: shared by its coordinator and
    every shard reader it starts."""

    kinesis: KinesisClient
    stream: str
    processor: RecordProcessor
    metrics: ConsumerMetrics
    poll_seconds: float  # the wait after an empty page
    # The wait after a page read at the stream's tip: what one batch gathers at steady traffic.
    tip_seconds: float = 0.0
    # The least time between two GetRecords calls on a shard, and the page size: this reader's
    # share of the shard's read limits (consumers/get_records.py).
    read_interval: float = GET_RECORDS_INTERVAL
    read_limit: int = GET_RECORDS_LIMIT


class ShardReader:
    def __init__(self, work: StreamWork, held: HeldLease, stopping: asyncio.Event) -> None:
        self._kinesis = work.kinesis
        self._stream = work.stream
        self._held = held
        self._processor = work.processor
        self._metrics = work.metrics
        self._poll = work.poll_seconds
        self._tip = work.tip_seconds
        self._stopping = stopping
        self._age = work.metrics.iterator_age.labels(held.shard_id)
        self._pacer = CallPacer(work.read_interval)
        self._limit = work.read_limit

    async def run(self) -> None:
        """Process until the shard ends, the worker stops or the lease is lost."""
        try:
            await self._read()
        except LeaseLostError:
            log.info("lease lost: stopped reading", extra={"shard": self._held.shard_id})

    async def _read(self) -> None:
        iterator: str | None = await self._iterator()
        failures = 0
        while iterator is not None and not self._stopping.is_set():
            try:
                iterator = await self._step(iterator)
                failures = 0
            except (BotoCoreError, ClientError) as exc:
                failures += 1
                log.warning(
                    "GetRecords failed, retrying from the checkpoint",
                    extra={"shard": self._held.shard_id, "error": str(exc)},
                )
                await self._pause(backoff_delay(failures))
                iterator = await self._iterator()
        if iterator is None:
            await self._finish()
            log.info("shard finished", extra={"shard": self._held.shard_id})

    async def _deliver(self, batch: list[StreamRecord]) -> None:
        """Store the batch, then move the checkpoint past it."""
        await self._processor.process(self._held.shard_id, batch)
        await self._held.checkpoint(batch[-1].sequence_number)

    async def _finish(self) -> None:
        """The shard is read to its end: its children may start."""
        await self._held.checkpoint(SHARD_END)

    def _position(self) -> str:
        """Where reading starts or resumes after a failed read: after this sequence number, or
        TRIM_HORIZON."""
        return self._held.lease.checkpoint

    async def _step(self, iterator: str) -> str | None:
        wait = self._pacer.wait_before_call(asyncio.get_running_loop().time())
        if wait:
            await self._pause(wait)
            if self._stopping.is_set():
                return iterator  # stopping: the batch in hand is checkpointed, read no more
        page = await self._kinesis.get_records(ShardIterator=iterator, Limit=self._limit)
        records = page["Records"]
        if records:
            batch = [
                StreamRecord(r["SequenceNumber"], r["PartitionKey"], r["Data"]) for r in records
            ]
            await self._deliver(batch)
        behind = page.get("MillisBehindLatest", 0)
        self._age.set(behind)
        next_iterator = page.get("NextShardIterator")
        if next_iterator is not None and not records:
            await self._pause(self._poll)
        elif next_iterator is not None and behind == 0:
            # At the tip, wait for CONSUMER_TIP_WAIT_MS of events rather than ask five times a
            # second for a few: a batch costs its calls (the rollup write per program and
            # bucket, the lookups) whatever its size (docs/benchmarks.md, Reporting), and the
            # shard's read limits stay free for other readers.
            await self._pause(self._tip)
        return next_iterator

    async def _iterator(self) -> str:
        checkpoint = self._position()
        kwargs: dict[str, Any] = {"StreamName": self._stream, "ShardId": self._held.shard_id}
        if checkpoint == TRIM_HORIZON:
            kwargs["ShardIteratorType"] = TRIM_HORIZON
        else:
            kwargs |= {
                "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                "StartingSequenceNumber": checkpoint,
            }
        attempt = 0
        while True:
            try:
                return (await self._kinesis.get_shard_iterator(**kwargs))["ShardIterator"]
            except (BotoCoreError, ClientError) as exc:
                attempt += 1
                log.warning(
                    "GetShardIterator failed, retrying",
                    extra={"shard": self._held.shard_id, "error": str(exc)},
                )
                await asyncio.sleep(backoff_delay(attempt))

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the worker stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
