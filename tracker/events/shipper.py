"""The background shipper: memory and the on-disk log -> PutRecords batches, retrying what failed.

One loop forms batches, oldest first (the on-disk log before memory), and hands each to its own
send task, up to `max_in_flight` at a time, so a backlog drains through parallel calls. A send
task owns its batch until every entry is accepted, retrying the failed entries with jittered
exponential backoff. A batch read from disk is acknowledged to the log only then, so the log
deletes nothing Kinesis has not taken; a batch from memory that Kinesis has refused for
SPILL_AFTER_SECONDS is handed to the log instead.

In overflow mode `steer` decides where new events go: memory while Kinesis keeps up, the disk
while it is behind (memory above half full, or no progress for SPILL_AFTER_SECONDS, in which
case memory's backlog moves to disk too), memory again once the log has been read back.
On shutdown, `drain` ships within a deadline and writes what is left to the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import NamedTuple

from tracker.backoff import backoff_delay
from tracker.events.buffer import MAX_BATCH_RECORDS, EventBuffer
from tracker.events.entry import Entry
from tracker.events.fallback import MemoryFallback
from tracker.events.kpl import pack
from tracker.events.sink import RecordSink
from tracker.events.spill.log import DiskLog
from tracker.events.spill.segments import LogBatch, Receipt, mirrored_receipt
from tracker.metrics import TrackerMetrics
from tracker.task_stop import stop_tasks

log = logging.getLogger(__name__)


# Kinesis bills and throttles PUTs in 25 KB payload units, rounded up per record.
PAYLOAD_UNIT = 25 * 1024
AGGREGATED_BATCH_EVENTS = 20_000
AGGREGATED_BATCH_BYTES = 4 * 1024 * 1024
DIVERT_SHARE = 0.5  # of the memory buffer: above it new events go to disk
STEER_INTERVAL = 0.1


def _events(entries: list[Entry]) -> int:
    return sum(entry.events for entry in entries)


@dataclass(frozen=True, slots=True)
class ShipperOptions:
    linger: float
    max_in_flight: int
    aggregate: bool = False
    spill_after: float = 5.0
    write_ahead: bool = False
    jitter_seed: int | None = None  # tests: the same retry delays every run


class Batch(NamedTuple):
    entries: list[Entry]
    from_disk: LogBatch | None  # set when the entries were read from the on-disk log
    owed: Receipt | None  # write-ahead: events from memory that the log holds too

    @property
    def in_memory_only(self) -> bool:
        return self.from_disk is None and self.owed is None


def _memory_only(entries: list[Entry]) -> list[Entry]:
    """The entries that exist nowhere but in memory (the others are in the on-disk log)."""
    return [e for e in entries if e.on_disk is None]


class Shipper:
    def __init__(
        self,
        buffer: EventBuffer,
        disk: DiskLog,
        sink: RecordSink,
        metrics: TrackerMetrics,
        options: ShipperOptions,
    ) -> None:
        self._buffer = buffer
        self._disk = disk
        self._sink = sink
        self._metrics = metrics
        self._options = options
        self._slots = asyncio.Semaphore(options.max_in_flight)
        self._sending: set[asyncio.Task[None]] = set()
        self._unsent: dict[asyncio.Task[None], list[Entry]] = {}  # memory batches in send tasks
        self._in_flight_entries = 0
        self._rng = random.Random(options.jitter_seed)
        self._closing = False
        self._last_progress = time.monotonic()

    @property
    def pending(self) -> int:
        """Events in memory or in send tasks, not yet accepted by Kinesis."""
        return len(self._buffer) + self._in_flight_entries

    @property
    def idle(self) -> bool:
        return not self._buffer and not self._sending and self._disk.caught_up

    async def run(self) -> None:
        """Form batches and start send tasks until cancelled."""
        while True:
            await self._work()
            if not (self._closing or self._disk.readable or len(self._buffer) >= MAX_BATCH_RECORDS):
                await self._buffer.wait_full_batch(self._options.linger)
            await self._slots.acquire()
            batch = await self._next_batch()
            if batch is None:
                self._slots.release()
                continue
            task = asyncio.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    async def _work(self) -> None:
        """Return once memory or the on-disk log has something to send."""
        if self._buffer or self._disk.readable:
            return
        waiters = [
            asyncio.ensure_future(self._buffer.wait_nonempty()),
            asyncio.ensure_future(self._disk.wait_readable()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _next_batch(self) -> Batch | None:
        if self._disk.readable:
            limit = AGGREGATED_BATCH_EVENTS if self._options.aggregate else MAX_BATCH_RECORDS
            read = await self._disk.next_batch(limit)
            if read is not None:
                return Batch(self._packed(read.entries), read, None)
        if not self._buffer:
            return None
        if not self._options.aggregate:
            taken = self._buffer.take()
            return Batch(taken, None, self._owed(taken))
        # Aggregated records of ~50 KB hold ~250 events each: one call carries thousands.
        taken = self._buffer.take(AGGREGATED_BATCH_EVENTS, AGGREGATED_BATCH_BYTES)
        return Batch(pack(taken), None, self._owed(taken))

    def _owed(self, taken: list[Entry]) -> Receipt | None:
        # Only write-ahead hands written events to memory: in overflow mode none is on disk.
        return mirrored_receipt(taken) if self._options.write_ahead else None

    def _packed(self, entries: list[Entry]) -> list[Entry]:
        if not self._options.aggregate:
            return entries
        # Records spilled at shutdown may be aggregated already: only plain ones are packed.
        plain = [e for e in entries if e.events == 1]
        return pack(plain) + [e for e in entries if e.events != 1]

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._slots.release()

    async def _send(self, batch: Batch) -> None:
        pending, pending_events = batch.entries, _events(batch.entries)
        self._in_flight_entries += pending_events
        task = asyncio.current_task()
        assert task is not None
        failing_since = 0.0
        try:
            attempt = 0
            while pending:
                self._remember_unsent(task, batch, pending)
                remaining = await self._put_once(pending, pending_events)
                remaining_events = _events(remaining)
                self._in_flight_entries -= pending_events - remaining_events
                pending, pending_events = remaining, remaining_events
                if not pending:
                    break
                failing_since = failing_since or time.monotonic()
                if batch.in_memory_only and self._stuck_since(failing_since):
                    self._to_disk(pending)
                    return
                self._metrics.retried_entries.inc(len(pending))
                await asyncio.sleep(backoff_delay(attempt, self._rng))
                attempt += 1
            if batch.from_disk is not None:
                self._disk.acknowledge(batch.from_disk)
            if batch.owed is not None:
                self._disk.settle(batch.owed)
        finally:
            self._in_flight_entries -= pending_events
            self._unsent.pop(task, None)

    def _remember_unsent(
        self, task: asyncio.Task[None], batch: Batch, pending: list[Entry]
    ) -> None:
        if batch.from_disk is None:  # a disk batch stays on disk whatever happens to the task
            self._unsent[task] = pending

    def _stuck_since(self, since: float) -> bool:
        return self._spill_after_passed(since) and not self._closing

    def _spill_after_passed(self, since: float) -> bool:
        return time.monotonic() - since >= self._options.spill_after

    def _note_if_idle(self) -> None:
        if self.idle:
            self._last_progress = time.monotonic()  # a quiet tracker is not a stuck one

    def _to_disk(self, entries: list[Entry]) -> None:
        for entry in entries:
            self._disk.append(entry)

    async def _put_once(self, entries: list[Entry], events: int) -> list[Entry]:
        """One PutRecords call for `entries` (holding `events` events); the refused entries."""
        started = time.perf_counter()
        try:
            failed = await self._sink.put(entries)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("record sink raised; retrying the whole batch")
            failed = list(range(len(entries)))
        self._metrics.put_latency.observe(time.perf_counter() - started)
        self._metrics.batch_records.observe(len(entries))
        self._metrics.kinesis_records.inc(len(entries))
        self._metrics.payload_units.inc(sum([-(-len(e.data) // PAYLOAD_UNIT) for e in entries]))
        refused = [entries[i] for i in failed]
        self._metrics.shipped.inc(events - _events(refused))
        if len(failed) < len(entries):
            self._last_progress = time.monotonic()
        if failed:
            self._metrics.failed_entries.inc(len(failed))
        log.debug(
            "PutRecords",
            extra={"records": len(entries), "events": events, "refused": len(failed)},
        )
        return refused

    # --- where new events go (overflow mode) ------------------------------------------------------

    async def steer(self) -> None:
        """Divert new events to disk while Kinesis is behind, until cancelled."""
        while True:
            await asyncio.sleep(STEER_INTERVAL)
            self.steer_once()

    def steer_once(self) -> None:
        self._note_if_idle()
        if self._options.write_ahead:
            return  # every event goes to disk anyway
        stuck = self.stuck
        crowded = len(self._buffer) >= DIVERT_SHARE * self._buffer.max_events
        if (stuck or crowded) and not self._buffer.diverted:
            self._buffer.divert(True)
            moved = _memory_only(self._buffer.take_all()) if stuck else []
            self._to_disk(moved)
            log.warning(
                "Kinesis is behind: new events go to the on-disk log",
                extra={"stuck": stuck, "moved_to_disk": len(moved)},
            )
        elif self._buffer.diverted and not (stuck or crowded) and self._disk.caught_up:
            self._buffer.divert(False)
            log.info("Kinesis keeps up again: new events stay in memory")

    # --- shutdown ---------------------------------------------------------------------------------

    @property
    def stuck(self) -> bool:
        """Kinesis has accepted nothing for SPILL_AFTER_SECONDS while events wait."""
        return self._spill_after_passed(self._last_progress)

    async def _until_idle_or_stuck(self) -> None:
        # Waiting out the whole deadline for a Kinesis that is down would only delay the
        # restart that ships the rest: once it is stuck, what is left goes to disk at once.
        while not self.idle and not self.stuck:
            if self._sending:
                await asyncio.wait(
                    list(self._sending), timeout=STEER_INTERVAL, return_when=asyncio.FIRST_COMPLETED
                )
            else:
                await asyncio.sleep(0.005)  # the runner is about to take the rest

    async def drain(
        self, tasks: list[asyncio.Task[None]], fallback: MemoryFallback, deadline: float
    ) -> int:
        """Ship what can be shipped within `deadline` seconds (less if Kinesis is stuck), then
        write what is left in memory to the on-disk log; cancels `tasks` (the runner, the
        steering). Returns how many events were written to disk."""
        self._closing = True
        self._note_if_idle()
        self._buffer.wake()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(deadline):
                await self._until_idle_or_stuck()
        leftovers = _memory_only([e for entries in self._unsent.values() for e in entries])
        await stop_tasks([*tasks, *self._sending])
        leftovers = _memory_only(self._buffer.take_all()) + leftovers
        fallback.closing = True  # from here on, what the disk refuses is lost: count it
        self._disk.mirror = None  # and memory is no place to hand written events to
        self._to_disk(leftovers)
        await self._disk.flush()
        return _events(leftovers)
