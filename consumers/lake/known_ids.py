"""Message ids already in the table, for the hours that recent batches touched.

The same event can be on the stream twice with different sequence numbers (a producer retry, a
tracker's spill replay): stream positions cannot tell, the message id can. A copy carries its
original's `timestamp_ms`, so both fall in one minute of one hour partition, and a commit
compares its rows with the ids the table holds for those minutes.

The ids are kept per hour, and within it per minute, as Arrow string arrays (~36 bytes an
event, for every event of the stream in those hours, whichever worker committed it). After
each table refresh only the files not read before are read, and only their message_id and
timestamp_ms columns. A commit probes the ids of its rows' minutes against a hash of its own
(in Arrow): the cost stays that of a commit's size, however full the hour. The newest
KEEP_HOURS hours stay in memory; a late copy for an older hour reads that hour from the table.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import Table

KEEP_HOURS = 2
_MILLIS_PER_MINUTE = 60_000
_MINUTES_PER_HOUR = 60


@dataclass
class _Hour:
    files: set[str] = field(default_factory=set)  # data files whose ids are held
    minutes: dict[int, list[pa.Array]] = field(default_factory=lambda: defaultdict(list))

    def add(self, ids: pa.Array, minutes: pa.Array) -> None:
        for minute in pc.unique(minutes).to_pylist():
            self.minutes[minute].append(pc.filter(ids, pc.equal(minutes, minute)))

    def found(self, candidates: pa.Array, minutes: set[int]) -> set[str]:
        """Those of `candidates` this hour holds in `minutes`."""
        held = [chunk for minute in minutes for chunk in self.minutes.get(minute, [])]
        if not held:
            return set()
        known = pa.chunked_array(held, pa.string())
        hits: list[str] = pc.filter(known, pc.is_in(known, value_set=candidates)).to_pylist()
        return set(hits)


class KnownIds:
    def __init__(self) -> None:
        self._hours: dict[int, _Hour] = {}

    def new_rows(self, table: Table, rows: pa.Table) -> pa.Table:
        """`rows` less the ids the table holds already and repeats within `rows` itself."""
        ids, minutes = _ids_and_minutes(rows)
        touched = _by_hour(minutes)
        stored: set[str] = set()
        for hour, hour_minutes in touched.items():
            self._refresh(table, hour)
            stored |= self._hours[hour].found(ids, hour_minutes)
        if not stored and pc.count_distinct(ids).as_py() == len(ids):
            return rows  # the usual case: nothing to drop, nothing copied
        seen: set[str] = set()
        keep = []
        for message_id in ids.to_pylist():
            keep.append(message_id not in seen and message_id not in stored)
            seen.add(message_id)
        return rows.filter(pa.array(keep, pa.bool_()))

    def remember(self, table: Table, rows: pa.Table) -> None:
        """After our own commit of `rows` on the state last refreshed: their ids are known
        without reading them back, and so are the files of those hours (ours are the only new)."""
        ids, minutes = _ids_and_minutes(rows)
        hours = pc.divide(minutes, _MINUTES_PER_HOUR)
        for hour in _by_hour(minutes):
            known = self._hours.setdefault(hour, _Hour())
            in_hour = pc.equal(hours, hour)
            known.add(pc.filter(ids, in_hour), pc.filter(minutes, in_hour))
            known.files |= _file_paths(table, hour)
        for hour in sorted(self._hours)[:-KEEP_HOURS]:
            del self._hours[hour]

    def _refresh(self, table: Table, hour: int) -> None:
        known = self._hours.setdefault(hour, _Hour())
        scan = table.scan(row_filter=hour_filter(hour), selected_fields=_COLUMNS)
        tasks = [task for task in scan.plan_files() if task.file.file_path not in known.files]
        if not tasks:
            return
        reader = ArrowScan(
            table.metadata, table.io, scan.projection(), scan.row_filter, case_sensitive=True
        )
        known.add(*_ids_and_minutes(reader.to_table(tasks)))
        known.files.update(task.file.file_path for task in tasks)


_COLUMNS = ("message_id", "timestamp_ms")


def _ids_and_minutes(rows: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Each row's message id, and its minute since the epoch (int64)."""
    ids = rows.column("message_id").combine_chunks().cast(pa.string())
    millis = rows.column("timestamp_ms").combine_chunks().cast(pa.float64())
    minutes = pc.floor(pc.divide(millis, _MILLIS_PER_MINUTE)).cast(pa.int64())
    return ids, minutes


def _by_hour(minutes: pa.Array) -> dict[int, set[int]]:
    touched: dict[int, set[int]] = defaultdict(set)
    for minute in pc.unique(minutes).to_pylist():
        touched[minute // _MINUTES_PER_HOUR].add(minute)
    return touched


def _file_paths(table: Table, hour: int) -> set[str]:
    scan = table.scan(row_filter=hour_filter(hour), selected_fields=("message_id",))
    return {task.file.file_path for task in scan.plan_files()}


def hour_filter(hour: int) -> str:
    """Rows of one hour partition, as a filter pyiceberg parses (and prunes files with)."""
    start = datetime.fromtimestamp(hour * 3600, UTC)
    end = start + timedelta(hours=1)
    return f"event_time >= '{start.isoformat()}' AND event_time < '{end.isoformat()}'"
