"""The sums of a span of buckets: counters added, revenue per currency, visitors' sketches merged.

A report's row is the sum of the buckets in its span; its totals the sum of its rows (an HLL
union of unions is the union of every bucket: the registers' maxima). A SpanSum keeps the
merged sketch, so that sums can be merged again without the buckets (reports.bucket_cache).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import datasketches

from reports.fields import COUNTER_NAMES
from reports.rollups import BucketRow

log = logging.getLogger(__name__)
LG_K = 12  # the writers' sketches' lg_k (docs/reporting.md)
_REVENUE = re.compile(r"revenue\.([A-Z]{3})")
_KNOWN = frozenset(COUNTER_NAMES)


@dataclass(frozen=True, slots=True)
class SpanSum:
    counts: Mapping[str, int]  # every name of COUNTER_NAMES
    revenue: Mapping[str, int]  # micros per currency found in the span
    sketch: Any  # the merged datasketches.hll_sketch; None when no bucket had one
    uniques: int  # its estimate, rounded


@dataclass(slots=True)
class Tally:
    """A span's sums while its buckets (or smaller spans' sums) are added."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
    revenue: dict[str, int] = field(default_factory=dict)
    union: Any = field(default_factory=lambda: datasketches.hll_union(LG_K))
    merged: bool = False  # whether any sketch went into the union

    def add(self, bucket: BucketRow) -> None:
        """The bucket's counters (not its sketch: see merge)."""
        for name, value in bucket.counts.items():
            if name in _KNOWN:
                self.counts[name] += value
            elif match := _REVENUE.fullmatch(name):
                currency = match.group(1)
                self.revenue[currency] = self.revenue.get(currency, 0) + value

    def merge(self, sketch: Any) -> None:
        if sketch is not None:
            self.union.update(sketch)
            self.merged = True

    def add_sum(self, part: SpanSum) -> None:
        for name, value in part.counts.items():
            self.counts[name] += value
        for currency, micros in part.revenue.items():
            self.revenue[currency] = self.revenue.get(currency, 0) + micros
        self.merge(part.sketch)

    def result(self) -> SpanSum:
        sketch = self.union.get_result() if self.merged else None
        return SpanSum(self.counts, self.revenue, sketch, round(self.union.get_estimate()))


def sum_buckets(buckets: Iterable[BucketRow]) -> SpanSum:
    tally = Tally()
    for bucket in buckets:
        tally.add(bucket)
        tally.merge(sketch_of(bucket))
    return tally.result()


def merge_sums(parts: Iterable[SpanSum]) -> SpanSum:
    tally = Tally()
    for part in parts:
        tally.add_sum(part)
    return tally.result()


def sketch_of(bucket: BucketRow) -> Any:
    """The bucket's sketch, deserialized; None when it has none or it is unreadable."""
    if bucket.sketch is None:
        return None
    try:
        return datasketches.hll_sketch.deserialize(bucket.sketch)
    except (ValueError, RuntimeError):
        # A writer's bug: the counters still count; only this bucket's visitors are missing.
        log.warning("rollup sketch unreadable", extra={"bucket": bucket.bucket})
        return None
