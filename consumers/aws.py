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
    session = get_session()
    aws = settings.aws
    kinesis = await stack.enter_async_context(
        session.create_client(
            "kinesis", region_name=aws.region, endpoint_url=aws.kinesis_endpoint, config=_CONFIG
        )
    )
    dynamodb = await stack.enter_async_context(
        session.create_client(
            "dynamodb", region_name=aws.region, endpoint_url=aws.dynamodb_endpoint, config=_CONFIG
        )
    )
    return kinesis, dynamodb
