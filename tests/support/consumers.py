"""Consumer test support: fresh streams and tables, producing events, reading items back."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiobotocore.session import get_session

from consumers.event_items import ItemRules
from consumers.provision import provision
from consumers.settings import ConsumerSettings
from tests.support.facts import request_facts
from tests.support.kinesis import kinesis_client
from tracker.events.builder import EventFactory
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

T = TypeVar("T")


def consumer_env(kinesalite_url: str, moto_url: str, redis_url: str, shards: int) -> dict[str, str]:
    """Settings for consumers on their own stream and tables, with short lease timings."""
    suffix = os.urandom(4).hex()
    return {
        "AWS_ENDPOINT_URL_KINESIS": kinesalite_url,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "REDIS_URL": redis_url,
        "EVENT_STREAM": f"events-{suffix}",
        "PROGRAM_STREAM": f"programs-{suffix}",
        "PROGRAM_CHANNEL": "program-updates",
        "EVENTS_TABLE": f"events-{suffix}",
        "DEAD_LETTER_TABLE": f"dead-{suffix}",
        "LEASE_TABLE": f"leases-{suffix}",
        "PRIVACY_TABLE": f"privacy-{suffix}",
        "ROLLUP_TABLE": f"rollups-{suffix}",
        "REPORT_KEYS_TABLE": f"report-keys-{suffix}",
        "ATTRIBUTION_TABLE": f"attribution-{suffix}",
        "MATCH_POLL_MS": "200",
        "LAKE_DIR": os.path.join(tempfile.gettempdir(), f"adtracker-lake-{suffix}"),
        "LAKE_COMMIT_SECONDS": "1",
        "EVENT_STREAM_SHARDS": str(shards),
        "LEASE_DURATION_SECONDS": "3",
        "SHARD_DISCOVERY_SECONDS": "1",
        "CONSUMER_POLL_MS": "100",
        "CONSUMER_TIP_WAIT_MS": "100",
        "CONSUMER_METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
    }


async def provisioned(env: dict[str, str]) -> ConsumerSettings:
    settings = ConsumerSettings.from_env(env)
    await provision(settings)
    return settings


def item_rules(settings: ConsumerSettings) -> ItemRules:
    """The item rules the settings give, as the workers build them."""
    return ItemRules(settings.events_ttl_days, settings.events_table_buckets)


def make_events(count: int, program_id: str = "p1") -> list[bytes]:
    factory = EventFactory("test-producer")
    now_ms = int(time.time() * 1000)
    client = pb.TrackingEvent(user_agent="ua", client_ip_anonymized="10.0.0.0").SerializeToString()
    return [
        factory.build(
            factory.outcomes[pb.IMPRESSION, pb.OK, pb.IVT_NONE],
            request_facts(program_id=program_id, timestamp_ms=now_ms + i, client=client),
        )[1]
        for i in range(count)
    ]


async def put_records(
    endpoint: str, stream: str, payloads: list[bytes], keys: list[str] | None = None
) -> list[dict[str, Any]]:
    """Put payloads on the stream, spread over shards by random partition keys."""
    results: list[dict[str, Any]] = []
    async with kinesis_client(endpoint) as client:
        for start in range(0, len(payloads), 500):
            chunk = payloads[start : start + 500]
            chunk_keys = keys[start : start + 500] if keys else [os.urandom(8).hex() for _ in chunk]
            answer = await client.put_records(
                StreamName=stream,
                Records=[
                    {"Data": d, "PartitionKey": k} for d, k in zip(chunk, chunk_keys, strict=True)
                ],
            )
            assert answer.get("FailedRecordCount", 0) == 0
            results.extend(answer["Records"])  # type: ignore[arg-type]
    return results


async def scan_table(endpoint: str, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=endpoint
    ) as dynamodb:
        kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = await dynamodb.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def stored_message_ids(endpoint: str, table: str) -> Counter[str]:
    """How many items each message_id has in the events table."""
    return Counter(item["message_id"]["S"] for item in await scan_table(endpoint, table))


def message_ids(payloads: list[bytes]) -> set[str]:
    ids = set()
    for data in payloads:
        event = pb.TrackingEvent()
        event.ParseFromString(data)
        ids.add(event.message_id)
    return ids


async def poll_until(
    read: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout: float = 30.0,
    what: str = "",
) -> T:
    """Await read() every 0.2 s until done(result); return that result, or fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(result := await read()):
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {result!r}")
        await asyncio.sleep(0.2)
    return result


def run_privacy(
    env: dict[str, str], operation: str, user_id: str
) -> subprocess.CompletedProcess[str]:
    """`consumers privacy OPERATION --user-id USER_ID` as a process; its exit status unchecked."""
    return subprocess.run(
        [sys.executable, "-m", "consumers", "privacy", operation, "--user-id", user_id],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def create_bare_events_table(
    dynamodb: DynamoDBClient, table: str, partition_key: str
) -> None:
    """An events table as an older release made it: `partition_key` + `event_key`, no index."""
    await dynamodb.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": partition_key, "KeyType": "HASH"},
            {"AttributeName": "event_key", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": partition_key, "AttributeType": "S"},
            {"AttributeName": "event_key", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
