"""The rollup writer's lean GetItem and conditional PutItem: the same answers as botocore's, on
a real moto server (binary values, a condition that fails) and on scripted answers (errors,
unreadable bodies)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiobotocore.credentials import AioCredentials
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from consumers.dynamodb_batch import Endpoint, UnreadableAnswerError
from consumers.dynamodb_item import Condition, GetItem, PutItem
from consumers.retrying import TRANSIENT
from tests.support.scripted_endpoint import Scripted, ScriptedEndpoint

JSON = {"Content-Type": "application/x-amz-json-1.0"}
CREDENTIALS = AioCredentials("testing", "testing")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedEndpoint]:
    endpoint = await ScriptedEndpoint().start()
    yield endpoint
    await endpoint.close()


@pytest.fixture
async def table(moto_url: str) -> str:
    name = f"items-{os.urandom(4).hex()}"
    async with get_session().create_client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as dynamodb:
        await dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    return name


async def test_an_item_put_on_condition_reads_back_with_its_bytes(
    moto_url: str, table: str, http: aiohttp.ClientSession
) -> None:
    endpoint = Endpoint(moto_url, "us-east-1")
    get, put = GetItem(http, endpoint, CREDENTIALS), PutItem(http, endpoint, CREDENTIALS)
    key = {"k": {"S": "shoes"}}
    assert await get(table, key) is None
    blob = bytes(range(256))
    item = {**key, "v": {"N": "1"}, "b": {"B": blob}, "m": {"M": {"x": {"N": "2"}}}}
    new = Condition("attribute_not_exists(k)")
    assert await put(table, item, new) is True
    assert await put(table, item, new) is False  # it exists now: the condition fails
    assert await get(table, key) == item
    newer = {**item, "v": {"N": "2"}}
    stale = Condition("v = :read", {":read": {"N": "7"}})
    assert await put(table, newer, stale) is False
    assert await put(table, newer, Condition("v = :read", {":read": {"N": "1"}})) is True
    assert await get(table, key) == newer


async def test_errors_and_unreadable_answers_come_out_as_botocore_gives_them(
    scripted: ScriptedEndpoint, http: aiohttp.ClientSession
) -> None:
    endpoint = Endpoint(scripted.url, "us-east-1")
    get, put = GetItem(http, endpoint, CREDENTIALS), PutItem(http, endpoint, CREDENTIALS)
    throttled = (
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow"}'
    )
    scripted.answer = Scripted(400, throttled, JSON)
    with pytest.raises(ClientError) as error:
        await put("t", {"k": {"S": "x"}}, Condition("attribute_not_exists(k)"))
    assert error.value.response["Error"]["Code"] == "ThrottlingException"
    scripted.answer = Scripted(200, b"<html>OK</html>", JSON)
    with pytest.raises(UnreadableAnswerError) as unreadable:
        await get("t", {"k": {"S": "x"}})
    assert "GetItem answer unreadable" in str(unreadable.value)
    assert isinstance(unreadable.value, TRANSIENT)
