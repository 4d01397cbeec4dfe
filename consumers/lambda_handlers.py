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

Handlers: `consumers.lambda_handlers.events_handler`, `consumers.lambda_handlers.programs_handler`.
"""

from __future__ import annotations

import asyncio
import logging

import uvloop

from consumers.lambda_batch import deadline_of, parse_event, process_in_order
from consumers.processors import Kind, OpenedProcessors
from consumers.settings import ConsumerSettings
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
        opened = await self._processors(ConsumerSettings.from_env())
        try:
            retry_from = await process_in_order(opened.get(kind), records, deadline)
        except BaseException:
            await self._discard()  # a bug or a cancellation: trust nothing opened
            raise
        if retry_from is None:
            return {"batchItemFailures": []}
        await self._discard()
        return {"batchItemFailures": [{"itemIdentifier": retry_from}]}

    async def _processors(self, settings: ConsumerSettings) -> OpenedProcessors:
        if self._opened is not None and self._opened.settings != settings:
            await self._discard()
        if self._opened is None:
            # Our JSON lines instead of the runtime's plain text, which drops their fields; and
            # LOG_LEVEL=DEBUG reaches our loggers only, never the libraries' payload dumps.
            configure_logging(settings.log_level)
            self._opened = await OpenedProcessors.open(settings, MAX_ATTEMPTS)
            self.openings += 1
        return self._opened

    async def _discard(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened.close()


ENVIRONMENT = ExecutionEnvironment()


def events_handler(event: object, context: object = None) -> BatchResponse:
    return ENVIRONMENT.handle(event, context, "events")


def programs_handler(event: object, context: object = None) -> BatchResponse:
    return ENVIRONMENT.handle(event, context, "programs")
