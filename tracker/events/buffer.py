"""The bounded in-memory buffer between the request path and the shipper.

The request path only appends (never awaits); when the buffer is full the event is refused and the
caller counts it as dropped. The shipper waits for "something to send" or "a full batch".
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import NamedTuple

MAX_BATCH_RECORDS = 500  # Kinesis PutRecords limit
MAX_BATCH_BYTES = 5 * 1024 * 1024  # Kinesis PutRecords limit, data plus partition keys


class Entry(NamedTuple):
    partition_key: str
    data: bytes
    events: int = 1  # more than one for a KPL-aggregated record


class EventBuffer:
    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self._entries: deque[Entry] = deque()
        self._nonempty = asyncio.Event()
        self._full_batch = asyncio.Event()
        self.last_refusal = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def offer(self, partition_key: str, data: bytes) -> bool:
        """Append one event; False (and nothing stored) when the buffer is full."""
        entries = self._entries
        size = len(entries)
        if size >= self.max_events:
            self.last_refusal = time.monotonic()
            return False
        entries.append(Entry(partition_key, data))
        if size == 0:
            self._nonempty.set()
        elif size + 1 == MAX_BATCH_RECORDS:
            self._full_batch.set()
        return True

    def take(
        self, max_records: int = MAX_BATCH_RECORDS, max_bytes: int = MAX_BATCH_BYTES
    ) -> list[Entry]:
        """Remove and return the oldest entries that fit in one PutRecords call."""
        batch: list[Entry] = []
        entries = self._entries
        size = 0
        while entries and len(batch) < max_records:
            entry = entries[0]
            entry_size = len(entry.data) + len(entry.partition_key)
            if batch and size + entry_size > max_bytes:
                break
            batch.append(entries.popleft())
            size += entry_size
        if not entries:
            self._nonempty.clear()
        if len(entries) < MAX_BATCH_RECORDS:
            self._full_batch.clear()
        return batch

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
