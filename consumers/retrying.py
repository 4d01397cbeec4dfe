"""Retrying a call with backoff: forever in a worker (nothing may be skipped), bounded in Lambda."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

from tracker.backoff import backoff_delay

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger(__name__)

# What a storage call can fail with that is worth trying again.
TRANSIENT = (BotoCoreError, ClientError, RedisError, OSError, TimeoutError)
# Refusals that no retry can change: the request itself is wrong (an item over 400 KB, say).
PERMANENT_CODES = frozenset({"ValidationException", "SerializationException"})


class UnprocessedItemsError(Exception):
    """DynamoDB kept refusing some items within the attempts allowed (Lambda only)."""


def is_permanent(exc: BaseException) -> bool:
    if not isinstance(exc, ClientError):
        return False
    return exc.response.get("Error", {}).get("Code") in PERMANENT_CODES


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    what: str,
    max_attempts: int | None,
    on_error: Callable[[], None] = lambda: None,
) -> T:
    """Await operation() until it succeeds; re-raise after max_attempts (None: never give up)."""
    attempt = 0
    while True:
        try:
            return await operation()
        except TRANSIENT as exc:
            if is_permanent(exc):
                raise
            attempt += 1
            on_error()
            if max_attempts is not None and attempt >= max_attempts:
                raise
            log.warning("%s failed, retrying", what, extra={"error": str(exc), "attempt": attempt})
            await asyncio.sleep(backoff_delay(attempt))


async def until_processed(
    step: Callable[[R], Awaitable[R | None]], request: R, what: str, max_attempts: int | None
) -> None:
    """Send `request`, then what DynamoDB left unprocessed of it (`step` returns that, or None),
    with backoff, until nothing is left; give up after max_attempts (None: never)."""
    attempt = 0
    while (left := await step(request)) is not None:
        attempt += 1
        if max_attempts is not None and attempt >= max_attempts:
            raise UnprocessedItemsError(f"{what}: still unprocessed after {attempt} attempts")
        request = left
        await asyncio.sleep(backoff_delay(attempt))
