"""The dead-letter table: records that cannot be processed are kept, never lost, never blocking.

The item key is the record's place in the stream, so a record re-delivered after a crash
overwrites its own dead letter instead of adding another. Every letter expires (`expires_at`,
DEAD_LETTER_TTL_DAYS after it was received): undecodable raw bytes may hold personal data that
nobody can find by user, so they are not kept for ever.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, NamedTuple

from consumers.metrics import ConsumerMetrics
from consumers.retrying import with_retries

if TYPE_CHECKING:
    from types_aiobotocore_dynamodb import DynamoDBClient
    from types_aiobotocore_dynamodb.type_defs import AttributeValueTypeDef

log = logging.getLogger(__name__)

# DynamoDB items are limited to 400 KB; a Kinesis record can be 1 MiB.
MAX_RAW_BYTES = 350 * 1024
DEFAULT_TTL_DAYS = 14
DAY_SECONDS = 86_400


class DeadLetter(NamedTuple):
    stream: str
    shard_id: str
    sequence_number: str
    raw: bytes
    error: str
    sub_index: int | None = None  # position inside an aggregated record
    # `raw` is the decoded event re-serialized without its personal fields, not the record's
    # bytes (consumers/personal_data.py).
    scrubbed: bool = False

    @property
    def record_id(self) -> str:
        base = f"{self.stream}/{self.shard_id}/{self.sequence_number}"
        return base if self.sub_index is None else f"{base}/{self.sub_index}"


class DeadLetterTable:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        metrics: ConsumerMetrics,
        max_attempts: int | None = None,
        ttl_days: int = DEFAULT_TTL_DAYS,
    ) -> None:
        self._dynamodb = dynamodb
        self._table = table
        self._metrics = metrics
        self._max_attempts = max_attempts
        self._ttl_days = ttl_days

    async def put(self, letter: DeadLetter) -> None:
        """Store the letter, retrying with backoff (forever unless max_attempts is set)."""
        item = self._item(letter)
        await with_retries(
            lambda: self._dynamodb.put_item(TableName=self._table, Item=item),
            "dead-letter write",
            self._max_attempts,
            self._metrics.write_errors.inc,
        )
        self._metrics.dead_letters.inc()
        log.warning(
            "record sent to the dead-letter table",
            extra={"record_id": letter.record_id, "error": letter.error},
        )

    def _item(self, letter: DeadLetter) -> dict[str, AttributeValueTypeDef]:
        raw = letter.raw[:MAX_RAW_BYTES]
        received_at = int(time.time())
        return {
            "record_id": {"S": letter.record_id},
            "stream": {"S": letter.stream},
            "shard_id": {"S": letter.shard_id},
            "sequence_number": {"S": letter.sequence_number},
            "raw": {"B": raw},
            "raw_size": {"N": str(len(letter.raw))},
            "raw_truncated": {"BOOL": len(raw) < len(letter.raw)},
            "personal_data_removed": {"BOOL": letter.scrubbed},
            "error": {"S": letter.error[:2000] or "unknown"},
            "received_at": {"N": str(received_at)},
            "expires_at": {"N": str(received_at + self._ttl_days * DAY_SECONDS)},
        }
