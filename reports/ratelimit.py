"""REPORTS_RATE_LIMIT requests per hour per key, shared by every `reports serve` process.

A fixed window per UTC clock hour: one Redis counter `reports:rate:{key_id}:{hour}` (INCR, then
EXPIRE past the hour's end, in one pipeline). Fixed windows let a client spend up to twice the
limit across an hour boundary; in exchange every answer can say exactly when the count resets,
which is what the X-RateLimit-* headers promise. When Redis cannot count, the request is refused
(503) rather than served unlimited.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as redis

from reports.unavailable import bounded

WINDOW_SECONDS = 3600
# The counter outlives its hour a little: a clock slightly behind Redis' still finds it.
EXPIRE_SECONDS = WINDOW_SECONDS + 60
STORE = "redis"


@dataclass(frozen=True, slots=True)
class Allowance:
    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int  # when the window ends, epoch seconds
    retry_after: int  # seconds until then, at least 1

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class RateLimiter:
    def __init__(
        self,
        client: redis.Redis,
        limit: int,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._limit = limit
        self._timeout = timeout
        self._clock = clock

    async def take(self, key_id: str) -> Allowance:
        """Count one request of the key; UnavailableError when Redis cannot count it."""
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        count = await bounded(self._count(f"reports:rate:{key_id}:{window}"), STORE, self._timeout)
        reset = (window + 1) * WINDOW_SECONDS
        return Allowance(
            allowed=count <= self._limit,
            limit=self._limit,
            remaining=max(0, self._limit - count),
            reset_epoch=reset,
            retry_after=max(1, math.ceil(reset - now)),
        )

    async def _count(self, name: str) -> int:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, EXPIRE_SECONDS)
            count, _ = await pipe.execute()
        return int(count)
