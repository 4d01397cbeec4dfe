"""L1: the in-memory program cache, TTL + LRU, with a separate short-lived negative cache.

Entries are `(expires_at, value)` in an OrderedDict kept in least-recently-used order: a hit is
a dict lookup, one comparison for the TTL and a move to the end, all in C (a third of the cost
of cachetools' LRUCache.get, a fifth of TTLCache's). Unknown ids live in their own, smaller
cache so that a flood of bogus ids cannot evict real programs.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tracker.programs.model import Program, ProgramDeletion, ProgramUpdate


@dataclass(frozen=True, slots=True)
class Absent:
    """The id is known not to exist: Redis had no program, or a deletion of this version came."""

    version: int


# Redis had nothing: below every real version, so that any pushed upsert replaces it.
UNKNOWN = Absent(-1)

Clock = Callable[[], float]
V = TypeVar("V")


def _store(entries: OrderedDict[str, V], key: str, value: V, max_entries: int) -> None:
    """Insert or refresh `key` as the most recently used, evicting the least recently used."""
    entries[key] = value
    entries.move_to_end(key)
    if len(entries) > max_entries:
        entries.popitem(last=False)


class ProgramCache:
    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        negative_max_entries: int,
        negative_ttl_seconds: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self._programs: OrderedDict[str, tuple[float, Program]] = OrderedDict()
        self._absent: OrderedDict[str, tuple[float, Absent]] = OrderedDict()
        self._max_entries = max_entries
        self._negative_max_entries = negative_max_entries
        self._ttl = ttl_seconds
        self._negative_ttl = negative_ttl_seconds
        self._clock = clock

    def __len__(self) -> int:
        return len(self._programs)

    def get(self, program_id: str) -> Program | Absent | None:
        """The cached program, Absent when the id is known to be unknown, None on a miss."""
        now = self._clock()
        programs = self._programs
        entry = programs.get(program_id)
        if entry is not None:
            if entry[0] > now:
                programs.move_to_end(program_id)
                return entry[1]
            del programs[program_id]
        absent_ids = self._absent
        absent = absent_ids.get(program_id)
        if absent is not None:
            if absent[0] > now:
                absent_ids.move_to_end(program_id)
                return absent[1]
            del absent_ids[program_id]
        return None

    def put(self, value: Program | Absent, program_id: str) -> None:
        """Store what Redis answered (a lookup, not a push: no version ordering to respect)."""
        if isinstance(value, Program):
            self._absent.pop(program_id, None)
            expires = self._clock() + self._ttl
            _store(self._programs, program_id, (expires, value), self._max_entries)
        else:
            self._programs.pop(program_id, None)
            expires = self._clock() + self._negative_ttl
            _store(self._absent, program_id, (expires, value), self._negative_max_entries)

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
