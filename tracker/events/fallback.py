"""Where events go that the disk log refuses: back into memory while it has room, else dropped.

Memory is the last place an event can live, so a refused event is only counted as dropped, with
the disk's reason, once memory is full too, or once the process is closing (memory dies with it).
"""

from __future__ import annotations

from tracker.events.buffer import EventBuffer
from tracker.events.entry import Entry
from tracker.metrics import Drops


class MemoryFallback:
    def __init__(self, buffer: EventBuffer, drops: Drops) -> None:
        self._buffer = buffer
        self._drops = drops
        self.closing = False

    def __call__(self, entries: list[Entry], reason: str) -> None:
        refused = entries if self.closing else self._buffer.keep(entries)
        if refused:
            self._drops.count(reason, sum(e.events for e in refused))
