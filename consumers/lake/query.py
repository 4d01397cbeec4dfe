"""`consumers lake query SQL`: DuckDB over the lake's table, visible as `events`.

Only the files the current snapshot references are read, never a folder glob (rows deleted by
erasure or retention would come back). Local files are read by DuckDB itself, files in S3 as
an Arrow dataset of exactly those files, both streaming; only a table with delete files (written
by another engine, merge-on-read) is read through pyiceberg's scan, into memory first.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

import duckdb
from pyarrow.dataset import dataset
from pyiceberg.io.pyarrow import schema_to_pyarrow
from pyiceberg.table import Table

from consumers.lake.files import opened_paths
from consumers.lake.schema import arrow_schema

CHUNK_ROWS = 10_000


def connect(table: Table) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the table's current rows as the view `events`."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    tasks = list(table.scan().plan_files())
    locations = [task.file.file_path for task in tasks]
    if not tasks:
        connection.register("events", arrow_schema().empty_table())
    elif any(task.delete_files for task in tasks):
        # Delete files (another engine's merge-on-read deletes): only a scan applies them.
        connection.register("events", table.scan().to_arrow())
    elif all(location.startswith("file:") for location in locations):
        paths = [location.removeprefix("file://") for location in locations]
        # union_by_name: files written before a column was added read it as null
        connection.read_parquet(paths, union_by_name=True).create_view("events")
    else:
        # In S3: an Arrow dataset of exactly these files, read as DuckDB asks (columns and
        # row groups it needs), never all at once; columns a file lacks read as null.
        filesystem, paths = opened_paths(table, locations)
        schema = schema_to_pyarrow(table.schema(), include_field_ids=False)
        files = dataset(paths, schema=schema, format="parquet", filesystem=filesystem)
        connection.register("events", files)
    return connection


def run_query(table: Table, sql: str, output_format: str, out: TextIO = sys.stdout) -> int:
    """Print the rows of `sql` as a JSON array or CSV; the number of rows."""
    cursor = connect(table).execute(sql)
    columns = [column[0] for column in cursor.description or []]
    if output_format == "csv":
        return _write_csv(out, columns, _rows(cursor))
    return _write_json(out, columns, _rows(cursor))


def _rows(cursor: duckdb.DuckDBPyConnection) -> Iterator[tuple[Any, ...]]:
    while chunk := cursor.fetchmany(CHUNK_ROWS):
        yield from chunk


def _write_json(out: TextIO, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
    count = 0
    out.write("[")
    for row in rows:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(dict(zip(columns, row, strict=True)), default=_plain))
        count += 1
    out.write("\n]\n" if count else "]\n")
    return count


def _write_csv(out: TextIO, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow(
            [_plain(value) if isinstance(value, (dict, list)) else value for value in row]
        )
        count += 1
    return count


def _plain(value: Any) -> Any:
    """JSON has no timestamps, decimals or bytes: ISO 8601, exact strings, hex."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=_plain)
    return str(value)
