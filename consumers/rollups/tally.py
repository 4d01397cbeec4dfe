"""What one event adds to the rollups, and a batch's events folded per program and bucket.

Pure: no I/O. The names counted are those of docs/reporting.md. An event counts in the bucket
of its own `timestamp_ms`, however late it is read, so an old bucket grows when late events
arrive and its reports change with it.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from consumers.event_items import enum_name
from tracker.schema.tracking.v1 import tracking_pb2 as pb

BUCKET_SECONDS = 900  # every zone's offset is a whole number of quarter hours
UNKNOWN_PROGRAM = "*unknown"  # one row per bucket for every id nobody knows
POSITION_DIGITS = 64  # Kinesis sequence numbers have up to 56; fixed width orders as numbers

_TYPE_COUNTS = {
    pb.IMPRESSION: ("impressions", "billable_impressions"),
    pb.CLICK: ("clicks", "billable_clicks"),
    pb.EVENT: ("events", None),
}
_UNIQUE_TYPES = frozenset({pb.IMPRESSION, pb.CLICK})


class RollupKey(NamedTuple):
    program_id: str
    bucket: str  # UTC start, YYYY-MM-DDTHH:MMZ


class Counted(NamedTuple):
    """One event as the rollups see it."""

    position: str  # its record's sequence number, padded to POSITION_DIGITS
    names: tuple[str, ...]  # the counters it adds one to
    visitor: str | None  # its visitor id, when it counts as a unique
    # What a decided conversion adds: its counter, and its value to its currency's revenue.
    amounts: Mapping[str, int] | None = None


def bucket_name(timestamp_ms: int) -> str:
    return _quarter_name(timestamp_ms // 1000 // BUCKET_SECONDS)


@functools.lru_cache(maxsize=4096)
def _quarter_name(quarter: int) -> str:
    # A batch's events share a few quarters: formatting each once is most of fold's saving.
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(quarter * BUCKET_SECONDS))


def padded(sequence_number: str) -> str:
    return sequence_number.rjust(POSITION_DIGITS, "0")


def rollup_key(event: pb.TrackingEvent) -> RollupKey:
    unknown = event.validation == pb.UNKNOWN_PROGRAM
    program = UNKNOWN_PROGRAM if unknown else event.programid
    return RollupKey(program, bucket_name(event.timestamp_ms))


def counted(
    event: pb.TrackingEvent, sequence_number: str, amounts: Mapping[str, int] | None = None
) -> Counted:
    """`amounts`: a conversion's, from its attribution (consumers/attribution/rules.py)."""
    kind, billable = event.event_type, event.billable
    names = _names(kind, billable, event.ivt, event.validation)
    unique = billable and kind in _UNIQUE_TYPES and event.visitor_id
    visitor = event.visitor_id if unique else None
    return Counted(padded(sequence_number), names, visitor, amounts or None)


@functools.lru_cache(maxsize=1024)
def _names(kind: int, billable: bool, ivt: int, validation: int) -> tuple[str, ...]:
    """The counters an event of this kind adds to: a few dozen combinations in all."""
    names = [f"validation.{enum_name(pb.Validation, validation)}"]
    kinds = _TYPE_COUNTS.get(kind)  # type: ignore[call-overload]
    if kinds is not None:
        names.append(kinds[0])
        if billable and kinds[1] is not None:
            names.append(kinds[1])
    if ivt != pb.IVT_NONE:
        names.append(f"ivt.{enum_name(pb.InvalidTraffic, ivt)}")
    return tuple(names)


def fold(
    events: Iterable[tuple[pb.TrackingEvent, str]],
    amounts: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[RollupKey, list[Counted]]:
    """(event, its record's sequence number) in stream order -> the events per rollup item;
    `amounts`: what decided conversions add, by message id."""
    groups: dict[RollupKey, list[Counted]] = {}
    extra = amounts or {}
    for event, sequence_number in events:
        adds = extra.get(event.message_id) if extra else None
        groups.setdefault(rollup_key(event), []).append(counted(event, sequence_number, adds))
    return groups
