"""L1: the in-memory program cache, TTL + LRU, with a separate short-lived negative cache.

Entries are `(expires_at, value)` in a cachetools LRUCache: the TTL check is one comparison on
the hit path, cheaper than TTLCache's per-access expiry bookkeeping. Unknown ids live in their own,
smaller cache so that a flood of bogus ids cannot evict real programs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import LRUCache

from tracker.programs.model import Program, ProgramDeletion, ProgramUpdate


@dataclass(frozen=True, slots=True)
class Absent:
    """The id is known not to exist: Redis had no program, or a deletion of this version came."""

    version: int


# Redis had nothing: below every real version, so that any pushed upsert replaces it.
UNKNOWN = Absent(-1)

Clock = Callable[[], float]


class ProgramCache:
    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        negative_max_entries: int,
        negative_ttl_seconds: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._programs: LRUCache[str, tuple[float, Program]] = LRUCache(max_entries)
        self._absent: LRUCache[str, tuple[float, Absent]] = LRUCache(negative_max_entries)
        self._ttl = ttl_seconds
        self._negative_ttl = negative_ttl_seconds
        self._clock = clock

    def __len__(self) -> int:
        return len(self._programs)

    def get(self, program_id: str) -> Program | Absent | None:
        """The cached program, Absent when the id is known to be unknown, None on a miss."""
        now = self._clock()
        entry = self._programs.get(program_id)
        if entry is not None:
            if entry[0] > now:
                return entry[1]
            del self._programs[program_id]
        absent = self._absent.get(program_id)
        if absent is not None:
            if absent[0] > now:
                return absent[1]
            del self._absent[program_id]
        return None

    def put(self, value: Program | Absent, program_id: str) -> None:
        """Store what Redis answered (a lookup, not a push: no version ordering to respect)."""
        if isinstance(value, Program):
            self._absent.pop(program_id, None)
            self._programs[program_id] = (self._clock() + self._ttl, value)
        else:
            self._programs.pop(program_id, None)
            self._absent[program_id] = (self._clock() + self._negative_ttl, value)

    def apply(self, update: ProgramUpdate) -> bool:
        """Apply a pushed change unless its version is not above the one we hold."""
        if update.version <= self._known_version(update.program_id):
            return False
        if isinstance(update, ProgramDeletion):
            self.put(Absent(update.version), update.program_id)
        else:
            self.put(update, update.program_id)
        return True

    def _known_version(self, program_id: str) -> int:
        current = self.get(program_id)
        return -1 if current is None else current.version

    def clear_absent(self) -> None:
        self._absent.clear()

    def clear(self) -> None:
        self._programs.clear()
        self._absent.clear()

    def program_ids(self) -> list[str]:
        return list(self._programs.keys())
