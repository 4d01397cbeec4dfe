"""AWS Lambda adapters: the same processors, fed by Lambda's Kinesis event source.

Configure the event source mapping with `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
Records are stored in order in chunks; at the first chunk that cannot be stored (after a few quick
retries) or that would outlast the invocation's deadline, the handler reports that chunk's first
sequence number and Lambda retries the batch from there (consumers/lambda_batch.py). Undecodable
records are dead-lettered, not failed, so one bad record never blocks its shard. Events of
suppressed users are not stored, exactly as in the worker (the same processor).

One execution environment runs one invocation at a time and many in a row, so it keeps one event
loop and the clients opened on it: they are opened on the first invocation and reused, and opened
anew after an invocation that could not store everything (a connection broken while the
environment was frozen must not fail every later batch) or when the settings changed.

Before the first batch of a kind, the tables that kind uses are checked once for the clients
opened (consumers/table_check.py). A table missing or keyed otherwise fails the invocation with
its one-line message, logged: Lambda retries the batch (its records stay in the stream) and each
invocation checks again, until the table is put right. A check that gets no answer in time
reports the batch's first record, like a chunk that could not be stored.

Handlers: `consumers.lambda_handlers.events_handler`, `consumers.lambda_handlers.programs_handler`,
and `consumers.lambda_handlers.match_handler`, run on a schedule, for the parked conversions.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import uvloop

from consumers.attribution.matcher import build_matcher
from consumers.aws import open_dynamodb
from consumers.lambda_batch import deadline_of, parse_event, process_in_order
from consumers.metrics import ConsumerMetrics
from consumers.processors import Kind, OpenedProcessors
from consumers.provision import UnusableTableError
from consumers.retrying import TRANSIENT
from consumers.settings import ConsumerSettings
from consumers.table_check import TableCheck
from tracker.logs import configure_logging

log = logging.getLogger(__name__)

# Quick retries only (Lambda retries the batch itself), bounded by the invocation's deadline. Five
# because BatchWriteItem no longer goes through botocore, whose client retried throttling and 5xx
# up to three times inside each of these attempts.
MAX_ATTEMPTS = 5
BatchResponse = dict[str, list[dict[str, str]]]


class ExecutionEnvironment:
    """What one Lambda execution environment keeps between invocations."""

    def __init__(self) -> None:
        self._runner: asyncio.Runner | None = None
        self._opened: OpenedProcessors | None = None
        self._tables: TableCheck | None = None  # the tables checked for the clients opened
        self.openings = 0  # how often clients were opened: once per environment, if all is well

    def handle(self, event: object, context: object, kind: Kind) -> BatchResponse:
        if self._runner is None:
            self._runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        return self._runner.run(self._handle(event, context, kind))

    def close(self) -> None:
        """Close the clients and the loop (the next invocation would open them again)."""
        if self._runner is None:
            return
        self._runner.run(self._discard())
        self._runner.close()
        self._runner = None

    async def _handle(self, event: object, context: object, kind: Kind) -> BatchResponse:
        records = parse_event(event)
        deadline = deadline_of(context, asyncio.get_running_loop())
        settings = ConsumerSettings.from_env()
        if self._opened is not None and self._opened.settings != settings:
            await self._discard()
        if not await self._tables_checked(settings, kind, deadline):
            return _retry_from(records[0].record.sequence_number if records else None)
        opened = await self._processors(settings)
        try:
            retry_from = await process_in_order(opened.get(kind), records, deadline)
        except BaseException:
            await self._discard()  # a bug or a cancellation: trust nothing opened
            raise
        if retry_from is not None:
            await self._discard()
        return _retry_from(retry_from)

    async def _tables_checked(
        self, settings: ConsumerSettings, kind: Kind, deadline: float | None
    ) -> bool:
        """False when DescribeTable got no answer in time; UnusableTableError is logged and
        fails the invocation."""
        try:
            async with asyncio.timeout_at(deadline):
                await self._check_tables(settings, kind)
        except TRANSIENT as exc:
            log.warning("tables not checked: the batch is retried", extra={"error": str(exc)})
            return False
        return True

    async def _check_tables(self, settings: ConsumerSettings, kind: Kind) -> None:
        """Once per kind for the clients opened."""
        if self._tables is None or self._tables.settings != settings:
            # Our JSON lines instead of the runtime's plain text, which drops their fields; and
            # LOG_LEVEL=DEBUG reaches our loggers only, never the libraries' payload dumps.
            configure_logging(settings.log_level)
            self._tables = TableCheck(settings, MAX_ATTEMPTS)
        try:
            await self._tables.ensure(kind)
        except UnusableTableError as exc:
            log.error(str(exc), extra={"kind": kind})
            raise

    async def _processors(self, settings: ConsumerSettings) -> OpenedProcessors:
        if self._opened is None:
            self._opened = await OpenedProcessors.open(settings, MAX_ATTEMPTS)
            self.openings += 1
        return self._opened

    async def _discard(self) -> None:
        """Close the clients; the next ones check their tables again."""
        opened, self._opened, self._tables = self._opened, None, None
        if opened is not None:
            await opened.close()


def _retry_from(sequence_number: str | None) -> BatchResponse:
    """The answer that has Lambda retry the batch from that record; None: all is stored."""
    if sequence_number is None:
        return {"batchItemFailures": []}
    return {"batchItemFailures": [{"itemIdentifier": sequence_number}]}


ENVIRONMENT = ExecutionEnvironment()


def events_handler(event: object, context: object = None) -> BatchResponse:
    return ENVIRONMENT.handle(event, context, "events")


def programs_handler(event: object, context: object = None) -> BatchResponse:
    return ENVIRONMENT.handle(event, context, "programs")


def match_handler(event: object, context: object = None) -> dict[str, int]:
    """Scheduled (every minute, infra/): decide the parked conversions that can be decided now
    (consumers/attribution/matcher.py). The scheduled event itself says nothing we need."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_match_once(ConsumerSettings.from_env()))


async def _match_once(settings: ConsumerSettings) -> dict[str, int]:
    configure_logging(settings.log_level)
    async with AsyncExitStack() as stack:
        dynamodb = await open_dynamodb(settings, stack)
        decided = await build_matcher(settings, dynamodb, ConsumerMetrics()).look()
    return {"decided": decided}
