"""A request's Validation outcome: L1 first, then Redis through a single-flight resolver."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from tracker.programs.model import Program
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.task_stop import stop_tasks
from tracker.validation.cache import Absent, ProgramCache
from tracker.validation.store import ProgramStore, StoreUnavailableError

OK = pb.OK
UNKNOWN_PROGRAM = pb.UNKNOWN_PROGRAM
INACTIVE = pb.INACTIVE
OUTSIDE_WINDOW = pb.OUTSIDE_WINDOW
CUSTOMER_MISMATCH = pb.CUSTOMER_MISMATCH
UNVERIFIED = pb.UNVERIFIED


def classify(found: Program | Absent | None, customer_id: int | None, now_s: float) -> int:
    """The Validation enum value for a request, given what the lookup found (None: no answer)."""
    if found is None:
        return UNVERIFIED
    if isinstance(found, Absent):
        return UNKNOWN_PROGRAM
    if not found.valid:
        return INACTIVE
    if (found.valid_from is not None and now_s < found.valid_from) or (
        found.valid_until is not None and now_s >= found.valid_until
    ):
        return OUTSIDE_WINDOW
    if customer_id is not None and customer_id != found.customer_id:
        return CUSTOMER_MISMATCH
    return OK


@dataclass(slots=True)
class _Flight:
    task: asyncio.Task[Program | Absent | None] | None = None
    # Set when a push or a purge arrived while Redis was being read: the answer may predate it,
    # so it is given to the waiting requests but not cached.
    stale: bool = field(default=False)


class MissResolver:
    """Resolves cache misses against Redis: one call per id however many requests miss at once.

    Beyond `max_in_flight` distinct ids being fetched, further misses are answered UNVERIFIED
    at once, so a flood of random ids cannot queue without bound behind Redis.
    """

    def __init__(self, cache: ProgramCache, store: ProgramStore, max_in_flight: int = 1000) -> None:
        self._cache = cache
        self._store = store
        self._max_in_flight = max_in_flight
        self._flights: dict[str, _Flight] = {}
        self.redis_calls = 0

    @property
    def cache(self) -> ProgramCache:
        """The cache that resolved programs go into."""
        return self._cache

    @property
    def store(self) -> ProgramStore:
        """Where misses are resolved: Redis."""
        return self._store

    async def resolve(self, program_id: str) -> Program | Absent | None:
        """What Redis holds for the id; None when Redis cannot answer now."""
        flight = self._flights.get(program_id)
        if flight is None:
            if len(self._flights) >= self._max_in_flight or not self._store.available:
                return None
            flight = _Flight()
            self._flights[program_id] = flight
            flight.task = asyncio.ensure_future(self._fetch(program_id, flight))
        assert flight.task is not None
        # shield: a client that goes away must not cancel the fetch other requests wait on.
        return await asyncio.shield(flight.task)

    async def _fetch(self, program_id: str, flight: _Flight) -> Program | Absent | None:
        self.redis_calls += 1
        try:
            found = await self._store.fetch(program_id)
        except StoreUnavailableError:
            return None
        finally:
            del self._flights[program_id]
        if not flight.stale:
            self._cache.put(found, program_id)
        return found

    def invalidate(self, program_id: str) -> None:
        flight = self._flights.get(program_id)
        if flight is not None:
            flight.stale = True

    def invalidate_all(self) -> None:
        for flight in self._flights.values():
            flight.stale = True

    async def close(self) -> None:
        await stop_tasks([f.task for f in self._flights.values() if f.task is not None])
