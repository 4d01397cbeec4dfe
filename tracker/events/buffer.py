"""The bounded in-memory buffer between the request path and the shipper.

The request path only appends (never awaits). What the buffer does not take (it is full, or it
has been diverted because Kinesis is behind, or write-ahead mode sends everything to disk) goes
to its `overflow`: the on-disk log, once the app is wired. The shipper waits for "something to
send" or "a full batch".
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from tracker.events.entry import Entry, new_entry

MAX_BATCH_RECORDS = 500  # Kinesis PutRecords limit
MAX_BATCH_BYTES = 5 * 1024 * 1024  # Kinesis PutRecords limit, data plus partition keys


def _discard(entry: Entry) -> None:
    """The overflow of a buffer nobody wired to a disk log (pure unit tests)."""


class EventBuffer:
    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        # What offer() takes: max_events, or 0 while diverted. One comparison on the request
        # path serves "full" and "diverted" alike.
        self._limit = max_events
        self._entries: deque[Entry] = deque()
        self._nonempty = asyncio.Event()
        self._full_batch = asyncio.Event()
        self.overflow: Callable[[Entry], None] = _discard

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def diverted(self) -> bool:
        return self._limit == 0

    def divert(self, diverted: bool) -> None:
        """Send every new event to the overflow (True) or take them again (False)."""
        self._limit = 0 if diverted else self.max_events

    def offer(self, partition_key: str, data: bytes) -> bool:
        """Append one event; False when it went to the overflow instead."""
        entries = self._entries
        size = len(entries)
        if size >= self._limit:
            self.overflow(new_entry(Entry, (partition_key, data, 1, None)))
            return False
        entries.append(new_entry(Entry, (partition_key, data, 1, None)))
        if size == 0:
            self._nonempty.set()
        elif size + 1 == MAX_BATCH_RECORDS:
            self._full_batch.set()
        return True

    def take(
        self, max_records: int = MAX_BATCH_RECORDS, max_bytes: int = MAX_BATCH_BYTES
    ) -> list[Entry]:
        """Remove and return the oldest entries that fit in one PutRecords call (at least one)."""
        entries = self._entries
        popleft = entries.popleft
        batch = [popleft() for _ in range(min(len(entries), max_records))]
        if sum([len(e.data) + len(e.partition_key) for e in batch]) > max_bytes:
            fitting = _fitting(batch, max_bytes)  # rare: events are a few hundred bytes
            entries.extendleft(reversed(batch[fitting:]))
            del batch[fitting:]
        if not entries:
            self._nonempty.clear()
        if len(entries) < MAX_BATCH_RECORDS:
            self._full_batch.clear()
        return batch

    def keep(self, entries: list[Entry]) -> list[Entry]:
        """Take back entries the overflow could not store, as far as there is room; the rest
        are returned. Diversion does not apply: this is memory's last chance to hold them."""
        room = max(0, self.max_events - len(self._entries))
        self._entries.extend(entries[:room])
        if self._entries:
            self._nonempty.set()
            if len(self._entries) >= MAX_BATCH_RECORDS:
                self._full_batch.set()
        return entries[room:]

    def take_all(self) -> list[Entry]:
        """Everything waiting, oldest first (moving memory's backlog to disk)."""
        taken = list(self._entries)
        self._entries.clear()
        self._nonempty.clear()
        self._full_batch.clear()
        return taken

    def wake(self) -> None:
        """End a linger early (shutdown): the shipper takes whatever is waiting."""
        self._full_batch.set()

    async def wait_nonempty(self) -> None:
        await self._nonempty.wait()

    async def wait_full_batch(self, linger: float) -> None:
        """Return when a full batch is waiting or after `linger` seconds, whichever is first."""
        if len(self._entries) >= MAX_BATCH_RECORDS:
            return
        try:
            async with asyncio.timeout(linger):
                await self._full_batch.wait()
        except TimeoutError:
            pass


def _fitting(batch: list[Entry], max_bytes: int) -> int:
    """How many leading entries fit in max_bytes; at least one, which always goes alone."""
    size = 0
    for count, entry in enumerate(batch):
        size += len(entry.data) + len(entry.partition_key)
        if size > max_bytes:
            return max(count, 1)
    return len(batch)
