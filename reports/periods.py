"""Report periods: the local hours or days of an IANA zone as UTC instants, and the rollups'
15-minute UTC buckets that make them up (docs/reporting.md).

Every zone's offset from UTC is a whole number of quarter hours (in the years a report may
span), so every local hour and day is a run of whole UTC quarter hours. The periods are found
by walking UTC quarter hours and cutting wherever the local day (or local hour and offset)
changes: exact by construction on 23- and 25-hour days, for :30 and :45 offsets, and for zones
whose midnight falls in a DST gap (the day then starts at its first local instant).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

GRANULARITIES = ("hour", "day")
QUARTER = timedelta(minutes=15)
# Walking starts this long before UTC midnight of the first day: local time there is still the
# day before for every offset up to +14:00 (the largest there is).
_LEAD = timedelta(hours=15)
# A walk never needs more steps than this (366 days plus both ends); a bound against a bug.
_MAX_STEPS = 400 * 96
_BUCKET = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):(00|15|30|45)Z")


@dataclass(frozen=True, slots=True)
class Period:
    """One row's span: [start, end) as UTC instants, and its label."""

    start: datetime
    end: datetime
    label: str  # the local start, ISO 8601 with the zone's offset then


def periods(first: date, last: date, granularity: str, zone: ZoneInfo) -> list[Period]:
    """The hours or days (`granularity`) from local date `first` to `last`, both included.

    Days never go back: on a fall-back across midnight the earlier local date is not reopened
    (the running maximum of local dates decides the day), so the periods are contiguous.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity {granularity!r} is not one of {GRANULARITIES}")
    cuts: list[tuple[datetime, str]] = []  # each period's start and label
    key: tuple[object, ...] | None = None
    day = date.min
    instant = datetime.combine(first, time(), tzinfo=UTC) - _LEAD
    for _ in range(_MAX_STEPS):
        local = instant.astimezone(zone)
        day = max(day, local.date())
        if day > last:
            return _spans(cuts, instant)
        new_key = (day,) if granularity == "day" else (day, local.hour, local.utcoffset())
        if day >= first and new_key != key:
            cuts.append((instant, local.isoformat()))
            key = new_key
        instant += QUARTER
    raise ValueError("range too long for one walk")  # the query allows at most 366 days


def _spans(cuts: list[tuple[datetime, str]], end: datetime) -> list[Period]:
    """Periods from their starts: each ends where the next starts, the last at `end`."""
    ends = [start for start, _ in cuts[1:]] + [end]
    return [Period(start, stop, label) for (start, label), stop in zip(cuts, ends, strict=True)]


def bucket_name(instant: datetime) -> str:
    """The name of the rollup bucket holding `instant`: its UTC quarter hour's start."""
    utc = instant.astimezone(UTC)
    floored = utc.replace(minute=utc.minute - utc.minute % 15, second=0, microsecond=0)
    return floored.strftime("%Y-%m-%dT%H:%MZ")


def parse_bucket(name: str) -> datetime | None:
    """The UTC start of a bucket named `YYYY-MM-DDTHH:MMZ` (minutes 00/15/30/45), else None."""
    match = _BUCKET.fullmatch(name)
    if match is None:
        return None
    year, month, day, hour, minute = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None


def bucket_span(spans: list[Period]) -> tuple[str, str]:
    """The first and last bucket names of the periods (inclusive: a `BETWEEN` range)."""
    return bucket_name(spans[0].start), bucket_name(spans[-1].end - QUARTER)


class PeriodIndex:
    """Which period a bucket belongs to: the one whose [start, end) holds the bucket's start."""

    def __init__(self, spans: list[Period]) -> None:
        self._starts = [span.start for span in spans]
        self._end = spans[-1].end if spans else None

    def find(self, instant: datetime) -> int | None:
        """The period's index, or None when the instant lies outside every period."""
        index = bisect_right(self._starts, instant) - 1
        if index < 0 or self._end is None or instant >= self._end:
            return None
        return index
