"""The lean BatchWriteItem (consumers/dynamodb_batch.py) against a real moto server, the
fault-injecting proxy and a scripted endpoint: it stores what botocore stores, and its failures
are the ones botocore gives, so the writer's retries and dead letters work as before."""

from __future__ import annotations

import dataclasses
import json
from binascii import crc32
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import aiohttp
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.credentials import AioCredentials
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ChecksumError, ClientError

from consumers.aws import open_batch_write, open_dynamodb
from consumers.dynamodb_batch import BatchWriteItem, Endpoint, UnreadableAnswerError
from consumers.event_items import decode_event, event_item
from consumers.events_writer import EventsWriter
from consumers.metrics import ConsumerMetrics
from consumers.retrying import TRANSIENT, is_permanent
from consumers.settings import ConsumerSettings
from tests.support.consumers import (
    consumer_env,
    item_rules,
    make_events,
    provisioned,
    scan_table,
)
from tests.support.dynamodb_proxy import (
    FaultyDynamoDBProxy,
    request_key,
    withhold_first_time_every,
)
from tests.support.scripted_endpoint import Scripted, ScriptedEndpoint
from tracker.devstack.processes import free_port

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient

NO_REDIS = "redis://127.0.0.1:1/0"
JSON = {"Content-Type": "application/x-amz-json-1.0"}
THROTTLED_TYPE = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"


class Clients(NamedTuple):
    botocore: DynamoDBClient
    raw: BatchWriteItem


@pytest.fixture
async def settings(kinesalite_url: str, moto_url: str) -> ConsumerSettings:
    return await provisioned(consumer_env(kinesalite_url, moto_url, NO_REDIS, shards=1))


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as opened:
        yield opened


async def clients_for(settings: ConsumerSettings, stack: AsyncExitStack) -> Clients:
    dynamodb = await open_dynamodb(settings, stack)
    return Clients(dynamodb, await open_batch_write(dynamodb, stack))


@pytest.fixture
async def moto(settings: ConsumerSettings, stack: AsyncExitStack) -> Clients:
    return await clients_for(settings, stack)


@pytest.fixture
async def proxy(moto_url: str) -> AsyncIterator[FaultyDynamoDBProxy]:
    faulty = await FaultyDynamoDBProxy(moto_url).start()
    yield faulty
    await faulty.close()


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedEndpoint]:
    endpoint = await ScriptedEndpoint().start()
    yield endpoint
    await endpoint.close()


def via(settings: ConsumerSettings, url: str) -> ConsumerSettings:
    """The settings with DynamoDB reached at `url` (a proxy, the scripted endpoint)."""
    return dataclasses.replace(
        settings, aws=dataclasses.replace(settings.aws, dynamodb_endpoint=url)
    )


def event_items(settings: ConsumerSettings, count: int) -> list[dict[str, Any]]:
    rules = item_rules(settings)
    return [dict(event_item(decode_event(data), rules)) for data in make_events(count)]


def puts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"PutRequest": {"Item": item}} for item in items]


def every_kind_of_value(n: int) -> dict[str, Any]:
    """Attributes of every AttributeValue type, with text that JSON must escape."""
    return {
        "text": {"S": f'naïve ☃ 😀 日本 "quoted" back\\slash\nnew\ttab \x01 #{n}'},
        "numbers": {"L": [{"N": "0"}, {"N": "-12.5"}, {"N": "1E+3"}, {"N": "9" * 38}]},
        "blob": {"B": bytes(range(256)) + n.to_bytes(2, "big")},
        "flags": {"M": {"yes": {"BOOL": True}, "no": {"BOOL": False}, "none": {"NULL": True}}},
        "nested": {"M": {"list": {"L": [{"S": "a"}, {"M": {"k": {"N": str(n)}}}]}}},
        "strings": {"SS": ["x", "ÿ", str(n)]},
        "integers": {"NS": ["1", "2.5", str(-n)]},
        "blobs": {"BS": [b"\x00", b"\xff\xfe", str(n).encode()]},
    }


async def create_like(dynamodb: DynamoDBClient, template: str, name: str) -> None:
    described = (await dynamodb.describe_table(TableName=template))["Table"]
    keys = {key["AttributeName"] for key in described["KeySchema"]}
    await dynamodb.create_table(
        TableName=name,
        KeySchema=described["KeySchema"],
        AttributeDefinitions=[
            a for a in described["AttributeDefinitions"] if a["AttributeName"] in keys
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def by_key(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(i["program_bucket"]["S"], i["event_key"]["S"]): i for i in items}


async def test_the_items_stored_are_exactly_those_botocore_stores(
    settings: ConsumerSettings, moto: Clients
) -> None:
    items = [{**item, **every_kind_of_value(n)} for n, item in enumerate(event_items(settings, 25))]
    twin = settings.events_table + "-botocore"
    await create_like(moto.botocore, settings.events_table, twin)
    assert await moto.raw(settings.events_table, puts(items)) == []
    answer = await moto.botocore.batch_write_item(RequestItems={twin: puts(items)})  # type: ignore[dict-item]
    assert not answer.get("UnprocessedItems")
    endpoint = settings.aws.dynamodb_endpoint
    assert endpoint is not None
    raw_items = by_key(await scan_table(endpoint, settings.events_table))
    botocore_items = by_key(await scan_table(endpoint, twin))
    assert len(raw_items) == 25
    assert raw_items == botocore_items
    sample = raw_items[(items[3]["program_bucket"]["S"], items[3]["event_key"]["S"])]
    assert sample["blob"]["B"] == bytes(range(256)) + (3).to_bytes(2, "big")
    assert sample["text"]["S"].startswith("naïve ☃ 😀 日本")


async def test_unprocessed_items_come_back_and_the_writer_sends_them_again(
    settings: ConsumerSettings, proxy: FaultyDynamoDBProxy, stack: AsyncExitStack
) -> None:
    proxy.should_withhold = withhold_first_time_every(2)
    clients = await clients_for(via(settings, proxy.url), stack)
    items = event_items(settings, 60)
    first = await clients.raw(settings.events_table, puts(items[:25]))
    assert sorted(map(request_key, first)) == sorted(map(request_key, puts(items[1:25:2])))
    metrics = ConsumerMetrics()
    writer = EventsWriter(clients.botocore, settings.events_table, metrics, 5, clients.raw)
    assert await writer.write(items) == []
    assert proxy.withheld_requests == 30
    assert metrics.registry.get_sample_value("consumer_unprocessed_items_retried_total") == 18
    stored = by_key(await scan_table(settings.aws.dynamodb_endpoint or "", settings.events_table))
    assert stored == by_key(items)


async def test_an_item_over_400_kb_is_refused_as_botocore_refuses_it(
    settings: ConsumerSettings, moto: Clients
) -> None:
    items = event_items(settings, 5)
    items[2] = {**items[2], "padding": {"S": "x" * 410_000}}
    with pytest.raises(ClientError) as raw_error:
        await moto.raw(settings.events_table, puts(items))
    with pytest.raises(ClientError) as botocore_error:
        await moto.botocore.batch_write_item(RequestItems={settings.events_table: puts(items)})  # type: ignore[dict-item]
    assert raw_error.value.response["Error"] == botocore_error.value.response["Error"]
    assert raw_error.value.response["Error"]["Code"] == "ValidationException"
    assert is_permanent(raw_error.value)


async def test_the_writer_dead_letters_just_the_item_dynamodb_can_never_store(
    settings: ConsumerSettings, moto: Clients
) -> None:
    items = event_items(settings, 30)
    too_big = {**items[7], "padding": {"S": "x" * 410_000}}
    items[7] = too_big
    writer = EventsWriter(moto.botocore, settings.events_table, ConsumerMetrics(), 3, moto.raw)
    rejected = await writer.write(items)
    assert [r.item for r in rejected] == [too_big]
    assert "ValidationException" in rejected[0].reason
    stored = by_key(await scan_table(settings.aws.dynamodb_endpoint or "", settings.events_table))
    assert stored == by_key(items[:7] + items[8:])


async def test_a_missing_table_gives_botocores_error(
    settings: ConsumerSettings, moto: Clients
) -> None:
    requests = puts(event_items(settings, 2))
    with pytest.raises(ClientError) as raw_error:
        await moto.raw("no-such-table", requests)
    with pytest.raises(ClientError) as botocore_error:
        await moto.botocore.batch_write_item(RequestItems={"no-such-table": requests})  # type: ignore[dict-item]
    assert raw_error.value.response["Error"] == botocore_error.value.response["Error"]
    assert raw_error.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert raw_error.value.operation_name == "BatchWriteItem"


async def test_a_throttled_call_is_retried_by_the_writer(
    settings: ConsumerSettings, proxy: FaultyDynamoDBProxy, stack: AsyncExitStack
) -> None:
    proxy.throttle_calls = 2
    clients = await clients_for(via(settings, proxy.url), stack)
    metrics = ConsumerMetrics()
    items = event_items(settings, 10)
    writer = EventsWriter(clients.botocore, settings.events_table, metrics, None, clients.raw)
    assert await writer.write(items) == []
    assert proxy.throttled_calls == 2
    assert metrics.registry.get_sample_value("consumer_write_errors_total") == 2
    stored = by_key(await scan_table(settings.aws.dynamodb_endpoint or "", settings.events_table))
    assert stored == by_key(items)


ERROR_ANSWERS = {
    "throttled": Scripted(
        400, json.dumps({"__type": THROTTLED_TYPE, "message": "slow"}).encode(), JSON
    ),
    "bad credentials": Scripted(
        400,
        b'{"__type":"com.amazon.coral.service#UnrecognizedClientException",'
        b'"message":"The security token included in the request is invalid."}',
        JSON,
    ),
    "forbidden, capital Message": Scripted(
        403, b'{"__type":"AccessDeniedException:extra","Message":"no"}', JSON
    ),
    "no __type": Scripted(400, b'{"message":"what"}', JSON),
    "not json": Scripted(400, b"Bad Request from a proxy", {"Content-Type": "text/plain"}),
    "server error, empty": Scripted(500, b"", {}),
    "a load balancer's page": Scripted(
        503, b"<html><body>Service Unavailable</body></html>", {"Content-Type": "text/html"}
    ),
}


@pytest.mark.parametrize("name", list(ERROR_ANSWERS))
async def test_an_error_answer_gives_the_client_error_botocore_gives(
    settings: ConsumerSettings, scripted: ScriptedEndpoint, stack: AsyncExitStack, name: str
) -> None:
    scripted.answer = ERROR_ANSWERS[name]
    requests = puts(event_items(settings, 1))
    raw = await open_batch_write(await open_dynamodb(via(settings, scripted.url), stack), stack)
    with pytest.raises(ClientError) as raw_error:
        await raw("events", requests)
    once = AioConfig(retries={"mode": "standard", "total_max_attempts": 1})
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=scripted.url, config=once
    ) as botocore:
        with pytest.raises(ClientError) as botocore_error:
            await botocore.batch_write_item(RequestItems={"events": requests})  # type: ignore[dict-item]
    assert raw_error.value.response["Error"] == botocore_error.value.response["Error"]
    raw_meta = raw_error.value.response["ResponseMetadata"]
    assert raw_meta["HTTPStatusCode"] == ERROR_ANSWERS[name].status
    assert scripted.calls == 2


def raw_at(url: str, http: aiohttp.ClientSession, seconds: float = 30) -> BatchWriteItem:
    timeout = aiohttp.ClientTimeout(total=seconds)
    return BatchWriteItem(http, Endpoint(url, "us-east-1"), AioCredentials("k", "s"), timeout)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


UNREADABLE = {
    "not json": b"<html>OK</html>",
    "a list": b"[]",
    "unprocessed not a map": b'{"UnprocessedItems":["t"]}',
    "requests not a list": b'{"UnprocessedItems":{"t":{"PutRequest":{}}}}',
    "a request of another kind": b'{"UnprocessedItems":{"t":[{"GetRequest":{"Key":{}}}]}}',
    "a put without its item": b'{"UnprocessedItems":{"t":[{"PutRequest":{"Item":"x"}}]}}',
    "not UTF-8": b'{"UnprocessedItems":{"t":["\xff"]}}',
    "oversized": b'{"UnprocessedItems":{},"pad":"' + b"x" * 2_000_000 + b'"}',
}


@pytest.mark.parametrize("name", list(UNREADABLE))
async def test_an_unreadable_answer_is_a_clear_transient_error(
    scripted: ScriptedEndpoint, http: aiohttp.ClientSession, name: str
) -> None:
    scripted.answer = Scripted(200, UNREADABLE[name], JSON)
    with pytest.raises(UnreadableAnswerError) as error:
        await raw_at(scripted.url, http)("t", [{"PutRequest": {"Item": {"k": {"S": "v"}}}}])
    assert "BatchWriteItem answer unreadable" in str(error.value)
    assert isinstance(error.value, TRANSIENT)
    assert not is_permanent(error.value)


async def test_the_answers_crc32_is_checked_when_dynamodb_sends_it(
    scripted: ScriptedEndpoint, http: aiohttp.ClientSession
) -> None:
    left = [{"PutRequest": {"Item": {"k": {"S": "é"}}}}]
    body = json.dumps({"UnprocessedItems": {"t": left}}).encode()
    raw = raw_at(scripted.url, http)
    scripted.answer = Scripted(200, body, {**JSON, "x-amz-crc32": str(crc32(body))})
    assert await raw("t", left) == left
    scripted.answer = Scripted(200, body, {**JSON, "x-amz-crc32": str(crc32(body) ^ 1)})
    with pytest.raises(ChecksumError) as error:
        await raw("t", left)
    assert isinstance(error.value, BotoCoreError)  # transient: retried, as botocore retries it


async def test_no_answer_within_the_timeout_is_a_transient_error_not_a_hang(
    scripted: ScriptedEndpoint, http: aiohttp.ClientSession
) -> None:
    scripted.stall = True
    with pytest.raises(TRANSIENT) as error:
        await raw_at(scripted.url, http, seconds=0.5)("t", [])
    assert not is_permanent(error.value)


async def test_a_refused_connection_is_a_transient_botocore_error(
    http: aiohttp.ClientSession,
) -> None:
    with pytest.raises(BotoCoreError) as error:
        await raw_at(f"http://127.0.0.1:{free_port()}", http)("t", [])
    assert "HTTP Client" in str(error.value)


async def test_without_credentials_opening_fails_clearly(
    settings: ConsumerSettings,
    stack: AsyncExitStack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    dynamodb = await open_dynamodb(settings, stack)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(RuntimeError, match="no AWS credentials"):
        await open_batch_write(dynamodb, stack)
