"""The event lake against the issue's bars: one `consumers lake` worker's CPU per event, its data
files' bytes per event, its memory through a backlog, and how soon an event is queryable.

    .venv/bin/python -m bench.lake_cost [--quick]

**CPU.** The canned stream of bench/lake_events.py (the bench's traffic mix at RATE events a
second, realistic ids, people, pages and programs, KPL-aggregated records of 2 shards) goes
through the worker's own code in this process: `Pending.add` (EventRows: records -> rows, what
the commit loop does with every batch a reader hands it) and `Committer.commit` into a real
Iceberg table (SQLite catalog, file warehouse in a temporary directory, the table as `consumers
init` makes it). Commits hold MAX_PENDING_ROWS rows: at RATE the loop commits whenever that many
wait (every 10 s), well before LAKE_COMMIT_SECONDS. One small commit warms the write path first;
each commit's batches are made just before it (not timed). CPU is `time.process_time()`: pyiceberg
writes and reads files on threads of its own, and nothing else runs in the process. The commit is
split by timing its parts where the committer calls them: the Arrow build (`Pending.uncommitted`,
a subclass), the copies check (`KnownIds.new_rows` and `remember`, a subclass put in the
committer's place), the sort (`committer._sorted`) and the Parquet files (pyiceberg's
`_dataframe_to_data_files`), both wrapped for the run; "metadata" is the rest (the table's
reload, manifests, the catalog's commit). Python's collector runs as in the worker (no freeze).

**The copies check later in an hour.** A commit probes every id its hour holds (KnownIds: the
whole stream's ids of that hour, kept in memory): the run above sees an hour's first minute only.
One more commit's rows are checked against the table (first from a fresh KnownIds: a restart,
which reads the hour's ids from the files), then again with HELD more ids in the hour (random,
given through `remember`); the difference per held id projects the check's cost over an hour
at RATE, in commits of MAX_PENDING_ROWS (the probe is paid per commit).

**Metadata as snapshots accumulate** (bench/lake_snapshots.py): small commits on a table of
their own, the growth of a commit's CPU per snapshot the table holds, projected to the most
snapshots a worker keeps at RATE (it expires those over an hour old), and to a day's.

**Bytes.** The data files of the timed commits: their size over their rows, and each column's
compressed bytes (every row group's `total_compressed_size`), per event.

**Memory** (bench/lake_memory.py): two backlogs through the CommitLoop, each in a fresh process,
with and without the known ids. **Freshness** (bench/lake_freshness.py): real processes.
"""

from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pyiceberg.io.pyarrow as iceberg_arrow
from pyiceberg.table import Table

import consumers.lake.committer as committer_module
from bench import lake_freshness, lake_memory, lake_snapshots
from bench.bars import verdict
from bench.lake_events import RATE, CannedStream, local_table
from bench.part_cli import run_part
from consumers.lake.commit_loop import MAX_PENDING_ROWS
from consumers.lake.committer import Committer
from consumers.lake.known_ids import KEEP_HOURS, KnownIds
from consumers.lake.pending import Pending
from consumers.lake.positions import Positions

BYTES_BAR = 60.0  # per event in the data files, at the bench's traffic mix
SECONDS_PER_HOUR = 3600
GIB, MIB = 2**30, 2**20
# The memory bar: without the known ids, the larger backlog's peak RSS growth is at most this
# much above the smaller's (allocators keep a little more as commits go by).
MEMORY_SLACK = 0.15
COMMIT_PARTS = ("arrow", "dedupe", "sort", "parquet")  # and "metadata": the rest


@dataclass(frozen=True, slots=True)
class Amounts:
    events: int  # decoded and committed, timed
    commit_rows: int  # per commit
    held_ids: int  # more ids in the hour, for the copies check's probe
    snapshots: int  # small commits, to see the metadata's cost grow (bench/lake_snapshots.py)
    backlogs: tuple[int, int]  # the memory runs
    tries: int  # freshness: events put one after the other
    commit_seconds: float  # freshness: LAKE_COMMIT_SECONDS


# A minute of the stream at RATE; a tenth of an hour's ids; ~2.5 minutes in all.
FULL = Amounts(1_200_000, MAX_PENDING_ROWS, 7_200_000, 150, (400_000, 1_200_000), 5, 5.0)
QUICK = Amounts(200_000, 100_000, 1_000_000, 50, (250_000, 500_000), 3, 5.0)
TINY = Amounts(6_000, 2_000, 20_000, 12, (4_000, 8_000), 1, 2.0)


# --- timing the parts -----------------------------------------------------------------------


@dataclass
class Stages:
    """Process CPU seconds by stage; a stage inside another counts in both."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.process_time()
        try:
            yield
        finally:
            spent = time.process_time() - started
            self.seconds[name] = self.seconds.get(name, 0.0) + spent


@dataclass
class TimedPending(Pending):
    stages: Stages = field(default_factory=Stages)

    def uncommitted(self, positions: Positions) -> tuple[list[pa.Table], dict[str, int]]:
        with self.stages.stage("arrow"):
            return super().uncommitted(positions)


class TimedKnownIds(KnownIds):
    def __init__(self, stages: Stages) -> None:
        super().__init__()
        self._stages = stages

    def new_rows(self, table: Table, rows: pa.Table) -> pa.Table:
        with self._stages.stage("dedupe"):
            return super().new_rows(table, rows)

    def remember(self, *args: Any, **kwargs: Any) -> None:
        with self._stages.stage("dedupe"):
            super().remember(*args, **kwargs)


@contextmanager
def timed_writes(stages: Stages) -> Iterator[None]:
    """The committer's sort and pyiceberg's Parquet writing, timed while this lasts."""
    sort = committer_module._sorted
    write = iceberg_arrow._dataframe_to_data_files

    def sorted_rows(rows: pa.Table | None) -> pa.Table:
        with stages.stage("sort"):
            return sort(rows)

    def data_files(*args: Any, **kwargs: Any) -> Iterator[Any]:
        files = iter(write(*args, **kwargs))  # a generator: it writes as it is iterated
        while True:
            with stages.stage("parquet"):
                written = next(files, None)
            if written is None:
                return
            yield written

    with (
        mock.patch.object(committer_module, "_sorted", sorted_rows),
        mock.patch.object(iceberg_arrow, "_dataframe_to_data_files", data_files),
    ):
        yield


# --- the commits ----------------------------------------------------------------------------


def pending_of(stream: CannedStream, events: int, stages: Stages) -> TimedPending:
    pending = TimedPending(stages=stages)
    for shard, records in stream.batches(events):
        pending.add(shard, records)
    return pending


@dataclass
class TimedCommitter:
    """The worker's committer, its copies check timed, and the stages' CPU seconds so far."""

    committer: Committer
    stages: Stages

    @classmethod
    def on(cls, table: Table) -> TimedCommitter:
        stages = Stages()
        committer = Committer(table)
        committer._known = TimedKnownIds(stages)
        return cls(committer, stages)

    def commit(self, stream: CannedStream, events: int) -> dict[str, float]:
        """`events` of the stream decoded and committed; the CPU seconds by stage."""
        batches = list(stream.batches(events))
        gc.collect()  # the stream's garbage is not the worker's
        stages, before = self.stages, dict(self.stages.seconds)
        pending = TimedPending(stages=stages)
        with stages.stage("decode"):
            for shard, records in batches:
                pending.add(shard, records)
        with stages.stage("commit"):
            outcome = self.committer.commit(pending)
        if outcome.rows != events:
            raise RuntimeError(f"{outcome.rows} rows committed of {events}")
        return {name: spent - before.get(name, 0.0) for name, spent in stages.seconds.items()}


def run_commits(
    timed: TimedCommitter, stream: CannedStream, amounts: Amounts
) -> list[dict[str, float]]:
    """`amounts.events` through the worker's code, a commit of `commit_rows` at a time; each
    commit's CPU seconds by stage."""
    with timed_writes(timed.stages):
        return [
            timed.commit(stream, amounts.commit_rows)
            for _ in range(amounts.events // amounts.commit_rows)
        ]


def cpu_part(rounds: list[dict[str, float]], commit_rows: int) -> dict[str, Any]:
    """Microseconds of CPU per event by stage over all commits, and per commit."""

    def per_event(seconds: float, events: int) -> float:
        return round(1e6 * seconds / events, 2)

    events = commit_rows * len(rounds)
    total = {
        name: sum(r.get(name, 0.0) for r in rounds) for name in ("decode", "commit", *COMMIT_PARTS)
    }
    parts = {name: per_event(total[name], events) for name in COMMIT_PARTS}
    parts["metadata"] = round(per_event(total["commit"], events) - sum(parts.values()), 2)
    us = per_event(total["decode"] + total["commit"], events)
    return {
        "events": events,
        "commits": len(rounds),
        "rows_per_commit": commit_rows,
        "us_per_event": us,
        "decode_us_per_event": per_event(total["decode"], events),
        "commit_us_per_event": per_event(total["commit"], events),
        "commit_parts_us_per_event": parts,
        "events_per_cpu_second": round(1e6 / us),
        "per_commit_us_per_event": [
            {
                "decode": per_event(r["decode"], commit_rows),
                "commit": per_event(r["commit"], commit_rows),
            }
            for r in rounds
        ],
    }


# --- bytes ----------------------------------------------------------------------------------


def data_files(table: Table) -> set[str]:
    table.refresh()
    return {task.file.file_path for task in table.scan().plan_files()}


def data_bytes(files: set[str], table: Table) -> dict[str, Any]:
    """Size over rows of `files`, and each column's compressed bytes per row."""
    columns: Counter[str] = Counter()
    rows = size = 0
    for location in sorted(files):
        path = Path(urlparse(location).path)
        size += path.stat().st_size
        metadata = pq.ParquetFile(path).metadata
        rows += metadata.num_rows
        for group in range(metadata.num_row_groups):
            chunks = metadata.row_group(group)
            for index in range(chunks.num_columns):
                chunk = chunks.column(index)
                columns[chunk.path_in_schema] += chunk.total_compressed_size
    column_bytes = sum(columns.values())
    return {
        "files": len(files),
        "rows": rows,
        "bytes_per_event": round(size / rows, 2),
        "columns_bytes_per_event": {
            name: round(total / rows, 2) for name, total in columns.most_common()
        },
        "footers_and_headers_bytes_per_event": round((size - column_bytes) / rows, 2),
        "metadata_bytes": metadata_size(table),
    }


def metadata_size(table: Table) -> int:
    """The table's metadata files now (its JSON, manifest lists, manifests)."""
    root = Path(urlparse(table.location()).path) / "metadata"
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


# --- the copies check later in an hour -------------------------------------------------------


def random_ids(count: int, timestamp_ms: int) -> pa.Table:
    """`count` random message ids spread evenly over the hour of `timestamp_ms` (the hour's
    earlier events), as the rows KnownIds.remember takes."""
    data = os.urandom(16 * count).hex().encode()
    offsets = array("i", range(0, 32 * count + 1, 32))
    ids = pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data))
    hour_start = timestamp_ms - timestamp_ms % (SECONDS_PER_HOUR * 1000)
    step = SECONDS_PER_HOUR * 1000 / count
    stamps = pa.array([hour_start + int(i * step) for i in range(count)], pa.int64())
    return pa.table({"message_id": ids, "timestamp_ms": stamps})


def seconds_of(run: Callable[[], object], repeats: int = 1) -> float:
    """Median process CPU seconds of `run`."""
    spent = []
    for _ in range(repeats):
        started = time.process_time()
        run()
        spent.append(time.process_time() - started)
    return statistics.median(spent)


def probe_part(table: Table, stream: CannedStream, amounts: Amounts) -> dict[str, Any]:
    """One more commit's rows checked against the hour as the table holds it, then with
    `held_ids` more ids in the hour; projected over an hour at RATE."""
    parts, _ = pending_of(stream, amounts.commit_rows, Stages()).uncommitted({})
    rows = pa.concat_tables(parts)
    known = KnownIds()
    in_table = len(table.scan(selected_fields=("message_id",)).to_arrow())
    restart = seconds_of(lambda: known.new_rows(table, rows))  # reads the hour's ids
    warm = seconds_of(lambda: known.new_rows(table, rows), 3)
    held = random_ids(amounts.held_ids, rows.column("timestamp_ms")[0].as_py())
    known.remember(table, held)
    loaded = seconds_of(lambda: known.new_rows(table, rows), 3)
    per_held = max(0.0, loaded - warm) / amounts.held_ids
    hour = RATE * SECONDS_PER_HOUR
    id_bytes = held.column("message_id").nbytes / amounts.held_ids

    def us_at(ids: float) -> float:
        """Per event, in the worker's commits at RATE (MAX_PENDING_ROWS), `ids` in the hour."""
        checked: int = rows.num_rows
        return round(1e6 * (warm / checked + per_held * ids / MAX_PENDING_ROWS), 2)

    return {
        "rows_checked": rows.num_rows,
        "ids_in_table": in_table,
        "held_ids_added": amounts.held_ids,
        "restart_read_us_per_id": round(1e6 * (restart - warm) / in_table, 3),
        "warm_us_per_event": us_at(0),
        "ns_per_held_id_per_commit": round(1e9 * per_held, 2),
        "projected_us_per_event": {"hour_average": us_at(hour / 2), "hour_end": us_at(hour)},
        "bytes_per_id": round(id_bytes, 1),
        "keep_hours": KEEP_HOURS,
        "memory_gib_at_rate": round(id_bytes * hour * KEEP_HOURS / GIB, 2),
    }


# --- memory ---------------------------------------------------------------------------------


def memory_part(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Peak RSS growth by backlog, with and without the known ids; the bar: without them, the
    larger backlog's growth within MEMORY_SLACK of the smaller's."""
    with_ids = [run["peak_growth_mib"] for run in runs if run["known_ids"]]
    without = [run["peak_growth_mib"] for run in runs if not run["known_ids"]]
    return {
        "backlogs": [run["events"] for run in runs if run["known_ids"]],
        "peak_growth_mib": {"with_known_ids": with_ids, "without": without},
        "known_ids_mib": [
            round(run["known_id_bytes"] / MIB, 1) for run in runs if run["known_ids"]
        ],
        "runs": runs,
        "bar": {
            "without_known_ids_mib": without,
            "with_known_ids_mib": with_ids,
            "slack": MEMORY_SLACK,
            "holds": without[-1] <= without[0] * (1 + MEMORY_SLACK),
        },
    }


# --- all of it ------------------------------------------------------------------------------


def measure_in_process(amounts: Amounts) -> dict[str, Any]:
    """CPU, bytes and the copies check's probe, on one table; the metadata's growth on
    another."""
    with tempfile.TemporaryDirectory(prefix="adtracker-lake-cost-") as directory:
        table = local_table(Path(directory))
        stream = CannedStream()
        timed = TimedCommitter.on(table)
        timed.commit(stream, min(10_000, amounts.commit_rows))  # the write path warmed up
        warm_files = data_files(table)
        rounds = run_commits(timed, stream, amounts)
        files = data_files(table) - warm_files
        part = {
            "cpu": cpu_part(rounds, amounts.commit_rows),
            "bytes": data_bytes(files, table),
            "dedupe_later_in_hour": probe_part(table, stream, amounts),
        }
    part["snapshots"] = lake_snapshots.measure(amounts.snapshots)
    return part


def measure(amounts: Amounts) -> dict[str, Any]:
    part = {
        **measure_in_process(amounts),  # first, while nothing else runs
        "memory": memory_part(lake_memory.measure(amounts.backlogs)),
        "freshness": lake_freshness.measure(amounts.tries, amounts.commit_seconds),
    }
    cpu, size = part["cpu"], part["bytes"]["bytes_per_event"]
    part["bars"] = {
        "events_per_cpu_second": {
            "measured": cpu["events_per_cpu_second"],
            "bar": RATE,
            "holds": cpu["events_per_cpu_second"] >= RATE,
        },
        "bytes_per_event": {"measured": size, "bar": BYTES_BAR, "holds": size <= BYTES_BAR},
        "memory_growth_mib": part["memory"]["bar"],
        "freshness_seconds": part["freshness"]["bar"],
    }
    return part


def summary(part: dict[str, Any]) -> str:
    cpu, size, probe = part["cpu"], part["bytes"], part["dedupe_later_in_hour"]
    snapshots = part["snapshots"]
    parts = ", ".join(f"{k} {v}" for k, v in cpu["commit_parts_us_per_event"].items())
    columns = ", ".join(f"{k} {v}" for k, v in list(size["columns_bytes_per_event"].items())[:8])
    memory = part["memory"]
    lines = [
        f"CPU per event: {cpu['us_per_event']} us = decode {cpu['decode_us_per_event']} + commit "
        f"{cpu['commit_us_per_event']} ({parts}): {cpu['events_per_cpu_second']:,} events per "
        f"CPU second ({cpu['commits']} commits of {cpu['rows_per_commit']:,})",
        f"copies check: {probe['warm_us_per_event']} us per event at the hour's start, "
        f"{probe['projected_us_per_event']['hour_average']} on average over an hour, "
        f"{probe['projected_us_per_event']['hour_end']} at its end; ids "
        f"{probe['bytes_per_id']} B each, {probe['memory_gib_at_rate']} GiB for "
        f"{probe['keep_hours']} hours at {RATE:,}/s",
        f"metadata as snapshots accumulate: {snapshots['ms_per_snapshot']} ms more per commit "
        f"per snapshot: +{snapshots['added_us_per_event']['snapshots_kept']} us per event with "
        f"the {snapshots['snapshots_kept_at_rate']} a worker keeps at {RATE:,}/s "
        f"(+{snapshots['added_us_per_event']['a_day_of_snapshots']} with a day's)",
        f"data files: {size['bytes_per_event']} B per event; by column: {columns}",
        f"peak RSS growth for backlogs of {memory['backlogs']} events: with known ids "
        f"{memory['peak_growth_mib']['with_known_ids']} MiB (the ids {memory['known_ids_mib']}), "
        f"without {memory['peak_growth_mib']['without']} MiB",
        lake_freshness.summary(part["freshness"]),
    ]
    for name, bar in part["bars"].items():
        lines.append(f"bar {name}: {verdict(bar['holds'])}")
    return "\n".join(lines)


def main() -> None:
    run_part(__doc__, "fewer events, smaller backlogs", measure, summary, (FULL, QUICK))


if __name__ == "__main__":
    main()
