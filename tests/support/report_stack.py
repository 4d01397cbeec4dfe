"""The reporting service's stores for tests: its two tables in moto (formats of
docs/reporting.md), rollup items written as the events consumer writes them, report keys, and
`reports serve` as a real process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import datasketches
from aiobotocore.session import get_session

from reports.keys import KeyStore
from reports.rollups import CHANGES_INDEX
from tracker.devstack.processes import free_port, wait_for_port

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Tables:
    rollups: str
    keys: str


def fresh_tables() -> Tables:
    """Names of a test's own tables (moto lives for the whole session)."""
    suffix = uuid.uuid4().hex[:10]
    return Tables(f"rollups-{suffix}", f"report-keys-{suffix}")


def report_env(moto_url: str, redis_url: str, tables: Tables, **overrides: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": moto_url,
        "REDIS_URL": redis_url,
        "ROLLUP_TABLE": tables.rollups,
        "REPORT_KEYS_TABLE": tables.keys,
        "LOG_LEVEL": "WARNING",
        **overrides,
    }


@asynccontextmanager
async def dynamodb(moto_url: str) -> AsyncIterator[DynamoDBClient]:
    async with get_session().create_client(
        "dynamodb", region_name="us-east-1", endpoint_url=moto_url
    ) as client:
        yield client


# The rollup table's index of changes (docs/reporting.md), as `consumers init` makes it.
CHANGES_INDEX_SPEC: Any = {
    "IndexName": CHANGES_INDEX,
    "KeySchema": [
        {"AttributeName": "program_id", "KeyType": "HASH"},
        {"AttributeName": "updated_ms", "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "ALL"},
}


async def create_rollup_table(client: DynamoDBClient, name: str | None = None) -> str:
    """A rollup table of docs/reporting.md's key schema, with its index `changes` (a fresh
    name unless one is given); its name."""
    name = name or f"rollups-{uuid.uuid4().hex[:12]}"
    await client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "program_id", "KeyType": "HASH"},
            {"AttributeName": "bucket", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "program_id", "AttributeType": "S"},
            {"AttributeName": "bucket", "AttributeType": "S"},
            {"AttributeName": "updated_ms", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[CHANGES_INDEX_SPEC],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


async def create_tables(client: DynamoDBClient, tables: Tables) -> None:
    """Both tables keyed as docs/reporting.md fixes them, the rollups' index included."""
    await create_rollup_table(client, tables.rollups)
    await client.create_table(
        TableName=tables.keys,
        KeySchema=[{"AttributeName": "key_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "key_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def sketch_of(visitors: list[str]) -> bytes:
    sketch = datasketches.hll_sketch(12, datasketches.tgt_hll_type.HLL_4)
    for visitor in visitors:
        sketch.update(visitor)
    return bytes(sketch.serialize_compact())


async def put_bucket(
    client: DynamoDBClient,
    table: str,
    program_id: str,
    bucket: str,
    counts: Mapping[str, int],
    visitors: list[str] | None = None,
    version: int = 1,
) -> None:
    """One rollup item, as the writer leaves it (positions and version included), written
    now (`updated_ms`: the cache of `reports serve` finds it by that)."""
    item: dict[str, object] = {
        "program_id": {"S": program_id},
        "bucket": {"S": bucket},
        "counts": {"M": {name: {"N": str(value)} for name, value in counts.items()}},
        "positions": {"M": {"shardId-000000000000": {"S": "1".zfill(64)}}},
        "version": {"N": str(version)},
        "updated_ms": {"N": str(time.time_ns() // 1_000_000)},
    }
    if visitors:
        item["uniques"] = {"B": sketch_of(visitors)}
    await client.put_item(TableName=table, Item=item)  # type: ignore[arg-type]


async def new_key(client: DynamoDBClient, tables: Tables, customer_id: int) -> str:
    """A key of the customer, created as `reports keys create` does; its text."""
    _, text = await KeyStore(client, tables.keys, 10.0).create(customer_id, "test")
    return text


@dataclass
class ReportsProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def terminate(self, signum: int = signal.SIGTERM) -> tuple[int, bytes]:
        """Signal it, wait for its exit: (exit status, everything it printed)."""
        self.process.send_signal(signum)
        returncode = await asyncio.to_thread(self.process.wait, 30)
        self.log.seek(0)
        return returncode, self.log.read()


@asynccontextmanager
async def reports_process(env: dict[str, str]) -> AsyncIterator[ReportsProcess]:
    """`python -m reports` on a free port; killed at the end if still running."""
    port = free_port()
    full_env = {**os.environ, **env, "REPORTS_HOST": "127.0.0.1", "REPORTS_PORT": str(port)}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(  # noqa: ASYNC220 (waited on in a thread)
            [sys.executable, "-m", "reports"],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            await asyncio.to_thread(wait_for_port, port, 30.0, process)
            yield ReportsProcess(port, process, log)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
