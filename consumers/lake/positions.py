"""Stream positions kept in the table's snapshots, in the same commit as the rows they cover.

Each snapshot's summary carries every shard's last committed sequence number (not only those of
its own commit), so the current snapshot alone tells where each shard's committed rows end:
`lake maintain` may expire every other snapshot. Commits that change rows without reading the
stream (erasure, retention, compaction) carry the positions forward unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyiceberg.table import Table

PREFIX = "adtracker.position."

Positions = dict[str, int]


def committed(table: Table) -> Positions:
    snapshot = table.current_snapshot()
    if snapshot is None:
        return {}
    summary = snapshot.summary.additional_properties if snapshot.summary else {}
    return {
        key[len(PREFIX) :]: int(value)
        for key, value in summary.items()
        if key.startswith(PREFIX) and value.isdigit()
    }


def as_properties(positions: Mapping[str, int]) -> dict[str, str]:
    return {f"{PREFIX}{shard}": str(sequence) for shard, sequence in sorted(positions.items())}


def carried(table: Table) -> dict[str, str]:
    """The current positions, for a commit that changes rows but reads no stream."""
    return as_properties(committed(table))


def advanced(before: Mapping[str, int], reached: Mapping[str, int]) -> Positions:
    """Positions only move forward: a slower worker's commit never moves a shard back."""
    merged = dict(before)
    for shard, sequence in reached.items():
        merged[shard] = max(sequence, merged.get(shard, sequence))
    return merged
