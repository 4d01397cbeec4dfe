"""Which programs a customer owns, from the core data in Redis (`program:{id}` hashes).

An in-memory directory, rebuilt by a background task every REFRESH_SECONDS from SCAN
`program:*` and pipelined HGETALLs, answers `GET /v1/programs`. A report asks Redis for its one
program (HGETALL) on every request instead: the owner check then follows core data at once, so a
program just loaded is reportable, and a deleted or moved one is not, without waiting for the
next refresh. The directory is bounded at max_programs; past that it stops growing, says so in
the log, and the rest are still found one at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis

from reports.unavailable import UnavailableError, bounded
from tracker.programs.model import ProgramFormatError, parse_redis_hash
from tracker.programs.redis_writer import KEY_PREFIX, program_key

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
RETRY_SECONDS = 5.0
MAX_PROGRAMS = 1_000_000
SCAN_BATCH = 1_000
# A full scan of a million programs takes a while; only a stuck one is abandoned.
SCAN_TIMEOUT_SECONDS = 300.0
STORE = "redis"


@dataclass(frozen=True, slots=True)
class ProgramEntry:
    program_id: str
    program_name: str
    customer_id: int

    def to_json(self) -> dict[str, str]:
        return {"program_id": self.program_id, "program_name": self.program_name}


def _entry(fields: Any) -> ProgramEntry | None:
    """The entry of one hash; None for a tombstone, an empty (absent) key or a malformed hash
    (the tracker refuses those too)."""
    if not fields:
        return None
    try:
        program = parse_redis_hash(fields)
    except ProgramFormatError:
        return None
    if program is None:
        return None
    return ProgramEntry(program.program_id, program.program_name, program.customer_id)


class ProgramDirectory:
    """Programs by id and by customer; refreshed from Redis by `run()`."""

    def __init__(
        self,
        client: redis.Redis,
        timeout: float,
        max_programs: int = MAX_PROGRAMS,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._max_programs = max_programs
        self._refresh_seconds = refresh_seconds
        self._by_customer: dict[int, dict[str, ProgramEntry]] = {}
        self._customer_of: dict[str, int] = {}
        self.loaded = False  # once one full scan has succeeded
        self.size = 0

    def programs_of(self, customer_id: int) -> list[ProgramEntry]:
        """The customer's programs by id. UnavailableError until the first scan has succeeded: an
        empty list then would say "you have none"."""
        if not self.loaded:
            raise UnavailableError(STORE)
        owned = self._by_customer.get(customer_id, {})
        return [owned[program_id] for program_id in sorted(owned)]

    async def program(self, program_id: str) -> ProgramEntry | None:
        """The program as Redis holds it now (None: absent or deleted); the directory learns it."""
        fields = await bounded(self._client.hgetall(program_key(program_id)), STORE, self._timeout)
        entry = _entry(fields)
        self._place(program_id, entry)
        return entry

    async def run(self) -> None:
        """Refresh for ever: every refresh_seconds, or RETRY_SECONDS after a failed scan (the
        last good directory is kept meanwhile)."""
        while True:
            try:
                await self.refresh()
            except UnavailableError:
                log.warning("program directory refresh failed; keeping the last one")
                await asyncio.sleep(min(RETRY_SECONDS, self._refresh_seconds))
                continue
            await asyncio.sleep(self._refresh_seconds)

    async def refresh(self) -> None:
        entries = await bounded(self._scan(), STORE, max(SCAN_TIMEOUT_SECONDS, self._timeout))
        self._install(entries)

    async def _scan(self) -> list[ProgramEntry]:
        entries: dict[str, ProgramEntry] = {}
        async for keys in self._key_batches():
            async with self._client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.hgetall(key)
                hashes = await pipe.execute()
            for hashed in hashes:
                entry = _entry(hashed)
                if entry is not None:
                    entries[entry.program_id] = entry  # SCAN may return a key twice
            if len(entries) >= self._max_programs:
                log.warning("program directory full", extra={"programs": self._max_programs})
                break
        return list(entries.values())[: self._max_programs]

    async def _key_batches(self) -> AsyncIterator[list[bytes | str]]:
        cursor: int | bytes = 0
        while True:
            cursor, keys = await self._client.scan(
                cursor=int(cursor), match=f"{KEY_PREFIX}*", count=SCAN_BATCH
            )
            if keys:
                yield keys
            if int(cursor) == 0:
                return

    def _install(self, entries: Iterable[ProgramEntry]) -> None:
        by_customer: dict[int, dict[str, ProgramEntry]] = {}
        customer_of: dict[str, int] = {}
        for entry in entries:
            by_customer.setdefault(entry.customer_id, {})[entry.program_id] = entry
            customer_of[entry.program_id] = entry.customer_id
        # Swapped whole: a request never sees half a refresh.
        self._by_customer, self._customer_of = by_customer, customer_of
        self.size = len(customer_of)
        self.loaded = True

    def _place(self, program_id: str, entry: ProgramEntry | None) -> None:
        previous = self._customer_of.pop(program_id, None)
        if previous is not None:
            self._by_customer.get(previous, {}).pop(program_id, None)
        if entry is None or (previous is None and self.size >= self._max_programs):
            self.size = len(self._customer_of)
            return
        self._by_customer.setdefault(entry.customer_id, {})[program_id] = entry
        self._customer_of[program_id] = entry.customer_id
        self.size = len(self._customer_of)
