"""The Lambda adapters, called with Lambda's Kinesis event shape, against real moto and Redis.

awslambdaric driving them through the Runtime API is tests/test_lambda_runtime.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis
from redis.asyncio.client import PubSub

from consumers.lambda_batch import CHUNK, DEADLINE_MARGIN_SECONDS, MalformedEventError
from consumers.lambda_handlers import (
    ENVIRONMENT,
    BatchResponse,
    events_handler,
    programs_handler,
)
from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    make_events,
    message_ids,
    provisioned,
    scan_table,
    stored_message_ids,
)
from tests.support.dynamodb_proxy import FaultyDynamoDBProxy, WriteRequest, never
from tests.support.lambda_events import SHARD, kinesis_event, sequence
from tests.support.programs import program
from tests.support.stalling_proxy import StallingDynamoDBProxy
from tracker.devstack.processes import free_port

Handler = Callable[[dict[str, Any], object], BatchResponse]


class Context:
    """Lambda's context object, as far as the handlers use it: the time left."""

    def __init__(self, seconds_left: float) -> None:
        self._deadline = time.time() + seconds_left

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))


async def invoke(
    handler: Handler, event: dict[str, Any], context: Context | None = None
) -> BatchResponse:
    """Handlers run their own event loop, so they run in a thread of their own, as in Lambda."""
    return await asyncio.to_thread(handler, event, context)


@pytest.fixture(autouse=True)
async def _fresh_environment() -> AsyncIterator[None]:
    """Each test starts like a new execution environment; its clients are closed after it."""
    yield
    await asyncio.to_thread(ENVIRONMENT.close)


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
    await pubsub.aclose()


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


async def test_a_partly_stored_chunk_is_reported_and_the_retry_stores_the_rest_once(
    settings: ConsumerSettings, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = make_events(2 * CHUNK + 10)
    # DynamoDB keeps refusing the second half of the second chunk; its first half is stored.
    refused = message_ids(payloads[CHUNK + CHUNK // 2 : 2 * CHUNK])

    def refuse_some(request: WriteRequest) -> bool:
        return request["PutRequest"]["Item"]["message_id"]["S"] in refused

    proxy = await FaultyDynamoDBProxy(moto_url, refuse_some).start()
    openings = ENVIRONMENT.openings
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        event = kinesis_event(payloads, settings, settings.event_stream)
        answer = await invoke(events_handler, event)
        # Lambda retries from the first record of the chunk that failed; the third never started
        assert answer == {"batchItemFailures": [{"itemIdentifier": sequence(CHUNK + 1)}]}
        assert proxy.withheld_requests > 0
        stored = await events_stored(settings)
        assert {k: stored[k] for k in message_ids(payloads[:CHUNK])} == dict.fromkeys(
            message_ids(payloads[:CHUNK]), 1
        )
        assert not (message_ids(payloads[2 * CHUNK :]) | refused) & set(stored)

        # Lambda sends the batch again from the reported record; DynamoDB accepts now.
        proxy.should_withhold = never
        retry = kinesis_event(payloads[CHUNK:], settings, settings.event_stream, CHUNK + 1)
        assert await invoke(events_handler, retry) == {"batchItemFailures": []}
    finally:
        await proxy.close()
    assert await events_stored(settings) == dict.fromkeys(message_ids(payloads), 1)
    assert (
        ENVIRONMENT.openings == openings + 2
    )  # the failed invocation's clients were not trusted again


async def test_one_execution_environment_opens_its_clients_once(
    settings: ConsumerSettings, redis_client: redis.Redis
) -> None:
    batches = [make_events(3) for _ in range(3)]
    openings = ENVIRONMENT.openings
    for n, payloads in enumerate(batches):
        event = kinesis_event(payloads, settings, settings.event_stream, first=10 * n)
        assert await invoke(events_handler, event) == {"batchItemFailures": []}
    programs = kinesis_event([program_record(version=1)], settings, settings.program_stream)
    assert await invoke(programs_handler, programs) == {"batchItemFailures": []}
    assert ENVIRONMENT.openings == openings + 1
    every = message_ids([p for payloads in batches for p in payloads])
    assert await events_stored(settings) == dict.fromkeys(every, 1)
    assert await redis_client.hget("program:shoes", "version") == "1"


async def test_an_invocation_out_of_time_stores_nothing_and_reports_its_first_record(
    settings: ConsumerSettings,
) -> None:
    payloads = make_events(5)
    event = kinesis_event(payloads, settings, settings.event_stream, first=20)
    context = Context(seconds_left=DEADLINE_MARGIN_SECONDS / 2)
    answer = await invoke(events_handler, event, context)
    assert answer == {"batchItemFailures": [{"itemIdentifier": sequence(20)}]}
    assert await events_stored(settings) == {}


async def test_a_chunk_that_would_outlast_the_deadline_is_cut_and_reported(
    settings: ConsumerSettings, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = make_events(3 * CHUNK)
    stalled = message_ids(payloads[CHUNK : 2 * CHUNK])

    def in_second_chunk(request: WriteRequest) -> bool:
        return request["PutRequest"]["Item"]["message_id"]["S"] in stalled

    proxy = await StallingDynamoDBProxy(moto_url, in_second_chunk).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.url)
        event = kinesis_event(payloads, settings, settings.event_stream)
        # The second chunk's writes never finish: the handler must answer before the deadline
        # instead of being killed with the whole batch failed.
        answer = await invoke(events_handler, event, Context(seconds_left=5))
        assert proxy.stalled_calls > 0
    finally:
        await proxy.close()
    assert answer == {"batchItemFailures": [{"itemIdentifier": sequence(CHUNK + 1)}]}
    stored = await events_stored(settings)
    assert {k: stored[k] for k in message_ids(payloads[:CHUNK])} == dict.fromkeys(
        message_ids(payloads[:CHUNK]), 1
    )
    assert not message_ids(payloads[2 * CHUNK :]) & set(stored)


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"records": []}, "no Records list"),
        ({"Records": [{"eventID": "x"}]}, "record 0 has no kinesis object"),
        ({"Records": [{"kinesis": {"sequenceNumber": "12a", "data": ""}}]}, "sequenceNumber"),
        ({"Records": [{"kinesis": {"sequenceNumber": "12", "data": "!!"}}]}, "not base64"),
        ({"Records": [{"kinesis": {"sequenceNumber": "12", "data": 5}}]}, "no string"),
    ],
)
async def test_an_event_that_is_no_kinesis_batch_fails_the_invocation_clearly(
    settings: ConsumerSettings, event: dict[str, Any], error: str
) -> None:
    with pytest.raises(MalformedEventError, match=error):
        await invoke(events_handler, event)


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
