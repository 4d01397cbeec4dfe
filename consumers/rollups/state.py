"""A rollup item as the writer reads and writes it, and what a batch adds to it.

Exactly once (docs/reporting.md): the item keeps, per shard, the position of the last record
it counted. Only events past that position are added, and the new item is written on the
condition that nobody wrote since it was read (`version`). A batch delivered again, whole or
split another way (Lambda bisects), adds only what was never added; two workers racing on one
shard cannot both add the same events. Unique visitors are an HLL sketch, merged, never summed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasketches

from consumers.rollups.tally import Counted, RollupKey

SKETCH_LG_K = 12  # ~1.6 % standard error, ~2 KB when dense (Druid's and Pinot's default)


@dataclass(slots=True)
class RollupState:
    counts: dict[str, int] = field(default_factory=dict)
    sketch: bytes | None = None
    positions: dict[str, str] = field(default_factory=dict)
    version: int = 0  # 0: no item yet
    # Conversions the matcher decided and counted here: message id -> when (epoch ms), kept
    # for a minute or so, at most a few hundred (consumers/attribution/late_counts.py).
    late: dict[str, str] = field(default_factory=dict)


def unseen(state: RollupState, shard_id: str, events: Sequence[Counted]) -> list[Counted]:
    """The events of `shard_id` this item has not counted yet."""
    last = state.positions.get(shard_id, "")
    return [e for e in events if e.position > last]


def added(state: RollupState, shard_id: str, events: Sequence[Counted]) -> RollupState:
    """The state with `events` (all unseen) counted; `state` itself is left as it was."""
    counts = Counter(state.counts)
    counts.update(name for event in events for name in event.names)
    for event in events:
        if event.amounts:
            counts.update(event.amounts)
    visitors = [e.visitor for e in events if e.visitor is not None]
    positions = dict(state.positions)
    positions[shard_id] = max(e.position for e in events)
    sketch = _merged(state.sketch, visitors)
    return RollupState(dict(counts), sketch, positions, state.version, dict(state.late))


def with_late(
    state: RollupState, message_id: str, noted: str, amounts: Mapping[str, int]
) -> RollupState:
    """The state with a parked conversion's decision counted (`amounts` added) and noted in
    `late`; positions as they were: it is counted by its decision, not by a stream position."""
    counts = Counter(state.counts)
    counts.update(amounts)
    late = {**state.late, message_id: noted}
    return RollupState(dict(counts), state.sketch, dict(state.positions), state.version, late)


def _merged(sketch: bytes | None, visitors: list[str]) -> bytes | None:
    if not visitors:
        return sketch
    if sketch is None:
        hll = datasketches.hll_sketch(SKETCH_LG_K, datasketches.tgt_hll_type.HLL_4)
    else:
        hll = datasketches.hll_sketch.deserialize(sketch)
    for visitor in visitors:
        hll.update(visitor)
    return bytes(hll.serialize_compact())


def from_item(item: dict[str, Any] | None) -> RollupState:
    if not item:
        return RollupState()
    counts = {k: int(v["N"]) for k, v in item.get("counts", {}).get("M", {}).items()}
    positions = {k: v["S"] for k, v in item.get("positions", {}).get("M", {}).items()}
    sketch = item["uniques"]["B"] if "uniques" in item else None
    late = {k: v["S"] for k, v in item.get("late", {}).get("M", {}).items()}
    return RollupState(counts, sketch, positions, int(item["version"]["N"]), late)


def to_item(key: RollupKey, state: RollupState) -> dict[str, Any]:
    """The whole item, version raised by one."""
    item: dict[str, Any] = {
        "program_id": {"S": key.program_id},
        "bucket": {"S": key.bucket},
        "counts": {"M": {k: {"N": str(v)} for k, v in sorted(state.counts.items())}},
        "positions": {"M": {k: {"S": v} for k, v in sorted(state.positions.items())}},
        "version": {"N": str(state.version + 1)},
        "updated_ms": {"N": str(time.time_ns() // 1_000_000)},
    }
    if state.sketch is not None:
        item["uniques"] = {"B": state.sketch}
    if state.late:
        item["late"] = {"M": {k: {"S": v} for k, v in sorted(state.late.items())}}
    return item
