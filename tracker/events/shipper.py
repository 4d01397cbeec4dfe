"""The background shipper: buffer -> PutRecords batches, retrying only what failed.

One loop forms batches (a full one at once, a partial one after a short linger) and hands each to
its own send task, up to `max_in_flight` at a time, so a backlog drains through parallel calls.
A send task owns its batch until every entry is accepted: it retries the failed entries with
jittered exponential backoff and never drops them. On shutdown, `drain` sends everything left
within a deadline; what cannot be sent by then is counted and logged as lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

from tracker.backoff import backoff_delay
from tracker.events.buffer import MAX_BATCH_RECORDS, Entry, EventBuffer
from tracker.events.kpl import pack
from tracker.events.sink import RecordSink
from tracker.metrics import TrackerMetrics

log = logging.getLogger(__name__)


# Kinesis bills and throttles PUTs in 25 KB payload units, rounded up per record.
PAYLOAD_UNIT = 25 * 1024
AGGREGATED_BATCH_EVENTS = 20_000
AGGREGATED_BATCH_BYTES = 4 * 1024 * 1024


def _events(entries: list[Entry]) -> int:
    return sum(entry.events for entry in entries)


class Shipper:
    def __init__(
        self,
        buffer: EventBuffer,
        sink: RecordSink,
        metrics: TrackerMetrics,
        *,
        linger: float,
        max_in_flight: int,
        aggregate: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self._buffer = buffer
        self._sink = sink
        self._metrics = metrics
        self._linger = linger
        self._slots = asyncio.Semaphore(max_in_flight)
        self._sending: set[asyncio.Task[None]] = set()
        self._in_flight_entries = 0
        self._rng = rng or random.Random()
        self._closing = False
        self._aggregate = aggregate

    @property
    def pending(self) -> int:
        """Events not yet accepted by Kinesis: buffered plus in send tasks."""
        return len(self._buffer) + self._in_flight_entries

    async def run(self) -> None:
        """Form batches and start send tasks until cancelled."""
        while True:
            await self._buffer.wait_nonempty()
            if not self._closing and len(self._buffer) < MAX_BATCH_RECORDS:
                await self._buffer.wait_full_batch(self._linger)
            await self._slots.acquire()
            batch = self._next_batch()
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sent)

    def _next_batch(self) -> list[Entry]:
        if not self._aggregate:
            return self._buffer.take()
        # Aggregated records of ~50 KB hold ~250 events each: one call carries thousands.
        return pack(self._buffer.take(AGGREGATED_BATCH_EVENTS, AGGREGATED_BATCH_BYTES))

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._slots.release()

    async def _send(self, batch: list[Entry]) -> None:
        pending, pending_events = batch, _events(batch)
        self._in_flight_entries += pending_events
        try:
            attempt = 0
            while pending:
                remaining = await self._put_once(pending, pending_events)
                remaining_events = _events(remaining)
                self._in_flight_entries -= pending_events - remaining_events
                pending, pending_events = remaining, remaining_events
                if pending:
                    self._metrics.retried_entries.inc(len(pending))
                    await asyncio.sleep(backoff_delay(attempt, self._rng))
                    attempt += 1
        finally:
            self._in_flight_entries -= pending_events

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
        if failed:
            self._metrics.failed_entries.inc(len(failed))
        return refused

    async def _until_idle(self) -> None:
        while len(self._buffer) or self._sending:
            if self._sending:
                await asyncio.wait(list(self._sending), return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(0.005)  # the runner is about to take the rest

    async def drain(self, runner: asyncio.Task[None], deadline: float) -> int:
        """Stop lingering, ship everything left within `deadline` seconds; return events lost."""
        self._closing = True
        self._buffer.wake()
        try:
            async with asyncio.timeout(deadline):
                await self._until_idle()
        except TimeoutError:
            pass
        runner.cancel()
        lost = self.pending
        for task in list(self._sending):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await asyncio.gather(*self._sending, return_exceptions=True)
        if lost:
            self._metrics.dropped_shutdown.inc(lost)
            log.error(
                "events lost at shutdown: Kinesis did not accept them before the deadline",
                extra={"events": lost},
            )
        return lost
