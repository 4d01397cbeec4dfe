"""The Kinesis side of shipping: one PutRecords call, translated into "which entries failed"."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from tracker.events.buffer import Entry

if TYPE_CHECKING:
    from types_aiobotocore_kinesis import KinesisClient
    from types_aiobotocore_kinesis.type_defs import PutRecordsRequestEntryTypeDef

log = logging.getLogger(__name__)


class RecordSink(Protocol):
    async def put(self, entries: Sequence[Entry]) -> list[int]:
        """Send the entries; return the indexes of those that were not accepted."""


class KinesisSink:
    def __init__(self, client: KinesisClient, stream_name: str) -> None:
        self._client = client
        self._stream = stream_name

    async def put(self, entries: Sequence[Entry]) -> list[int]:
        records: list[PutRecordsRequestEntryTypeDef] = [
            {"Data": e.data, "PartitionKey": e.partition_key} for e in entries
        ]
        try:
            response = await self._client.put_records(StreamName=self._stream, Records=records)
        except asyncio.CancelledError:
            raise
        except (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            # The whole call failed (throttled, stream missing, network): every entry is retried.
            log.warning("PutRecords failed", extra={"error": str(exc), "records": len(entries)})
            return list(range(len(entries)))
        if not response.get("FailedRecordCount"):
            return []
        return [i for i, result in enumerate(response["Records"]) if "ErrorCode" in result]
