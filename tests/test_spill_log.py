"""The on-disk event log (DiskLog) on real files: writing, reading, deleting, bounds, disk
errors, and adoption of what stopped processes left, then a stateful model of it all."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import accumulate
from pathlib import Path
from random import Random
from typing import Any

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from tests.support.tmpfs import tmpfs
from tracker.events.buffer import EventBuffer
from tracker.events.entry import Entry
from tracker.events.spill import files, group_commit
from tracker.events.spill import log as log_module
from tracker.events.spill.framing import Decoder, encode
from tracker.events.spill.log import DiskLog, SpillSettings
from tracker.events.spill.segments import LogBatch, mirrored_receipt

ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3


class Refusals:
    """The log's `refuse` callback, remembering what it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Entry], str]] = []

    def __call__(self, entries: list[Entry], reason: str) -> None:
        self.calls.append((list(entries), reason))

    def of(self, reason: str) -> list[Entry]:
        return [e for entries, r in self.calls if r == reason for e in entries]


def entry(i: int, size: int = 100, events: int = 1) -> Entry:
    return Entry(f"{i:032x}", bytes([i % 256]) * size, events)


RECORD = len(encode(entry(0)))  # every entry(i) frames to this many bytes


async def open_log(
    directory: Path, refuse: Refusals | None = None, max_bytes: int = GIB
) -> DiskLog:
    disk = DiskLog(SpillSettings(directory, max_bytes=max_bytes, fsync=False), refuse or Refusals())
    await disk.open()
    return disk


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{files.PART_PREFIX}*/*{files.SEGMENT_SUFFIX}"))


def part_dirs(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{files.PART_PREFIX}*"))


def everything_in(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"))


async def read_all(disk: DiskLog, max_records: int = 500) -> list[LogBatch]:
    """Every batch until the log says it has read everything; it must say so."""
    batches: list[LogBatch] = []
    for _ in range(10_000):
        batch = await asyncio.wait_for(disk.next_batch(max_records), 10)
        if batch is None:
            return batches
        batches.append(batch)
    raise AssertionError("the reader never ran out of batches")


async def ship_and_close(directory: Path, disk: DiskLog, batches: list[LogBatch]) -> None:
    """Kinesis accepts every batch, the log closes: nothing may be left in the directory."""
    for batch in batches:
        disk.acknowledge(batch)
    await disk.close()
    assert part_dirs(directory) == []


def entries_of(batches: list[LogBatch]) -> list[Entry]:
    return [e for batch in batches for e in batch.entries]


async def settled(disk: DiskLog) -> None:
    """Wait until the writer thread has done what was handed to it (deletions included)."""
    await disk._on(disk._commits.thread, lambda: None)


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def hold_writer(disk: DiskLog) -> threading.Event:
    """Keep the writer thread busy until the returned event is set: a slow disk."""
    gate = threading.Event()
    disk._commits.thread.submit(gate.wait, 10)
    return gate


@pytest.fixture(autouse=True)
async def _no_loop_errors() -> AsyncIterator[None]:
    """An exception in a loop callback (a thread's answer) is only logged by asyncio: fail."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(None)
    assert errors == []


# --- writing, reading, deleting -----------------------------------------------------------------


async def test_acknowledged_segments_are_deleted_and_an_idle_log_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "SEGMENT_BYTES", 5 * RECORD)
    monkeypatch.setattr(log_module, "SCAN_INTERVAL", 0.01)
    disk = await open_log(tmp_path)
    written = [entry(i) for i in range(30)]
    for group in range(6):
        for e in written[5 * group : 5 * group + 5]:
            disk.append(e)
        await disk.flush()
    segments = segment_files(tmp_path)
    assert [s.stat().st_size for s in segments] == [5 * RECORD] * 6
    assert disk.bytes == 30 * RECORD
    assert disk.waiting_events == 30

    batches = await read_all(disk, max_records=3)
    assert entries_of(batches) == written
    assert disk.caught_up
    assert segment_files(tmp_path) == segments  # read is not acknowledged

    kept = [b for b in batches if b.segment.path == segments[1]]
    for batch in reversed([b for b in batches if b not in kept]):
        disk.acknowledge(batch)
    await settled(disk)
    assert segment_files(tmp_path) == [segments[1], segments[5]]  # unacked; still written to
    for batch in kept:
        disk.acknowledge(batch)
    await settled(disk)
    assert segment_files(tmp_path) == [segments[5]]
    assert disk.waiting_events == 0
    assert disk.replayed == 30

    runner = asyncio.create_task(disk.run())
    await eventually(lambda: not segment_files(tmp_path), "the idle segment to go")
    assert disk.bytes == 0
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await disk.close()
    assert everything_in(tmp_path) == []


async def test_segments_roll_at_segment_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "SEGMENT_BYTES", 1000)
    per_segment = 1000 // RECORD
    disk = await open_log(tmp_path)
    for i in range(2 * per_segment + 1):
        disk.append(entry(i))
        await disk.flush()
    for i in range(100, 110):  # one write larger than a segment: never split
        disk.append(entry(i))
    await disk.flush()
    sizes = [s.stat().st_size for s in segment_files(tmp_path)]
    assert sizes == [per_segment * RECORD, per_segment * RECORD, RECORD, 10 * RECORD]
    found = entries_of(await read_all(disk))
    assert found == [entry(i) for i in range(2 * per_segment + 1)] + [
        entry(i) for i in range(100, 110)
    ]
    await disk.close()


async def test_committed_resolves_once_the_bytes_are_in_the_file(tmp_path: Path) -> None:
    disk = await open_log(tmp_path)
    assert disk.committed().done()  # nothing appended
    first, second = entry(1), entry(2)
    disk.append(first)
    committed = disk.committed()
    assert not committed.done()
    await committed
    [segment] = segment_files(tmp_path)
    assert segment.read_bytes() == encode(first)

    gate = hold_writer(disk)
    disk.append(second)
    await asyncio.sleep(0)  # the group write starts: the queue is empty, the write under way
    assert disk._commits._writing is not None
    committed = disk.committed()
    await asyncio.sleep(0.05)
    assert not committed.done(), "committed() answered before the write reached the file"
    gate.set()
    await committed
    assert segment.read_bytes() == encode(first) + encode(second)
    await disk.close()


async def test_a_cancelled_waiter_does_not_cancel_the_others(tmp_path: Path) -> None:
    disk = await open_log(tmp_path)
    gate = hold_writer(disk)
    written = [entry(i) for i in range(3)]

    async def handler(e: Entry) -> None:
        disk.append(e)
        await disk.committed()

    tasks = [asyncio.create_task(handler(e)) for e in written]
    await asyncio.sleep(0.01)
    tasks[1].cancel()  # a client that went away
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[0] is None
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2] is None
    await disk.flush()
    assert entries_of(await read_all(disk)) == written
    await disk.close()


async def test_waiting_and_replayed_count_events_not_records(tmp_path: Path) -> None:
    disk = await open_log(tmp_path)
    disk.append(entry(1, events=250))  # a KPL-aggregated record
    disk.append(entry(2))
    await disk.flush()
    assert disk.waiting_events == 251
    [batch] = await read_all(disk)
    await disk.close()

    disk = await open_log(tmp_path)  # adopted: counted as read
    [batch] = await read_all(disk)
    assert disk.waiting_events == 251
    disk.acknowledge(batch)
    assert disk.waiting_events == 0
    assert disk.replayed == 251
    await disk.close()


# --- bounds and disk errors ----------------------------------------------------------------------


async def test_appends_beyond_spill_max_bytes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "SEGMENT_BYTES", 5 * RECORD)
    refused = Refusals()
    disk = await open_log(tmp_path, refused, max_bytes=10 * RECORD)
    for i in range(12):
        disk.append(entry(i))
    await disk.flush()
    assert refused.of("spill_full") == [entry(10), entry(11)]
    assert disk.bytes == 10 * RECORD
    assert sum(s.stat().st_size for s in segment_files(tmp_path)) == 10 * RECORD

    # Shipped and acknowledged, the room comes back.
    for batch in await read_all(disk):
        disk.acknowledge(batch)
    disk._retire_idle_segment()
    assert disk.bytes == 0
    refused.calls.clear()

    # A write under way counts: the disk must not take more than the bound while it is slow.
    gate = hold_writer(disk)
    for i in range(20, 26):
        disk.append(entry(i))
    await asyncio.sleep(0)
    assert disk._commits._writing is not None
    for i in range(30, 36):
        disk.append(entry(i))
    gate.set()
    await disk.flush()
    assert refused.of("spill_full") == [entry(34), entry(35)]
    assert disk.bytes == 10 * RECORD <= disk.settings.max_bytes
    assert sum(s.stat().st_size for s in segment_files(tmp_path)) == 10 * RECORD
    await disk.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that really fills up."""
    with tmpfs(tmp_path / "small", "64k") as mount_point:
        yield mount_point


async def fill_until_refused(
    disk: DiskLog, refused: Refusals, first: int
) -> tuple[list[Entry], list[Entry]]:
    """Append large entries, one write each, until the disk refuses one: (written, refused)."""
    written: list[Entry] = []
    for i in range(first, first + 40):
        e = entry(i, size=3000)
        disk.append(e)
        await disk.flush()
        if refused.of("spill_error"):
            return written, refused.of("spill_error")
        written.append(e)
    raise AssertionError("the small disk never filled up")


async def test_a_full_disk_is_refused_as_spill_error_and_the_log_recovers(
    small_disk: Path,
) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"f" * 36 * 1024)
    directory = small_disk / "spill"
    refused = Refusals()
    disk = await open_log(directory, refused)
    written, failed = await fill_until_refused(disk, refused, first=0)
    assert written
    assert failed == [entry(len(written), size=3000)]
    assert disk.last_error is not None
    assert disk.last_error[1] == "ENOSPC"
    # The failed write was cut back off: the file holds exactly the records written.
    [segment] = segment_files(directory)
    assert segment.stat().st_size == sum(len(encode(e)) for e in written)

    refused.calls.clear()
    filler.unlink()  # room again
    after = [entry(i, size=3000) for i in range(100, 104)]
    for e in after:
        disk.append(e)
        await disk.flush()
    assert refused.calls == []
    assert entries_of(await read_all(disk)) == written + after
    assert disk.corrupt == 0
    await disk.close()


async def test_a_failed_write_that_cannot_be_cut_back_is_cut_before_the_next(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fails a write, and the ftruncate that should undo it fails too (EIO on a
    network volume): the next write to that file must not land after the half record."""
    filler = small_disk / "filler"
    filler.write_bytes(b"f" * 36 * 1024)
    directory = small_disk / "spill"
    refused = Refusals()
    disk = await open_log(directory, refused)
    real_ftruncate = os.ftruncate
    half_records: list[int] = []

    def ftruncate(fd: int, length: int) -> None:
        if not half_records:
            half_records.append(os.fstat(fd).st_size - length)
            raise OSError(errno.EIO, "Input/output error")
        real_ftruncate(fd, length)

    monkeypatch.setattr(os, "ftruncate", ftruncate)
    written, _ = await fill_until_refused(disk, refused, first=0)
    assert half_records[0] > 0, "the full disk took part of the write"
    refused.calls.clear()
    filler.unlink()
    after = [entry(i, size=3000) for i in range(100, 104)]
    for e in after:
        disk.append(e)
        await disk.flush()
    assert refused.calls == []
    [segment] = segment_files(directory)
    assert segment.stat().st_size == sum(len(encode(e)) for e in written + after)
    assert entries_of(await read_all(disk)) == written + after
    assert disk.corrupt == 0
    await disk.close()


async def test_the_reader_waits_instead_of_spinning_on_an_unfinished_record(
    tmp_path: Path,
) -> None:
    """Our own open segment seems to end in a record longer than what has been written:
    next_batch must return (and try again after the next write), not loop forever."""
    disk = await open_log(tmp_path)
    disk.append(entry(1))
    await disk.flush()
    [segment_file] = segment_files(tmp_path)
    half = encode(entry(2, size=500))[:200]
    with segment_file.open("ab") as file:
        file.write(half)
    assert disk._own is not None
    disk._own.segments[-1].size += len(half)  # as if the writer had finished it
    [batch] = await read_all(disk)
    assert batch.entries == [entry(1)]
    assert await asyncio.wait_for(disk.next_batch(10), 5) is None
    assert not disk.readable
    await disk.close()


# --- adoption -----------------------------------------------------------------------------------


async def test_a_closed_log_is_replayed_exactly_once_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_module, "SEGMENT_BYTES", 10 * RECORD)
    first = await open_log(tmp_path)
    written = [entry(i) for i in range(30)]
    for group in range(3):
        for e in written[10 * group : 10 * group + 10]:
            first.append(e)
        await first.flush()
    batches = await read_all(first, max_records=10)
    assert [len(b.entries) for b in batches] == [10, 10, 10]
    first.acknowledge(batches[0])  # shipped: its segment goes; the others are lost with us
    await first.close()
    [part] = part_dirs(tmp_path)
    assert len(segment_files(tmp_path)) == 2

    second = await open_log(tmp_path)
    assert second.adopted_parts == 1
    replayed = await read_all(second, max_records=7)
    assert Counter(entries_of(replayed)) == Counter(written[10:])
    for batch in replayed:
        second.acknowledge(batch)
    await settled(second)
    assert not part.exists()
    assert segment_files(tmp_path) == []
    await second.close()
    assert part_dirs(tmp_path) == []


async def test_two_live_logs_never_adopt_each_other(tmp_path: Path) -> None:
    one, two = await open_log(tmp_path), await open_log(tmp_path)
    one.append(entry(1))
    two.append(entry(2))
    await one.flush()
    await two.flush()
    await one.scan()
    await two.scan()
    assert (one.adopted_parts, two.adopted_parts) == (0, 0)
    assert entries_of(await read_all(one)) == [entry(1)]
    assert entries_of(await read_all(two)) == [entry(2)]
    assert one.total_bytes == two.total_bytes == 2 * RECORD
    await one.close()
    await two.scan()  # one is gone now
    assert two.adopted_parts == 1
    assert entries_of(await read_all(two)) == [entry(1)]
    await two.close()


CHILD = """
import asyncio, os, signal, sys
from pathlib import Path
from tracker.events.buffer import EventBuffer
from tracker.events.entry import Entry
from tracker.events.spill.log import DiskLog, SpillSettings

async def main() -> None:
    disk = DiskLog(SpillSettings(Path(sys.argv[1]), 1 << 30, False), lambda e, r: None)
    await disk.open()
    for i in range(int(sys.argv[2])):
        disk.append(Entry(f"child-{i}", b"x" * 100))
    await disk.flush()
    print("ready", flush=True)
    sys.stdin.readline()
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


async def test_the_part_of_a_killed_process_is_adopted(tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path),
        "50",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"ready\n"
        survivor = await open_log(tmp_path)
        assert survivor.adopted_parts == 0  # its owner lives
        assert await read_all(survivor) == []
        assert survivor.total_bytes > 0
    finally:
        await asyncio.wait_for(child.communicate(b"die\n"), 30)
    assert child.returncode == -signal.SIGKILL
    await survivor.scan()
    assert survivor.adopted_parts == 1
    batches = await read_all(survivor)
    assert entries_of(batches) == [Entry(f"child-{i}", b"x" * 100) for i in range(50)]
    await ship_and_close(tmp_path, survivor, batches)


async def test_a_torn_tail_loses_only_the_torn_record(tmp_path: Path) -> None:
    first = await open_log(tmp_path)
    written = [entry(i) for i in range(10)]
    for e in written:
        first.append(e)
    await first.flush()
    await first.close()
    [segment] = segment_files(tmp_path)
    os.truncate(segment, 9 * RECORD + RECORD // 2)

    second = await open_log(tmp_path)
    batches = await read_all(second, max_records=4)
    assert entries_of(batches) == written[:9]
    assert second.corrupt == 1
    await ship_and_close(tmp_path, second, batches)


async def test_an_empty_segment_left_by_a_dead_process_goes_away(tmp_path: Path) -> None:
    first = await open_log(tmp_path)
    first.append(entry(1))
    await first.flush()
    await first.close()
    [segment] = segment_files(tmp_path)
    os.truncate(segment, 0)  # created, then the process died before its write

    second = await open_log(tmp_path)
    assert second.adopted_parts == 1
    assert await read_all(second) == []
    await settled(second)
    assert second._own is not None
    assert part_dirs(tmp_path) == [second._own.locked.path]
    await second.close()
    assert part_dirs(tmp_path) == []


async def test_close_lets_go_of_every_adopted_part(tmp_path: Path) -> None:
    for i in range(3):
        disk = await open_log(tmp_path)
        disk.append(entry(i))
        await disk.close()
    middle = await open_log(tmp_path)
    assert middle.adopted_parts == 3
    await middle.close()  # nothing read: all three stay on disk, free to adopt

    last = await open_log(tmp_path)
    assert last.adopted_parts == 3
    batches = await read_all(last)
    assert sorted(entries_of(batches)) == [entry(0), entry(1), entry(2)]
    await ship_and_close(tmp_path, last, batches)


# --- a stateful model ---------------------------------------------------------------------------

CUTS = ["nothing", "any byte", "everything", "at a record boundary", "inside the last record"]
Shapes = list[tuple[int, int, int]]  # key length, data size, events of each appended entry
shapes = st.lists(
    st.tuples(st.sampled_from([8, 32, 256]), st.integers(0, 700), st.integers(1, 3)),
    min_size=1,
    max_size=8,
)


class LogMachine(RuleBasedStateMachine):
    """The log against what a plain model says must come back from it.

    Every record has its own key. The model knows what was appended, what was flushed (then it
    must survive anything but a truncation past it), what was acknowledged and from which
    segment file (then it may come back only while that file still exists), and what a crash
    cut off the end of a segment (only that may be lost).

    Between steps the log's writer is idle, so that a step does the same whenever Hypothesis
    replays it; `append_and_read` reads while a write is under way (held there), and
    `append_and_crash` dies before the write.
    """

    root: Path  # set by the test: where each example gets its directory

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(dir=self.root))
        self.loop = asyncio.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _loop, context: self.loop_errors.append(context))
        self.refused = Refusals()
        self.counter = 0
        self.appended: dict[str, Entry] = {}
        self.unflushed: set[str] = set()  # may be lost in a crash
        self.durable: set[str] = set()  # flushed, not acknowledged: must come back
        self.acked_from: dict[str, Path] = {}
        self.cut_off: set[str] = set()  # past the truncation point of a crash: gone
        self.torn: set[Path] = set()  # segments cut inside a record
        self.closed = False
        self._start_life()

    def run(self, awaitable: Any) -> Any:
        result = self.loop.run_until_complete(asyncio.wait_for(awaitable, 20))
        while self.disk._commits._writing is not None or self.disk._commits._write_scheduled:
            self.loop.run_until_complete(asyncio.sleep(0.0005))
        return result

    def _start_life(self) -> None:
        self.on_disk_at_open = set(segment_files(self.directory))
        self.disk: DiskLog = self.loop.run_until_complete(open_log(self.directory, self.refused))
        self.closed = False
        self.seen: set[str] = set()  # read in this life
        self.outstanding: list[LogBatch] = []
        self.expected_corrupt = len(self.torn & self.on_disk_at_open)
        self.adopted_at_open = self.disk.adopted_parts

    def _append(self, entries: Shapes) -> None:
        """Append (from a coroutine: the log schedules its write on the running loop)."""
        for key_length, size, events in entries:
            self.counter += 1
            key = f"{self.counter:06d}".ljust(key_length, "k")
            e = Entry(key, Random(self.counter).randbytes(size), events)
            self.disk.append(e)
            self.appended[key] = e
            self.unflushed.add(key)

    def _took(self, batch: LogBatch | None, max_records: int) -> None:
        if batch is None:
            return
        assert 1 <= len(batch.entries) <= max_records
        for e in batch.entries:
            key = e.partition_key
            assert self.appended.get(key) == e, "a record never appended, or altered"
            assert key not in self.seen, "a record read twice by one log"
            assert key not in self.cut_off, "a record whose bytes were cut off"
            if key in self.acked_from:
                assert self.acked_from[key] in self.on_disk_at_open, "shipped, deleted, back"
            self.seen.add(key)
        self.outstanding.append(batch)

    @rule(entries=shapes)
    def append(self, entries: Shapes) -> None:
        async def append() -> None:
            self._append(entries)

        self.run(append())

    @rule()
    def flush(self) -> None:
        self.run(self.disk.flush())
        self.durable |= self.unflushed
        self.unflushed.clear()

    @rule(max_records=st.integers(1, 12))
    def read(self, max_records: int) -> None:
        self._took(self.run(self.disk.next_batch(max_records)), max_records)

    @rule(entries=shapes, max_records=st.integers(1, 12))
    def append_and_read(self, entries: Shapes, max_records: int) -> None:
        async def append_and_read() -> LogBatch | None:
            gate = hold_writer(self.disk)  # the write stays under way, whatever the timing
            self._append(entries)
            await asyncio.sleep(0)  # the group write starts
            try:
                return await self.disk.next_batch(max_records)
            finally:
                gate.set()

        self._took(self.run(append_and_read()), max_records)

    # Whether a read found a batch can depend on how fast a thread was: what is drawn must not
    # (Hypothesis replays the draws), so the choice of batch is drawn either way.
    @rule(choice=st.integers(0, 1000))
    def acknowledge(self, choice: int) -> None:
        if not self.outstanding:
            return
        self._acknowledge(self.outstanding.pop(choice % len(self.outstanding)))

    def _acknowledge(self, batch: LogBatch) -> None:
        self.disk.acknowledge(batch)
        for e in batch.entries:
            self.acked_from[e.partition_key] = batch.segment.path
            self.durable.discard(e.partition_key)
            self.unflushed.discard(e.partition_key)

    @rule()
    def drain(self) -> None:
        """Read to the end: every record that must survive has come back in this life."""
        for batch in self.run(read_all(self.disk, max_records=7)):
            self._took(batch, 7)
        missing = self.durable - self.cut_off - self.seen
        assert not missing, f"lost: {sorted(missing)}"
        assert self.disk.corrupt == self.expected_corrupt

    @rule()
    def tick(self) -> None:
        """What run() does every SCAN_INTERVAL."""
        self.disk._retire_idle_segment()
        self.run(self.disk.scan())
        assert self.disk.adopted_parts == self.adopted_at_open  # no other process, dead or alive

    @rule(cut=st.sampled_from(CUTS), position=st.integers(0, 10**6))
    def crash(self, cut: str, position: int) -> None:
        """The process dies, and its newest segment may lose its end (from `position`)."""
        self._die(cut, position)
        self._start_life()

    @rule(entries=shapes)
    def append_and_crash(self, entries: Shapes) -> None:
        """The process dies with appended records still in memory, before their write."""

        async def append_and_die() -> None:
            self._append(entries)
            self._die("nothing", position=0)

        self.loop.run_until_complete(append_and_die())
        self._start_life()

    def _die(self, cut: str, position: int) -> None:
        """What is queued in memory is gone, and the kernel drops the process's locks."""
        dead = self.disk
        dead._commits._queue.clear()
        dead._commits._queued_entries.clear()
        dead._commits.thread.shutdown(wait=True)
        dead._read_thread.shutdown(wait=True)
        dead._commits.writer.close()
        for part in dead._parts():
            os.close(part.locked.lock_fd)
        self.closed = True  # nothing left to close, should the next life not start
        self.unflushed.clear()
        if cut != "nothing" and dead._own is not None:
            self._truncate_newest(dead._own.locked.path, cut, position)

    def _truncate_newest(self, part: Path, where: str, position: int) -> None:
        segments = sorted(part.glob(f"*{files.SEGMENT_SUFFIX}"))
        if not segments:
            return
        newest = segments[-1]
        content = newest.read_bytes()
        decoded = Decoder().decode(content, final=True, max_records=10**9)
        assert decoded.corrupt == 0
        ends = list(accumulate(len(encode(e)) for e in decoded.entries))
        assert ends[-1] == len(content)
        starts = [0, *ends[:-1]]
        cut = {
            "any byte": position % (len(content) + 1),
            "everything": 0,
            "at a record boundary": starts[position % len(starts)],
            "inside the last record": starts[-1] + 1 + position % (ends[-1] - starts[-1] - 1),
        }[where]
        os.truncate(newest, cut)
        for e, start, end in zip(decoded.entries, starts, ends, strict=True):
            if end > cut:
                self.cut_off.add(e.partition_key)
            if start < cut < end:
                self.torn.add(newest)

    @rule()
    def reopen(self) -> None:
        """A clean stop (close), then a new process on the same directory."""
        self.run(self.disk.close())
        self.closed = True
        self.durable |= self.unflushed  # close() writes what is queued
        self.unflushed.clear()
        self._start_life()

    @rule()
    def ship_everything(self) -> None:
        """Acknowledge all there is, stop: the log leaves nothing on disk."""
        self.flush()
        self.drain()
        while self.outstanding:
            self._acknowledge(self.outstanding.pop())
        assert self.durable <= self.cut_off
        self.run(self.disk.close())
        self.closed = True
        assert part_dirs(self.directory) == []
        assert segment_files(self.directory) == []
        self._start_life()

    @invariant()
    def nothing_refused_nothing_raised(self) -> None:
        assert self.refused.calls == []
        assert self.loop_errors == []
        assert self.disk.last_error is None

    @invariant()
    def nothing_held_that_could_go(self) -> None:
        """A segment shipped to its end is deleted; so is an adopted part with none left."""
        for part in self.disk._parts():
            assert not [s for s in part.segments if s.done]
            assert part.own or part.segments

    def teardown(self) -> None:
        try:
            if not self.closed:
                self.loop.run_until_complete(self.disk.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.directory, ignore_errors=True)


def test_the_log_against_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_module, "SEGMENT_BYTES", 2000)

    class Machine(LogMachine):
        root = tmp_path

    run_state_machine_as_test(
        Machine,
        settings=hypothesis_settings(
            max_examples=100,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


# --- write-ahead: written events handed back to memory ------------------------------------------


def plain(e: Entry) -> Entry:
    """The entry without the segment it was tagged with."""
    return Entry(e.partition_key, e.data, e.events)


async def write_ahead(
    directory: Path, memory: int, count: int
) -> tuple[DiskLog, EventBuffer, list[Entry]]:
    """A log wired as write-ahead mode wires it, with `count` events written through it."""
    buffer = EventBuffer(memory)
    disk = await open_log(directory)
    disk.mirror = buffer.keep
    appended = [entry(i) for i in range(count)]
    for e in appended:
        disk.append(e)
    await disk.committed()
    return disk, buffer, appended


async def test_write_ahead_hands_written_events_to_memory_and_reads_nothing_back(
    tmp_path: Path,
) -> None:
    disk, buffer, appended = await write_ahead(tmp_path, memory=1_000, count=50)
    taken = buffer.take()
    assert [plain(e) for e in taken] == appended  # in memory, in order, once
    assert disk._own is not None
    assert {e.on_disk for e in taken} == {disk._own.segments[0]}
    assert disk.caught_up
    assert await read_all(disk) == []  # nothing to read back: memory ships them
    assert disk.waiting_events == 50
    receipt = mirrored_receipt(taken)
    assert receipt is not None
    disk.settle(receipt)
    assert disk.waiting_events == 0
    disk._retire_idle_segment()
    await settled(disk)
    assert segment_files(tmp_path) == []  # shipped from memory: the segment goes
    await disk.close()


async def test_what_memory_refuses_is_read_back_from_the_file_and_only_that(
    tmp_path: Path,
) -> None:
    # Memory has room for 30 of the 50.
    disk, buffer, appended = await write_ahead(tmp_path, memory=30, count=50)
    in_memory = buffer.take()
    from_file = entries_of(await read_all(disk))
    assert [plain(e) for e in in_memory] == appended[:30]
    assert from_file == appended[30:]  # no event both in memory and read from the file
    await disk.close()


async def test_write_ahead_events_left_unshipped_at_close_are_adopted_by_the_next_log(
    tmp_path: Path,
) -> None:
    disk, buffer, appended = await write_ahead(tmp_path, memory=1_000, count=20)
    shipped = buffer.take(max_records=5)
    receipt = mirrored_receipt(shipped)
    assert receipt is not None
    disk.settle(receipt)
    await disk.close()  # fifteen still only in this process's memory: they must be on disk
    successor = await open_log(tmp_path)
    replayed = entries_of(await read_all(successor))
    # The segment still holds the shipped five too (it could not go): duplicates, never loss.
    assert set(appended[5:]) <= set(replayed) <= set(appended)
    await successor.close()


async def test_answers_stop_waiting_for_a_hung_disk_and_wait_again_once_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "MAX_COMMIT_WAIT", 0.05)
    disk = await open_log(tmp_path)
    gate = hold_writer(disk)  # the disk hangs
    disk.append(entry(1))
    first = disk.committed()
    await asyncio.wait_for(first, 5)  # released by the stall, not by the write
    assert disk.stalled
    assert disk.stalls == 1
    disk.append(entry(2))
    await asyncio.wait_for(disk.committed(), 1)  # while it hangs, nobody waits
    assert segment_files(tmp_path) == [] or segment_files(tmp_path)[0].stat().st_size == 0
    gate.set()  # the disk answers again
    await asyncio.wait_for(disk.flush(), 5)
    assert not disk.stalled
    assert entries_of(await read_all(disk)) == [entry(1), entry(2)]  # nothing was lost
    disk.append(entry(3))
    waiting = disk.committed()
    assert not waiting.done()  # answers wait for the disk again
    await asyncio.wait_for(waiting, 5)
    await disk.close()


def test_abandoned_staging_directories_are_removed_and_live_or_fresh_ones_kept(
    tmp_path: Path,
) -> None:
    old = time.time() - 2 * files.STAGING_GRACE_SECONDS

    def staging(name: str, lock: bool, age: float | None) -> Path:
        path = tmp_path / f"{files.STAGING_PREFIX}{name}"
        path.mkdir()
        if lock:
            (path / files.LOCK_NAME).touch()
        if age is not None:
            os.utime(path, (age, age))
        return path

    abandoned = staging("abandoned", lock=True, age=old)
    lockless = staging("lockless", lock=False, age=old)
    fresh = staging("fresh", lock=True, age=None)
    live = staging("live", lock=True, age=old)
    held = os.open(live / files.LOCK_NAME, os.O_RDWR)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        assert files.adopt_orphans(tmp_path, set()) == []
        assert not abandoned.exists()
        assert not lockless.exists()
        assert fresh.exists()  # its creator may be between mkdir and flock
        assert live.exists()  # its creator holds the lock
    finally:
        os.close(held)
