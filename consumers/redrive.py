"""`consumers redrive`: store the batches Lambda gave up on, from the on-failure queue.

Lambda's on-failure destination (an SQS queue, FAILURE_QUEUE_URL) receives where a failed batch
lies in the stream, not its records (consumers/failure_messages.py). For each message this reads
the batch back from its shard (consumers/stream_range.py), stores it with the processor of its
stream (event stream: events, program stream: programs), the same processors as the worker and
Lambda, and deletes the message only once every record of the batch is stored. Storing is
idempotent, so a batch redriven twice is stored once.

A message is kept, counted and logged as an error when its batch cannot be read whole (records
trimmed from the stream, a stream or shard gone), when it is malformed or names a stream we do
not consume, or when storing fails; the summary lists each. SQS shows a kept message again after
VISIBILITY_SECONDS, to the next run: one run handles each message at most once.

Before the first batch of a stream, the tables its processor uses are checked (consumers/
table_check.py; a programs-only run never needs the events table). One missing or keyed otherwise
stops the run with UnusableTableError: the message in hand is kept, nothing of it is stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consumers.aws import open_kinesis, open_sqs
from consumers.failure_messages import FailedBatch, MalformedMessageError, parse_failure_message
from consumers.processors import Kind, OpenedProcessors
from consumers.records import RecordProcessor, StreamRecord
from consumers.retrying import TRANSIENT, UnprocessedItemsError
from consumers.settings import ConsumerSettings
from consumers.stream_range import RangeUnreadableError, read_range
from consumers.table_check import TableCheck

if TYPE_CHECKING:
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5  # per storage call; a batch that still fails stays queued for the next run
VISIBILITY_SECONDS = 300  # long enough to read and store a batch of 10,000 records
RECEIVE_WAIT_SECONDS = 1
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class Report:
    """What became of one message. Every outcome but `redriven` keeps the message."""

    message_id: str
    outcome: str  # redriven, incomplete, unreadable, malformed, unknown_stream, failed
    records_stored: int = 0
    batch: FailedBatch | None = None
    error: str = ""

    def as_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"message_id": self.message_id, "outcome": self.outcome}
        if self.batch is not None:
            fields |= self.batch._asdict()
        missing = self.batch.size - self.records_stored if self.batch else 0
        return fields | {
            "records_stored": self.records_stored,
            "records_missing": max(missing, 0) if self.outcome == "incomplete" else 0,
            "error": self.error,
        }


@dataclass
class Summary:
    messages: int = 0
    redriven: int = 0
    records_stored: int = 0
    kept: list[Report] = field(default_factory=list)

    def add(self, report: Report) -> None:
        self.messages += 1
        self.records_stored += report.records_stored
        if report.outcome == "redriven":
            self.redriven += 1
        else:
            self.kept.append(report)

    def as_json(self) -> dict[str, Any]:
        return {
            "command": "redrive",
            "messages": self.messages,
            "redriven": self.redriven,
            "kept": len(self.kept),
            "records_stored": self.records_stored,
            "kept_messages": [report.as_json() for report in self.kept],
        }


async def redrive(settings: ConsumerSettings, queue_url: str, max_messages: int) -> Summary:
    """Handle up to max_messages messages (fewer when the queue runs empty or on SIGTERM)."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with AsyncExitStack() as stack:
        sqs = await open_sqs(settings, stack)
        kinesis = await open_kinesis(settings, stack)
        processors = await OpenedProcessors.open(settings, MAX_ATTEMPTS)
        stack.push_async_callback(processors.close)
        redriver = Redriver(settings, kinesis, processors, TableCheck(settings, MAX_ATTEMPTS))
        summary, seen = Summary(), set[str]()
        while summary.messages < max_messages and not stopping.is_set():
            answer = await sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=min(10, max_messages - summary.messages),
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                VisibilityTimeout=VISIBILITY_SECONDS,
            )
            fresh = [m for m in answer.get("Messages", []) if m.get("MessageId") not in seen]
            if not fresh:
                break  # the queue is empty, or holds only what this run kept
            for message in fresh:
                seen.add(message.get("MessageId", ""))
                report = await redriver.handle(message)
                if report.outcome == "redriven":
                    report = await _delete(sqs, queue_url, message, report)
                summary.add(report)
    return summary


async def _delete(
    sqs: SQSClient, queue_url: str, message: MessageTypeDef, report: Report
) -> Report:
    """Delete a redriven batch's message; if SQS refuses, the next run stores it again."""
    try:
        await sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    except TRANSIENT as exc:
        error = f"stored, but the message could not be deleted: {exc}"
        return _kept(dataclasses.replace(report, outcome="failed", error=error))
    return report


class Redriver:
    def __init__(
        self,
        settings: ConsumerSettings,
        kinesis: KinesisClient,
        processors: OpenedProcessors,
        tables: TableCheck,
    ) -> None:
        self._streams: dict[str, Kind] = {
            settings.event_stream: "events",
            settings.program_stream: "programs",
        }
        self._kinesis = kinesis
        self._processors = processors
        self._tables = tables

    async def handle(self, message: MessageTypeDef) -> Report:
        message_id = message.get("MessageId", "unknown")
        try:
            batch = parse_failure_message(message.get("Body", ""))
        except MalformedMessageError as exc:
            return _kept(Report(message_id, "malformed", error=str(exc)))
        kind = self._streams.get(batch.stream)
        if kind is None:
            error = "a stream that neither EVENT_STREAM nor PROGRAM_STREAM names"
            return _kept(Report(message_id, "unknown_stream", batch=batch, error=error))
        try:
            await self._tables.ensure(kind)  # UnusableTableError ends the run
        except TRANSIENT as exc:
            error = f"the tables could not be checked: {exc}"
            return _kept(Report(message_id, "failed", batch=batch, error=error))
        return await self._redrive(message_id, batch, self._processors.get(kind))

    async def _redrive(
        self, message_id: str, batch: FailedBatch, processor: RecordProcessor
    ) -> Report:
        stored = 0

        async def store(records: list[StreamRecord]) -> None:
            nonlocal stored
            await processor.process(batch.shard_id, records)
            stored += len(records)

        try:
            read = await read_range(self._kinesis, batch, store)
        except RangeUnreadableError as exc:
            return _kept(Report(message_id, "unreadable", stored, batch, str(exc)))
        except (*TRANSIENT, UnprocessedItemsError) as exc:
            return _kept(Report(message_id, "failed", stored, batch, str(exc)))
        if not read.complete:
            lost = "first" if read.head_missing else "last"
            error = f"the batch's {lost} records are no longer in the stream (trimmed)"
            return _kept(Report(message_id, "incomplete", stored, batch, error))
        return Report(message_id, "redriven", stored, batch)


def _kept(report: Report) -> Report:
    """Say loudly that a message stays queued, and why."""
    bounded = dataclasses.replace(report, error=report.error[:MAX_ERROR_CHARS])
    log.error("failed batch not redriven: message kept", extra=bounded.as_json())
    return bounded
