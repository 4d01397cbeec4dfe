"""Program-update records -> Redis (version-checked Lua script) -> published to every tracker."""

from __future__ import annotations

from collections.abc import Sequence

from consumers.dead_letters import DeadLetter, DeadLetterTable
from consumers.metrics import ConsumerMetrics
from consumers.records import StreamRecord
from consumers.retrying import with_retries
from tracker.programs.model import ProgramFormatError, parse_update_json
from tracker.programs.redis_writer import ProgramWriter


class ProgramsProcessor:
    """Applies records one by one, in stream order: a program's updates share a shard."""

    def __init__(
        self,
        stream: str,
        writer: ProgramWriter,
        dead_letters: DeadLetterTable,
        metrics: ConsumerMetrics,
        max_attempts: int | None = None,
    ) -> None:
        self._stream = stream
        self._writer = writer
        self._dead_letters = dead_letters
        self._metrics = metrics
        self._max_attempts = max_attempts
        applied = metrics.programs_applied
        self._applied = applied.labels("applied")
        self._skipped = applied.labels("skipped_not_newer")

    async def process(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        for record in records:
            await self.process_one(shard_id, record)
        self._metrics.records.inc(len(records))

    async def process_one(self, shard_id: str, record: StreamRecord) -> None:
        try:
            update = parse_update_json(record.data)
        except ProgramFormatError as exc:
            await self._dead_letters.put(
                DeadLetter(self._stream, shard_id, record.sequence_number, record.data, str(exc))
            )
            return
        applied = await with_retries(
            lambda: self._writer.apply(update),
            "program update to Redis",
            self._max_attempts,
            self._metrics.write_errors.inc,
        )
        (self._applied if applied else self._skipped).inc()
