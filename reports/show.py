"""`reports show --program ID [...]`: for operators, the API's rows read straight from the
rollup table, no key: JSON lines (one per row) or CSV (header, then the rows)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from typing import TextIO

from reports.csv_rows import csv_lines
from reports.query import BadParameter, check_program_id, parse_query
from reports.report import Report, build_report, row_json
from reports.rollups import RollupReader, StoreUnavailable, open_dynamodb
from reports.settings import ReportSettings

# The options of `reports show` that are the API's query parameters, by the same names.
QUERY_OPTIONS = ("from", "to", "granularity", "tz", "format")
EXIT_UNAVAILABLE = 1
EXIT_USAGE = 2


async def show(settings: ReportSettings, args: argparse.Namespace) -> int:
    """`reports show` from parsed options: `args.program` and the attributes of QUERY_OPTIONS
    (argparse's dest for `--from` is `from`: read with getattr); None or absent means default.
    Returns the exit status."""
    params = {name: value for name in QUERY_OPTIONS if (value := getattr(args, name, None))}
    return await run_show(settings, args.program, params)


async def run_show(
    settings: ReportSettings,
    program_id: str,
    params: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> int:
    """Print the program's report for `params` (the API's query parameters) on stdout.

    Exit status 0; 2 with one line on stderr for a bad parameter; 1 when the table cannot
    be read in time."""
    try:
        check_program_id(program_id)
        query = parse_query(params, clock)
    except BadParameter as exc:
        sys.stderr.write(f"reports show: {exc}\n")
        return EXIT_USAGE
    timeout = settings.read_timeout_seconds
    try:
        async with AsyncExitStack() as stack:
            dynamodb = await open_dynamodb(settings.aws, timeout, stack)
            reader = RollupReader(dynamodb, settings.rollup_table, timeout)
            report = await build_report(reader, program_id, query)
    except StoreUnavailable as exc:
        sys.stderr.write(f"reports show: {exc}\n")
        return EXIT_UNAVAILABLE
    write_report(report, sys.stdout)
    return 0


def write_report(report: Report, out: TextIO) -> None:
    """The report's rows in its query's format: JSON lines, or CSV with its header."""
    if report.query.format == "csv":
        out.writelines(csv_lines(report))
        return
    for row in report.rows:
        out.write(json.dumps(row_json(row)) + "\n")
