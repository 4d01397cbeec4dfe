"""`consumers init`: create the streams and tables the settings name, if missing; wait for them.

Idempotent, for the local emulators and the tests; in AWS the infra templates create these.
The table key designs live here, beside the code that relies on them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from consumers.settings import ConsumerSettings

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_kinesis import KinesisClient

log = logging.getLogger(__name__)

WAIT_SECONDS = 60.0
EVENTS_TTL_ATTRIBUTE = "expires_at"


def table_specs(settings: ConsumerSettings) -> dict[str, dict[str, Any]]:
    """Key schema per table.

    Events: partition `program_id`, sort `event_key` = `{timestamp_ms:013d}#{message_id}`, so the
    analyst's common query, one program's events in a time range, is one Query, and a record
    delivered twice writes the same item. Dead letters by `record_id` (stream/shard/sequence),
    leases by `lease_key` = `{stream}/{shard id}` (one table serves both streams).
    """
    return {
        settings.events_table: _keyed(("program_id", "HASH"), ("event_key", "RANGE")),
        settings.dead_letter_table: _keyed(("record_id", "HASH")),
        settings.lease_table: _keyed(("lease_key", "HASH")),
    }


def _keyed(*keys: tuple[str, str]) -> dict[str, Any]:
    return {
        "KeySchema": [{"AttributeName": name, "KeyType": kind} for name, kind in keys],
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name, _ in keys],
        "BillingMode": "PAY_PER_REQUEST",
    }


async def provision(settings: ConsumerSettings) -> dict[str, str]:
    """Create what is missing; return what was done to each resource."""
    session = get_session()
    aws = settings.aws
    async with (
        session.create_client(
            "kinesis", region_name=aws.region, endpoint_url=aws.kinesis_endpoint
        ) as kinesis,
        session.create_client(
            "dynamodb", region_name=aws.region, endpoint_url=aws.dynamodb_endpoint
        ) as dynamodb,
    ):
        done: dict[str, str] = {}
        streams = {settings.event_stream: settings.event_stream_shards, settings.program_stream: 1}
        for name, shards in streams.items():
            done[f"stream:{name}"] = await _ensure_stream(kinesis, name, shards)
        for name, spec in table_specs(settings).items():
            done[f"table:{name}"] = await _ensure_table(dynamodb, name, spec)
        await _ensure_ttl(dynamodb, settings.events_table)
        await _ensure_ttl(dynamodb, settings.dead_letter_table)
        return done


async def _ensure_stream(kinesis: KinesisClient, name: str, shards: int) -> str:
    try:
        await kinesis.create_stream(StreamName=name, ShardCount=shards)
        outcome = "created"
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        outcome = "exists"
    await _wait(lambda: _stream_active(kinesis, name), f"stream {name}")
    return outcome


async def _stream_active(kinesis: KinesisClient, name: str) -> bool:
    summary = await kinesis.describe_stream_summary(StreamName=name)
    return summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"


async def _ensure_table(dynamodb: DynamoDBClient, name: str, spec: dict[str, Any]) -> str:
    try:
        await dynamodb.create_table(TableName=name, **spec)
        outcome = "created"
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        outcome = "exists"
    await _wait(lambda: _table_active(dynamodb, name), f"table {name}")
    return outcome


async def _table_active(dynamodb: DynamoDBClient, name: str) -> bool:
    table = await dynamodb.describe_table(TableName=name)
    return table["Table"]["TableStatus"] == "ACTIVE"


async def _ensure_ttl(dynamodb: DynamoDBClient, table: str) -> None:
    described = await dynamodb.describe_time_to_live(TableName=table)
    if described["TimeToLiveDescription"].get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return
    await dynamodb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": EVENTS_TTL_ATTRIBUTE},
    )


async def _wait(check: Any, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} did not become active within {WAIT_SECONDS:.0f}s")
        await asyncio.sleep(0.1)
