"""AWS clients for the consumers, configured in one place."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from consumers.settings import ConsumerSettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_sqs import SQSClient

# Our loops retry with their own backoff and know what to retry; botocore's standard mode still
# absorbs short throttling bursts.
_CONFIG = AioConfig(
    retries={"mode": "standard", "total_max_attempts": 3},
    connect_timeout=5,
    read_timeout=20,
    max_pool_connections=50,
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


async def open_sqs(settings: ConsumerSettings, stack: AsyncExitStack) -> SQSClient:
    return await stack.enter_async_context(
        get_session().create_client(
            "sqs",
            region_name=settings.aws.region,
            endpoint_url=settings.redrive.sqs_endpoint,
            config=_CONFIG,
        )
    )
