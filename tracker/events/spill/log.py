"""The on-disk event log of one tracker process: group-committed appends, replay oldest first.

The request path only queues a framed record (`append`, no await); the queue is written by one
write(2) per event-loop turn on the log's own writer thread, so a slow disk (a network volume may
take milliseconds) never stalls the loop. `committed()` is the future of that shared write: in
write-ahead mode a handler awaits it before answering. Reading (replay) runs on a second thread,
one bounded chunk at a time, only when the shipper has a free slot: memory stays flat however
large the log.

What the log refuses (over SPILL_MAX_BYTES, a disk error, a writer queue that a slow disk cannot
keep up with) goes to the `refuse` callback with its reason, which keeps it in memory if it can.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from tracker.events.buffer import Entry, new_entry
from tracker.events.spill import files
from tracker.events.spill.framing import MAX_RECORD, encode
from tracker.events.spill.segments import LogBatch, Part, Receipt, Segment

log = logging.getLogger(__name__)

T = TypeVar("T")
Refuse = Callable[[list[Entry], str], None]

SEGMENT_BYTES = 4 * 1024 * 1024  # also what a crash may ship twice: records acked, file not gone
MAX_QUEUED_BYTES = 32 * 1024 * 1024  # waiting for the writer; beyond it the disk is too slow
SCAN_INTERVAL = 2.0  # adoption of dead processes' parts, and the size of everyone else's
ERROR_MEMORY = 10.0  # /readyz reports a disk error this long after the last one
# Write-ahead answers wait at most this long for a write (a local disk takes well under 1 ms,
# a network volume a few ms); beyond it the disk hangs, and answers go out without waiting.
MAX_COMMIT_WAIT = 0.5


@dataclass(frozen=True, slots=True)
class SpillSettings:
    directory: Path
    max_bytes: int
    fsync: bool


@dataclass(slots=True)
class _Write:
    segment: Segment
    entries: list[Entry]
    records: list[bytes]
    size: int
    events: int
    done: asyncio.Future[None]  # never handed out as is: see committed()
    finished: asyncio.Future[None]  # unlike `done`, never resolved early by a stall
    stall_timer: asyncio.TimerHandle | None = None


class DiskLog:
    def __init__(self, settings: SpillSettings, refuse: Refuse) -> None:
        self.settings = settings
        self._refuse = refuse
        self._writer = files.SegmentWriter(settings.fsync)
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="spill-write")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="spill-read")
        self._own: Part | None = None
        self._adopted: list[Part] = []
        self._queue: list[bytes] = []
        self._queued_entries: list[Entry] = []
        self._queued_bytes = 0
        self._queued_events = 0
        self._group: asyncio.Future[None] | None = None
        self._writing: _Write | None = None
        self._write_scheduled = False
        self._readable = asyncio.Event()
        # Write-ahead: where written events go to be shipped from memory (EventBuffer.keep).
        self.mirror: Callable[[list[Entry]], list[Entry]] | None = None
        self._done: asyncio.Future[None] | None = None  # the answer to committed() when idle
        self._held_bytes = 0
        self._outside_bytes = 0
        self.replayed = 0
        self.corrupt = 0
        self.adopted_parts = 0
        self.last_error: tuple[float, str] | None = None
        self.stalled = False  # a write has taken more than MAX_COMMIT_WAIT and goes on
        self.stalls = 0

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Take a part of SPILL_DIR and adopt what dead processes left. A disk that refuses
        does not stop start-up: events stay in memory and `run` tries again."""
        self._done = asyncio.get_running_loop().create_future()
        self._done.set_result(None)
        try:
            await self._take_part()
            await self.scan()
        except OSError as exc:
            self._note_error(exc)

    async def _take_part(self) -> None:
        if self._own is None:
            locked = await self._on(self._read_thread, files.create_part, self.settings.directory)
            self._own = Part(locked, own=True)

    async def run(self) -> None:
        """Adopt what dead processes left, and keep the size of everyone else's parts current."""
        while True:
            await asyncio.sleep(SCAN_INTERVAL)
            try:
                await self._take_part()
                await self.scan()
            except OSError as exc:
                self._note_error(exc)
            self._retire_idle_segment()
            if self._first_unread() is not None:
                self._readable.set()  # retry a read that failed

    async def scan(self) -> None:
        directory, held = self.settings.directory, self._held_paths()
        found = await self._on(self._read_thread, files.adopt_orphans, directory, held)
        for locked in found:
            part = Part.adopted(locked)
            self._adopted.append(part)
            self.adopted_parts += 1
            log.info(
                "adopted the event log of a stopped process",
                extra={"part": locked.path.name, "bytes": part.bytes},
            )
            # A file created just before its owner died may hold nothing: no read would ever
            # let it go (a part with no segment at all goes the same way).
            for segment in [s for s in part.segments if s.done]:
                self._delete_if_done(part, segment)
            if not part.segments and part in self._adopted:
                self._release(part, remove=True)
        if found:
            self._readable.set()
            self._recount()
        self._outside_bytes = await self._on(
            self._read_thread, files.bytes_outside, self.settings.directory, self._held_paths()
        )

    async def close(self) -> None:
        """Write what is queued, let go of every part (deleting ours if it is empty)."""
        await self.flush()
        own = self._own
        if own is not None:
            open_segment = own.open_segment()
            if open_segment is not None:
                open_segment.sealed = True
                self._delete_if_done(own, open_segment)
            self._release(own, remove=not own.segments)
        for part in list(self._adopted):  # _release takes it out of the list
            self._release(part, remove=False)
        await self._on(self._write_thread, self._writer.close)
        self._write_thread.shutdown(wait=True)
        self._read_thread.shutdown(wait=True)

    # --- writing --------------------------------------------------------------------------------

    def append(self, entry: Entry) -> None:
        """Queue one event for the next group write; never waits."""
        if self._own is None:
            self._refuse([entry], "spill_error")  # SPILL_DIR could not be opened (yet)
            return
        record = encode(entry)
        queued = self._queued_bytes + len(record)
        if queued > MAX_QUEUED_BYTES:
            self._refuse([entry], "buffer_full")
            return
        writing = self._writing.size if self._writing is not None else 0
        if self._held_bytes + self._outside_bytes + writing + queued > self.settings.max_bytes:
            self._refuse([entry], "spill_full")
            return
        self._queue.append(record)
        self._queued_entries.append(entry)
        self._queued_bytes = queued
        self._queued_events += entry.events
        if self._writing is None and not self._write_scheduled:
            self._write_scheduled = True
            # The next loop turn: every request of this turn joins one write.
            asyncio.get_running_loop().call_soon(self._start_write)

    def committed(self) -> asyncio.Future[None]:
        """Done once the last appended event is in the kernel (or was refused)."""
        if self.stalled:
            assert self._done is not None
            return self._done  # the disk hangs: see _stall
        if self._queue:
            if self._group is None:
                self._group = _SharedFuture(loop=asyncio.get_running_loop())
            return self._group
        if self._writing is not None:
            return self._writing.done  # the last event is in the write under way
        assert self._done is not None, "the log is not open"
        return self._done

    async def flush(self) -> None:
        """Wait until everything appended so far is written (or refused)."""
        while self._queue or self._writing is not None:
            if self._writing is None:
                self._start_write()
            assert self._writing is not None
            await asyncio.shield(self._writing.finished)

    def _start_write(self) -> None:
        self._write_scheduled = False
        if self._writing is not None or not self._queue:
            return
        data = b"".join(self._queue)
        done = self._group or _SharedFuture(loop=asyncio.get_running_loop())
        segment = self._segment_for(len(data))
        loop = asyncio.get_running_loop()
        write = _Write(
            segment,
            self._queued_entries,
            self._queue,
            len(data),
            self._queued_events,
            done,
            loop.create_future(),
        )
        write.stall_timer = loop.call_later(MAX_COMMIT_WAIT, self._stall, write)
        self._queue, self._queued_entries, self._group = [], [], None
        self._queued_bytes = self._queued_events = 0
        self._writing = write
        future = self._write_thread.submit(self._writer.append, write.segment.path, data)
        future.add_done_callback(partial(self._from_thread, self._written, write))

    def _segment_for(self, size: int) -> Segment:
        own = self._own
        assert own is not None, "the log is not open"
        current = own.open_segment()
        if current is not None and current.size + size <= SEGMENT_BYTES:
            return current
        if current is not None:
            current.sealed = True
            self._delete_if_done(own, current)
        return own.new_segment()

    def _stall(self, write: _Write) -> None:
        """A write has taken more than MAX_COMMIT_WAIT: answers stop waiting for the disk (the
        events stay queued for it) until it finishes. A hung network volume must not hang every
        pixel; while it lasts, write-ahead is only as durable as overflow, and /readyz says so."""
        if self._writing is not write:
            return
        if not self.stalled:
            log.error("event log: a write is taking too long, answers no longer wait for it")
        self.stalled = True
        self.stalls += 1
        _resolve(write.done)
        if self._group is not None:
            _resolve(self._group)
            self._group = None

    def _written(self, write: _Write, future: ThreadFuture[None]) -> None:
        self._writing = None
        if write.stall_timer is not None:
            write.stall_timer.cancel()
        self.stalled = False
        error = future.exception()
        if error is None:
            write.segment.size += write.size
            write.segment.events += write.events
            self._held_bytes += write.size
            self._hand_to_memory(write)
        else:
            self._note_error(error)
            self._refuse(write.entries, "spill_error")
        _resolve(write.done)
        write.finished.set_result(None)
        if self._queue:
            self._start_write()

    def _hand_to_memory(self, write: _Write) -> None:
        """Write-ahead: the events just written go to memory too, tagged with their segment, and
        the shipper sends them from there; nothing is read back unless memory refuses. What it
        refuses is read from the file, from the first refused record on (memory keeps a prefix)."""
        segment = write.segment
        if self.mirror is None or not segment.mirrored:
            self._readable.set()
            return
        new = new_entry
        tagged = [new(Entry, (e[0], e[1], e[2], segment)) for e in write.entries]
        refused = self.mirror(tagged)
        kept = len(tagged) - len(refused)
        segment.unacked += kept
        if refused:
            segment.read_pos += sum(len(record) for record in write.records[:kept])
            segment.mirrored = False
            self._readable.set()
        else:
            segment.read_pos += write.size

    def _note_error(self, error: BaseException) -> None:
        code = error.errno if isinstance(error, OSError) else None
        reason = errno.errorcode.get(code or 0, type(error).__name__)
        first = self.last_error is None or time.monotonic() - self.last_error[0] > ERROR_MEMORY
        self.last_error = (time.monotonic(), reason)
        if first:  # once per episode, not once per refused write
            log.error("event log: the disk refused a write", extra={"error": reason})

    # --- reading --------------------------------------------------------------------------------

    async def wait_readable(self) -> None:
        await self._readable.wait()

    @property
    def readable(self) -> bool:
        return self._readable.is_set()

    async def next_batch(self, max_records: int) -> LogBatch | None:
        """The next records on disk, oldest part first; None when everything has been read."""
        while True:
            found = self._first_unread()
            if found is None:
                self._readable.clear()
                return None
            part, segment = found
            start = segment.read_pos
            try:
                batch = await self._read(part, segment, max_records)
            except OSError as exc:
                self._note_error(exc)
                self._readable.clear()  # run() tries again after a pause
                return None
            if batch is not None:
                return batch
            if segment.read_pos == start and segment.unread:
                # Nothing to decide before more is written (a record that seems to go on past
                # what the writer has finished): wait for the next write, never spin.
                self._readable.clear()
                return None

    def _first_unread(self) -> tuple[Part, Segment] | None:
        for part in (*self._adopted, *([self._own] if self._own else [])):
            segment = part.first_unread()
            if segment is not None:
                return part, segment
        return None

    async def _read(self, part: Part, segment: Segment, max_records: int) -> LogBatch | None:
        start = segment.read_pos
        wanted = min(MAX_RECORD, segment.size - start)
        chunk = await self._on(self._read_thread, files.read_chunk, segment.path, start, wanted)
        final = segment.sealed and start + len(chunk) >= segment.size
        if len(chunk) < wanted:  # shorter than we wrote or listed: what is missing is damage
            segment.size, final = start + len(chunk), True
            segment.sealed = segment.sealed or not part.own
            self._recount()
        decoded = segment.decoder.decode(chunk, final=final, max_records=max_records)
        segment.read_pos += decoded.consumed
        self.corrupt += decoded.corrupt
        if decoded.corrupt:
            log.warning(
                "event log: skipped damaged records",
                extra={"part": part.locked.path.name, "regions": decoded.corrupt},
            )
        count = len(decoded.entries)
        if not part.own:
            segment.events += sum(e.events for e in decoded.entries)
        segment.unacked += count
        self._delete_if_done(part, segment)
        if count:
            return LogBatch(decoded.entries, part, segment)
        return None

    def settle(self, receipt: Receipt) -> None:
        """Kinesis accepted events that memory shipped on the log's behalf (write-ahead)."""
        for segment, (records, events) in receipt.items():
            segment.unacked -= records
            segment.acked_events += events
            self._delete_if_done(segment.part, segment)

    def acknowledge(self, batch: LogBatch) -> None:
        """Kinesis accepted every entry of the batch."""
        segment = batch.segment
        count = len(batch.entries)
        events = sum(e.events for e in batch.entries)
        segment.unacked -= count
        segment.acked_events += events
        self.replayed += events
        self._delete_if_done(batch.part, segment)

    # --- deleting -------------------------------------------------------------------------------

    def _retire_idle_segment(self) -> None:
        """Seal our open segment once everything in it is shipped, so an idle log is empty."""
        own = self._own
        segment = own.open_segment() if own else None
        if own is None or segment is None or self._queue or self._writing is not None:
            return
        if not segment.unread and segment.unacked == 0:
            segment.sealed = True
            self._delete_if_done(own, segment)

    def _delete_if_done(self, part: Part, segment: Segment) -> None:
        if not segment.done or segment not in part.segments:
            return
        part.segments.remove(segment)
        self._write_thread.submit(self._writer.remove, segment.path)
        if not part.own and not part.segments:
            self._release(part, remove=True)
        self._recount()

    def _release(self, part: Part, remove: bool) -> None:
        if part in self._adopted:
            self._adopted.remove(part)
        self._write_thread.submit(files.release_part, part.locked, remove)
        self._recount()

    def _recount(self) -> None:
        self._held_bytes = sum(part.bytes for part in self._parts())

    # --- state ----------------------------------------------------------------------------------

    @property
    def bytes(self) -> int:
        """Bytes on disk in the parts this process holds (its own and adopted ones)."""
        return self._held_bytes

    @property
    def total_bytes(self) -> int:
        """Bytes of the whole SPILL_DIR, as of the last scan of other processes' parts."""
        return self._held_bytes + self._outside_bytes

    @property
    def waiting_events(self) -> int:
        """Events on disk not yet accepted by Kinesis (an adopted part's as they are read)."""
        return sum(s.waiting_events for part in self._parts() for s in part.segments)

    @property
    def caught_up(self) -> bool:
        """Everything written has been read (some may still be on its way to Kinesis)."""
        return not self._queue and self._writing is None and self._first_unread() is None

    def _parts(self) -> list[Part]:
        return [*self._adopted, *([self._own] if self._own else [])]

    def _held_paths(self) -> set[Path]:
        return {part.locked.path for part in self._parts()}

    def _from_thread(
        self, callback: Callable[[T, ThreadFuture[Any]], None], arg: T, f: Any
    ) -> None:
        assert self._done is not None
        self._done.get_loop().call_soon_threadsafe(callback, arg, f)

    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _SharedFuture(asyncio.Future[None]):
    """The future of one group write, awaited by every request of the group.

    A waiter that is cancelled (its client went away, the server shuts down) would cancel the
    future it awaits, and with it every other waiter of the group. This one refuses: asyncio
    then delivers the cancellation to that waiter alone, once the write is done (at most
    MAX_COMMIT_WAIT). A shield per waiter does the same at ~10 us per request, measured.
    """

    def cancel(self, msg: object = None) -> bool:
        return False
