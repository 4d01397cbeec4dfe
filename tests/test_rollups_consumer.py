"""Rollups kept by the events processor against a real moto server: every counter equals the
distinct stored events it counts, through redeliveries (whole, split otherwise, from an earlier
record), copies of an event on other records, a kill between the items and the counters, two
workers racing on one shard and late events."""

from __future__ import annotations

import asyncio
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import datasketches
import pytest

from consumers.aws import open_clients, open_lean_calls
from consumers.dead_letters import DeadLetterTable
from consumers.events_processor import EventsProcessor, build_events_processor
from consumers.metrics import ConsumerMetrics
from consumers.records import StreamRecord
from consumers.rollups.tally import UNKNOWN_PROGRAM, bucket_name
from consumers.rollups.writer import RollupWriter
from consumers.settings import ConsumerSettings
from tests.support.consumers import consumer_env, provisioned, scan_table
from tracker.schema.tracking.v1 import tracking_pb2 as pb

NO_REDIS = "redis://127.0.0.1:1/0"
SHARD = "shardId-000000000000"
OTHER_SHARD = "shardId-000000000001"
NOW_MS = 1_780_000_000_000


@pytest.fixture
async def settings(kinesalite_url: str, moto_url: str) -> ConsumerSettings:
    return await provisioned(consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1))


@asynccontextmanager
async def processor(settings: ConsumerSettings) -> AsyncIterator[EventsProcessor]:
    async with AsyncExitStack() as stack:
        _, dynamodb = await open_clients(settings, stack)
        lean = await open_lean_calls(dynamodb, stack)
        metrics = ConsumerMetrics()
        dead = DeadLetterTable(dynamodb, settings.dead_letter_table, metrics)
        yield build_events_processor(settings, dynamodb, dead, metrics, lean=lean)


def mixed_events(count: int, program: str = "shoes", start_ms: int = NOW_MS) -> list[bytes]:
    """Impressions, clicks and events; billable or not, with ivt and validations mixed."""
    rng = random.Random(count)
    events = []
    for n in range(count):
        kind = rng.choice([pb.IMPRESSION, pb.IMPRESSION, pb.CLICK, pb.EVENT])
        ivt = rng.choice([pb.IVT_NONE, pb.IVT_NONE, pb.IVT_NONE, pb.IVT_KNOWN_CRAWLER])
        validation = rng.choice([pb.OK, pb.OK, pb.OK, pb.INACTIVE])
        events.append(
            pb.TrackingEvent(
                programid=program,
                message_id=os.urandom(16).hex(),
                timestamp_ms=start_ms + n * 1000,
                event_type=kind,
                ivt=ivt,
                validation=validation,
                is_valid=validation == pb.OK,
                billable=validation == pb.OK and ivt == pb.IVT_NONE,
                visitor_id=os.urandom(16).hex(),
            ).SerializeToString()
        )
    return events


def as_records(payloads: list[bytes], first: int = 1) -> list[StreamRecord]:
    return [
        StreamRecord(f"{49_000_000_000 + first + n:056d}", os.urandom(8).hex(), data)
        for n, data in enumerate(payloads)
    ]


def expected_counts(payloads: list[bytes]) -> Counter[str]:
    """What the rollups must hold: counted here independently from the events themselves."""
    counts: Counter[str] = Counter()
    names = {pb.IMPRESSION: "impressions", pb.CLICK: "clicks", pb.EVENT: "events"}
    for data in payloads:
        event = pb.TrackingEvent.FromString(data)
        counts[names[event.event_type]] += 1
        counts[f"validation.{pb.Validation.Name(event.validation)}"] += 1
        if event.ivt:
            counts[f"ivt.{pb.InvalidTraffic.Name(event.ivt)}"] += 1
        if event.billable and event.event_type in (pb.IMPRESSION, pb.CLICK):
            counts["billable_" + names[event.event_type]] += 1
    return counts


async def rollup_counts(
    settings: ConsumerSettings, keep: Callable[[dict[str, Any]], bool] = lambda _: True
) -> Counter[str]:
    assert settings.aws.dynamodb_endpoint is not None
    total: Counter[str] = Counter()
    for item in await scan_table(settings.aws.dynamodb_endpoint, settings.rollup_table):
        if keep(item):
            total.update({k: int(v["N"]) for k, v in item["counts"]["M"].items()})
    return total


async def test_a_batch_delivered_again_counts_once(settings: ConsumerSettings) -> None:
    payloads = mixed_events(300)
    records = as_records(payloads)
    async with processor(settings) as events:
        await events.process(SHARD, records)
        await events.process(SHARD, records)  # the whole batch again
        await events.process(SHARD, records[120:])  # again from a later record...
        for start in range(0, 300, 70):  # ...and cut into other pieces (Lambda's bisect)
            await events.process(SHARD, records[start : start + 70])
    assert await rollup_counts(settings) == expected_counts(payloads)


async def test_a_copy_of_an_event_on_another_record_counts_once(settings: ConsumerSettings) -> None:
    """What the tracker's retry after an unclear answer, or its log's replay, puts on the
    stream: the same event again as a new record, later, on the same shard or another."""
    payloads = mixed_events(200)
    async with processor(settings) as events:
        await events.process(SHARD, as_records(payloads))
        await events.process(SHARD, as_records(payloads[50:150], first=1000))
        await events.process(OTHER_SHARD, as_records(payloads[:20], first=5))
        # and a copy within one batch: the first one stands
        await events.process(SHARD, as_records(payloads[:10] + payloads[:10], first=3000))
        # the whole stream delivered again, originals followed by copies in one batch: the
        # originals keep their own positions, which the rollups have counted already
        again = as_records(payloads) + as_records(payloads[:60], first=1000)
        await events.process(SHARD, again)
    assert await rollup_counts(settings) == expected_counts(payloads)
    assert settings.aws.dynamodb_endpoint is not None
    items = await scan_table(settings.aws.dynamodb_endpoint, settings.events_table)
    assert len(items) == 200
    assert {i["stream_record"]["S"].split(":")[0] for i in items} == {SHARD}


async def test_a_kill_between_the_items_and_the_counters_counts_once(
    settings: ConsumerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = mixed_events(150)
    records = as_records(payloads)
    real_apply = RollupWriter.apply

    async def dies(self: RollupWriter, *args: Any) -> None:
        raise ConnectionResetError("killed after the items were written")

    async with processor(settings) as events:
        monkeypatch.setattr(RollupWriter, "apply", dies)
        with pytest.raises(ConnectionResetError):
            await events.process(SHARD, records)
        monkeypatch.setattr(RollupWriter, "apply", real_apply)
        await events.process(SHARD, records)  # redelivered from the checkpoint
    assert await rollup_counts(settings) == expected_counts(payloads)


@pytest.mark.parametrize("order", ["together", "old first", "successor first"])
@pytest.mark.parametrize("successor_ahead", [False, True])
async def test_two_workers_racing_on_one_shard_count_once(
    settings: ConsumerSettings, successor_ahead: bool, order: str
) -> None:
    """A worker whose lease expired while it was still writing, and its successor. The
    successor starts where the checkpoint is, which is where the old worker's batch starts
    (the old one has not checkpointed it): the two batches overlap from their start. Or the
    successor has already stored and counted that much and is on its next batch."""
    payloads = mixed_events(400)
    records = as_records(payloads)
    async with processor(settings) as old, processor(settings) as new:
        successor = records
        if successor_ahead:
            await new.process(SHARD, records[:100])
            successor = records[100:]
        other = new.process(OTHER_SHARD, as_records(mixed_events(100, start_ms=NOW_MS + 7)))
        if order == "together":
            await asyncio.gather(
                old.process(SHARD, records[:250]), new.process(SHARD, successor), other
            )
        else:
            pair = [old.process(SHARD, records[:250]), new.process(SHARD, successor)]
            for step in pair if order == "old first" else pair[::-1]:
                await step
            await other
    counts = await rollup_counts(settings)
    assert (
        counts.total()
        == (
            expected_counts(payloads) + expected_counts(mixed_events(100, start_ms=NOW_MS + 7))
        ).total()
    )
    assert counts - expected_counts(mixed_events(100, start_ms=NOW_MS + 7)) == expected_counts(
        payloads
    )


async def test_late_events_count_in_their_own_bucket_and_unknown_ids_share_a_row(
    settings: ConsumerSettings,
) -> None:
    now = mixed_events(10)
    last_week = mixed_events(5, start_ms=NOW_MS - 7 * 86_400_000)
    strangers = [
        pb.TrackingEvent(
            programid=f"nobody-{n}",
            message_id=os.urandom(16).hex(),
            timestamp_ms=NOW_MS,
            event_type=pb.IMPRESSION,
            validation=pb.UNKNOWN_PROGRAM,
        ).SerializeToString()
        for n in range(30)
    ]
    async with processor(settings) as events:
        await events.process(SHARD, as_records(now + last_week + strangers))
    old_bucket = bucket_name(NOW_MS - 7 * 86_400_000)
    in_old = await rollup_counts(settings, lambda i: i["bucket"]["S"] == old_bucket)
    assert in_old == expected_counts(last_week)
    unknown = await rollup_counts(settings, lambda i: i["program_id"]["S"] == UNKNOWN_PROGRAM)
    assert unknown == Counter({"impressions": 30, "validation.UNKNOWN_PROGRAM": 30})
    assert settings.aws.dynamodb_endpoint is not None
    rows = await scan_table(settings.aws.dynamodb_endpoint, settings.rollup_table)
    assert sum(1 for r in rows if r["program_id"]["S"] == UNKNOWN_PROGRAM) == 1


async def test_uniques_of_a_bucket_estimate_its_distinct_visitors(
    settings: ConsumerSettings,
) -> None:
    visitors = [os.urandom(16).hex() for _ in range(2000)]
    payloads = [
        pb.TrackingEvent(
            programid="shoes",
            message_id=os.urandom(16).hex(),
            timestamp_ms=NOW_MS,
            event_type=pb.IMPRESSION,
            validation=pb.OK,
            billable=True,
            visitor_id=visitors[n % 2000],
        ).SerializeToString()
        for n in range(5000)
    ]
    async with processor(settings) as events:
        for start in range(0, 5000, 500):
            await events.process(SHARD, as_records(payloads[start : start + 500], first=start))
    assert settings.aws.dynamodb_endpoint is not None
    (item,) = await scan_table(settings.aws.dynamodb_endpoint, settings.rollup_table)
    estimate = datasketches.hll_sketch.deserialize(item["uniques"]["B"]).get_estimate()
    assert abs(estimate - 2000) / 2000 < 0.04
    assert int(item["counts"]["M"]["billable_impressions"]["N"]) == 5000
