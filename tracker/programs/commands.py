"""`tracker programs load` (into Redis) and `tracker programs publish` (onto the stream)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import redis.asyncio as redis
from aiobotocore.session import get_session

from tracker.programs.files import read_program_file
from tracker.programs.redis_writer import ProgramWriter
from tracker.settings import TrackerSettings

if TYPE_CHECKING:
    from types_aiobotocore_kinesis.type_defs import PutRecordsRequestEntryTypeDef

log = logging.getLogger(__name__)

PUT_BATCH = 500
PUT_ATTEMPTS = 8


async def load_programs(settings: TrackerSettings, path: Path) -> dict[str, int]:
    updates = read_program_file(path)
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    try:
        result = await ProgramWriter(client, settings.program_channel).apply_all(updates)
    finally:
        await client.aclose()
    return {"applied": result.applied, "skipped_not_newer": result.skipped}


async def publish_programs(settings: TrackerSettings, path: Path) -> dict[str, int]:
    """Put every entry on PROGRAM_STREAM, partitioned by program id so that one program's
    updates stay in order on one shard."""
    updates = read_program_file(path)
    records: list[PutRecordsRequestEntryTypeDef] = [
        {
            "Data": json.dumps(u.to_json(), separators=(",", ":")).encode(),
            "PartitionKey": u.program_id,
        }
        for u in updates
    ]
    async with get_session().create_client(
        "kinesis",
        region_name=settings.aws.region,
        endpoint_url=settings.aws.kinesis_endpoint,
    ) as client:
        for start in range(0, len(records), PUT_BATCH):
            pending = records[start : start + PUT_BATCH]
            for attempt in range(PUT_ATTEMPTS):
                response = await client.put_records(
                    StreamName=settings.program_stream, Records=pending
                )
                pending = [
                    r
                    for r, result in zip(pending, response["Records"], strict=True)
                    if "ErrorCode" in result
                ]
                if not pending:
                    break
                await asyncio.sleep(0.1 * 2**attempt)
            if pending:
                raise RuntimeError(f"{len(pending)} programs were not accepted by the stream")
    return {"published": len(records)}
