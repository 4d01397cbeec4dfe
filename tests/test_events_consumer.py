"""The events processor and writer against a real moto server: items, idempotence, dead letters,
KPL aggregation, and UnprocessedItems / throttling injected by a proxy in front of moto."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, NamedTuple

import pytest

from consumers.aws import open_batch_write, open_clients
from consumers.dead_letters import DeadLetterTable
from consumers.event_items import bucket_of
from consumers.events_processor import EventsProcessor, EventStores
from consumers.events_writer import EventsWriter, UnprocessedItemsError
from consumers.metrics import ConsumerMetrics
from consumers.records import StreamRecord
from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    item_rules,
    make_events,
    message_ids,
    provisioned,
    scan_table,
    stored_message_ids,
)
from tests.support.dynamodb_proxy import (
    FaultyDynamoDBProxy,
    WriteRequest,
    always,
    request_key,
    withhold_first_time_every,
)
from tests.support.kpl import aggregate
from tracker.events.kpl import MAGIC, UserRecord
from tracker.schema.tracking.v1 import tracking_pb2 as pb

SHARD = "shardId-000000000000"
NO_REDIS = "redis://127.0.0.1:1/0"  # the events consumer never talks to Redis
DAY = 86_400
# the contract's attributes, the TTL attribute and our keys
CONTRACT_ATTRIBUTES = (
    "message_id",
    "program_id",
    "event_type",
    "timestamp_ms",
    "is_valid",
    "validation",
    "expires_at",
    "program_bucket",
    "event_key",
)


class Consumer(NamedTuple):
    processor: EventsProcessor
    writer: EventsWriter
    metrics: ConsumerMetrics


@pytest.fixture
async def settings(kinesalite_url: str, moto_url: str) -> ConsumerSettings:
    return await provisioned(consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1))


@asynccontextmanager
async def consumer(
    settings: ConsumerSettings, dynamodb_url: str | None = None, max_attempts: int | None = None
) -> AsyncIterator[Consumer]:
    """An EventsProcessor wired as the worker wires it, optionally reaching DynamoDB via a proxy."""
    if dynamodb_url is not None:
        aws = dataclasses.replace(settings.aws, dynamodb_endpoint=dynamodb_url)
        settings = dataclasses.replace(settings, aws=aws)
    metrics = ConsumerMetrics()
    async with AsyncExitStack() as stack:
        _, dynamodb = await open_clients(settings, stack)
        batch_write = await open_batch_write(dynamodb, stack)
        writer = EventsWriter(dynamodb, settings.events_table, metrics, max_attempts, batch_write)
        dead_letters = DeadLetterTable(dynamodb, settings.dead_letter_table, metrics, max_attempts)
        stores = EventStores(writer, dead_letters)
        processor = EventsProcessor(settings.event_stream, stores, metrics, item_rules(settings))
        yield Consumer(processor, writer, metrics)


@pytest.fixture
async def proxy(moto_url: str) -> AsyncIterator[FaultyDynamoDBProxy]:
    faulty = await FaultyDynamoDBProxy(moto_url).start()
    yield faulty
    await faulty.close()


def records(payloads: list[bytes], first_sequence: int = 1) -> list[StreamRecord]:
    return [
        StreamRecord(sequence(first_sequence + n), os.urandom(8).hex(), data)
        for n, data in enumerate(payloads)
    ]


def sequence(n: int) -> str:
    return f"{49_000_000_000_000_000_000 + n:056d}"


def event(**fields: Any) -> bytes:
    base: dict[str, Any] = {
        "programid": "prog-1",
        "message_id": os.urandom(16).hex(),
        "timestamp_ms": 1_700_000_000_123,
        "event_type": pb.IMPRESSION,
        "validation": pb.OK,
        "is_valid": True,
    }
    base.update(fields)
    return pb.TrackingEvent(**base).SerializeToString()


def metric(metrics: ConsumerMetrics, name: str) -> float | None:
    value: float | None = metrics.registry.get_sample_value(name)
    return value


async def dead_letters(settings: ConsumerSettings) -> dict[str, dict[str, Any]]:
    endpoint = settings.aws.dynamodb_endpoint
    assert endpoint is not None
    items = await scan_table(endpoint, settings.dead_letter_table)
    return {item["record_id"]["S"]: item for item in items}


async def stored(settings: ConsumerSettings) -> Counter[str]:
    assert settings.aws.dynamodb_endpoint is not None
    return await stored_message_ids(settings.aws.dynamodb_endpoint, settings.events_table)


async def test_each_event_becomes_one_item_with_the_contract_attributes(
    settings: ConsumerSettings,
) -> None:
    click = pb.TrackingEvent(
        programid="shoes.v2",
        message_id="m-click",
        timestamp_ms=1_700_000_000_999,
        event_type=pb.CLICK,
        validation=pb.CUSTOMER_MISMATCH,
        is_valid=False,
        customer_id=42,
        user_agent="Mozilla/5.0",
        referer="https://news.example/",
        params={"utm_source": "mail"},
        ivt=pb.IVT_DUPLICATE_CLICK,
    )
    impression = pb.TrackingEvent(
        programid="books",
        message_id="m-impression",
        timestamp_ms=1_650_000_000_001,
        event_type=pb.IMPRESSION,
        validation=pb.OK,
        is_valid=True,
        billable=True,
    )
    unverified = pb.TrackingEvent(
        programid="books",
        message_id="m-event",
        timestamp_ms=1_650_000_000_002,
        event_type=pb.EVENT,
        validation=pb.UNVERIFIED,
        is_valid=False,
    )
    events = [click, impression, unverified]
    async with consumer(settings) as c:
        await c.processor.process(SHARD, records([e.SerializeToString() for e in events]))
        assert metric(c.metrics, "consumer_records_total") == 3
        assert metric(c.metrics, "consumer_dead_letters_total") == 0

    assert settings.aws.dynamodb_endpoint is not None
    items = {
        item["message_id"]["S"]: item
        for item in await scan_table(settings.aws.dynamodb_endpoint, settings.events_table)
    }
    assert set(items) == {"m-click", "m-impression", "m-event"}
    ttl = settings.events_ttl_days * DAY
    buckets = settings.events_table_buckets
    assert {k: items["m-click"][k] for k in CONTRACT_ATTRIBUTES} == {
        "message_id": {"S": "m-click"},
        "program_id": {"S": "shoes.v2"},
        "event_type": {"S": "CLICK"},
        "timestamp_ms": {"N": "1700000000999"},
        "is_valid": {"BOOL": False},
        "validation": {"S": "CUSTOMER_MISMATCH"},
        "expires_at": {"N": str(1_700_000_000 + ttl)},
        "program_bucket": {"S": f"shoes.v2#{bucket_of('m-click', buckets)}"},
        "event_key": {"S": "1700000000999#m-click"},
    }
    assert items["m-click"]["customer_id"] == {"N": "42"}
    assert items["m-click"]["user_agent"] == {"S": "Mozilla/5.0"}
    assert items["m-click"]["params"] == {"M": {"utm_source": {"S": "mail"}}}
    assert {k: items["m-impression"][k] for k in CONTRACT_ATTRIBUTES} == {
        "message_id": {"S": "m-impression"},
        "program_id": {"S": "books"},
        "event_type": {"S": "IMPRESSION"},
        "timestamp_ms": {"N": "1650000000001"},
        "is_valid": {"BOOL": True},
        "validation": {"S": "OK"},
        "expires_at": {"N": str(1_650_000_000 + ttl)},
        "program_bucket": {"S": f"books#{bucket_of('m-impression', buckets)}"},
        "event_key": {"S": "1650000000001#m-impression"},
    }
    assert items["m-event"]["event_type"] == {"S": "EVENT"}
    assert items["m-event"]["validation"] == {"S": "UNVERIFIED"}
    # Every item says whether it is worth billing, and why not.
    assert items["m-click"]["ivt"] == {"S": "IVT_DUPLICATE_CLICK"}
    assert items["m-click"]["billable"] == {"BOOL": False}
    assert items["m-impression"]["ivt"] == {"S": "IVT_NONE"}
    assert items["m-impression"]["billable"] == {"BOOL": True}
    assert items["m-event"]["billable"] == {"BOOL": False}


async def test_a_record_delivered_twice_in_one_batch_and_across_batches_gives_one_item(
    settings: ConsumerSettings,
) -> None:
    payloads = make_events(30)
    batch = records(payloads)
    again = records(payloads, first_sequence=100)  # a producer retry: same data, new numbers
    # each duplicate next to its original, so that both fall into one BatchWriteItem call
    # (which DynamoDB refuses when its keys repeat)
    doubled = [r for n in range(30) for r in (batch[n], batch[n] if n % 2 else again[n])]
    async with consumer(settings, max_attempts=3) as c:
        await c.processor.process(SHARD, doubled)
        await c.processor.process(SHARD, batch)  # the whole batch again, after a crash
        await c.processor.process(SHARD, again[::3])
    counts = await stored(settings)
    assert set(counts) == message_ids(payloads)
    assert set(counts.values()) == {1}
    assert await dead_letters(settings) == {}


async def test_poison_records_are_dead_lettered_and_the_good_ones_persisted(
    settings: ConsumerSettings,
) -> None:
    good = make_events(6)
    garbage = b"\xff\xfe\xfd\x00 this is not a protobuf \x07\x08\x09"
    no_program = event(programid="")
    inner_garbage = b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
    aggregated = aggregate(
        [UserRecord("k1", good[2]), UserRecord("k2", inner_garbage), UserRecord("k1", good[3])]
    )
    broken_body = b"\xff\xff\xff\xff"  # magic and digest match, the body does not parse
    broken_aggregate = MAGIC + broken_body + hashlib.md5(broken_body).digest()  # noqa: S324
    batch = records(
        [good[0], garbage, good[1], no_program, aggregated, broken_aggregate, good[4], good[5]]
    )
    async with consumer(settings) as c:
        await c.processor.process(SHARD, batch)
        assert metric(c.metrics, "consumer_dead_letters_total") == 4

    counts = await stored(settings)
    assert set(counts) == message_ids(good)
    assert set(counts.values()) == {1}

    letters = await dead_letters(settings)
    stream = settings.event_stream

    def letter(index: int, sub_index: int | None = None) -> dict[str, Any]:
        record_id = f"{stream}/{SHARD}/{batch[index].sequence_number}"
        return letters[record_id if sub_index is None else f"{record_id}/{sub_index}"]

    assert len(letters) == 4
    expected_raw = {
        (1, None): garbage,
        (3, None): no_program,
        (4, 1): inner_garbage,  # only the bad user record, not its good neighbours
        (5, None): broken_aggregate,
    }
    for (index, sub_index), raw in expected_raw.items():
        item = letter(index, sub_index)
        assert item["raw"] == {"B": raw}
        assert item["shard_id"] == {"S": SHARD}
        assert item["sequence_number"] == {"S": batch[index].sequence_number}
        assert item["stream"] == {"S": stream}
        assert item["error"]["S"]
    assert "programid" in letter(3)["error"]["S"]
    assert "aggregated" in letter(5)["error"]["S"]


async def test_a_kpl_aggregated_record_of_50_events_gives_50_items(
    settings: ConsumerSettings,
) -> None:
    payloads = make_events(50)
    ids = sorted(message_ids(payloads))
    data = aggregate([UserRecord(f"key-{n % 7}", p) for n, p in enumerate(payloads)])
    plain = make_events(3, program_id="other")
    async with consumer(settings) as c:
        await c.processor.process(SHARD, records([plain[0], data, plain[1], plain[2]]))
    counts = await stored(settings)
    assert sorted(counts) == sorted([*ids, *message_ids(plain)])
    assert set(counts.values()) == {1}


async def test_unprocessed_items_are_resent_until_every_item_is_stored_once(
    settings: ConsumerSettings, proxy: FaultyDynamoDBProxy
) -> None:
    proxy.should_withhold = withhold_first_time_every(3)
    payloads = make_events(130)  # six BatchWriteItem chunks, written concurrently
    async with consumer(settings, proxy.url) as c:
        await c.processor.process(SHARD, records(payloads))
        retried = metric(c.metrics, "consumer_unprocessed_items_retried_total")
        written = metric(c.metrics, "consumer_events_written_total")
    assert proxy.withheld_requests == 130 // 3
    assert retried == proxy.withheld_requests
    assert written == 130
    counts = await stored(settings)
    assert set(counts) == message_ids(payloads)
    assert set(counts.values()) == {1}


async def test_a_whole_batch_write_throttled_once_is_still_stored(
    settings: ConsumerSettings, proxy: FaultyDynamoDBProxy
) -> None:
    proxy.throttle_calls = 1
    payloads = make_events(40)
    async with consumer(settings, proxy.url) as c:
        await c.processor.process(SHARD, records(payloads))
    assert proxy.throttled_calls == 1
    counts = await stored(settings)
    assert set(counts) == message_ids(payloads)
    assert set(counts.values()) == {1}


async def test_writer_with_bounded_attempts_gives_up_on_items_never_processed(
    settings: ConsumerSettings, proxy: FaultyDynamoDBProxy
) -> None:
    proxy.should_withhold = always
    payloads = make_events(10)
    async with consumer(settings, proxy.url, max_attempts=2) as c:
        with pytest.raises(UnprocessedItemsError):
            await c.processor.process(SHARD, records(payloads))
    assert proxy.batch_calls == 2  # sent, re-sent once, given up
    assert proxy.withheld_requests == 20
    assert await stored(settings) == Counter()


async def test_writer_without_a_bound_keeps_resending_until_accepted(
    settings: ConsumerSettings, proxy: FaultyDynamoDBProxy
) -> None:
    refusals = Counter[str]()

    def refuse_four_times(request: WriteRequest) -> bool:
        key = request_key(request)
        refusals[key] += 1
        return refusals[key] <= 4

    proxy.should_withhold = refuse_four_times
    payloads = make_events(5)
    async with consumer(settings, proxy.url) as c:
        await c.processor.process(SHARD, records(payloads))
        assert metric(c.metrics, "consumer_unprocessed_items_retried_total") == 20
    assert proxy.withheld_requests == 20
    assert set((await stored(settings)).values()) == {1}
    assert len(await stored(settings)) == 5


async def test_an_item_dynamodb_refuses_outright_is_dead_lettered_not_retried_forever(
    settings: ConsumerSettings, proxy: FaultyDynamoDBProxy
) -> None:
    payloads = make_events(30)
    refused_id = sorted(message_ids(payloads))[7]
    proxy.refuse = lambda write: refused_id in json.dumps(write)
    batch = records(payloads)
    async with consumer(settings, proxy.url) as c:
        await c.processor.process(SHARD, batch)
        assert metric(c.metrics, "consumer_events_written_total") == 29
    assert proxy.refused_calls >= 2  # the batch call, then the item on its own
    counts = await stored(settings)
    assert set(counts) == message_ids(payloads) - {refused_id}
    letters = await dead_letters(settings)
    assert len(letters) == 1
    (letter,) = letters.values()
    assert "ValidationException" in letter["error"]["S"]
    assert refused_id.encode() in letter["raw"]["B"]


async def test_an_event_far_larger_than_the_tracker_writes_is_dead_lettered(
    settings: ConsumerSettings,
) -> None:
    good = make_events(3)
    huge = event(user_agent="x" * 100_000)
    batch = records([good[0], huge, good[1], good[2]])
    async with consumer(settings) as c:
        await c.processor.process(SHARD, batch)
    assert set(await stored(settings)) == message_ids(good)
    letters = await dead_letters(settings)
    assert [item["raw_size"]["N"] for item in letters.values()] == [str(len(huge))]
