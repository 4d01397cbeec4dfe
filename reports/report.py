"""A report: one row per period of the query's range (zeros included, no gaps) and totals.

Counters are summed; uniques are HLL sketches merged (never summed: a visitor seen in two
hours is one visitor of the day), per row and, for the totals, over every bucket of the range.
Revenue is kept as integer micros until it is shown (reports.fields.money).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import datasketches

from reports.fields import COUNTER_NAMES, IVT_NAMES, TRAFFIC_NAMES, VALIDATION_NAMES, money
from reports.periods import Period, PeriodIndex, bucket_span, periods
from reports.query import ReportQuery
from reports.rollups import BucketRow

log = logging.getLogger(__name__)
LG_K = 12  # the writers' sketches' lg_k (docs/reporting.md)
_REVENUE = re.compile(r"revenue\.([A-Z]{3})")
_KNOWN = frozenset(COUNTER_NAMES)


class BucketSource(Protocol):
    async def read(
        self, program_id: str, first_bucket: str, last_bucket: str
    ) -> list[BucketRow]: ...


@dataclass(frozen=True, slots=True)
class Row:
    period: str | None  # None for the totals
    counts: Mapping[str, int]  # every name of COUNTER_NAMES
    revenue_micros: Mapping[str, int]  # every currency of the report
    uniques: int


@dataclass(frozen=True, slots=True)
class Report:
    program_id: str
    query: ReportQuery
    rows: tuple[Row, ...]
    totals: Row
    currencies: tuple[str, ...]  # every currency with revenue in the range, sorted


@dataclass(slots=True)
class _Tally:
    """One period's sums while the buckets are read."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTER_NAMES, 0))
    revenue: dict[str, int] = field(default_factory=dict)
    union: Any = field(default_factory=lambda: datasketches.hll_union(LG_K))

    def add(self, bucket: BucketRow) -> None:
        for name, value in bucket.counts.items():
            if name in _KNOWN:
                self.counts[name] += value
            elif match := _REVENUE.fullmatch(name):
                currency = match.group(1)
                self.revenue[currency] = self.revenue.get(currency, 0) + value

    def row(self, period: str | None, currencies: tuple[str, ...]) -> Row:
        revenue = {currency: self.revenue.get(currency, 0) for currency in currencies}
        return Row(period, self.counts, revenue, round(self.union.get_estimate()))


async def build_report(reader: BucketSource, program_id: str, query: ReportQuery) -> Report:
    """The report of one program over the query's range; raises StoreUnavailable."""
    spans = periods(query.first, query.last, query.granularity, query.zone)
    first_bucket, last_bucket = bucket_span(spans)
    buckets = await reader.read(program_id, first_bucket, last_bucket)
    return summarize(program_id, query, spans, buckets)


def summarize(
    program_id: str, query: ReportQuery, spans: list[Period], buckets: Iterable[BucketRow]
) -> Report:
    """The report from the range's buckets: each counted in the period holding its start."""
    tallies = [_Tally() for _ in spans]
    overall = _Tally()
    index = PeriodIndex(spans)
    for bucket in buckets:
        where = index.find(bucket.start)
        if where is None:
            continue  # outside the range: the Query's bounds exclude it, this is a guard
        tallies[where].add(bucket)
        overall.add(bucket)
        sketch = _sketch(bucket)
        if sketch is not None:
            tallies[where].union.update(sketch)
            overall.union.update(sketch)
    currencies = tuple(sorted({c for tally in tallies for c in tally.revenue}))
    rows = tuple(t.row(span.label, currencies) for t, span in zip(tallies, spans, strict=True))
    return Report(program_id, query, rows, overall.row(None, currencies), currencies)


def _sketch(bucket: BucketRow) -> Any:
    if bucket.sketch is None:
        return None
    try:
        return datasketches.hll_sketch.deserialize(bucket.sketch)
    except (ValueError, RuntimeError):
        # A writer's bug: the counters still count; only this bucket's visitors are missing.
        log.warning("rollup sketch unreadable", extra={"bucket": bucket.bucket})
        return None


def report_json(report: Report) -> dict[str, Any]:
    """The report as the API's JSON object."""
    query = report.query
    return {
        "program_id": report.program_id,
        "tz": query.tz,
        "granularity": query.granularity,
        "from": query.first.isoformat(),
        "to": query.last.isoformat(),
        "rows": [row_json(row) for row in report.rows],
        "totals": row_json(report.totals),
    }


def row_json(row: Row) -> dict[str, Any]:
    """A row's fields in the contract's order; `period` left out of the totals."""
    counts = row.counts
    fields: dict[str, Any] = {} if row.period is None else {"period": row.period}
    fields.update({name: counts[name] for name in TRAFFIC_NAMES})
    fields["uniques"] = row.uniques
    fields["ivt"] = {name: counts[f"ivt.{name}"] for name in IVT_NAMES}
    fields["validation"] = {name: counts[f"validation.{name}"] for name in VALIDATION_NAMES}
    fields["conversions"] = counts["conversions"]
    fields["unattributed_conversions"] = counts["unattributed_conversions"]
    fields["revenue"] = {cur: money(micros) for cur, micros in row.revenue_micros.items()}
    return fields
