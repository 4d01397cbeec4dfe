"""EVENTS_TABLE_TYPES in the events processor, against a real moto server: only the listed types
become items, while suppression, attribution and the rollups see every event, each counted
once through redeliveries and copies within a batch (consumers/events_processor.py explains
which mechanism covers which case, and the one case it cannot)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from contextlib import AsyncExitStack

import pytest

from consumers.aws import open_clients
from consumers.privacy_table import PrivacyTable
from consumers.settings import ConsumerSettings
from tests.support.consumers import consumer_env, provisioned, scan_table, stored_message_ids
from tests.test_attribution_consumer import attributions, click, conversion, message_id, parked
from tests.test_attribution_consumer import stack as attribution_stack
from tests.test_rollups_consumer import (
    NOW_MS,
    SHARD,
    as_records,
    expected_counts,
    mixed_events,
    processor,
    rollup_counts,
)
from tracker.schema.tracking.v1 import tracking_pb2 as pb

NO_REDIS = "redis://127.0.0.1:1/0"
OTHER_SHARD = "shardId-000000000001"
HOUR_MS = 3_600_000
ALL_TYPES = {"IMPRESSION", "CLICK", "EVENT", "CONVERSION"}


async def settings_with(
    kinesalite_url: str, moto_url: str, types: str | None, **more: str
) -> ConsumerSettings:
    env = consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1)
    if types is not None:
        env["EVENTS_TABLE_TYPES"] = types
    return await provisioned({**env, **more})


async def items_by_message_id(settings: ConsumerSettings) -> Counter[str]:
    assert settings.aws.dynamodb_endpoint is not None
    return await stored_message_ids(settings.aws.dynamodb_endpoint, settings.events_table)


def ids_of(payloads: list[bytes], types: set[str]) -> Counter[str]:
    """One per distinct event of these types."""
    events = [pb.TrackingEvent.FromString(data) for data in payloads]
    return Counter({e.message_id for e in events if pb.EventType.Name(e.event_type) in types})


@pytest.mark.parametrize(
    ("types", "item_types"),
    [(None, ALL_TYPES), ("CLICK,CONVERSION", {"CLICK", "CONVERSION"})],
    ids=["default", "clicks-and-conversions"],
)
async def test_only_the_listed_types_are_items_and_every_event_counts_once(
    kinesalite_url: str, moto_url: str, types: str | None, item_types: set[str]
) -> None:
    settings = await settings_with(kinesalite_url, moto_url, types)
    shop_clicks = [click() for _ in range(5)]
    sales = [
        conversion(message_id(c), order_id=f"o-{n}", value_micros=2_000_000, currency="EUR")
        for n, c in enumerate(shop_clicks)
    ]
    lone = conversion(order_id="no-click")
    payloads = [*mixed_events(300), *shop_clicks, *sales, lone]
    fresh = mixed_events(40, program="hats", start_ms=NOW_MS + HOUR_MS)
    records = as_records(payloads)
    doubled = as_records(fresh + fresh, first=5000)  # every event twice in one batch
    async with processor(settings) as events:
        await events.process(SHARD, records)
        await events.process(SHARD, records)  # the whole batch again
        await events.process(SHARD, records[120:])  # again from a later record...
        for start in range(0, len(records), 70):  # ...and cut into other pieces
            await events.process(SHARD, records[start : start + 70])
        await events.process(SHARD, doubled)
        await events.process(SHARD, doubled)

    assert await items_by_message_id(settings) == ids_of([*payloads, *fresh], item_types)
    assert settings.aws.dynamodb_endpoint is not None
    assert await scan_table(settings.aws.dynamodb_endpoint, settings.dead_letter_table) == []
    found = Counter((await attributions(settings)).values())
    assert found == Counter({"ATTRIBUTED": 5, "NO_CLICK_ID": 1})
    expected = expected_counts([*payloads[:-6], *fresh])  # all but the conversions...
    expected.update(  # ...which count as events, and by their decisions
        {
            "validation.OK": 6,
            "conversions": 5,
            "revenue.EUR": 10_000_000,
            "unattributed_conversions": 1,
        }
    )
    assert await rollup_counts(settings) == expected
    assert expected["impressions"] > 0
    assert expected["clicks"] > 5
    assert expected["events"] > 0


async def test_conversions_keep_their_items_and_clicks_without_items_still_attribute(
    kinesalite_url: str, moto_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A list without CONVERSION or CLICK: conversions are stored all the same (their decision
    lives in the item), and clicks without items are still judged, in the batch and late."""
    settings = await settings_with(kinesalite_url, moto_url, "IMPRESSION", MATCH_WAIT_SECONDS="2")
    late_click, quick_click = click(), click()
    early = conversion(message_id(late_click), order_id="o-1", value_micros=7, currency="GBP")
    quick = conversion(message_id(quick_click), order_id="o-2", value_micros=5, currency="GBP")
    seen = mixed_events(30)
    first = as_records([*seen, early], first=1)
    second = as_records([quick_click, quick, late_click], first=100)
    with caplog.at_level(logging.WARNING, logger="consumers.events_processor"):
        async with attribution_stack(settings) as s:
            await s.processor.process(SHARD, first)
            assert await attributions(settings) == {message_id(early): "PENDING"}
            assert await s.matcher.look() == 0  # its click is not there yet
            await s.processor.process(OTHER_SHARD, second)
            await asyncio.sleep(settings.attribution.match_poll_seconds)  # its next look is due
            assert await s.matcher.look() == 1
            assert await s.matcher.look() == 0
            await s.processor.process(SHARD, first)  # both delivered again
            await s.processor.process(OTHER_SHARD, second)
    assert [r.getMessage() for r in caplog.records if "CONVERSION" in r.getMessage()] == [
        "EVENTS_TABLE_TYPES leaves out CONVERSION: conversions are stored as items all the "
        "same, attribution keeps its decisions in them"
    ]
    everything = [*seen, early, quick_click, quick, late_click]
    assert await items_by_message_id(settings) == ids_of(everything, {"IMPRESSION", "CONVERSION"})
    assert await attributions(settings) == {
        message_id(early): "ATTRIBUTED",
        message_id(quick): "ATTRIBUTED",
    }
    assert await parked(settings) == []
    expected = expected_counts([*seen, quick_click, late_click])
    expected.update({"validation.OK": 2, "conversions": 2, "revenue.GBP": 12})
    assert await rollup_counts(settings) == expected


def user_event(kind: pb.EventType, user_key: str, at_ms: int) -> bytes:
    return pb.TrackingEvent(
        programid="shoes",
        message_id=os.urandom(16).hex(),
        timestamp_ms=at_ms,
        event_type=kind,
        validation=pb.OK,
        is_valid=True,
        billable=True,
        user_key=user_key,
    ).SerializeToString()


async def test_a_suppressed_users_events_without_items_are_not_counted(
    kinesalite_url: str, moto_url: str
) -> None:
    settings = await settings_with(kinesalite_url, moto_url, "CLICK,CONVERSION")
    alice, bob = "ab" * 16, "cd" * 16
    async with AsyncExitStack() as exits:
        _, dynamodb = await open_clients(settings, exits)
        table = PrivacyTable(dynamodb, settings.privacy.table, settings.privacy.audit_ttl_days)
        await table.suppress(alice, "restrict")
    kinds: list[pb.EventType] = [pb.IMPRESSION, pb.IMPRESSION, pb.EVENT, pb.CLICK]
    alices = [user_event(kind, alice, NOW_MS + n) for n, kind in enumerate(kinds)]
    bobs = [user_event(kind, bob, NOW_MS + 10 + n) for n, kind in enumerate(kinds)]
    async with processor(settings) as events:
        await events.process(SHARD, as_records([*alices, *bobs]))
    assert await items_by_message_id(settings) == ids_of(bobs, {"CLICK"})
    assert await rollup_counts(settings) == Counter(
        {
            "impressions": 2,
            "billable_impressions": 2,
            "events": 1,
            "clicks": 1,
            "billable_clicks": 1,
            "validation.OK": 4,
        }
    )
