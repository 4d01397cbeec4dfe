"""A report's rows as CSV: a header line, then one line per row, every row (never cut short).

Columns: period, the traffic counters, uniques, ivt.<NAME>..., validation.<NAME>...,
conversions, unattributed_conversions, revenue.<CUR> for every currency of the range (sorted).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from reports.fields import CONVERSION_NAMES, IVT_NAMES, TRAFFIC_NAMES, VALIDATION_NAMES, money
from reports.report import Report, Row

# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_header(currencies: tuple[str, ...]) -> list[str]:
    """The column names."""
    return [
        "period",
        *TRAFFIC_NAMES,
        "uniques",
        *(f"ivt.{name}" for name in IVT_NAMES),
        *(f"validation.{name}" for name in VALIDATION_NAMES),
        *CONVERSION_NAMES,
        *(f"revenue.{currency}" for currency in currencies),
    ]


def csv_record(row: Row, currencies: tuple[str, ...]) -> list[str]:
    """One row's cells, in csv_header's order."""
    counts = row.counts
    return [
        row.period or "",
        *(str(counts[name]) for name in TRAFFIC_NAMES),
        str(row.uniques),
        *(str(counts[f"ivt.{name}"]) for name in IVT_NAMES),
        *(str(counts[f"validation.{name}"]) for name in VALIDATION_NAMES),
        *(str(counts[name]) for name in CONVERSION_NAMES),
        *(money(row.revenue_micros.get(currency, 0)) for currency in currencies),
    ]


def csv_lines(report: Report) -> Iterator[str]:
    """The CSV text line by line (CRLF-terminated, RFC 4180), to stream or join."""
    yield _line(csv_header(report.currencies))
    for row in report.rows:
        yield _line(csv_record(row, report.currencies))


def report_csv(report: Report) -> str:
    """The whole CSV text."""
    return "".join(csv_lines(report))


def neutralise(cell: str) -> str:
    """A text cell a spreadsheet will show as text: a leading formula character gets a `'`."""
    return f"'{cell}" if cell.startswith(_FORMULA_STARTS) else cell


def _line(cells: list[str]) -> str:
    buffer = io.StringIO()
    # Every cell, numbers too: a count is never negative, so only text is ever changed.
    csv.writer(buffer).writerow([neutralise(cell) for cell in cells])
    return buffer.getvalue()
