"""Reading a Kinesis stream back in tests, and creating throwaway streams on kinesalite."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aiobotocore.session import get_session

from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from types_aiobotocore_kinesis import KinesisClient


@asynccontextmanager
async def kinesis_client(endpoint: str) -> AsyncIterator[KinesisClient]:
    async with get_session().create_client(
        "kinesis", region_name="us-east-1", endpoint_url=endpoint
    ) as client:
        yield client


async def create_stream(endpoint: str, shards: int = 1) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    async with kinesis_client(endpoint) as client:
        await client.create_stream(StreamName=name, ShardCount=shards)
        for _ in range(200):
            summary = await client.describe_stream_summary(StreamName=name)
            if summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE":
                return name
            await asyncio.sleep(0.05)
    raise TimeoutError(f"stream {name} did not become active")


async def read_records(endpoint: str, stream: str) -> list[bytes]:
    """Every record's data on every shard, from the start."""
    data: list[bytes] = []
    async with kinesis_client(endpoint) as client:
        shards = (await client.list_shards(StreamName=stream))["Shards"]
        for shard in shards:
            iterator = (
                await client.get_shard_iterator(
                    StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )
            )["ShardIterator"]
            while iterator:
                page = await client.get_records(ShardIterator=iterator, Limit=10_000)
                data.extend(record["Data"] for record in page["Records"])
                if not page["Records"] and page.get("MillisBehindLatest", 0) == 0:
                    break
                iterator = page.get("NextShardIterator", "")
    return data


async def read_events(endpoint: str, stream: str) -> list[pb.TrackingEvent]:
    events = []
    for data in await read_records(endpoint, stream):
        event = pb.TrackingEvent()
        event.ParseFromString(data)
        events.append(event)
    return events


async def wait_for_events(
    endpoint: str, stream: str, count: int, timeout: float = 15.0
) -> list[pb.TrackingEvent]:
    """Poll the stream until it holds at least `count` events (or the timeout passes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        events = await read_events(endpoint, stream)
        if len(events) >= count or loop.time() > deadline:
            return events
        await asyncio.sleep(0.1)
