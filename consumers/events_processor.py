"""Event records -> DynamoDB items, with undecodable records sent to the dead-letter table."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from consumers.dead_letters import DeadLetter, DeadLetterTable
from consumers.event_items import EventFormatError, Item, decode_event, event_item
from consumers.events_writer import EventsWriter, item_key
from consumers.metrics import ConsumerMetrics
from consumers.records import StreamRecord
from tracker.events.kpl import AggregationError, deaggregate


class EventsProcessor:
    def __init__(
        self,
        stream: str,
        writer: EventsWriter,
        dead_letters: DeadLetterTable,
        metrics: ConsumerMetrics,
        ttl_days: int,
    ) -> None:
        self._stream = stream
        self._writer = writer
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._ttl_days = ttl_days

    async def process(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        started = time.perf_counter()
        items: list[Item] = []
        letters: list[DeadLetter] = []
        # Where each item came from, in case DynamoDB refuses it outright.
        origins: dict[tuple[str, str], DeadLetter] = {}
        for record in records:
            self._decode(shard_id, record, items, letters, origins)
        rejected, *_ = await asyncio.gather(
            self._writer.write(items), *(self._dead_letters.put(letter) for letter in letters)
        )
        await asyncio.gather(
            *(
                self._dead_letters.put(origins[item_key(r.item)]._replace(error=r.reason))
                for r in rejected
            )
        )
        self._metrics.records.inc(len(records))
        self._metrics.batch_seconds.observe(time.perf_counter() - started)

    def _decode(
        self,
        shard_id: str,
        record: StreamRecord,
        items: list[Item],
        letters: list[DeadLetter],
        origins: dict[tuple[str, str], DeadLetter],
    ) -> None:
        try:
            user_records = deaggregate(record.data, record.partition_key)
        except AggregationError as exc:
            letters.append(self._letter(shard_id, record, record.data, str(exc)))
            return
        for index, user_record in enumerate(user_records):
            sub_index = index if len(user_records) > 1 else None
            try:
                item = event_item(decode_event(user_record.data), self._ttl_days)
            except EventFormatError as exc:
                letters.append(
                    self._letter(shard_id, record, user_record.data, str(exc), sub_index)
                )
                continue
            items.append(item)
            origins[item_key(item)] = self._letter(
                shard_id, record, user_record.data, "", sub_index
            )

    def _letter(
        self,
        shard_id: str,
        record: StreamRecord,
        raw: bytes,
        error: str,
        sub_index: int | None = None,
    ) -> DeadLetter:
        return DeadLetter(self._stream, shard_id, record.sequence_number, raw, error, sub_index)
