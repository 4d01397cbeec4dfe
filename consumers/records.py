"""The shape every processor consumes, whether records came from GetRecords or from Lambda."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class StreamRecord(NamedTuple):
    sequence_number: str
    partition_key: str
    data: bytes


class RecordProcessor(Protocol):
    async def process(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        """Persist the records (retrying as needed); return only when all are safely stored."""
