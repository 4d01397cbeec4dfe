"""The random secret of each UTC day behind `visitor_id`, shared by every tracker through Redis.

Whichever tracker needs a day's secret first creates it: `SET NX` with an expiry and a `GET` in
one MULTI/EXEC, so every tracker ends up with the same bytes. The key expires 24 hours after its
day ends, so no secret lives more than 48 hours; once it is gone, nobody (we included) can link
a `visitor_id` back to an address and user agent.

The request path only reads a dict (`for_day`). A background task fetches today's secret, and
tomorrow's a few minutes before midnight, and forgets past days in memory at midnight. No secret
at hand means no `visitor_id` (fail closed), never a wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

import redis.asyncio as redis
from redis.exceptions import RedisError

from tracker.backoff import backoff_delay

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400
SECRET_BYTES = 32
# A day's key outlives its day by this much: a tracker whose clock lags still finds it.
KEY_GRACE_SECONDS = DAY_SECONDS
# Tomorrow's secret is fetched this long before midnight, so the first request of the day has it.
PREFETCH_SECONDS = 300.0
# Redis may lose a key (a flush, a failover without persistence): check it this often, and put
# ours back so that trackers started later agree with us.
RECHECK_SECONDS = 60.0
MIN_GAP_SECONDS = 0.1
KEY_PREFIX = "privacy:visitor-secret:"


def utc_day(epoch_seconds: float) -> int:
    """Days since the epoch, in UTC."""
    return int(epoch_seconds // DAY_SECONDS)


class DailySecrets:
    def __init__(self, client: redis.Redis, clock: Callable[[], float]) -> None:
        self._client = client
        self._clock = clock
        self._secrets: dict[int, bytes] = {}
        self.for_day = self._secrets.get  # the request path: one dict lookup
        self.failures = 0
        self._wanted = asyncio.Event()

    def fetch_soon(self) -> None:
        """A request found no secret for its day (a new day, a clock jump): fetch now."""
        self._wanted.set()

    async def run(self) -> None:
        """Keep today's (and near midnight tomorrow's) secret at hand, forever."""
        attempt = 0
        while True:
            now = self._clock()
            try:
                await self._refresh(now)
            except (RedisError, OSError) as exc:
                self.failures += 1
                attempt += 1
                log.warning("visitor secret unavailable", extra={"error": type(exc).__name__})
                await asyncio.sleep(max(0.05, backoff_delay(attempt)))
                continue
            attempt = 0
            await self._sleep(_next_wake(now))

    async def _sleep(self, seconds: float) -> None:
        """Until the next planned check, or sooner when a request wants a secret (but never
        sooner than MIN_GAP_SECONDS: requests cannot drive Redis calls at their own rate)."""
        await asyncio.sleep(MIN_GAP_SECONDS)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds - MIN_GAP_SECONDS)):
                await self._wanted.wait()
        self._wanted.clear()

    async def _refresh(self, now: float) -> None:
        today = utc_day(now)
        wanted = [today]
        if (today + 1) * DAY_SECONDS - now <= PREFETCH_SECONDS:
            wanted.append(today + 1)
        for day in wanted:
            self._secrets[day] = await self._shared_secret(day)
        log.debug("visitor secrets at hand", extra={"days": wanted})
        for day in [d for d in self._secrets if d < today]:
            del self._secrets[day]  # past days are never asked for again

    async def _shared_secret(self, day: int) -> bytes:
        """The day's secret in Redis; ours (or a new one) if Redis has none."""
        key = f"{KEY_PREFIX}{day}"
        mine = self._secrets.get(day) or os.urandom(SECRET_BYTES)
        expires_at = (day + 1) * DAY_SECONDS + KEY_GRACE_SECONDS
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(key, mine, nx=True, exat=expires_at)
            pipe.get(key)
            _, shared = await pipe.execute()
        if not isinstance(shared, bytes) or len(shared) < SECRET_BYTES // 2:
            raise RedisError("the shared visitor secret is missing or too short")
        return shared


def _next_wake(now: float) -> float:
    """Seconds until the next check: the recheck interval, but never past the prefetch moment
    or midnight."""
    midnight = (utc_day(now) + 1) * DAY_SECONDS
    prefetch = midnight - PREFETCH_SECONDS
    moments = [m for m in (prefetch, midnight) if m > now]
    return max(0.01, min(RECHECK_SECONDS, *(m - now for m in moments)))
