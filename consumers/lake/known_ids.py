"""Message ids already in the table, for the hours that recent batches touched.

The same event can be on the stream twice with different sequence numbers (a producer retry, a
tracker's spill replay): stream positions cannot tell, the message id can. A copy carries its
original's `timestamp_ms`, so both fall in one hour partition, and a commit compares its rows
with the ids of the files in the hours it touches. Those ids are kept per hour, and after each
table refresh only files not read before are read (the message_id column alone). The newest
KEEP_HOURS hours stay in memory (~100 bytes per event); a late copy for an older hour reads that
hour's ids again.
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
    files: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)


class KnownIds:
    def __init__(self) -> None:
        self._hours: dict[int, _Hour] = {}

    def new_rows(self, table: Table, rows: pa.Table) -> pa.Table:
        """`rows` less the ids the table holds already and repeats within `rows` itself."""
        hours = row_hours(rows)
        for hour in set(hours):
            self._refresh(table, hour)
        seen: set[str] = set()
        keep = []
        for message_id, hour in zip(rows.column("message_id").to_pylist(), hours, strict=True):
            fresh = message_id not in seen and message_id not in self._hours[hour].ids
            seen.add(message_id)
            keep.append(fresh)
        return rows.filter(pa.array(keep, pa.bool_()))

    def remember(self, rows: pa.Table) -> None:
        """Ids just committed: known without reading them back."""
        for message_id, hour in zip(
            rows.column("message_id").to_pylist(), row_hours(rows), strict=True
        ):
            self._hours.setdefault(hour, _Hour()).ids.add(message_id)
        self._evict()

    def _refresh(self, table: Table, hour: int) -> None:
        known = self._hours.setdefault(hour, _Hour())
        scan = table.scan(
            row_filter=hour_filter(hour),
            selected_fields=("message_id",),
        )
        tasks = [task for task in scan.plan_files() if task.file.file_path not in known.files]
        if not tasks:
            return
        reader = ArrowScan(
            table.metadata, table.io, scan.projection(), scan.row_filter, case_sensitive=True
        )
        known.ids.update(reader.to_table(tasks).column("message_id").to_pylist())
        known.files.update(task.file.file_path for task in tasks)

    def _evict(self) -> None:
        for hour in sorted(self._hours)[:-KEEP_HOURS]:
            del self._hours[hour]


def row_hours(rows: pa.Table) -> list[int]:
    """Each row's hour since the epoch (the table's partition)."""
    hours = pc.floor(pc.divide(rows.column("timestamp_ms").cast(pa.float64()), _MILLIS_PER_HOUR))
    result: list[int] = hours.cast(pa.int64()).to_pylist()
    return result


def hour_filter(hour: int) -> str:
    """Rows of one hour partition, as a filter pyiceberg parses (and prunes files with)."""
    start = datetime.fromtimestamp(hour * 3600, UTC)
    end = start + timedelta(hours=1)
    return f"event_time >= '{start.isoformat()}' AND event_time < '{end.isoformat()}'"
