"""Decoding a TrackingEvent from a record and turning it into a DynamoDB item.

Key: `program_bucket` = `{program_id}#{bucket}` (partition) and `event_key` =
`{timestamp_ms:013d}#{message_id}` (sort). A DynamoDB partition takes at most 1,000 writes a
second, and a sort key that only grows cannot be split for heat, so one program's events are
spread over EVENTS_TABLE_BUCKETS partitions. The bucket is a stable hash of the message id, so
the whole key is fixed by the event itself: writing the same record twice writes the same item.
One program's events in a time range are one Query per bucket on a key range. `program_id` stays
on the item as a plain attribute. `user_key`, when the event has one, is also the partition key
of the sparse `user_key-index` (see consumers/provision.py).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from google.protobuf.message import DecodeError

from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, "AttributeValueTypeDef"]

_PROGRAM_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# What tracker.privacy.keys.user_key gives. Checked because it is an index key and a lookup key:
# anything else would make DynamoDB refuse the lookup of a whole batch.
USER_KEY = re.compile(r"[0-9a-f]{32}")
_ORDER_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_CURRENCY = re.compile(r"[A-Z]{3}")
# The text fields attribution makes keys of, and what each must be.
_KEYED_FIELDS = (
    ("click_id", _MESSAGE_ID),
    ("original_click_id", _MESSAGE_ID),
    ("order_id", _ORDER_ID),
    ("currency", _CURRENCY),
)
MAX_VALUE_MICROS = 10**18  # a value below 10^12, in millionths
MAX_WINDOW_DAYS = 90
MAX_TIMESTAMP_MS = 10**13  # year 2286: anything larger is not a real receive time
DAY_SECONDS = 86_400
# The tracker bounds every field; its events stay below 16 KiB. Anything far larger is foreign
# and could exceed DynamoDB's 400 KB item limit, which would block the shard on retries.
MAX_EVENT_BYTES = 64 * 1024


class ItemRules(NamedTuple):
    """What, besides the event, decides its item: how long it lives, how many buckets a
    program's events are spread over (EVENTS_TTL_DAYS, EVENTS_TABLE_BUCKETS)."""

    ttl_days: int
    buckets: int


class EventFormatError(ValueError):
    """The record is not a TrackingEvent we can store.

    `event` is the parsed event when the bytes were a TrackingEvent but a field was wrong, so
    that a dead letter can keep it without its personal fields. The message quotes only fields
    that identify the event, never a personal one.
    """

    def __init__(self, message: str, event: pb.TrackingEvent | None = None) -> None:
        super().__init__(message)
        self.event = event


def decode_event(data: bytes) -> pb.TrackingEvent:
    if len(data) > MAX_EVENT_BYTES:
        raise EventFormatError(f"{len(data)} bytes: larger than any event the tracker writes")
    event = pb.TrackingEvent()
    try:
        event.ParseFromString(data)
    except DecodeError as exc:
        raise EventFormatError(f"not a TrackingEvent: {exc}") from None
    problem = _problem(event)
    if problem is not None:
        raise EventFormatError(problem, event)
    return event


def _problem(event: pb.TrackingEvent) -> str | None:
    if not _PROGRAM_ID.fullmatch(event.programid):
        return f"bad programid {event.programid[:80]!r}"
    if not _MESSAGE_ID.fullmatch(event.message_id):
        return f"bad message_id {event.message_id[:80]!r}"
    if not 0 < event.timestamp_ms < MAX_TIMESTAMP_MS:
        return f"bad timestamp_ms {event.timestamp_ms}"
    if event.user_key and not USER_KEY.fullmatch(event.user_key):
        return "bad user_key (not 32 lowercase hex digits)"
    return _conversion_problem(event)


def _conversion_problem(event: pb.TrackingEvent) -> str | None:
    """The fields attribution keys on: bounded as the tracker bounds them, so that no foreign
    record can make a key DynamoDB refuses (which would hold up the whole batch)."""
    for name, pattern in _KEYED_FIELDS:
        value = getattr(event, name)
        if value and not pattern.fullmatch(value):
            return f"bad {name}"
    if not 0 <= event.value_micros < MAX_VALUE_MICROS:
        return f"bad value_micros {event.value_micros}"
    if not 0 <= event.attribution_window_days <= MAX_WINDOW_DAYS:
        return f"bad attribution_window_days {event.attribution_window_days}"
    return None


def event_key(event: pb.TrackingEvent) -> str:
    return f"{event.timestamp_ms:013d}#{event.message_id}"


def bucket_of(message_id: str, buckets: int) -> int:
    """The message's bucket: the same on every machine and run (Python's hash() is salted per
    process), so a redelivered record lands on the item it wrote before."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def program_bucket(program_id: str, bucket: int) -> str:
    # A program id has no '#' (see _PROGRAM_ID), so the value names one program and bucket.
    return f"{program_id}#{bucket}"


def event_primary_key(event: pb.TrackingEvent, rules: ItemRules) -> dict[str, Any]:
    """The key the event's item has (also what the events processor keeps of an event whose
    type gets no item: a copy of it finds the same key)."""
    bucket = bucket_of(event.message_id, rules.buckets)
    return {
        "program_bucket": {"S": program_bucket(event.programid, bucket)},
        "event_key": {"S": event_key(event)},
    }


def event_item(event: pb.TrackingEvent, rules: ItemRules) -> Item:
    item = event_primary_key(event, rules)
    item |= {
        "program_id": {"S": event.programid},
        "message_id": {"S": event.message_id},
        "event_type": {"S": enum_name(pb.EventType, event.event_type)},
        "timestamp_ms": {"N": str(event.timestamp_ms)},
        "is_valid": {"BOOL": event.is_valid},
        "validation": {"S": enum_name(pb.Validation, event.validation)},
        "customer_id": {"N": str(event.customer_id)},
        "consent": {"S": enum_name(pb.Consent, event.consent)},
        "gpc": {"BOOL": event.gpc},
        "ivt": {"S": enum_name(pb.InvalidTraffic, event.ivt)},
        "billable": {"BOOL": event.billable},
        "expires_at": {"N": str(event.timestamp_ms // 1000 + rules.ttl_days * DAY_SECONDS)},
    }
    for name in (
        "checksum",
        "user_agent",
        "program_name",
        "customer_name",
        "client_ip_anonymized",
        "referer",
        "tracker_instance",
        "visitor_id",
        "user_key",  # absent, not empty: the index is sparse, and keys may not be empty
    ):
        value = getattr(event, name)
        if value:
            item[name] = {"S": value}
    if event.requested_customer_id:
        item["requested_customer_id"] = {"N": str(event.requested_customer_id)}
    if event.event_type == pb.CONVERSION:
        _conversion_fields(event, item)
    elif event.attribution_window_days:
        item["attribution_window_days"] = {"N": str(event.attribution_window_days)}
        if event.original_click_id:
            item["original_click_id"] = {"S": event.original_click_id}
    if event.params:
        item["params"] = {"M": {k: {"S": v} for k, v in event.params.items()}}
    return item


def _conversion_fields(event: pb.TrackingEvent, item: dict[str, Any]) -> None:
    """A conversion's own fields, each only when set; the click id only with consent (the
    tracker leaves it out then; a foreign producer's is not kept either)."""
    consented = event.consent != pb.CONSENT_DENIED and not event.gpc
    if event.click_id and consented:
        item["click_id"] = {"S": event.click_id}
    for name in ("order_id", "currency"):
        value = getattr(event, name)
        if value:
            item[name] = {"S": value}
    if event.value_micros:
        item["value_micros"] = {"N": str(event.value_micros)}


def enum_name(enum: Any, number: int) -> str:
    try:
        return str(enum.Name(number))
    except ValueError:
        return f"UNKNOWN_{number}"  # a newer producer's value: keep the event, name the number


def item_user_key(item: Item) -> str | None:
    value = item.get("user_key")
    return None if value is None else value["S"]
