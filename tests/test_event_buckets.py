"""One program's events spread over EVENTS_TABLE_BUCKETS partitions of the events table, against
a real moto server: where items land, exactly once, `consumers show` over every bucket, a user's
export and erasure across buckets, `consumers init` refusing a table of the old key, the setting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import pytest
from aiobotocore.session import get_session

from consumers import privacy
from consumers.attribution.erasure import AttributionRecords
from consumers.aws import open_clients
from consumers.dead_letters import DeadLetterTable
from consumers.event_items import bucket_of
from consumers.events_processor import EventsProcessor, EventStores
from consumers.events_writer import EventsWriter
from consumers.metrics import ConsumerMetrics
from consumers.privacy_table import PrivacyTable
from consumers.provision import IncompatibleTableError, provision
from consumers.records import StreamRecord
from consumers.settings import ConsumerSettings
from consumers.show import recent_events
from consumers.user_items import UserItems
from tests.support.consumers import (
    consumer_env,
    create_bare_events_table,
    item_rules,
    provisioned,
    scan_table,
)
from tracker.envconfig import SettingsError
from tracker.privacy.keys import user_key
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

pytestmark = pytest.mark.timeout(120)

SHARD = "shardId-000000000000"
NO_REDIS = "redis://127.0.0.1:1/0"  # the events consumer never talks to Redis
PROGRAM = "big-campaign"
SECRET = b"the bucket tests' USER_ID_KEY"


def event(message_id: str, timestamp_ms: int, program_id: str = PROGRAM, user: str = "") -> bytes:
    return pb.TrackingEvent(
        programid=program_id,
        message_id=message_id,
        timestamp_ms=timestamp_ms,
        event_type=pb.IMPRESSION,
        validation=pb.OK,
        is_valid=True,
        user_key=user_key(SECRET, user) if user else "",
    ).SerializeToString()


def timed_events(count: int, prefix: str, program_id: str = PROGRAM, user: str = "") -> list[bytes]:
    """`count` events a millisecond apart, ending now, with ids fixed by `prefix` and a number:
    the ids, so their buckets, are the same on every run."""
    now_ms = int(time.time() * 1000)
    return [event(f"{prefix}-{n:04d}", now_ms - count + n, program_id, user) for n in range(count)]


def records(payloads: Sequence[bytes], first: int = 1) -> list[StreamRecord]:
    return [
        StreamRecord(f"{49_700_000_000_000_000_000 + n:056d}", os.urandom(8).hex(), data)
        for n, data in enumerate(payloads, start=first)
    ]


@pytest.fixture
async def settings(kinesalite_url: str, moto_url: str) -> ConsumerSettings:
    return await provisioned(consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1))


@pytest.fixture
async def dynamodb(settings: ConsumerSettings) -> AsyncIterator[DynamoDBClient]:
    async with AsyncExitStack() as stack:
        _, client = await open_clients(settings, stack)
        yield client


def processor(settings: ConsumerSettings, dynamodb: DynamoDBClient) -> EventsProcessor:
    metrics = ConsumerMetrics()
    return EventsProcessor(
        settings.event_stream,
        EventStores(
            EventsWriter(dynamodb, settings.events_table, metrics, 3),
            DeadLetterTable(dynamodb, settings.dead_letter_table, metrics, 3),
        ),
        metrics,
        item_rules(settings),
    )


async def items(settings: ConsumerSettings) -> list[dict[str, dict[str, str]]]:
    assert settings.aws.dynamodb_endpoint is not None
    return await scan_table(settings.aws.dynamodb_endpoint, settings.events_table)


# where items land


def test_the_bucket_is_the_same_in_another_process() -> None:
    """Python's own hash() differs per process; the bucket must not, or a redelivered record
    handled by another worker would write a second item."""
    ids = [f"m-{n}" for n in range(200)]
    script = (
        "import json, sys; from consumers.event_items import bucket_of; "
        "print(json.dumps([bucket_of(i, 8) for i in json.load(sys.stdin)]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(ids),
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert json.loads(other.stdout) == [bucket_of(i, 8) for i in ids]


def test_buckets_are_in_range_and_evenly_used() -> None:
    for buckets in (1, 3, 8, 256):
        counts = Counter(bucket_of(os.urandom(16).hex(), buckets) for _ in range(buckets * 200))
        assert set(counts) == set(range(buckets))
        # 200 expected per bucket; a fair hash stays far inside these bounds.
        assert 100 < min(counts.values()) <= max(counts.values()) < 320


async def test_one_programs_events_spread_over_every_bucket_and_store_once(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    payloads = timed_events(400, "spread")
    worker = processor(settings, dynamodb)
    await worker.process(SHARD, records(payloads))
    await worker.process(SHARD, records(payloads, first=1000))  # a redelivery: new numbers
    stored = await items(settings)
    assert Counter(i["message_id"]["S"] for i in stored) == Counter(
        {f"spread-{n:04d}": 1 for n in range(400)}
    )
    for item in stored:
        bucket = bucket_of(item["message_id"]["S"], settings.events_table_buckets)
        assert item["program_bucket"] == {"S": f"{PROGRAM}#{bucket}"}
        assert item["program_id"] == {"S": PROGRAM}
    used = {i["program_bucket"]["S"] for i in stored}
    assert used == {f"{PROGRAM}#{b}" for b in range(settings.events_table_buckets)}


# consumers show


async def test_show_gives_the_newest_events_over_all_buckets_in_order(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    payloads = timed_events(120, "show")
    other = timed_events(30, "other", program_id="small")
    await processor(settings, dynamodb).process(SHARD, records(payloads + other))
    newest = [f"show-{n:04d}" for n in range(119, 94, -1)]

    shown = [e async for e in recent_events(settings, PROGRAM, 5, 25)]
    assert [e["message_id"] for e in shown] == newest
    assert {e["program_id"] for e in shown} == {PROGRAM}
    assert len({e["program_bucket"] for e in shown}) > 1  # from several partitions
    everything = [e["message_id"] async for e in recent_events(settings, PROGRAM, 5, 1000)]
    assert everything == [f"show-{n:04d}" for n in range(119, -1, -1)]
    assert [e async for e in recent_events(settings, "nobody", 5, 10)] == []


async def test_show_still_finds_every_item_after_the_bucket_count_is_raised(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    fewer = dataclasses.replace(settings, events_table_buckets=3)
    await processor(fewer, dynamodb).process(SHARD, records(timed_events(40, "raised")))
    assert {i["program_bucket"]["S"] for i in await items(settings)} == {
        f"{PROGRAM}#{b}" for b in range(3)
    }
    shown = [e["message_id"] async for e in recent_events(settings, PROGRAM, 5, 100)]
    assert shown == [f"raised-{n:04d}" for n in range(39, -1, -1)]


async def test_show_follows_a_buckets_pages_past_one_megabyte(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    """A Query page stops at 1 MB: a bucket's newest `limit` may take several pages."""
    one = dataclasses.replace(settings, events_table_buckets=1)
    large = pb.TrackingEvent()
    payloads = []
    for payload in timed_events(25, "large"):
        large.ParseFromString(payload)
        large.params["pad"] = "x" * 50_000  # 25 items of ~50 KB: more than one page
        payloads.append(large.SerializeToString())
    worker = processor(one, dynamodb)
    for start in range(0, 25, 5):  # requests under 1 MB: aiohttp warns about larger bodies
        await worker.process(SHARD, records(payloads[start : start + 5], first=start + 1))
    shown = [e["message_id"] async for e in recent_events(one, PROGRAM, 5, 25)]
    assert shown == [f"large-{n:04d}" for n in range(24, -1, -1)]


# a user's rights across buckets


async def test_export_and_erase_find_a_users_items_in_every_bucket(
    settings: ConsumerSettings, dynamodb: DynamoDBClient
) -> None:
    alice = timed_events(60, "alice", user="alice@example.com")
    bob = timed_events(10, "bob", user="bob@example.com")
    await processor(settings, dynamodb).process(SHARD, records(alice + bob))
    stored = await items(settings)
    buckets = {i["program_bucket"]["S"] for i in stored if i["message_id"]["S"].startswith("alice")}
    assert len(buckets) == settings.events_table_buckets

    table = PrivacyTable(dynamodb, settings.privacy.table, settings.privacy.audit_ttl_days)
    attribution = AttributionRecords(dynamodb, settings.attribution.table, None)
    opened = privacy.Privacy(table, UserItems(dynamodb, settings.events_table), 0.0, attribution)
    exported: list[dict[str, object]] = []
    key = user_key(SECRET, "alice@example.com")
    assert await privacy.export(opened, key, exported.append) == 60
    assert sorted(str(e["message_id"]) for e in exported) == [f"alice-{n:04d}" for n in range(60)]
    assert await privacy.erase(opened, key) == 60
    left = sorted(i["message_id"]["S"] for i in await items(settings))
    assert left == [f"bob-{n:04d}" for n in range(10)]


# consumers init


async def test_init_refuses_an_events_table_of_the_old_key(
    kinesalite_url: str, moto_url: str
) -> None:
    env = consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1)
    settings = ConsumerSettings.from_env(env)
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as dynamodb:
        await create_bare_events_table(dynamodb, settings.events_table, "program_id")
        with pytest.raises(IncompatibleTableError, match=settings.events_table):
            await provision(settings)
        init = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "consumers", "init"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert init.returncode == 1
        assert init.stdout == ""
        assert init.stderr.splitlines() == [
            f"consumers init: table {settings.events_table} has the key "
            "(program_id HASH, event_key RANGE), this version needs "
            "(program_bucket HASH, event_key RANGE): give it a new table name "
            "(see docs/deploy.md)"
        ]
        # Refused before anything was changed: no index was added to the old table.
        old = (await dynamodb.describe_table(TableName=settings.events_table))["Table"]
        assert old.get("GlobalSecondaryIndexes", []) == []


# the setting


def test_the_bucket_count_defaults_to_8_and_is_bounded() -> None:
    assert ConsumerSettings.from_env({}).events_table_buckets == 8
    for good in ("1", "256"):
        env = {"EVENTS_TABLE_BUCKETS": good}
        assert ConsumerSettings.from_env(env).events_table_buckets == int(good)
    for bad, problem in (("0", "outside"), ("257", "outside"), ("eight", "not an integer")):
        with pytest.raises(SettingsError, match=f"^EVENTS_TABLE_BUCKETS: .*{problem}"):
            ConsumerSettings.from_env({"EVENTS_TABLE_BUCKETS": bad})


def test_a_bad_bucket_count_stops_start_up_with_one_line() -> None:
    started = subprocess.run(
        [sys.executable, "-m", "consumers", "show", PROGRAM],
        env={**os.environ, "EVENTS_TABLE_BUCKETS": "-1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 2
    assert started.stderr.splitlines() == [
        "consumers: bad setting: EVENTS_TABLE_BUCKETS: -1 is outside [1, 256]"
    ]
