"""A report: one row per period of the query's range (zeros included, no gaps) and totals.

Counters are summed; uniques are HLL sketches merged (never summed: a visitor seen in two
hours is one visitor of the day), per row and for the totals, through the pieces of
reports.bucket_cache (UTC hours merged), the same for a report cached or not.
Revenue is kept as integer micros until it is shown (reports.fields.money).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from reports.bucket_cache import ProgramBuckets
from reports.fields import IVT_NAMES, TRAFFIC_NAMES, VALIDATION_NAMES, money
from reports.periods import QUARTER, Period, bucket_span, periods
from reports.query import ReportQuery
from reports.rollups import BucketRow
from reports.span_sums import SpanSum


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


def row_of(period: str | None, part: SpanSum, currencies: tuple[str, ...]) -> Row:
    """A row from its span's sums, with every currency of the report."""
    revenue = {currency: part.revenue.get(currency, 0) for currency in currencies}
    return Row(period, part.counts, revenue, part.uniques)


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
    held = ProgramBuckets()  # a cache for this report alone: the same sums as a kept one
    held.take_range(spans[0].start, spans[-1].end - QUARTER, buckets)
    return report_of(program_id, query, spans, held)


def report_of(
    program_id: str, query: ReportQuery, spans: list[Period], held: ProgramBuckets
) -> Report:
    """The report from the buckets `held`, which cover the range; rows and totals from and
    into its sums."""
    parts = [held.span_sum((span.start, span.end)) for span in spans]
    total = held.span_sum((spans[0].start, spans[-1].end))
    currencies = tuple(sorted({c for part in parts for c in part.revenue}))
    rows = tuple(row_of(span.label, p, currencies) for p, span in zip(parts, spans, strict=True))
    return Report(program_id, query, rows, row_of(None, total, currencies), currencies)


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
