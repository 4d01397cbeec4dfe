"""A backing store (Redis, a DynamoDB table) that failed or did not answer in time.

The one failure the API answers with 503: translated here, at the boundary, from whatever the
client library raised, so that no handler has to know redis-py's or botocore's exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

T = TypeVar("T")

# What a client raises when its store is down, slow or refuses the call. Cancellation is not an
# Exception and passes through untouched.
STORE_ERRORS = (RedisError, BotoCoreError, ClientError, OSError, TimeoutError, aiohttp.ClientError)


class UnavailableError(Exception):
    """`what` (e.g. "redis", "report keys") failed or timed out; the message names no data."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} unavailable")
        self.what = what


async def bounded(call: Awaitable[T], what: str, seconds: float) -> T:
    """Await `call` for at most `seconds`; any store failure becomes UnavailableError(what)."""
    try:
        async with asyncio.timeout(seconds):
            return await call
    except STORE_ERRORS as exc:
        raise UnavailableError(what) from exc
