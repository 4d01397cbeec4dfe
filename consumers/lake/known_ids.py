"""Message ids already in the table, for the hours that recent batches touched.

The same event can be on the stream twice with different sequence numbers (a producer retry, a
tracker's spill replay): stream positions cannot tell, the message id can. A copy carries its
original's `timestamp_ms`, so both fall in one hour partition, and a commit compares its rows
with the ids of the files in the hours it touches.

Those ids are kept per hour as Arrow string arrays (~36 bytes an event, for every event of the
stream in those hours, whichever worker committed it); after each table refresh only files not
read before are read, and only their message_id column. The check probes the hour's ids against
a hash of the batch's, in Arrow: the cost per event is a few probes for every batch-sized slice
of the hour. The newest KEEP_HOURS hours stay in memory; a late copy for an older hour reads
that hour's ids from the table again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import Table

KEEP_HOURS = 3
_MILLIS_PER_HOUR = 3_600_000


@dataclass
class _Hour:
    files: set[str] = field(default_factory=set)  # data files whose ids are in `ids`
    ids: list[pa.Array] = field(default_factory=list)

    def found(self, candidates: pa.Array) -> set[str]:
        """Those of `candidates` this hour holds."""
        if not self.ids:
            return set()
        known = pa.chunked_array(self.ids, pa.string())
        hits: list[str] = pc.filter(known, pc.is_in(known, value_set=candidates)).to_pylist()
        return set(hits)


class KnownIds:
    def __init__(self) -> None:
        self._hours: dict[int, _Hour] = {}

    def new_rows(self, table: Table, rows: pa.Table) -> pa.Table:
        """`rows` less the ids the table holds already and repeats within `rows` itself."""
        hours = row_hours(rows)
        ids = rows.column("message_id").combine_chunks()
        stored: set[str] = set()
        for hour in set(hours.to_pylist()):
            self._refresh(table, hour)
            stored |= self._hours[hour].found(ids)
        seen: set[str] = set()
        keep = []
        for message_id in ids.to_pylist():
            keep.append(message_id not in seen and message_id not in stored)
            seen.add(message_id)
        return rows.filter(pa.array(keep, pa.bool_()))

    def remember(self, table: Table, rows: pa.Table) -> None:
        """After our own commit of `rows` on the state last refreshed: their ids are known
        without reading them back, and so are the files of those hours (ours are the only new)."""
        hours = row_hours(rows)
        ids = rows.column("message_id").combine_chunks()
        for hour in set(hours.to_pylist()):
            known = self._hours.setdefault(hour, _Hour())
            known.ids.append(pc.filter(ids, pc.equal(hours, hour)).cast(pa.string()))
            known.files |= _file_paths(table, hour)
        self._evict()

    def _refresh(self, table: Table, hour: int) -> None:
        known = self._hours.setdefault(hour, _Hour())
        scan = table.scan(row_filter=hour_filter(hour), selected_fields=("message_id",))
        tasks = [task for task in scan.plan_files() if task.file.file_path not in known.files]
        if not tasks:
            return
        reader = ArrowScan(
            table.metadata, table.io, scan.projection(), scan.row_filter, case_sensitive=True
        )
        read = reader.to_table(tasks).column("message_id")
        known.ids.append(read.combine_chunks().cast(pa.string()))
        known.files.update(task.file.file_path for task in tasks)

    def _evict(self) -> None:
        for hour in sorted(self._hours)[:-KEEP_HOURS]:
            del self._hours[hour]


def _file_paths(table: Table, hour: int) -> set[str]:
    scan = table.scan(row_filter=hour_filter(hour), selected_fields=("message_id",))
    return {task.file.file_path for task in scan.plan_files()}


def row_hours(rows: pa.Table) -> pa.Array:
    """Each row's hour since the epoch (the table's partition), as int64."""
    millis = rows.column("timestamp_ms").combine_chunks().cast(pa.float64())
    return pc.floor(pc.divide(millis, _MILLIS_PER_HOUR)).cast(pa.int64())


def hour_filter(hour: int) -> str:
    """Rows of one hour partition, as a filter pyiceberg parses (and prunes files with)."""
    start = datetime.fromtimestamp(hour * 3600, UTC)
    end = start + timedelta(hours=1)
    return f"event_time >= '{start.isoformat()}' AND event_time < '{end.isoformat()}'"
