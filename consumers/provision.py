"""`consumers init`: create the streams and tables the settings name, if missing; wait for them.

Idempotent, for the local emulators and the tests; in AWS the infra templates create these.
The table key designs live here, beside the code that relies on them, and so does the check of a
table's key that `init` and every consumer run before they write (consumers/table_check.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from consumers.lake.catalog import provision_lake
from consumers.settings import ConsumerSettings
from consumers.user_items import USER_KEY_INDEX

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        CreateGlobalSecondaryIndexActionTypeDef,
    )
    from types_aiobotocore_kinesis import KinesisClient

log = logging.getLogger(__name__)

WAIT_SECONDS = 60.0
# Adding the index to a populated table makes DynamoDB backfill it: minutes, or more.
INDEX_WAIT_SECONDS = 3600.0
MAX_POLL_SECONDS = 5.0
EVENTS_TTL_ATTRIBUTE = "expires_at"
USER_KEY_INDEX_SPEC: dict[str, Any] = {
    "IndexName": USER_KEY_INDEX,
    "KeySchema": [
        {"AttributeName": "user_key", "KeyType": "HASH"},
        {"AttributeName": "event_key", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "KEYS_ONLY"},
}
USER_KEY_ATTRIBUTE: AttributeDefinitionTypeDef = {"AttributeName": "user_key", "AttributeType": "S"}
# The rollup table's index of changes (docs/reporting.md): `reports serve` keeps the buckets it
# has read and asks this index for the items written since, instead of reading a range again.
# ALL: a changed item comes back whole in the one Query. The reader names it on its side
# (reports/rollups.py); the two packages share only the table format.
ROLLUP_CHANGES_INDEX = "changes"
ROLLUP_CHANGES_INDEX_SPEC: dict[str, Any] = {
    "IndexName": ROLLUP_CHANGES_INDEX,
    "KeySchema": [
        {"AttributeName": "program_id", "KeyType": "HASH"},
        {"AttributeName": "updated_ms", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "ALL"},
}
UPDATED_MS_ATTRIBUTE: AttributeDefinitionTypeDef = {
    "AttributeName": "updated_ms",
    "AttributeType": "N",
}


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """A global secondary index that `init` adds to a table created before it existed."""

    table: str
    spec: dict[str, Any]  # IndexName, KeySchema, Projection
    attribute: AttributeDefinitionTypeDef  # its key attribute that the table's key lacks

    @property
    def name(self) -> str:
        return str(self.spec["IndexName"])


class UnusableTableError(RuntimeError):
    """A table this version uses is missing or has another key: refused before anything is
    written. The message is one line, for an operator."""


class IncompatibleTableError(UnusableTableError):
    """A table of that name exists with another key schema. Writes could even succeed (an item
    carries the old key's attributes too), but reads and deletes by this version's key would
    not: refused before anything is written (see docs/deploy.md on changing a key)."""


class MissingTableError(UnusableTableError):
    """No table of that name: every write would fail, and be retried, until one is created."""


def table_specs(settings: ConsumerSettings) -> dict[str, dict[str, Any]]:
    """Key schema per table.

    Events: partition `program_bucket` = `{program_id}#{bucket}`, sort `event_key` =
    `{timestamp_ms:013d}#{message_id}` (consumers/event_items.py): one program's writes spread
    over EVENTS_TABLE_BUCKETS partitions, its events in a time range are one Query per bucket,
    and a record delivered twice writes the same item. Its global secondary index
    `user_key-index` (partition `user_key`, sort `event_key`, keys only) finds one user's events
    for export and erasure; it is sparse, since only events with a user key have the attribute.
    Dead letters by `record_id` (stream/shard/sequence), leases by `lease_key` =
    `{stream}/{shard id}` (one table serves both streams), the privacy table by `user_key` and
    `entry` (consumers/privacy_table.py). Rollups by `program_id` and `bucket` (the UTC start
    of a quarter hour), with the index `changes` (partition `program_id`, sort `updated_ms`,
    every attribute) that finds a program's items written since a moment; report keys by
    `key_id` (docs/reporting.md). Attribution by `pk` and `sk`: click records, dedupe markers
    and parked conversions (consumers/attribution/records.py).
    """
    events = _keyed(("program_bucket", "HASH"), ("event_key", "RANGE"))
    events["AttributeDefinitions"].append(USER_KEY_ATTRIBUTE)
    events["GlobalSecondaryIndexes"] = [USER_KEY_INDEX_SPEC]
    rollups = _keyed(("program_id", "HASH"), ("bucket", "RANGE"))
    rollups["AttributeDefinitions"].append(UPDATED_MS_ATTRIBUTE)
    rollups["GlobalSecondaryIndexes"] = [ROLLUP_CHANGES_INDEX_SPEC]
    return {
        settings.events_table: events,
        settings.dead_letter_table: _keyed(("record_id", "HASH")),
        settings.lease_table: _keyed(("lease_key", "HASH")),
        settings.privacy.table: _keyed(("user_key", "HASH"), ("entry", "RANGE")),
        settings.rollup_table: rollups,
        settings.report_keys_table: _keyed(("key_id", "HASH")),
        settings.attribution.table: _keyed(("pk", "HASH"), ("sk", "RANGE")),
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
        for index in indexes(settings):
            outcome = await _ensure_index(dynamodb, index)
            if done[f"table:{index.table}"] == "created":
                outcome = "created"  # with the table
            done[f"index:{index.table}/{index.name}"] = outcome
        for table in (
            settings.events_table,
            settings.dead_letter_table,
            settings.privacy.table,
            settings.attribution.table,
        ):
            await _ensure_ttl(dynamodb, table)
        done[f"lake:{settings.lake.table}"] = await asyncio.to_thread(provision_lake, settings.lake)
        return done


def indexes(settings: ConsumerSettings) -> list[IndexSpec]:
    """The global secondary indexes of table_specs, each with its table."""
    return [
        IndexSpec(settings.events_table, USER_KEY_INDEX_SPEC, USER_KEY_ATTRIBUTE),
        IndexSpec(settings.rollup_table, ROLLUP_CHANGES_INDEX_SPEC, UPDATED_MS_ATTRIBUTE),
    ]


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
    if outcome == "exists":
        await check_key_schema(dynamodb, name, spec["KeySchema"])
    return outcome


async def check_key_schema(
    dynamodb: DynamoDBClient, name: str, wanted: list[dict[str, str]]
) -> None:
    """One DescribeTable: raise UnusableTableError unless the table exists with the key `wanted`
    (a KeySchema of table_specs). Other errors (throttling, no connection) are the caller's."""
    try:
        described = (await dynamodb.describe_table(TableName=name))["Table"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        raise MissingTableError(
            f"table {name} does not exist: create it with `consumers init` or the data stack "
            "(see docs/deploy.md)"
        ) from None
    found = [(k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]]
    needed = [(k["AttributeName"], k["KeyType"]) for k in wanted]
    if found != needed:
        raise IncompatibleTableError(
            f"table {name} has the key {_schema_text(found)}, this version needs "
            f"{_schema_text(needed)}: give it a new table name (see docs/deploy.md)"
        )


def _schema_text(keys: Sequence[tuple[str, str]]) -> str:
    return "(" + ", ".join(f"{name} {kind}" for name, kind in keys) + ")"


async def _table_active(dynamodb: DynamoDBClient, name: str) -> bool:
    table = await dynamodb.describe_table(TableName=name)
    return table["Table"]["TableStatus"] == "ACTIVE"


async def _ensure_index(dynamodb: DynamoDBClient, index: IndexSpec) -> str:
    """Add the index to a table created before it existed; wait until it is ACTIVE."""
    table = index.table
    described = (await dynamodb.describe_table(TableName=table))["Table"]
    names = {found["IndexName"] for found in described.get("GlobalSecondaryIndexes", [])}
    outcome = "exists"
    if index.name not in names:
        create = cast("CreateGlobalSecondaryIndexActionTypeDef", dict(index.spec))
        if described.get("BillingModeSummary", {}).get("BillingMode") != "PAY_PER_REQUEST":
            # A provisioned table's index needs capacity of its own: the table's.
            throughput = described["ProvisionedThroughput"]
            create["ProvisionedThroughput"] = {
                "ReadCapacityUnits": throughput["ReadCapacityUnits"],
                "WriteCapacityUnits": throughput["WriteCapacityUnits"],
            }
        key = index.attribute["AttributeName"]
        attributes = [a for a in described["AttributeDefinitions"] if a["AttributeName"] != key]
        await dynamodb.update_table(
            TableName=table,
            AttributeDefinitions=[*attributes, index.attribute],
            GlobalSecondaryIndexUpdates=[{"Create": create}],
        )
        outcome = "created"
        log.info("adding an index", extra={"table": table, "index": index.name})
    await _wait(
        lambda: _index_active(dynamodb, table, index.name),
        f"index {index.name} of table {table}",
        INDEX_WAIT_SECONDS,
    )
    return outcome


async def _index_active(dynamodb: DynamoDBClient, name: str, index: str) -> bool:
    table = (await dynamodb.describe_table(TableName=name))["Table"]
    statuses = [
        found.get("IndexStatus")
        for found in table.get("GlobalSecondaryIndexes", [])
        if found["IndexName"] == index
    ]
    return table["TableStatus"] == "ACTIVE" and statuses == ["ACTIVE"]


async def _ensure_ttl(dynamodb: DynamoDBClient, table: str) -> None:
    described = await dynamodb.describe_time_to_live(TableName=table)
    if described["TimeToLiveDescription"].get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return
    await dynamodb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": EVENTS_TTL_ATTRIBUTE},
    )


async def _wait(check: Any, what: str, limit_seconds: float = WAIT_SECONDS) -> None:
    deadline = asyncio.get_running_loop().time() + limit_seconds
    pause = 0.1
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what} did not become active within {limit_seconds:.0f}s")
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, MAX_POLL_SECONDS)  # quick for emulators, gentle for AWS
