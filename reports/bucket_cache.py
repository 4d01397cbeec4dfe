"""What `reports serve` keeps of the rollups between requests: per program, the buckets of the
range it has read and the sums of the spans it has computed (rows and totals).

A program's buckets cover one contiguous range of bucket starts. Each is the newest copy seen
(the larger `version`); a newer copy of a bucket drops every cached sum whose span holds it, so
a sum is always that of the buckets as cached. Programs are dropped least recently used first
when the weight (buckets plus sums) passes the bound. reports.cached_reports keeps the cache
fresh from the table's index `changes`.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reports.periods import QUARTER
from reports.rollups import BucketRow
from reports.span_sums import SpanSum, merge_sums, sum_buckets

Span = tuple[datetime, datetime]  # [start, end) as UTC instants
HOUR = timedelta(hours=1)
# Sums of one program kept at most (a 31-day hourly report needs 745): past it they are all
# dropped, so that a client walking through zones and ranges cannot grow one program forever.
MAX_SUMS = 20_000


@dataclass(slots=True)
class ProgramBuckets:
    """One program's cached buckets and sums. `lock` serializes its refreshes: two requests
    applying changes at once could otherwise move `refreshed_ms` past what one of them read."""

    buckets: dict[datetime, BucketRow] = field(default_factory=dict)
    first: datetime | None = None  # the covered range's first and last bucket start
    last: datetime | None = None
    refreshed_ms: int = 0  # epoch ms when the last read that the cache holds began
    sums: dict[Span, SpanSum] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def weight(self) -> int:
        return len(self.buckets) + len(self.sums)

    def reset(self) -> None:
        """Forget every bucket and sum: the next read starts afresh."""
        self.buckets.clear()
        self.sums.clear()
        self.first = self.last = None
        self.refreshed_ms = 0

    def holds(self, first: datetime, last: datetime) -> bool:
        """Whether the covered range holds `first` to `last`."""
        return self.covers(first) and self.covers(last)

    def covers(self, start: datetime) -> bool:
        return self.first is not None and self.last is not None and self.first <= start <= self.last

    def take_changes(self, rows: Iterable[BucketRow]) -> None:
        """Newer copies of covered buckets replace theirs; buckets outside the range are left to
        the read that will cover them."""
        for row in rows:
            if self.covers(row.start):
                self._take(row)

    def take_range(self, first: datetime, last: datetime, rows: Iterable[BucketRow]) -> None:
        """The table's buckets from `first` to `last` (inclusive): the covered range grows to
        hold both (the caller reads any gap between them, see `missing`)."""
        for row in rows:
            if self.covers(row.start):
                self._take(row)
            elif first <= row.start <= last:
                self.buckets[row.start] = row  # no cached sum reaches outside the range
        self.first = first if self.first is None else min(self.first, first)
        self.last = last if self.last is None else max(self.last, last)

    def missing(self, first: datetime, last: datetime) -> list[Span]:
        """The inclusive ranges to read so that the covered range holds `first` to `last`;
        each overlaps the covered range by one bucket (read again: harmless, by version), so
        that a gap between the two is read too."""
        if self.first is None or self.last is None:
            return [(first, last)]
        ranges = []
        if first < self.first:
            ranges.append((first, self.first))
        if last > self.last:
            ranges.append((self.last, last))
        return ranges

    def span_sum(self, span: Span) -> SpanSum:
        """The span's sums, cached. A UTC hour or a single quarter is summed from its buckets;
        a longer span merges its UTC hours' sums (and single quarters at its ends): the same
        pieces whatever the report's zone and rows, so that a span's uniques never depend on
        how it was asked for (HLL estimates may differ by the order of the unions)."""
        found = self.sums.get(span)
        if found is None:
            if _is_piece(span):
                found = sum_buckets(self._within(span))
            else:
                found = merge_sums([self.span_sum(piece) for piece in _pieces(span)])
            if len(self.sums) >= MAX_SUMS:
                self.sums.clear()
            self.sums[span] = found
        return found

    def _within(self, span: Span) -> Iterable[BucketRow]:
        start, end = span
        while start < end:
            bucket = self.buckets.get(start)
            if bucket is not None:
                yield bucket
            start += QUARTER

    def _take(self, row: BucketRow) -> None:
        held = self.buckets.get(row.start)
        if held is not None and held.version >= row.version:
            return  # the same copy again (the margin), or an older one (the index lags)
        self.buckets[row.start] = row
        stale = [span for span in self.sums if span[0] <= row.start < span[1]]
        for span in stale:
            del self.sums[span]


def _is_piece(span: Span) -> bool:
    start, end = span
    return end - start == QUARTER or (end - start == HOUR and start.minute == 0)


def _pieces(span: Span) -> Iterator[Span]:
    """The span cut into whole UTC hours, and quarters where it starts or ends off the hour."""
    at, end = span
    while at < end:
        step = HOUR if at.minute == 0 and at + HOUR <= end else QUARTER
        yield at, at + step
        at += step


class BucketCache:
    """Programs' buckets, least recently used dropped first past `max_weight` buckets and sums."""

    def __init__(self, max_weight: int) -> None:
        self._max_weight = max_weight
        self._programs: OrderedDict[str, ProgramBuckets] = OrderedDict()

    def program(self, program_id: str) -> ProgramBuckets:
        """The program's entry (a new empty one the first time), now the most recently used."""
        entry = self._programs.get(program_id)
        if entry is None:
            entry = self._programs[program_id] = ProgramBuckets()
        self._programs.move_to_end(program_id)
        return entry

    def drop(self, program_id: str) -> None:
        self._programs.pop(program_id, None)

    def trim(self) -> None:
        """Drop the least recently used programs until the weight is within the bound; the
        most recent one goes too when it alone passes it (its next report reads again)."""
        weight = self.weight
        while weight > self._max_weight and self._programs:
            _, entry = self._programs.popitem(last=False)
            weight -= entry.weight

    @property
    def weight(self) -> int:
        return sum(entry.weight for entry in self._programs.values())

    def __contains__(self, program_id: str) -> bool:
        return program_id in self._programs
