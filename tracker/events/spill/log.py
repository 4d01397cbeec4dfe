"""The on-disk event log of one tracker process: its parts, replay oldest first, deletion.

Appends go through group commit (group_commit.py: one write per event-loop turn on a writer
thread; `committed()` is what write-ahead answers wait for). Reading (replay) runs on a second
thread, one bounded chunk at a time, only when the shipper has a free slot: memory stays flat
however large the log. Parts of dead processes are adopted by a scan every SCAN_INTERVAL.

What the log refuses (over SPILL_MAX_BYTES, a disk error, a writer queue that a slow disk cannot
keep up with) goes to the `refuse` callback with its reason, which keeps it in memory if it can.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tracker.events.entry import Entry, new_entry
from tracker.events.spill import files
from tracker.events.spill.framing import MAX_RECORD
from tracker.events.spill.group_commit import GroupCommit, Refuse, Write
from tracker.events.spill.segments import LogBatch, Part, Receipt, Segment

log = logging.getLogger(__name__)

T = TypeVar("T")

SEGMENT_BYTES = 4 * 1024 * 1024  # also what a crash may ship twice: records acked, file not gone
SCAN_INTERVAL = 2.0  # adoption of dead processes' parts, and the size of everyone else's
ERROR_MEMORY = 10.0  # /readyz reports a disk error this long after the last one


@dataclass(frozen=True, slots=True)
class SpillSettings:
    directory: Path
    max_bytes: int
    fsync: bool


class DiskLog:
    def __init__(self, settings: SpillSettings, refuse: Refuse) -> None:
        self.settings = settings
        self._refuse = refuse
        self._commits = GroupCommit(self, refuse, settings.fsync)
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="spill-read")
        self._own: Part | None = None
        self._adopted: list[Part] = []
        self._readable = asyncio.Event()
        # Write-ahead: where written events go to be shipped from memory (EventBuffer.keep).
        self.mirror: Callable[[list[Entry]], list[Entry]] | None = None
        self._held_bytes = 0
        self._outside_bytes = 0
        self.replayed = 0
        self.corrupt = 0
        self.adopted_parts = 0
        self.last_error: tuple[float, str] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        """Take a part of SPILL_DIR and adopt what dead processes left. A disk that refuses
        does not stop start-up: events stay in memory and `run` tries again."""
        self._commits.open()
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
                self._delete_if_done(segment)
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
        await self._commits.flush()
        own = self._own
        if own is not None:
            open_segment = own.open_segment()
            if open_segment is not None:
                open_segment.sealed = True
                self._delete_if_done(open_segment)
            self._release(own, remove=not own.segments)
        for part in list(self._adopted):  # _release takes it out of the list
            self._release(part, remove=False)
        await self._commits.close()
        self._read_thread.shutdown(wait=True)

    # --- writing --------------------------------------------------------------------------------

    def append(self, entry: Entry) -> None:
        """Queue one event for the next group write; never waits."""
        self._commits.append(entry)

    def committed(self) -> asyncio.Future[None]:
        """Done once the last appended event is in the kernel (or was refused)."""
        return self._commits.committed()

    async def flush(self) -> None:
        """Wait until everything appended so far is written (or refused)."""
        await self._commits.flush()

    @property
    def stalled(self) -> bool:
        return self._commits.stalled

    @property
    def stalls(self) -> int:
        return self._commits.stalls

    # --- what group commit asks of the log (CommitTarget) ---------------------------------------

    def refusal(self, pending_bytes: int) -> str | None:
        if self._own is None:
            return "spill_error"  # SPILL_DIR could not be opened (yet)
        if self._held_bytes + self._outside_bytes + pending_bytes > self.settings.max_bytes:
            return "spill_full"
        return None

    def segment_for(self, size: int) -> Segment:
        own = self._own
        assert own is not None, "the log is not open"
        current = own.open_segment()
        if current is not None and current.size + size <= SEGMENT_BYTES:
            return current
        if current is not None:
            current.sealed = True
            self._delete_if_done(current)
        return own.new_segment()

    def written(self, write: Write) -> None:
        write.segment.size += write.size
        write.segment.events += write.events
        self._held_bytes += write.size
        self._hand_to_memory(write)

    def failed(self, write: Write, error: BaseException) -> None:
        self._note_error(error)
        self._refuse(write.entries, "spill_error")

    def _hand_to_memory(self, write: Write) -> None:
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
        for part in self._parts():
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
        self._delete_if_done(segment)
        if count:
            return LogBatch(decoded.entries, segment)
        return None

    def settle(self, receipt: Receipt) -> None:
        """Kinesis accepted events that memory shipped on the log's behalf (write-ahead)."""
        for segment, (records, events) in receipt.items():
            segment.unacked -= records
            segment.acked_events += events
            self._delete_if_done(segment)

    def acknowledge(self, batch: LogBatch) -> None:
        """Kinesis accepted every entry of the batch."""
        segment = batch.segment
        count = len(batch.entries)
        events = sum(e.events for e in batch.entries)
        segment.unacked -= count
        segment.acked_events += events
        self.replayed += events
        self._delete_if_done(segment)

    # --- deleting -------------------------------------------------------------------------------

    def _retire_idle_segment(self) -> None:
        """Seal our open segment once everything in it is shipped, so an idle log is empty."""
        own = self._own
        segment = own.open_segment() if own else None
        if own is None or segment is None or self._commits.busy:
            return
        if not segment.unread and segment.unacked == 0:
            segment.sealed = True
            self._delete_if_done(segment)

    def _delete_if_done(self, segment: Segment) -> None:
        part = segment.part
        if not segment.done or segment not in part.segments:
            return
        part.segments.remove(segment)
        self._commits.thread.submit(self._commits.writer.remove, segment.path)
        if not part.own and not part.segments:
            self._release(part, remove=True)
        self._recount()

    def _release(self, part: Part, remove: bool) -> None:
        if part in self._adopted:
            self._adopted.remove(part)
        self._commits.thread.submit(files.release_part, part.locked, remove)
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
        return not self._commits.busy and self._first_unread() is None

    def _parts(self) -> list[Part]:
        return [*self._adopted, *([self._own] if self._own else [])]

    def _held_paths(self) -> set[Path]:
        return {part.locked.path for part in self._parts()}

    async def _on(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
