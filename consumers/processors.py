"""The record processors outside the worker (Lambda handlers, redrive), opened once and kept.

Both kinds share one DynamoDB client and dead-letter table (the events writer also the lean
calls' HTTP session, consumers/dynamodb_batch.py); the programs processor opens its Redis
client only when it is first asked for. Everything opened is closed with `close()`.
"""

from __future__ import annotations

import contextlib
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Literal

import redis.asyncio as redis

from consumers.aws import LeanCalls, open_dynamodb, open_lean_calls
from consumers.dead_letters import DeadLetterTable
from consumers.events_processor import build_events_processor
from consumers.metrics import ConsumerMetrics
from consumers.programs_processor import ProgramsProcessor
from consumers.records import RecordProcessor
from consumers.settings import ConsumerSettings
from tracker.programs.redis_writer import ProgramWriter

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

Kind = Literal["events", "programs"]


class OpenedProcessors:
    """Processors bounded by `max_attempts`: a caller with a deadline must not retry forever."""

    def __init__(
        self,
        settings: ConsumerSettings,
        stack: AsyncExitStack,
        dynamodb: DynamoDBClient,
        max_attempts: int,
        lean: LeanCalls | None = None,
    ) -> None:
        self.settings = settings
        self._stack = stack
        self._dynamodb = dynamodb
        self._lean = lean
        self._max_attempts = max_attempts
        self._metrics = ConsumerMetrics()
        self._dead_letters = DeadLetterTable(
            dynamodb,
            settings.dead_letter_table,
            self._metrics,
            max_attempts,
            settings.dead_letter_ttl_days,
        )
        self._processors: dict[Kind, RecordProcessor] = {}

    @classmethod
    async def open(cls, settings: ConsumerSettings, max_attempts: int) -> OpenedProcessors:
        stack = AsyncExitStack()
        try:
            dynamodb = await open_dynamodb(settings, stack)
            lean = await open_lean_calls(dynamodb, stack)
        except BaseException:
            await stack.aclose()
            raise
        return cls(settings, stack, dynamodb, max_attempts, lean)

    def get(self, kind: Kind) -> RecordProcessor:
        if kind not in self._processors:
            self._processors[kind] = self._build(kind)
        return self._processors[kind]

    async def close(self) -> None:
        """Close every client; errors of a client already broken do not matter any more."""
        with contextlib.suppress(Exception):
            await self._stack.aclose()

    def _build(self, kind: Kind) -> RecordProcessor:
        settings = self.settings
        if kind == "events":
            return build_events_processor(
                settings,
                self._dynamodb,
                self._dead_letters,
                self._metrics,
                self._max_attempts,
                self._lean,
            )
        # Short timeouts: a Lambda invocation has a deadline, and a retry comes soon anyway.
        client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        self._stack.push_async_callback(client.aclose)
        return ProgramsProcessor(
            settings.program_stream,
            ProgramWriter(client, settings.program_channel),
            self._dead_letters,
            self._metrics,
            self._max_attempts,
        )
