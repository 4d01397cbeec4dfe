"""Decoding a TrackingEvent from a record and turning it into a DynamoDB item.

Key: `program_id` (partition) and `event_key` = `{timestamp_ms:013d}#{message_id}` (sort). Both are
fixed by the event itself, so writing the same record twice writes the same item, and one
program's events in a time range are one Query on a key range.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from google.protobuf.message import DecodeError

from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

Item = dict[str, "AttributeValueTypeDef"]

_PROGRAM_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_TIMESTAMP_MS = 10**13  # year 2286: anything larger is not a real receive time
DAY_SECONDS = 86_400
# The tracker bounds every field; its events stay below 16 KiB. Anything far larger is foreign
# and could exceed DynamoDB's 400 KB item limit, which would block the shard on retries.
MAX_EVENT_BYTES = 64 * 1024


class EventFormatError(ValueError):
    """The record is not a TrackingEvent we can store."""


def decode_event(data: bytes) -> pb.TrackingEvent:
    if len(data) > MAX_EVENT_BYTES:
        raise EventFormatError(f"{len(data)} bytes: larger than any event the tracker writes")
    event = pb.TrackingEvent()
    try:
        event.ParseFromString(data)
    except DecodeError as exc:
        raise EventFormatError(f"not a TrackingEvent: {exc}") from None
    if not _PROGRAM_ID.fullmatch(event.programid):
        raise EventFormatError(f"bad programid {event.programid[:80]!r}")
    if not _MESSAGE_ID.fullmatch(event.message_id):
        raise EventFormatError(f"bad message_id {event.message_id[:80]!r}")
    if not 0 < event.timestamp_ms < MAX_TIMESTAMP_MS:
        raise EventFormatError(f"bad timestamp_ms {event.timestamp_ms}")
    return event


def event_key(event: pb.TrackingEvent) -> str:
    return f"{event.timestamp_ms:013d}#{event.message_id}"


def event_item(event: pb.TrackingEvent, ttl_days: int) -> Item:
    item: dict[str, Any] = {
        "program_id": {"S": event.programid},
        "event_key": {"S": event_key(event)},
        "message_id": {"S": event.message_id},
        "event_type": {"S": _enum_name(pb.EventType, event.event_type)},
        "timestamp_ms": {"N": str(event.timestamp_ms)},
        "is_valid": {"BOOL": event.is_valid},
        "validation": {"S": _enum_name(pb.Validation, event.validation)},
        "customer_id": {"N": str(event.customer_id)},
        "expires_at": {"N": str(event.timestamp_ms // 1000 + ttl_days * DAY_SECONDS)},
    }
    for name in (
        "checksum",
        "user_agent",
        "program_name",
        "customer_name",
        "client_ip_anonymized",
        "referer",
        "tracker_instance",
    ):
        value = getattr(event, name)
        if value:
            item[name] = {"S": value}
    if event.requested_customer_id:
        item["requested_customer_id"] = {"N": str(event.requested_customer_id)}
    if event.params:
        item["params"] = {"M": {k: {"S": v} for k, v in event.params.items()}}
    return item


def _enum_name(enum: Any, number: int) -> str:
    try:
        return str(enum.Name(number))
    except ValueError:
        return f"UNKNOWN_{number}"  # a newer producer's value: keep the event, name the number
