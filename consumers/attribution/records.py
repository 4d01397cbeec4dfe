"""The attribution table's items (ATTRIBUTION_TABLE, keyed `pk`, `sk`). Pure: no I/O.

| pk                               | sk           | what                                         |
| `click#{click_id}`               | `-`          | a click given a click id: what judging needs |
|                                  |              | (a double click's second: `same_as` the first)|
| `dedupe#order#{program}#{order}` | `-`          | the one conversion ATTRIBUTED for an order    |
| `dedupe#click#{program}#{click}` | `-`          | the same for conversions without an order id  |
| `parked#{n}`                     | `message_id` | a conversion waiting for its click            |

None holds a user's key, address or user agent: a click record says which program and when,
a marker names the winning conversion's message id, a parked record the conversion's own
campaign fields and click id. Erasure still deletes a user's click and parked records
(consumers/privacy.py). Everything expires (`expires_at`): a click a day after its window, a marker
after MARKER_DAYS, a parked record a day after its wait.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from consumers.attribution.rules import Click, Conversion
from consumers.event_items import bucket_of
from tracker.schema.tracking.v1 import tracking_pb2 as pb

ONE = "-"  # the sort key of the items that are one per partition key
PARKED_PARTITIONS = 8  # parked conversions spread over this many partitions
MARKER_DAYS = 400  # an order id counts once within this long (longer than any window)
DAY_SECONDS = 86_400
Key = dict[str, Any]


class Parked(NamedTuple):
    """A conversion waiting for its click: itself, where its item is, when it was parked."""

    conversion: Conversion
    item_key: tuple[str, str]  # its events-table item: program_bucket, event_key
    rollup_program: str  # the program its rollup row is under (*unknown for unknown ones)
    parked_ms: int


def click_key(click_id: str) -> Key:
    return {"pk": {"S": f"click#{click_id}"}, "sk": {"S": ONE}}


def click_record(event: pb.TrackingEvent) -> dict[str, Any]:
    """The record of a click given a click id (its message id)."""
    window = event.attribution_window_days
    expires = event.timestamp_ms // 1000 + (window + 1) * DAY_SECONDS
    record = {
        **click_key(event.message_id),
        "program_id": {"S": event.programid},
        "timestamp_ms": {"N": str(event.timestamp_ms)},
        "billable": {"BOOL": event.billable},
        "window_days": {"N": str(window)},
        "expires_at": {"N": str(expires)},
    }
    if event.original_click_id:
        record["same_as"] = {"S": event.original_click_id}
    return record


def same_as(item: dict[str, Any]) -> str | None:
    """The first click of a double click, when this record is of its second."""
    value = item.get("same_as")
    return None if value is None else str(value["S"])


def click_of(item: dict[str, Any]) -> Click:
    return Click(
        item["program_id"]["S"],
        int(item["timestamp_ms"]["N"]),
        bool(item["billable"]["BOOL"]),
        int(item["window_days"]["N"]),
    )


def click_id_of(item: dict[str, Any]) -> str:
    return str(item["pk"]["S"]).removeprefix("click#")


def marker_key(dedupe_key: str) -> Key:
    return {"pk": {"S": f"dedupe#{dedupe_key}"}, "sk": {"S": ONE}}


def marker(dedupe_key: str, winner: str, timestamp_ms: int) -> dict[str, Any]:
    expires = timestamp_ms // 1000 + MARKER_DAYS * DAY_SECONDS
    return {
        **marker_key(dedupe_key),
        "winner": {"S": winner},
        "expires_at": {"N": str(expires)},
    }


def parked_partition(message_id: str) -> str:
    return f"parked#{bucket_of(message_id, PARKED_PARTITIONS)}"


def parked_key(message_id: str) -> Key:
    return {"pk": {"S": parked_partition(message_id)}, "sk": {"S": message_id}}


def parked_record(parked: Parked, wait_seconds: int) -> dict[str, Any]:
    conversion = parked.conversion
    expires = parked.parked_ms // 1000 + wait_seconds + DAY_SECONDS
    return {
        **parked_key(conversion.message_id),
        "program_id": {"S": conversion.program_id},
        "timestamp_ms": {"N": str(conversion.timestamp_ms)},
        "click_id": {"S": conversion.click_id},
        "order_id": {"S": conversion.order_id},
        "value_micros": {"N": str(conversion.value_micros)},
        "currency": {"S": conversion.currency},
        "program_bucket": {"S": parked.item_key[0]},
        "event_key": {"S": parked.item_key[1]},
        "rollup_program": {"S": parked.rollup_program},
        "parked_ms": {"N": str(parked.parked_ms)},
        "expires_at": {"N": str(expires)},
    }


def parked_of(item: dict[str, Any]) -> Parked:
    conversion = Conversion(
        message_id=item["sk"]["S"],
        program_id=item["program_id"]["S"],
        timestamp_ms=int(item["timestamp_ms"]["N"]),
        click_id=item["click_id"]["S"],
        order_id=item["order_id"]["S"],
        value_micros=int(item["value_micros"]["N"]),
        currency=item["currency"]["S"],
        consented=True,  # only conversions with consent and a click id are parked
    )
    item_key = (item["program_bucket"]["S"], item["event_key"]["S"])
    return Parked(conversion, item_key, item["rollup_program"]["S"], int(item["parked_ms"]["N"]))
