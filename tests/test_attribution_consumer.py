"""Conversion attribution in the events processor and the matcher, against a real moto server:
every attribution value, the claim on an order across shards, parking and late clicks,
redeliveries, racing matchers, and the report counters that follow from the decisions."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, NamedTuple

import pytest

from consumers import privacy
from consumers.attribution.erasure import AttributionRecords
from consumers.attribution.matcher import Matcher, build_matcher
from consumers.aws import open_clients, open_lean_calls
from consumers.dead_letters import DeadLetterTable
from consumers.events_processor import EventsProcessor, build_events_processor
from consumers.lambda_handlers import match_handler
from consumers.metrics import ConsumerMetrics
from consumers.privacy_table import PrivacyTable
from consumers.records import StreamRecord
from consumers.settings import ConsumerSettings
from consumers.user_items import UserItems
from tests.support.consumers import consumer_env, provisioned, scan_table
from tracker.schema.tracking.v1 import tracking_pb2 as pb

NO_REDIS = "redis://127.0.0.1:1/0"
SHARD = "shardId-000000000000"
OTHER_SHARD = "shardId-000000000001"
NOW_MS = 1_780_000_000_000
DAY_MS = 86_400_000


class Stack(NamedTuple):
    processor: EventsProcessor
    matcher: Matcher
    dynamodb: Any


@pytest.fixture
async def settings(kinesalite_url: str, moto_url: str) -> ConsumerSettings:
    env = consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1)
    env["MATCH_WAIT_SECONDS"] = "2"
    return await provisioned(env)


@asynccontextmanager
async def stack(settings: ConsumerSettings) -> AsyncIterator[Stack]:
    async with AsyncExitStack() as exits:
        _, dynamodb = await open_clients(settings, exits)
        lean = await open_lean_calls(dynamodb, exits)
        metrics = ConsumerMetrics()
        dead = DeadLetterTable(dynamodb, settings.dead_letter_table, metrics)
        processor = build_events_processor(settings, dynamodb, dead, metrics, lean=lean)
        yield Stack(processor, build_matcher(settings, dynamodb, metrics), dynamodb)


def click(program: str = "shop", at_ms: int = NOW_MS, window: int = 30, **fields: Any) -> bytes:
    event = pb.TrackingEvent(
        programid=program,
        message_id=os.urandom(16).hex(),
        timestamp_ms=at_ms,
        event_type=pb.CLICK,
        validation=pb.OK,
        is_valid=True,
        billable=fields.pop("billable", True),
        attribution_window_days=window,
        **fields,
    )
    return event.SerializeToString()


def conversion(
    click_id: str = "", program: str = "shop", at_ms: int = NOW_MS, **fields: Any
) -> bytes:
    event = pb.TrackingEvent(
        programid=program,
        message_id=os.urandom(16).hex(),
        timestamp_ms=at_ms,
        event_type=pb.CONVERSION,
        validation=pb.OK,
        is_valid=True,
        click_id=click_id,
        **fields,
    )
    return event.SerializeToString()


def message_id(data: bytes) -> str:
    return pb.TrackingEvent.FromString(data).message_id


_sequence = [49_000_000_000]


def as_records(*payloads: bytes) -> list[StreamRecord]:
    """Records with sequence numbers that grow across calls, as a shard's do."""
    records = []
    for data in payloads:
        _sequence[0] += 1
        records.append(StreamRecord(f"{_sequence[0]:056d}", os.urandom(8).hex(), data))
    return records


async def conversions(settings: ConsumerSettings) -> dict[str, dict[str, Any]]:
    """Message id -> the stored conversion item."""
    assert settings.aws.dynamodb_endpoint is not None
    items = await scan_table(settings.aws.dynamodb_endpoint, settings.events_table)
    return {i["message_id"]["S"]: i for i in items if i["event_type"]["S"] == "CONVERSION"}


async def attributions(settings: ConsumerSettings) -> dict[str, str]:
    return {k: v["attribution"]["S"] for k, v in (await conversions(settings)).items()}


async def report_counts(settings: ConsumerSettings) -> Counter[str]:
    assert settings.aws.dynamodb_endpoint is not None
    total: Counter[str] = Counter()
    for item in await scan_table(settings.aws.dynamodb_endpoint, settings.rollup_table):
        counts = item["counts"]["M"]
        total.update({k: int(v["N"]) for k, v in counts.items() if not k.startswith("valid")})
    return total


async def validations(settings: ConsumerSettings) -> int:
    """Events counted under validation.OK, all rows together."""
    assert settings.aws.dynamodb_endpoint is not None
    rows = await scan_table(settings.aws.dynamodb_endpoint, settings.rollup_table)
    return sum(int(row["counts"]["M"].get("validation.OK", {"N": "0"})["N"]) for row in rows)


async def parked(settings: ConsumerSettings) -> list[dict[str, Any]]:
    assert settings.aws.dynamodb_endpoint is not None
    items = await scan_table(settings.aws.dynamodb_endpoint, settings.attribution.table)
    return [i for i in items if i["pk"]["S"].startswith("parked#")]


async def test_every_attribution_value(settings: ConsumerSettings) -> None:
    good, non_billable, old, other = (
        click(),
        click(billable=False),
        click(at_ms=NOW_MS - 8 * DAY_MS, window=7),
        click(program="elsewhere"),
    )
    later = click(at_ms=NOW_MS + 10 * 60_000)  # more than 5 minutes after its conversion
    slightly_later = click(at_ms=NOW_MS + 4 * 60_000)  # within the clocks' allowance
    cases = {
        "ATTRIBUTED": conversion(
            message_id(good), order_id="o-1", value_micros=12_500_000, currency="EUR"
        ),
        "ATTRIBUTED ": conversion(
            message_id(non_billable), order_id="o-2", value_micros=1, currency="EUR"
        ),
        "ATTRIBUTED  ": conversion(message_id(slightly_later), value_micros=3, currency="USD"),
        "DUPLICATE": conversion(
            message_id(good), order_id="o-1", value_micros=12_500_000, currency="EUR"
        ),
        "NO_CLICK_ID": conversion(order_id="o-3"),
        "NO_CONSENT": conversion(message_id(good), consent=pb.CONSENT_DENIED),
        "NO_CONSENT ": conversion(message_id(good), gpc=True),
        "PROGRAM_MISMATCH": conversion(message_id(other)),
        "OUTSIDE_WINDOW": conversion(message_id(old)),
        "OUTSIDE_WINDOW ": conversion(message_id(later)),
    }
    clicks = [good, non_billable, old, other, later, slightly_later]
    async with stack(settings) as s:
        await s.processor.process(SHARD, as_records(*clicks))
        # The duplicate after its original, in a batch of its own: the order decides who wins.
        first = [v for k, v in cases.items() if k != "DUPLICATE"]
        await s.processor.process(SHARD, as_records(*first))
        await s.processor.process(SHARD, as_records(cases["DUPLICATE"]))
    found = await attributions(settings)
    assert {message_id(v): k.strip() for k, v in cases.items()} == found
    items = await conversions(settings)
    attributed = items[message_id(cases["ATTRIBUTED"])]
    assert attributed["click_timestamp_ms"] == {"N": str(NOW_MS)}
    assert attributed["click_billable"] == {"BOOL": True}
    assert items[message_id(cases["ATTRIBUTED "])]["click_billable"] == {"BOOL": False}
    assert "click_id" not in items[message_id(cases["NO_CONSENT"])]
    assert await report_counts(settings) == Counter(
        {
            "clicks": 6,
            "billable_clicks": 5,
            "conversions": 2,  # the two attributed to billable clicks
            "revenue.EUR": 12_500_000,
            "revenue.USD": 3,
            # attributed to a non-billable click, no click id, no consent (2), mismatch, window (2)
            "unattributed_conversions": 7,
        }
    )


async def test_a_conversion_before_its_click_waits_and_is_attributed(
    settings: ConsumerSettings,
) -> None:
    late_click = click()
    early = conversion(message_id(late_click), order_id="o-9", value_micros=7, currency="GBP")
    async with stack(settings) as s:
        await s.processor.process(SHARD, as_records(early))
        assert await attributions(settings) == {message_id(early): "PENDING"}
        assert len(await parked(settings)) == 1
        assert await s.matcher.look() == 0  # the click is not there yet
        await s.processor.process(OTHER_SHARD, as_records(late_click))
        await asyncio.sleep(settings.attribution.match_poll_seconds)  # its next look is due
        assert await s.matcher.look() == 1
        assert await s.matcher.look() == 0
        # The conversion's record delivered again changes nothing.
        await s.processor.process(SHARD, as_records(early))
    assert await attributions(settings) == {message_id(early): "ATTRIBUTED"}
    assert await parked(settings) == []
    assert await validations(settings) == 2  # the conversion counts as an event once, too
    counts = await report_counts(settings)
    assert (counts["conversions"], counts["revenue.GBP"], counts["unattributed_conversions"]) == (
        1,
        7,
        0,
    )


async def test_a_click_that_never_comes_is_unknown_after_the_wait(
    settings: ConsumerSettings,
) -> None:
    lost = conversion("f" * 32, order_id="o-lost")
    async with stack(settings) as s:
        await s.processor.process(SHARD, as_records(lost))
        assert await s.matcher.look() == 0
        await asyncio.sleep(settings.attribution.match_wait_seconds + 0.2)
        assert await s.matcher.look() == 1
    assert await attributions(settings) == {message_id(lost): "UNKNOWN_CLICK"}
    assert (await report_counts(settings))["unattributed_conversions"] == 1
    assert await parked(settings) == []


async def test_one_order_on_two_shards_at_once_is_attributed_once(
    settings: ConsumerSettings,
) -> None:
    clicks = [click() for _ in range(20)]
    pairs = [
        (
            conversion(message_id(c), order_id=f"order-{n}", value_micros=100, currency="EUR"),
            conversion(message_id(c), order_id=f"order-{n}", value_micros=100, currency="EUR"),
        )
        for n, c in enumerate(clicks)
    ]
    async with stack(settings) as s, stack(settings) as t:
        await s.processor.process(SHARD, as_records(*clicks))
        await asyncio.gather(
            s.processor.process(SHARD, as_records(*(a for a, _ in pairs))),
            t.processor.process(OTHER_SHARD, as_records(*(b for _, b in pairs))),
        )
    found = await attributions(settings)
    for a, b in pairs:
        assert sorted([found[message_id(a)], found[message_id(b)]]) == ["ATTRIBUTED", "DUPLICATE"]
    counts = await report_counts(settings)
    assert (counts["conversions"], counts["revenue.EUR"]) == (20, 2000)
    assert counts["unattributed_conversions"] == 0


async def test_racing_matchers_decide_each_parked_conversion_once(
    settings: ConsumerSettings,
) -> None:
    clicks = [click() for _ in range(12)]
    early = [conversion(message_id(c), value_micros=5, currency="EUR") for c in clicks]
    # Two conversions of one order, both parked: one ATTRIBUTED, one DUPLICATE.
    twice = [
        conversion(message_id(clicks[0]), order_id="shared", value_micros=5, currency="EUR")
        for _ in range(2)
    ]
    async with stack(settings) as s, stack(settings) as t, stack(settings) as u:
        await s.processor.process(SHARD, as_records(*early, *twice))
        await s.processor.process(OTHER_SHARD, as_records(*clicks))
        # Three workers look at once, more than once: whatever the conflicts, each parked
        # conversion is decided once, and within a few looks all are.
        for _ in range(20):
            await asyncio.gather(s.matcher.look(), t.matcher.look(), u.matcher.look())
            if not await parked(settings):
                break
    found = Counter((await attributions(settings)).values())
    assert found == Counter({"ATTRIBUTED": 13, "DUPLICATE": 1})
    counts = await report_counts(settings)
    assert (counts["conversions"], counts["revenue.EUR"]) == (13, 65)
    assert await parked(settings) == []


async def test_a_redelivered_batch_and_a_copy_on_another_record_count_once(
    settings: ConsumerSettings,
) -> None:
    clicks = [click() for _ in range(10)]
    sales = [
        conversion(message_id(c), order_id=f"r-{n}", value_micros=10**6, currency="USD")
        for n, c in enumerate(clicks)
    ]
    records = as_records(*clicks, *sales)
    async with stack(settings) as s:
        await s.processor.process(SHARD, records)
        await s.processor.process(SHARD, records)  # whole again
        await s.processor.process(SHARD, records[5:15])  # part again
        await s.processor.process(OTHER_SHARD, as_records(*sales[:4]))  # copies, new records
    found = Counter((await attributions(settings)).values())
    assert found == Counter({"ATTRIBUTED": 10})
    counts = await report_counts(settings)
    assert (counts["conversions"], counts["revenue.USD"]) == (10, 10 * 10**6)


async def test_a_record_redelivered_after_the_matcher_decided_is_left_as_decided(
    settings: ConsumerSettings,
) -> None:
    """The parked conversion's worker was killed before its checkpoint: the record comes back
    after the matcher decided it, and its rollup position was never written."""
    late_click = click()
    early = conversion(message_id(late_click), value_micros=9, currency="EUR")
    records = as_records(early)
    async with stack(settings) as s, stack(settings) as successor:
        await s.processor.process(SHARD, records)
        await s.processor.process(OTHER_SHARD, as_records(late_click))
        assert await s.matcher.look() == 1
        await successor.processor.process(SHARD, records)
    assert await attributions(settings) == {message_id(early): "ATTRIBUTED"}
    counts = await report_counts(settings)
    assert (counts["conversions"], counts["revenue.EUR"]) == (1, 9)


async def test_erasure_deletes_the_users_click_and_parked_records(
    settings: ConsumerSettings,
) -> None:
    user = "ab" * 16  # a user key, as the tracker hashes a uid
    users_click = click(user_key=user)
    waiting = conversion("e" * 32, user_key=user, order_id="o-erase")
    others_click = click()
    async with stack(settings) as s:
        await s.processor.process(SHARD, as_records(users_click, others_click, waiting))
        assert settings.aws.dynamodb_endpoint is not None
        before = await scan_table(settings.aws.dynamodb_endpoint, settings.attribution.table)
        assert {i["pk"]["S"].split("#")[0] for i in before} == {"click", "parked"}
        table = PrivacyTable(s.dynamodb, settings.privacy.table, settings.privacy.audit_ttl_days)
        items = UserItems(s.dynamodb, settings.events_table)
        records = AttributionRecords(s.dynamodb, settings.attribution.table, None)
        assert await privacy.erase(privacy.Privacy(table, items, 0.0, records), user) == 2
    after = await scan_table(settings.aws.dynamodb_endpoint, settings.attribution.table)
    assert [i["pk"]["S"] for i in after] == [f"click#{message_id(others_click)}"]


async def test_the_scheduled_lambda_decides_parked_conversions(
    kinesalite_url: str, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1)
    settings = await provisioned(env)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    late_click = click()
    early = conversion(message_id(late_click), value_micros=4, currency="EUR")
    async with stack(settings) as s:
        await s.processor.process(SHARD, as_records(early))
        await s.processor.process(OTHER_SHARD, as_records(late_click))
    # The handler runs its own event loop, as in Lambda: off this test's loop.
    assert await asyncio.to_thread(match_handler, {"source": "aws.events"}, None) == {"decided": 1}
    assert await attributions(settings) == {message_id(early): "ATTRIBUTED"}
    assert (await report_counts(settings))["revenue.EUR"] == 4


async def test_a_double_clicks_conversion_is_attributed_to_its_first_click(
    settings: ConsumerSettings,
) -> None:
    first = click()
    second = click(
        at_ms=NOW_MS + 800,
        billable=False,
        ivt=pb.IVT_DUPLICATE_CLICK,
        original_click_id=message_id(first),
    )
    # The landing page got the second click's id: the browser followed the last redirect.
    sale = conversion(message_id(second), order_id="dc-1", value_micros=2, currency="EUR")
    async with stack(settings) as s:
        await s.processor.process(SHARD, as_records(second))
        await s.processor.process(SHARD, as_records(sale))
        assert await attributions(settings) == {message_id(sale): "PENDING"}  # its first: unseen
        await s.processor.process(OTHER_SHARD, as_records(first))
        await asyncio.sleep(settings.attribution.match_poll_seconds)
        assert await s.matcher.look() == 1
    item = (await conversions(settings))[message_id(sale)]
    assert item["attribution"] == {"S": "ATTRIBUTED"}
    assert item["click_timestamp_ms"] == {"N": str(NOW_MS)}
    assert item["click_billable"] == {"BOOL": True}
    assert (await report_counts(settings))["conversions"] == 1
