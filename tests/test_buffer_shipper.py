"""Unit tests for tracker.events.buffer and tracker.events.shipper, with an in-process sink."""

from __future__ import annotations

import asyncio
import random
import weakref
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tracker import backoff as backoff_module
from tracker.backoff import MAX_BACKOFF, backoff_delay
from tracker.events.buffer import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, EventBuffer
from tracker.events.entry import Entry
from tracker.events.fallback import MemoryFallback
from tracker.events.shipper import Shipper, ShipperOptions
from tracker.events.spill.log import DiskLog, SpillSettings
from tracker.metrics import TrackerMetrics

MIB = 1024 * 1024


def key(i: int) -> str:
    return f"{i:032x}"


def fill(buffer: EventBuffer, count: int, start: int = 0) -> list[Entry]:
    entries = [Entry(key(i), f"event-{i}".encode()) for i in range(start, start + count)]
    for entry in entries:
        assert buffer.offer(entry.partition_key, entry.data)
    return entries


# --- EventBuffer -----------------------------------------------------------------------------


def test_offer_and_take_in_order() -> None:
    buffer = EventBuffer(100)
    entries = fill(buffer, 10)
    assert len(buffer) == 10
    assert buffer.take() == entries
    assert len(buffer) == 0
    assert buffer.take() == []


def test_offer_refuses_when_full_and_hands_the_event_to_the_overflow() -> None:
    buffer = EventBuffer(3)
    overflowed: list[Entry] = []
    buffer.overflow = overflowed.append
    fill(buffer, 3)
    assert overflowed == []
    assert buffer.offer("k", b"x") is False
    assert len(buffer) == 3
    assert overflowed == [Entry("k", b"x")]
    assert [e.partition_key for e in buffer.take()] == [key(0), key(1), key(2)]
    # room again after a take
    assert buffer.offer("k", b"x") is True


def test_take_respects_500_records() -> None:
    buffer = EventBuffer(10_000)
    entries = fill(buffer, 1201)
    batches = [buffer.take(), buffer.take(), buffer.take(), buffer.take()]
    assert [len(b) for b in batches] == [MAX_BATCH_RECORDS, MAX_BATCH_RECORDS, 201, 0]
    assert MAX_BATCH_RECORDS == 500
    assert [e for b in batches for e in b] == entries


def test_take_custom_record_limit() -> None:
    buffer = EventBuffer(100)
    fill(buffer, 10)
    assert len(buffer.take(max_records=4)) == 4
    assert len(buffer) == 6


def test_take_counts_partition_keys_in_the_5_mib_limit() -> None:
    assert MAX_BATCH_BYTES == 5 * MIB
    buffer = EventBuffer(100)
    data = b"x" * (MIB - 10)  # five of these fit in 5 MiB, but not with 32-byte keys
    for i in range(6):
        buffer.offer(key(i), data)
    first = buffer.take()
    assert len(first) == 4
    assert sum(len(e.data) + len(e.partition_key) for e in first) <= MAX_BATCH_BYTES
    assert len(buffer.take()) == 2


def test_take_fills_exactly_5_mib() -> None:
    buffer = EventBuffer(100)
    k = "k" * 16
    data = b"x" * (MIB - len(k))  # exactly 1 MiB with its key
    for _ in range(6):
        buffer.offer(k, data)
    assert len(buffer.take()) == 5
    assert len(buffer.take()) == 1


def test_take_custom_byte_limit() -> None:
    buffer = EventBuffer(100)
    for i in range(10):
        buffer.offer(f"k{i}", b"12345678")  # 10 bytes each with the key
    assert len(buffer.take(max_bytes=35)) == 3
    assert len(buffer.take(max_bytes=10)) == 1


def test_take_never_returns_an_empty_batch_for_a_large_entry() -> None:
    buffer = EventBuffer(100)
    huge = b"h" * (6 * MIB)
    buffer.offer("small", b"s")
    buffer.offer("huge", huge)
    buffer.offer("after", b"a")
    assert [e.partition_key for e in buffer.take()] == ["small"]
    assert [e.partition_key for e in buffer.take()] == ["huge"]
    assert [e.partition_key for e in buffer.take()] == ["after"]
    assert buffer.take(max_bytes=0) == []


def test_take_single_oversized_entry_with_tiny_limit() -> None:
    buffer = EventBuffer(10)
    buffer.offer("k", b"0123456789")
    assert buffer.take(max_bytes=1) == [Entry("k", b"0123456789")]


async def test_wait_nonempty_wakes_on_first_offer() -> None:
    buffer = EventBuffer(10)
    fill(buffer, 1)
    buffer.take()
    waiter = asyncio.create_task(buffer.wait_nonempty())
    await asyncio.sleep(0)
    assert not waiter.done()
    buffer.offer("k", b"x")
    await asyncio.wait_for(waiter, 1)


async def test_wait_nonempty_stays_set_while_entries_remain() -> None:
    buffer = EventBuffer(1000)
    fill(buffer, 600)
    buffer.take()
    await asyncio.wait_for(buffer.wait_nonempty(), 1)


async def test_wait_full_batch_wakes_on_the_500th_entry() -> None:
    buffer = EventBuffer(10_000)
    fill(buffer, MAX_BATCH_RECORDS - 1)
    waiter = asyncio.create_task(buffer.wait_full_batch(linger=60))
    await asyncio.sleep(0)
    assert not waiter.done()
    buffer.offer("k", b"x")
    await asyncio.wait_for(waiter, 1)


async def test_wait_full_batch_returns_after_linger() -> None:
    buffer = EventBuffer(10)
    fill(buffer, 1)
    await asyncio.wait_for(buffer.wait_full_batch(linger=0.01), 1)


async def test_wait_full_batch_is_reset_by_take() -> None:
    buffer = EventBuffer(10_000)
    fill(buffer, 1100)
    buffer.take()
    await asyncio.wait_for(buffer.wait_full_batch(linger=60), 1)  # 600 left: still full
    buffer.take()  # 100 left
    waiter = asyncio.create_task(buffer.wait_full_batch(linger=60))
    await asyncio.sleep(0)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


# --- backoff ---------------------------------------------------------------------------------


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 5, 7, 10, 16, 17, 100, 10_000])
def test_backoff_delay_bounds(attempt: int) -> None:
    rng = random.Random(0)
    cap = min(MAX_BACKOFF, 0.05 * 2 ** min(attempt, 16))
    delays = [backoff_delay(attempt, rng) for _ in range(500)]
    assert all(0 <= d <= cap for d in delays)
    assert max(delays) > cap / 2  # jitter spreads over the whole range


def test_backoff_delay_grows_then_caps() -> None:
    rng = random.Random(0)
    first = [backoff_delay(0, rng) for _ in range(200)]
    assert max(first) <= 0.05
    late = [backoff_delay(30, rng) for _ in range(200)]
    assert max(late) <= MAX_BACKOFF == 5.0
    assert max(late) > 4.0


def test_backoff_delay_is_deterministic_for_a_seed() -> None:
    a = [backoff_delay(i, random.Random(7)) for i in range(10)]
    b = [backoff_delay(i, random.Random(7)) for i in range(10)]
    assert a == b


# --- Shipper ---------------------------------------------------------------------------------

FailRule = Callable[[Entry, int], bool]


class FakeSink:
    """RecordSink in memory. `fails(entry, attempt)` decides per entry; whole calls can fail too.

    Counts how many put() calls are running at once; `gate` holds every call while cleared.
    """

    def __init__(self, fails: FailRule | None = None) -> None:
        self.fails: FailRule = fails or (lambda _entry, _attempt: False)
        self.fail_whole_calls = 0
        self.calls: list[list[Entry]] = []
        self.attempts: Counter[str] = Counter()
        self.accepted: list[Entry] = []
        self.active = 0
        self.max_active = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.first_call = asyncio.Event()
        self.two_at_once = asyncio.Event()
        self.on_call: Callable[[], None] | None = None

    async def put(self, entries: Sequence[Entry]) -> list[int]:
        self.calls.append(list(entries))
        if self.on_call is not None:
            self.on_call()
        self.first_call.set()
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        if self.active >= 2:
            self.two_at_once.set()
        try:
            await self.gate.wait()
        finally:
            self.active -= 1
        if self.fail_whole_calls:
            self.fail_whole_calls -= 1
            return list(range(len(entries)))
        failed: list[int] = []
        for i, entry in enumerate(entries):
            attempt = self.attempts[entry.partition_key]
            self.attempts[entry.partition_key] += 1
            if self.fails(entry, attempt):
                failed.append(i)
            else:
                self.accepted.append(entry)
        return failed


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backoff_module, "BASE_BACKOFF", 0.0005)


def sample(metrics: TrackerMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    value = metrics.registry.get_sample_value(name, labels or {})
    assert value is not None, name
    return value


_DISKS: weakref.WeakKeyDictionary[Shipper, tuple[DiskLog, MemoryFallback]] = (
    weakref.WeakKeyDictionary()
)


async def make_shipper(
    directory: Path,
    sink: FakeSink,
    buffer: EventBuffer | None = None,
    *,
    linger: float = 0.001,
    max_in_flight: int = 4,
    spill_after: float = 5.0,
) -> tuple[Shipper, EventBuffer, TrackerMetrics]:
    """A shipper with a real on-disk log in `directory`, and the sink in memory."""
    buffer = buffer or EventBuffer(100_000)
    metrics = TrackerMetrics()
    fallback = MemoryFallback(buffer, metrics.drops)
    disk = DiskLog(SpillSettings(directory, max_bytes=1024**3, fsync=False), fallback)
    await disk.open()
    buffer.overflow = disk.append
    options = ShipperOptions(
        linger=linger, max_in_flight=max_in_flight, spill_after=spill_after, jitter_seed=0
    )
    shipper = Shipper(buffer, disk, sink, metrics, options)
    _DISKS[shipper] = (disk, fallback)
    return shipper, buffer, metrics


async def drain(shipper: Shipper, runner: asyncio.Task[None], deadline: float) -> int:
    """Shut the shipper down as the app does; the events written to disk."""
    disk, fallback = _DISKS[shipper]
    kept = await shipper.drain([runner], fallback, deadline)
    await disk.close()
    return kept


async def on_disk(directory: Path) -> list[Entry]:
    """Every event a later process would find in `directory`."""
    disk = DiskLog(SpillSettings(directory, max_bytes=1024**3, fsync=False), lambda _e, _r: None)
    await disk.open()
    found: list[Entry] = []
    while (batch := await disk.next_batch(MAX_BATCH_RECORDS)) is not None:
        found.extend(batch.entries)
    await disk.close()
    return found


async def test_ships_a_partial_batch_after_linger(tmp_path: Path) -> None:
    sink = FakeSink()
    shipper, buffer, metrics = await make_shipper(tmp_path, sink)
    runner = asyncio.create_task(shipper.run())
    entries = fill(buffer, 10)
    await asyncio.wait_for(sink.first_call.wait(), 1)
    assert await drain(shipper, runner, deadline=2) == 0
    assert sink.accepted == entries
    assert sink.calls == [entries]
    assert sample(metrics, "tracker_ship_events_shipped_total") == 10
    assert sample(metrics, "tracker_ship_batch_records_count") == 1
    assert sample(metrics, "tracker_ship_batch_records_sum") == 10
    assert sample(metrics, "tracker_ship_failed_entries_total") == 0


async def test_only_failed_indexes_are_resent(fast_backoff: None, tmp_path: Path) -> None:
    bad = {key(1), key(3), key(8)}
    sink = FakeSink(lambda e, attempt: e.partition_key in bad and attempt == 0)
    shipper, buffer, metrics = await make_shipper(tmp_path, sink)
    entries = fill(buffer, 10)
    runner = asyncio.create_task(shipper.run())
    assert await drain(shipper, runner, deadline=2) == 0
    assert len(sink.calls) == 2
    assert sink.calls[0] == entries
    assert sink.calls[1] == [entries[1], entries[3], entries[8]]
    assert sorted(sink.accepted) == sorted(entries)
    assert sample(metrics, "tracker_ship_events_shipped_total") == 10
    assert sample(metrics, "tracker_ship_failed_entries_total") == 3
    assert sample(metrics, "tracker_ship_retried_entries_total") == 3


async def test_every_event_delivered_exactly_once_despite_repeated_partial_failures(
    fast_backoff: None, tmp_path: Path
) -> None:
    def fails(entry: Entry, attempt: int) -> bool:
        i = int(entry.partition_key, 16)
        return (i % 3 == 0 and attempt < 3) or (i % 7 == 0 and attempt < 1)

    sink = FakeSink(fails)
    sink.fail_whole_calls = 2
    shipper, buffer, metrics = await make_shipper(tmp_path, sink, max_in_flight=3)
    entries = fill(buffer, 1234)
    runner = asyncio.create_task(shipper.run())
    assert await drain(shipper, runner, deadline=5) == 0
    delivered = Counter(e.partition_key for e in sink.accepted)
    assert set(delivered) == {e.partition_key for e in entries}
    assert set(delivered.values()) == {1}
    assert sorted(sink.accepted) == sorted(entries)  # data intact, not just keys
    assert all(len(call) <= MAX_BATCH_RECORDS for call in sink.calls)
    assert sample(metrics, "tracker_ship_events_shipped_total") == 1234
    assert shipper.pending == 0
    failed = sample(metrics, "tracker_ship_failed_entries_total")
    assert failed == sample(metrics, "tracker_ship_retried_entries_total")
    assert failed == sum(len(call) for call in sink.calls) - 1234


async def test_whole_call_failure_is_retried(fast_backoff: None, tmp_path: Path) -> None:
    sink = FakeSink()
    sink.fail_whole_calls = 3
    shipper, buffer, metrics = await make_shipper(tmp_path, sink)
    entries = fill(buffer, 5)
    runner = asyncio.create_task(shipper.run())
    assert await drain(shipper, runner, deadline=2) == 0
    assert sink.calls == [entries] * 4
    assert sink.accepted == entries
    assert sample(metrics, "tracker_ship_failed_entries_total") == 15
    assert sample(metrics, "tracker_ship_retried_entries_total") == 15
    assert sample(metrics, "tracker_ship_events_shipped_total") == 5


async def test_backlog_is_sent_by_parallel_puts(tmp_path: Path) -> None:
    sink = FakeSink()
    sink.gate.clear()
    shipper, buffer, _ = await make_shipper(tmp_path, sink, linger=60, max_in_flight=4)
    entries = fill(buffer, 3 * MAX_BATCH_RECORDS)
    runner = asyncio.create_task(shipper.run())
    # would time out (and fail) if the shipper sent one batch at a time
    await asyncio.wait_for(sink.two_at_once.wait(), 1)
    assert shipper.pending == len(entries)
    sink.gate.set()
    assert await drain(shipper, runner, deadline=2) == 0
    assert sink.max_active >= 2
    assert sorted(sink.accepted) == sorted(entries)
    assert [len(call) for call in sink.calls] == [MAX_BATCH_RECORDS] * 3


async def test_max_in_flight_one_sends_one_batch_at_a_time(tmp_path: Path) -> None:
    sink = FakeSink()
    sink.gate.clear()
    shipper, buffer, _ = await make_shipper(tmp_path, sink, linger=60, max_in_flight=1)
    fill(buffer, 3 * MAX_BATCH_RECORDS)
    runner = asyncio.create_task(shipper.run())
    await asyncio.wait_for(sink.first_call.wait(), 1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(sink.calls) == 1
    sink.gate.set()
    assert await drain(shipper, runner, deadline=2) == 0
    assert sink.max_active == 1
    assert len(sink.calls) == 3


async def test_drain_ships_everything_left(tmp_path: Path) -> None:
    sink = FakeSink()
    shipper, buffer, _ = await make_shipper(tmp_path, sink, linger=0.01)
    runner = asyncio.create_task(shipper.run())
    entries = fill(buffer, 750)
    assert await drain(shipper, runner, deadline=2) == 0
    assert sorted(sink.accepted) == sorted(entries)
    assert runner.done()
    assert shipper.pending == 0
    assert await on_disk(tmp_path) == []


async def test_drain_of_an_idle_shipper_loses_nothing(tmp_path: Path) -> None:
    sink = FakeSink()
    shipper, _, _ = await make_shipper(tmp_path, sink)
    runner = asyncio.create_task(shipper.run())
    await asyncio.sleep(0)
    assert await drain(shipper, runner, deadline=1) == 0
    assert runner.done()
    assert sink.calls == []
    assert await on_disk(tmp_path) == []


async def test_drain_with_a_failing_sink_keeps_every_event_on_disk(
    fast_backoff: None, tmp_path: Path
) -> None:
    sink = FakeSink(lambda _e, _a: True)
    shipper, buffer, metrics = await make_shipper(tmp_path, sink, max_in_flight=1)
    # one batch of 500 in flight, 100 more still buffered behind the single slot
    entries = fill(buffer, 600)
    runner = asyncio.create_task(shipper.run())
    await asyncio.wait_for(sink.first_call.wait(), 1)
    assert await drain(shipper, runner, deadline=0.2) == 600
    assert sink.accepted == []
    assert len(sink.calls) >= 2  # it kept retrying until the deadline
    for reason in ("buffer_full", "spill_full", "spill_error"):
        assert sample(metrics, "tracker_events_dropped_total", {"reason": reason}) == 0
    assert sample(metrics, "tracker_ship_events_shipped_total") == 0
    assert runner.done()
    assert sorted(await on_disk(tmp_path)) == sorted(entries)


async def test_drain_does_not_wait_out_the_deadline_for_a_stuck_kinesis(
    fast_backoff: None, tmp_path: Path
) -> None:
    sink = FakeSink(lambda _e, _a: True)
    shipper, buffer, _ = await make_shipper(tmp_path, sink, spill_after=0.2)
    entries = fill(buffer, 700)
    runner = asyncio.create_task(shipper.run())
    await asyncio.wait_for(sink.first_call.wait(), 1)
    # A 60 s deadline, but Kinesis has taken nothing for spill_after: the rest goes to disk.
    assert await asyncio.wait_for(drain(shipper, runner, deadline=60), 10) == 700
    assert sorted(await on_disk(tmp_path)) == sorted(entries)


async def test_memory_batch_refused_for_spill_after_moves_to_disk_and_ships_from_there(
    fast_backoff: None, tmp_path: Path
) -> None:
    refusing = [True]
    sink = FakeSink(lambda _e, _a: refusing[0])
    shipper, buffer, metrics = await make_shipper(tmp_path, sink, spill_after=0.2)
    entries = fill(buffer, 300)
    runner = asyncio.create_task(shipper.run())
    await wait_until_true(lambda: _DISKS[shipper][0].waiting_events == 300)
    assert len(buffer) == 0  # memory holds none of them: they wait on disk
    refusing[0] = False
    await wait_until_true(lambda: len(sink.accepted) == 300)
    assert sorted(sink.accepted) == sorted(entries)
    assert sample(metrics, "tracker_ship_events_shipped_total") == 300
    assert await drain(shipper, runner, deadline=1) == 0
    assert await on_disk(tmp_path) == []


async def wait_until_true(condition: Callable[[], bool]) -> None:
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_drain_keeps_only_what_was_not_accepted(fast_backoff: None, tmp_path: Path) -> None:
    stuck = {key(2), key(4)}
    sink = FakeSink(lambda e, _a: e.partition_key in stuck)
    shipper, buffer, _ = await make_shipper(tmp_path, sink)
    entries = fill(buffer, 6)
    runner = asyncio.create_task(shipper.run())
    assert await drain(shipper, runner, deadline=0.2) == 2
    assert sorted(e.partition_key for e in sink.accepted) == [key(i) for i in (0, 1, 3, 5)]
    assert sorted(await on_disk(tmp_path)) == [entries[2], entries[4]]


async def test_drain_interrupts_a_long_linger(tmp_path: Path) -> None:
    sink = FakeSink()
    shipper, buffer, _ = await make_shipper(tmp_path, sink, linger=30)
    runner = asyncio.create_task(shipper.run())
    fill(buffer, 5)
    for _ in range(5):
        await asyncio.sleep(0)  # the runner is now lingering
    assert await drain(shipper, runner, deadline=0.3) == 0
