"""Bytes per event: what a real tracker ships for typical requests, and what that costs in Kinesis
and DynamoDB.

A tracker of the bench's stack (behind a load balancer's X-Forwarded-For, with a TCF vendor id
and a USER_ID_KEY, so that every privacy branch can happen) gets one request of each kind from a
browser's headers; its events are read back from kinesalite. For each: the TrackingEvent's bytes,
the Kinesis record (data + partition key, the 32-character message id), and the DynamoDB item the
events consumer writes for it (consumers/event_items.py), sized by DynamoDB's published rules,
plus its entry in the sparse `user_key-index` when it has a user key. Aggregation is measured by
packing a stream of such events in the traffic mix with the shipper's own `pack`.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.browser import ADDRESS, REFERER, USER_AGENT
from bench.consent_strings import granted_string
from bench.metrics_probe import wait_metric
from bench.privacy_inputs import USER_ID, USER_ID_KEY_TEXT, VENDOR_ID
from bench.signed_links import LINK_PARAMS
from bench.stack import BenchStack
from consumers.event_items import ItemRules, event_item
from consumers.settings import EVENTS_TABLE_BUCKETS_DEFAULT
from tests.support.kinesis import read_records
from tracker.events.entry import Entry
from tracker.events.kpl import pack
from tracker.events.shipper import PAYLOAD_UNIT
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from consumers.event_items import Item

KIB = 1024
# What DynamoDB adds to every item (and index entry) for storage billing, not for capacity.
STORAGE_OVERHEAD = 100
EVENTS_TTL_DAYS = 90  # the consumers' default, which sets expires_at's digits
# With the default bucket count, which sets program_bucket's
ITEM_RULES = ItemRules(EVENTS_TTL_DAYS, EVENTS_TABLE_BUCKETS_DEFAULT)
# A program with field lengths of a real campaign (the demo programs' are shorter).
PROGRAM: dict[str, Any] = {
    "program_id": "acme-2026-spring-shoes-eu",
    "program_name": "Spring Shoes Sale 2026 - EU display",
    "customer_id": 100123,
    "customer_name": "Acme Footwear GmbH",
    "checksum": "9b74c9897bac770ffc029102a200c5de",
    "valid": True,
    "version": 1,
    "landing_url": "https://www.example.com/shoes/spring?utm_source=tracker&utm_medium=display",
}
INSTANCE_ID = "ip-10-0-12-34.ec2.internal-7"  # what a Fargate task's hostname-pid looks like
TRACKER_SETTINGS = {
    "TRUST_FORWARDED_FOR": "true",
    "TCF_VENDOR_ID": str(VENDOR_ID),
    "USER_ID_KEY": USER_ID_KEY_TEXT,
    "TRACKER_INSTANCE_ID": INSTANCE_ID,
}
CONSENT_QUERY = f"&gdpr=1&gdpr_consent={granted_string()}&uid={USER_ID}"
CLICK_QUERY = "".join(f"&{key}={value}" for key, value in LINK_PARAMS)
GPC = (("Sec-GPC", "1"),)


@dataclass(frozen=True)
class Kind:
    """One kind of request, and the share of all requests it is in the model's traffic mix."""

    name: str
    path: str
    headers: tuple[tuple[str, str], ...]
    share: float


PIXEL = f"/v1/pixel?program={PROGRAM['program_id']}"
CLICK = f"/v1/click?program={PROGRAM['program_id']}{CLICK_QUERY}"
# The model's mix: 1 click per 100 requests; of each, 70 % without consent signals, 20 % with
# TCF consent and the advertiser's uid, 10 % with GPC (no identifiers kept).
KINDS = (
    Kind("pixel", PIXEL, (), 0.693),
    Kind("pixel, consent granted + uid", PIXEL + CONSENT_QUERY, (), 0.198),
    Kind("pixel, GPC", PIXEL, GPC, 0.099),
    Kind("click", CLICK, (), 0.007),
    Kind("click, consent granted + uid", CLICK + CONSENT_QUERY, (), 0.002),
    Kind("click, GPC", CLICK, GPC, 0.001),
)


def capture(stack: BenchStack) -> dict[str, bytes]:
    """One real event of each kind, serialized as the tracker shipped it."""
    _load_program(stack)
    tracker = stack.tracker(TRACKER_SETTINGS)
    port = tracker.port
    tracker.start()
    try:
        time.sleep(1.5)  # the day's visitor secret fetched from Redis
        for kind in KINDS:
            _request(port, kind)
        wait_metric(
            f"http://127.0.0.1:{port}/metrics", "tracker_ship_events_shipped_total", len(KINDS), 30
        )
    finally:
        tracker.stop()
    # The stack's stream is fresh: these are the only events on it.
    return _by_kind(
        asyncio.run(read_records(stack.env["AWS_ENDPOINT_URL_KINESIS"], _stream(stack)))
    )


def _stream(stack: BenchStack) -> str:
    return stack.env.get("EVENT_STREAM", "tracking-events")


def _load_program(stack: BenchStack) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "program.json"
        path.write_text(json.dumps([PROGRAM]))
        stack.command("tracker", "programs", "load", str(path))


def _request(port: int, kind: Kind) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {
            "User-Agent": USER_AGENT,
            "Referer": REFERER,
            "Accept": "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
            "Accept-Language": "en-US,en;q=0.9",
            "X-Forwarded-For": ADDRESS,
            **dict(kind.headers),
        }
        connection.request("GET", kind.path, headers=headers)
        status = connection.getresponse().status
    finally:
        connection.close()
    if status not in (200, 302):
        raise RuntimeError(f"{kind.name}: the tracker answered {status}")


def _by_kind(records: Iterable[bytes]) -> dict[str, bytes]:
    """Which captured record is which kind, told by what the event says of itself."""
    found: dict[str, bytes] = {}
    for data in records:
        event = pb.TrackingEvent.FromString(data)
        base = "click" if event.event_type == pb.CLICK else "pixel"
        if event.gpc:
            found[f"{base}, GPC"] = data
        elif event.consent == pb.CONSENT_GRANTED:
            found[f"{base}, consent granted + uid"] = data
        else:
            found[base] = data
    missing = [kind.name for kind in KINDS if kind.name not in found]
    if missing:
        raise RuntimeError(f"no event captured for {missing}")
    if not pb.TrackingEvent.FromString(found["pixel"]).visitor_id:
        raise RuntimeError("the pixel's event has no visitor_id: the tracker had no secret yet")
    return found


# --- sizes ---------------------------------------------------------------------------------------


def sizes(samples: Mapping[str, bytes]) -> dict[str, Any]:
    """Per kind and for the mix: event, Kinesis and DynamoDB bytes and units; aggregation."""
    rows = [_kind_sizes(kind, samples[kind.name]) for kind in KINDS]
    mix = {
        key: round(sum(kind.share * row[key] for kind, row in zip(KINDS, rows, strict=True)), 2)
        for key in rows[0]
        if key not in ("kind", "share")
    }
    return {"kinds": rows, "mix": mix, "aggregated": aggregation(samples)}


def _kind_sizes(kind: Kind, data: bytes) -> dict[str, Any]:
    event = pb.TrackingEvent.FromString(data)
    item = event_item(event, ITEM_RULES)
    record = len(data) + len(event.message_id)
    table = item_size(item)
    index = index_entry_size(item)
    return {
        "kind": kind.name,
        "share": kind.share,
        "event_bytes": len(data),
        "kinesis_record_bytes": record,
        "payload_units": math.ceil(len(data) / PAYLOAD_UNIT),
        "item_bytes": table,
        "index_entry_bytes": index,
        "write_units": math.ceil(table / KIB) + (math.ceil(index / KIB) if index else 0),
        "storage_bytes": table + STORAGE_OVERHEAD + (index + STORAGE_OVERHEAD if index else 0),
    }


def mix_entries(samples: Mapping[str, bytes], events: int) -> list[Entry]:
    """`events` events in the mix's proportions, made from the captured ones: each with a fresh
    32-character message id (its partition key) and the time now, as the tracker makes them,
    and a user key of its own where the kind has one (users differ). Interleaved, as traffic is,
    so that an aggregate holds the mix rather than one kind."""
    entries: list[Entry] = []
    now_ms = int(time.time() * 1000)
    for kind in KINDS:
        template = pb.TrackingEvent.FromString(samples[kind.name])
        for _ in range(round(events * kind.share)):
            template.message_id = os.urandom(16).hex()
            template.timestamp_ms = now_ms
            if template.user_key:
                template.user_key = os.urandom(16).hex()
            entries.append(Entry(template.message_id, template.SerializeToString()))
    entries.sort(key=lambda entry: entry.partition_key)  # random ids: a shuffle
    return entries


def aggregation(samples: Mapping[str, bytes], events: int = 100_000) -> dict[str, float]:
    """The mix packed with the shipper's own `pack`: records, bytes and payload units per event.
    Payload units are counted on the data, as the shipper's counter counts them; bytes include
    the partition key, as a shard's 1 MiB/s limit does."""
    entries = mix_entries(samples, events)
    packed = pack(entries)
    record_bytes = sum(len(e.data) + len(e.partition_key) for e in packed)
    units = sum(math.ceil(len(e.data) / PAYLOAD_UNIT) for e in packed)
    return {
        "events": len(entries),
        "records": len(packed),
        "events_per_record": round(len(entries) / len(packed), 1),
        "record_bytes_per_event": round(record_bytes / len(entries), 2),
        "payload_units_per_event": round(units / len(entries), 5),
        "mean_record_bytes": round(record_bytes / len(packed)),
    }


def item_size(item: Item) -> int:
    """An item's size as DynamoDB counts it for capacity: each attribute's name and value."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def index_entry_size(item: Item) -> int:
    """The item's entry in the KEYS_ONLY `user_key-index`: its keys and the table's; 0 without
    a user key (the index is sparse)."""
    if "user_key" not in item:
        return 0
    keys = ("user_key", "event_key", "program_bucket")
    return item_size({name: item[name] for name in keys})


def _value_size(value: Mapping[str, Any]) -> int:
    (kind, content), *_ = value.items()
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        digits = str(content).lstrip("-").replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "B":
        return len(content)
    if kind == "M":
        # 3 bytes per map, and 1 per element besides its name and value.
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in content.items())
    raise ValueError(f"no size rule for attribute type {kind}")
