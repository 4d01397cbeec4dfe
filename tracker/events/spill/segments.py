"""The loop-side bookkeeping of segments and parts: what is written, read and acknowledged.

A segment may be deleted once it is sealed (no more writes), read to its end, and every record
read from it has been acknowledged by Kinesis. Only then: a lost acknowledgement must leave the
records on disk for the next process, at the price of shipping some of them twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from tracker.events.entry import DiskCopy, Entry
from tracker.events.spill.files import LockedPart, segment_path
from tracker.events.spill.framing import Decoder


@dataclass(slots=True, eq=False)
class Segment(DiskCopy):
    part: Part
    path: Path
    size: int = 0  # bytes on disk, whole records only
    # Everything before it has been read, or (write-ahead) was also handed to memory, where
    # the shipper takes it from: only what lies past it is ever read from the file.
    read_pos: int = 0
    events: int = 0  # events known to be in it: written by us, or read so far
    unacked: int = 0  # records handed to the shipper and not yet accepted
    acked_events: int = 0
    sealed: bool = False
    mirrored: bool = True  # every write so far also went to memory (write-ahead)
    decoder: Decoder = field(default_factory=Decoder)

    @property
    def unread(self) -> bool:
        return self.read_pos < self.size

    @property
    def done(self) -> bool:
        return self.sealed and not self.unread and self.unacked == 0

    @property
    def waiting_events(self) -> int:
        return self.events - self.acked_events


@dataclass(slots=True, eq=False)
class Part:
    """A part directory this process holds: its own (written to) or an adopted one."""

    locked: LockedPart
    own: bool
    segments: deque[Segment] = field(default_factory=deque)
    next_seq: int = 1

    @classmethod
    def adopted(cls, locked: LockedPart) -> Part:
        part = cls(locked, own=False)
        for seq, size in locked.segments:
            path = segment_path(locked.path, seq)
            part.segments.append(Segment(part, path, size=size, sealed=True, mirrored=False))
        return part

    @property
    def bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def first_unread(self) -> Segment | None:
        return next((s for s in self.segments if s.unread), None)

    def open_segment(self) -> Segment | None:
        """The segment being written to, if any."""
        if self.segments and not self.segments[-1].sealed:
            return self.segments[-1]
        return None

    def new_segment(self) -> Segment:
        segment = Segment(self, segment_path(self.locked.path, self.next_seq))
        self.next_seq += 1
        self.segments.append(segment)
        return segment


# What a batch owes the log once Kinesis has accepted it: per segment, records and events.
Receipt = dict[Segment, list[int]]


def mirrored_receipt(entries: list[Entry]) -> Receipt | None:
    """The receipt of a batch taken from memory: its events that are also on disk."""
    receipt: Receipt = {}
    for entry in entries:
        segment = entry.on_disk
        if isinstance(segment, Segment):
            owed = receipt.setdefault(segment, [0, 0])
            owed[0] += 1
            owed[1] += entry.events
    return receipt or None


class LogBatch(NamedTuple):
    """Entries read from one segment; acknowledging it lets the segment go."""

    entries: list[Entry]
    segment: Segment
