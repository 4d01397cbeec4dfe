"""`consumers lake`, `consumers lake query SQL [--format json|csv]`, `consumers lake maintain`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import duckdb
import uvloop
from pyiceberg.exceptions import NoSuchTableError

from consumers.lake.catalog import open_catalog, open_table
from consumers.lake.maintain import maintain
from consumers.lake.query import run_query
from consumers.settings import ConsumerSettings


def lake_command(args: argparse.Namespace, settings: ConsumerSettings) -> int:
    if args.lake_action is None:
        from consumers.lake.worker import run_lake_worker  # noqa: PLC0415

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run_lake_worker(settings))
        return 0
    try:
        table = open_table(open_catalog(settings.lake), settings.lake)
    except NoSuchTableError:
        print(
            f"consumers lake: no table {settings.lake.table}: run `consumers init` first",
            file=sys.stderr,
        )
        return 1
    if args.lake_action == "maintain":
        report = maintain(table, settings.lake.retention_days)
        print(json.dumps({"command": "lake maintain", **vars(report)}))
        return 0
    try:
        run_query(table, args.sql, args.format)
    except duckdb.Error as exc:
        print(f"consumers lake query: {exc}", file=sys.stderr)
        return 2
    return 0
