"""Redis lookups on the request path: bounded in time, and failing fast while Redis is down.

A request must never wait on client retries or connect timeouts. Every call is capped at
`timeout` seconds; after a failure the store answers "unavailable" at once for `cooldown` seconds
before it lets one request probe Redis again.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as redis
from redis.exceptions import RedisError

from tracker.programs.model import Program, ProgramFormatError, RedisHash, parse_redis_hash
from tracker.programs.redis_writer import program_key
from tracker.validation.cache import UNKNOWN, Absent

log = logging.getLogger(__name__)


class StoreUnavailableError(Exception):
    """Redis could not answer in time (or is known to be down)."""


class ProgramStore:
    def __init__(
        self,
        client: redis.Redis,
        timeout: float,
        *,
        bulk_client: redis.Redis,
        cooldown: float = 1.0,
    ) -> None:
        self._client = client
        self._bulk_client = bulk_client
        self._timeout = timeout
        self._cooldown = cooldown
        self._down_until = 0.0

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def mark_down(self) -> None:
        self._down_until = time.monotonic() + self._cooldown

    def mark_up(self) -> None:
        self._down_until = 0.0

    async def fetch(self, program_id: str) -> Program | Absent:
        """The program in Redis, UNKNOWN when there is none (or only a deletion tombstone)."""
        if not self.available:
            raise StoreUnavailableError("redis marked down")
        try:
            async with asyncio.timeout(self._timeout):
                fields = await self._client.hgetall(program_key(program_id))
        except (RedisError, OSError, TimeoutError) as exc:
            self.mark_down()
            raise StoreUnavailableError(str(exc) or type(exc).__name__) from exc
        return _decode(program_id, fields)

    async def fetch_many(self, program_ids: list[str]) -> dict[str, Program | Absent]:
        """Many programs in one round trip (resync), on the client without request-path timeouts."""
        pipe = self._bulk_client.pipeline(transaction=False)
        for program_id in program_ids:
            pipe.hgetall(program_key(program_id))
        results = await pipe.execute()
        return {pid: _decode(pid, fields) for pid, fields in zip(program_ids, results, strict=True)}


def _decode(program_id: str, fields: RedisHash) -> Program | Absent:
    if not fields:
        return UNKNOWN
    try:
        program = parse_redis_hash(fields)
    except ProgramFormatError as exc:
        # A malformed hash is an operator error; treat the program as unknown, loudly.
        log.warning("malformed program hash", extra={"program_id": program_id, "error": str(exc)})
        return UNKNOWN
    if program is None:
        return UNKNOWN
    return program
