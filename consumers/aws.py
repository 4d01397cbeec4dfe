"""AWS clients for the consumers, configured in one place."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, NamedTuple

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from consumers.attribution.table import Calls
from consumers.dynamodb_batch import BatchGetItem, BatchWriteItem, Endpoint
from consumers.dynamodb_item import GetItem, ItemCalls, PutItem
from consumers.settings import ConsumerSettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_sqs import SQSClient

POOL_CONNECTIONS = 50
# Our loops retry with their own backoff and know what to retry; botocore's standard mode still
# absorbs short throttling bursts.
_CONFIG = AioConfig(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=POOL_CONNECTIONS,
)


async def open_clients(
    settings: ConsumerSettings, stack: AsyncExitStack
) -> tuple[KinesisClient, DynamoDBClient]:
    return await open_kinesis(settings, stack), await open_dynamodb(settings, stack)


async def open_kinesis(settings: ConsumerSettings, stack: AsyncExitStack) -> KinesisClient:
    aws = settings.aws
    return await stack.enter_async_context(
        get_session().create_client(
            "kinesis", region_name=aws.region, endpoint_url=aws.kinesis_endpoint, config=_CONFIG
        )
    )


async def open_dynamodb(settings: ConsumerSettings, stack: AsyncExitStack) -> DynamoDBClient:
    aws = settings.aws
    return await stack.enter_async_context(
        get_session().create_client(
            "dynamodb", region_name=aws.region, endpoint_url=aws.dynamodb_endpoint, config=_CONFIG
        )
    )


class LeanCalls(NamedTuple):
    """The per-event DynamoDB calls, sent without botocore's per-item work."""

    write: BatchWriteItem
    get: BatchGetItem
    item: ItemCalls  # GetItem and a conditional PutItem (the rollup writer)


async def open_lean_calls(dynamodb: DynamoDBClient, stack: AsyncExitStack) -> LeanCalls:
    """The lean calls beside a botocore client: the client's endpoint and region, and
    credentials found as the client finds them (environment, profile, task role), refreshed."""
    credentials = await get_session().get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials found (environment, profile, or task role)")
    endpoint = Endpoint(dynamodb.meta.endpoint_url, dynamodb.meta.region_name)
    connector = aiohttp.TCPConnector(limit=POOL_CONNECTIONS)
    # auto_decompress off: the x-amz-crc32 check needs the bytes as sent (we ask for identity).
    http = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    await stack.enter_async_context(http)
    item = ItemCalls(GetItem(http, endpoint, credentials), PutItem(http, endpoint, credentials))
    return LeanCalls(
        BatchWriteItem(http, endpoint, credentials), BatchGetItem(http, endpoint, credentials), item
    )


def attribution_calls(lean: LeanCalls) -> Calls:
    return Calls(lean.get, lean.write, lean.item)


async def open_batch_write(dynamodb: DynamoDBClient, stack: AsyncExitStack) -> BatchWriteItem:
    return (await open_lean_calls(dynamodb, stack)).write


async def open_sqs(settings: ConsumerSettings, stack: AsyncExitStack) -> SQSClient:
    return await stack.enter_async_context(
        get_session().create_client(
            "sqs",
            region_name=settings.aws.region,
            endpoint_url=settings.redrive.sqs_endpoint,
            config=_CONFIG,
        )
    )
