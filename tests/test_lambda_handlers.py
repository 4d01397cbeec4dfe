"""The Lambda adapters, called with Lambda's Kinesis event shape, against real moto and Redis."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis
from redis.asyncio.client import PubSub

from consumers.lambda_handlers import CHUNK, BatchResponse, events_handler, programs_handler
from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    make_events,
    message_ids,
    provisioned,
    scan_table,
    stored_message_ids,
)
from tests.support.dynamodb_proxy import FaultyDynamoDBProxy, WriteRequest
from tests.support.programs import program
from tracker.devstack.processes import free_port

SHARD = "shardId-000000000000"
Handler = Callable[[dict[str, Any], object], BatchResponse]


def sequence(n: int) -> str:
    return f"{49_600_000_000_000_000_000 + n:056d}"


def kinesis_event(
    payloads: list[bytes], settings: ConsumerSettings, stream: str, first: int = 1
) -> dict[str, Any]:
    """What Lambda's Kinesis event source hands a function."""
    arn = f"arn:aws:kinesis:{settings.aws.region}:123456789012:stream/{stream}"
    entries = []
    for n, data in enumerate(payloads):
        seq = sequence(first + n)
        entries.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": os.urandom(8).hex(),
                    "sequenceNumber": seq,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": 1_700_000_000.123,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{SHARD}:{seq}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
                "awsRegion": settings.aws.region,
                "eventSourceARN": arn,
            }
        )
    return {"Records": entries}


async def invoke(handler: Handler, event: dict[str, Any]) -> BatchResponse:
    """Handlers call asyncio.run, so they run in a thread of their own, as in Lambda."""
    return await asyncio.to_thread(handler, event, None)


@pytest.fixture
async def settings(
    monkeypatch: pytest.MonkeyPatch, kinesalite_url: str, moto_url: str, redis_url: str
) -> ConsumerSettings:
    """Streams and tables of the test's own, and the handler's environment pointing at them."""
    env = consumer_env(kinesalite_url, moto_url, redis_url, shards=1)
    ready = await provisioned(env)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return ready


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def published(redis_client: redis.Redis, settings: ConsumerSettings) -> AsyncIterator[PubSub]:
    """A subscription to the program channel, live before the test starts."""
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(settings.program_channel)
    yield pubsub
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def events_stored(settings: ConsumerSettings) -> dict[str, int]:
    assert settings.aws.dynamodb_endpoint is not None
    return dict(await stored_message_ids(settings.aws.dynamodb_endpoint, settings.events_table))


async def dead_letters(settings: ConsumerSettings) -> dict[str, dict[str, Any]]:
    assert settings.aws.dynamodb_endpoint is not None
    items = await scan_table(settings.aws.dynamodb_endpoint, settings.dead_letter_table)
    return {item["sequence_number"]["S"]: item for item in items}


# events_handler


async def test_events_handler_stores_a_good_batch_and_reports_no_failure(
    settings: ConsumerSettings,
) -> None:
    payloads = make_events(CHUNK + 30)  # two chunks
    event = kinesis_event(payloads, settings, settings.event_stream)
    assert await invoke(events_handler, event) == {"batchItemFailures": []}
    assert await events_stored(settings) == dict.fromkeys(message_ids(payloads), 1)
    # Lambda retrying the same batch changes nothing
    assert await invoke(events_handler, event) == {"batchItemFailures": []}
    assert await events_stored(settings) == dict.fromkeys(message_ids(payloads), 1)


async def test_events_handler_dead_letters_poison_without_failing_the_batch(
    settings: ConsumerSettings,
) -> None:
    good = make_events(4)
    poison = [b"\xff\xfe not a tracking event", b""]
    payloads = [good[0], poison[0], good[1], good[2], poison[1], good[3]]
    event = kinesis_event(payloads, settings, settings.event_stream)
    assert await invoke(events_handler, event) == {"batchItemFailures": []}
    assert await events_stored(settings) == dict.fromkeys(message_ids(good), 1)
    letters = await dead_letters(settings)
    assert set(letters) == {sequence(2), sequence(5)}
    for seq, raw in ((sequence(2), poison[0]), (sequence(5), poison[1])):
        assert letters[seq]["raw"] == {"B": raw}
        assert letters[seq]["shard_id"] == {"S": SHARD}
        assert letters[seq]["stream"] == {"S": settings.event_stream}
        assert letters[seq]["error"]["S"]


async def test_events_handler_names_the_first_record_when_dynamodb_is_unreachable(
    settings: ConsumerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{free_port()}")
    payloads = make_events(5)
    event = kinesis_event(payloads, settings, settings.event_stream, first=40)
    assert await invoke(events_handler, event) == {
        "batchItemFailures": [{"itemIdentifier": sequence(40)}]
    }
    assert await events_stored(settings) == {}


async def test_events_handler_fails_from_the_chunk_dynamodb_keeps_refusing(
    settings: ConsumerSettings, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = make_events(2 * CHUNK + 10)
    refused = message_ids(payloads[CHUNK : 2 * CHUNK])  # the second chunk, every time

    def refuse_second_chunk(request: WriteRequest) -> bool:
        return request["PutRequest"]["Item"]["message_id"]["S"] in refused

    proxy = await FaultyDynamoDBProxy(moto_url, refuse_second_chunk).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        event = kinesis_event(payloads, settings, settings.event_stream)
        answer = await invoke(events_handler, event)
    finally:
        await proxy.close()
    # Lambda retries from the first record of the chunk that failed; the third was never tried
    assert answer == {"batchItemFailures": [{"itemIdentifier": sequence(CHUNK + 1)}]}
    assert proxy.withheld_requests > 0
    stored = await events_stored(settings)
    assert message_ids(payloads[:CHUNK]) <= set(stored)
    assert not message_ids(payloads[2 * CHUNK :]) & set(stored)
    assert not refused & set(stored)


# programs_handler


def program_record(**fields: Any) -> bytes:
    return json.dumps(program("shoes", **fields)).encode()


async def next_message(pubsub: PubSub) -> dict[str, Any]:
    """The next published program, waiting up to 10 s for it."""
    async with asyncio.timeout(10):
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                decoded: dict[str, Any] = json.loads(message["data"])
                return decoded


async def test_programs_handler_applies_a_program_and_publishes_it(
    settings: ConsumerSettings, redis_client: redis.Redis, published: PubSub
) -> None:
    shoes = program("shoes", version=3, valid_from=1_000)
    event = kinesis_event([json.dumps(shoes).encode()], settings, settings.program_stream)
    assert await invoke(programs_handler, event) == {"batchItemFailures": []}
    assert await redis_client.hgetall("program:shoes") == {
        "program_id": "shoes",
        "program_name": "Program shoes",
        "customer_id": "42",
        "customer_name": "Customer 42",
        "checksum": "sum-shoes",
        "valid": "true",
        "version": "3",
        "valid_from": "1000",
        "landing_url": "https://example.com/shoes",
    }
    assert await next_message(published) == shoes


async def test_programs_handler_ignores_an_older_version(
    settings: ConsumerSettings, redis_client: redis.Redis, published: PubSub
) -> None:
    stream = settings.program_stream
    newer = kinesis_event([program_record(version=5)], settings, stream)
    assert await invoke(programs_handler, newer) == {"batchItemFailures": []}
    assert (await next_message(published))["version"] == 5

    older = [program_record(version=4, program_name="old"), program_record(version=5)]
    assert await invoke(programs_handler, kinesis_event(older, settings, stream, 2)) == {
        "batchItemFailures": []
    }
    stored = await redis_client.hgetall("program:shoes")
    assert stored["version"] == "5"
    assert stored["program_name"] == "Program shoes"

    newest = kinesis_event([program_record(version=6, valid=False)], settings, stream, 4)
    assert await invoke(programs_handler, newest) == {"batchItemFailures": []}
    # nothing was published for versions 4 and 5 again: the next message is version 6
    message = await next_message(published)
    assert (message["version"], message["valid"]) == (6, False)
    assert await redis_client.hget("program:shoes", "valid") == "false"


async def test_programs_handler_dead_letters_malformed_records_and_applies_the_rest(
    settings: ConsumerSettings, redis_client: redis.Redis
) -> None:
    broken = b'{"program_id": "shoes", "version": '
    not_a_program = json.dumps({"program_id": "bad id!", "version": 1}).encode()
    payloads = [broken, program_record(version=2), not_a_program]
    event = kinesis_event(payloads, settings, settings.program_stream)
    assert await invoke(programs_handler, event) == {"batchItemFailures": []}
    assert await redis_client.hget("program:shoes", "version") == "2"
    assert await redis_client.keys("program:*") == ["program:shoes"]
    letters = await dead_letters(settings)
    assert set(letters) == {sequence(1), sequence(3)}
    assert letters[sequence(1)]["raw"] == {"B": broken}
    assert "JSON" in letters[sequence(1)]["error"]["S"]
    assert letters[sequence(3)]["raw"] == {"B": not_a_program}
    assert "program_id" in letters[sequence(3)]["error"]["S"]
    for letter in letters.values():
        assert letter["shard_id"] == {"S": SHARD}
        assert letter["stream"] == {"S": settings.program_stream}


async def test_programs_handler_reports_the_first_record_when_redis_is_unreachable(
    settings: ConsumerSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    payloads = [program_record(version=1), program_record(version=2)]
    event = kinesis_event(payloads, settings, settings.program_stream, first=7)
    assert await invoke(programs_handler, event) == {
        "batchItemFailures": [{"itemIdentifier": sequence(7)}]
    }
