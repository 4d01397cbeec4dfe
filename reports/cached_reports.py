"""Reports from the bucket cache (reports.bucket_cache), kept fresh by the index `changes`.

A program's first report reads its range from the table, as build_report does. A refresh asks
the index for the program's items written since the last refresh began (less a margin) and
takes the newer copies; a report then reads only the part of its range not cached yet, and
sums: rows and totals whose buckets did not change come from the cache as they are. A bucket
written a moment ago changes only its hour, the rows holding it and the totals.

When the refresh happens (Freshness): a cache refreshed under a second ago answers as it is; up
to 5 s ago it answers as it is and a refresh starts behind it; older, the report waits for the
refresh. A program asked for steadily thus shows a write within about a second (plus the
index's lag), never serves what was refreshed more than 5 s ago, and its warm reports need no
store call at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from reports.bucket_cache import BucketCache, ProgramBuckets
from reports.periods import QUARTER, bucket_name, periods
from reports.query import ReportQuery
from reports.report import Report, report_of
from reports.rollups import BucketRow, StoreUnavailable
from tracker.task_stop import stop_tasks

log = logging.getLogger(__name__)

# How far before the last refresh the next asks the index. `updated_ms` is the writer's clock,
# not ours, and the index is eventually consistent (a write shows there a moment after it
# lands); the table Query that filled the cache is eventually consistent too. A write is missed
# only if clock skew plus those lags exceed the margin; asking again for the margin's items
# costs the one or two buckets a busy program writes in those seconds.
CHANGE_MARGIN_MS = 10_000
# A program's cached range never spans more than this (a year by day is 366 days): a report far
# from the cached range starts the program afresh rather than reading the years between.
MAX_COVERED = timedelta(days=400)


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old a refresh may be: up to `serve_ms` a report answers from the cache alone; up to
    `wait_ms` too, starting a refresh behind it; past it, the report waits for one."""

    serve_ms: int = 1_000
    wait_ms: int = 5_000  # the freshness bar: an event visible within 10 s of its reading


ALWAYS_REFRESH = Freshness(0, 0)  # every report refreshes first (tests, `reports show`)


class ChangeSource(Protocol):
    async def read(
        self, program_id: str, first_bucket: str, last_bucket: str
    ) -> list[BucketRow]: ...

    async def changed(self, program_id: str, after_ms: int) -> list[BucketRow]: ...


class CachedReports:
    """build_report's answers, from the cache; `clock` is epoch seconds, the writers' time."""

    def __init__(
        self,
        source: ChangeSource,
        cache: BucketCache,
        freshness: Freshness = Freshness(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._cache = cache
        self._freshness = freshness
        self._clock = clock
        self._pending: dict[str, asyncio.Task[None]] = {}

    async def build(self, program_id: str, query: ReportQuery) -> Report:
        """The report of one program over the query's range; raises StoreUnavailable."""
        spans = periods(query.first, query.last, query.granularity, query.zone)
        first, last = spans[0].start, spans[-1].end - QUARTER
        entry = self._cache.program(program_id)
        age_ms = int(self._clock() * 1000) - entry.refreshed_ms
        if entry.holds(first, last) and age_ms <= self._freshness.wait_ms:
            if age_ms > self._freshness.serve_ms:
                self._refresh_behind(program_id, entry)
            report = report_of(program_id, query, spans, entry)
        else:
            async with entry.lock:
                await self._refresh(program_id, entry, first, last)
                report = report_of(program_id, query, spans, entry)
        self._cache.trim()
        return report

    def _refresh_behind(self, program_id: str, entry: ProgramBuckets) -> None:
        """A refresh of the entry's whole range as a task, unless one is under way."""
        if entry.lock.locked() or program_id in self._pending:
            return
        task = asyncio.create_task(self._refresh_held(program_id, entry))
        self._pending[program_id] = task
        task.add_done_callback(lambda _: self._pending.pop(program_id, None))

    async def _refresh_held(self, program_id: str, entry: ProgramBuckets) -> None:
        try:
            async with entry.lock:
                if entry.first is not None and entry.last is not None:
                    await self._refresh(program_id, entry, entry.first, entry.last)
        except StoreUnavailable as exc:
            # Reports go on from the cache until it is wait_ms old; then they wait for a
            # refresh themselves and answer 503 while the store is down.
            log.warning("report cache refresh failed: %s", exc)

    async def close(self) -> None:
        """Stop the refreshes under way (at shutdown)."""
        await stop_tasks(list(self._pending.values()))

    async def _refresh(
        self, program_id: str, entry: ProgramBuckets, first: datetime, last: datetime
    ) -> None:
        """Bring the entry up to date and make it cover `first` to `last` (bucket starts). On
        StoreUnavailable it stays as it was, or holds newer copies: never a wrong refresh time."""
        if (
            entry.first is not None
            and entry.last is not None
            and max(entry.last, last) - min(entry.first, first) > MAX_COVERED
        ):
            entry.reset()
        started_ms = int(self._clock() * 1000)
        if entry.first is not None:
            since = entry.refreshed_ms - CHANGE_MARGIN_MS
            entry.take_changes(await self._source.changed(program_id, since))
        for low, high in entry.missing(first, last):
            rows = await self._source.read(program_id, bucket_name(low), bucket_name(high))
            entry.take_range(low, high, rows)
        entry.refreshed_ms = started_ms

    def size(self) -> int:
        """Buckets and sums held, for the metrics."""
        return self._cache.weight
