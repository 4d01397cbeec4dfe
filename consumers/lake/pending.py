"""What a lake worker has read and not yet committed, per shard, in stream order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from consumers.lake.rows import EventRows, extend
from consumers.records import StreamRecord


@dataclass
class ShardRows:
    rows: EventRows = field(default_factory=EventRows)
    # The last record read, event or not: where the shard's position moves to on commit.
    last_sequence: int = 0


@dataclass
class Pending:
    shards: dict[str, ShardRows] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(shard.rows) for shard in self.shards.values())

    def add(self, shard_id: str, records: Sequence[StreamRecord]) -> None:
        shard = self.shards.setdefault(shard_id, ShardRows())
        shard.rows.add_records(records)
        shard.last_sequence = int(records[-1].sequence_number)

    def user_keys(self) -> set[str]:
        """The distinct user keys of the rows (for the suppression check)."""
        keys: set[str] = set()
        for shard in self.shards.values():
            keys.update(shard.rows.values("user_key"))
        keys.discard(None)
        return keys

    def put_back(self, newer: Pending) -> None:
        """After a failed commit: these rows stay first, `newer`'s follow them."""
        for shard_id, later in newer.shards.items():
            shard = self.shards.setdefault(shard_id, ShardRows())
            extend(shard.rows, later.rows)
            shard.last_sequence = later.last_sequence

    def uncommitted(self, positions: dict[str, int]) -> tuple[list[pa.Table], dict[str, int]]:
        """Each shard's rows after its committed position, and the positions they reach."""
        parts = []
        reached = {}
        for shard_id, shard in self.shards.items():
            start = shard.rows.first_after(positions.get(shard_id))
            if start < len(shard.rows):
                parts.append(shard.rows.to_arrow(start))
            reached[shard_id] = shard.last_sequence
        return parts, reached
