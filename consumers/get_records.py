"""Kinesis GetRecords limits every reader of a shard keeps to: the page size and the call pace."""

from __future__ import annotations

GET_RECORDS_LIMIT = 1000
# Kinesis allows 5 GetRecords calls per second per shard, for all its readers together; beyond
# that it throttles (ProvisionedThroughputExceededException). A reader that re-polls at once after
# every non-empty page would cross it whenever pages are small, so calls are paced. Every shard
# has two readers, `consumers events` and `consumers lake`: 4 calls a second and 1, together 5.
# At up to GET_RECORDS_LIMIT records a call the events reader still takes 4,000 records/s per
# shard, four times what a shard can take in.
GET_RECORDS_INTERVAL = 0.25
# The lake's reader: a call a second of up to 2,000 records, twice what a shard takes in, so a
# backlog is caught up; it gathers LAKE_COMMIT_SECONDS of events anyway.
LAKE_GET_RECORDS_INTERVAL = 1.0
LAKE_GET_RECORDS_LIMIT = 2000


class CallPacer:
    """How long to wait before the next call so that calls start at least `interval` apart."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._last: float | None = None

    def wait_before_call(self, now: float) -> float:
        """The wait before a call made at `now` (plus that wait); records the call's start."""
        wait = 0.0 if self._last is None else max(0.0, self._last + self._interval - now)
        self._last = now + wait
        return wait
