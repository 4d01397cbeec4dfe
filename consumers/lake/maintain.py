"""`consumers lake maintain`: retention, compaction of closed hours, snapshot expiry and removal
of every file the current snapshot does not reference. Idempotent, and safe while lake workers
commit: every change is an optimistic commit carrying the stream positions forward
(consumers/lake/table_commits.py), and a file is removed only if no snapshot left references it
and it either belonged to an expired snapshot or is older than ORPHAN_GRACE_SECONDS (a worker
writes its files a moment before the commit that references them).

After it, a row deleted before it (an erasure, retention) is in no file of the warehouse.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import pyarrow as pa
from pyiceberg.table import Table

from consumers.lake.committer import SORT_KEYS
from consumers.lake.files import referenced, stored
from consumers.lake.known_ids import hour_filter
from consumers.lake.table_commits import commit_change, delete_where

log = logging.getLogger(__name__)

ORPHAN_GRACE_SECONDS = 900
# An hour is closed, and worth compacting, this long after it ended (late events are rare).
CLOSED_AFTER = timedelta(hours=2)
SMALL_FILES = 4  # an hour partition with at least this many files is rewritten as one
# ... unless it holds more rows than a rewrite should hold in memory at once: its files are
# large already (a worker's commit is up to 200,000 rows).
COMPACT_MAX_ROWS = 2_000_000


@dataclass
class MaintainReport:
    rows_expired: int = 0
    hours_compacted: int = 0
    snapshots_expired: int = 0
    files_removed: int = 0


def maintain(table: Table, retention_days: int, now: datetime | None = None) -> MaintainReport:
    now = now or datetime.now(UTC)
    report = MaintainReport()
    report.rows_expired = apply_retention(table, now - timedelta(days=retention_days))
    report.hours_compacted = compact_closed_hours(table, now - CLOSED_AFTER)
    expired_files, report.snapshots_expired = expire_old_snapshots(table)
    report.files_removed = remove_unreferenced(table, expired_files, time.time())
    log.info("lake maintained", extra=vars(report))
    return report


def apply_retention(table: Table, cutoff: datetime) -> int:
    return delete_where(table, f"event_time < '{cutoff.isoformat()}'")


def compact_closed_hours(table: Table, closed_before: datetime) -> int:
    table.refresh()
    files_per_hour: Counter[int] = Counter()
    rows_per_hour: Counter[int] = Counter()
    for task in table.scan().plan_files():
        files_per_hour[int(task.file.partition[0])] += 1
        rows_per_hour[int(task.file.partition[0])] += task.file.record_count
    limit = int(closed_before.timestamp() // 3600)
    hours = [
        hour
        for hour, files in files_per_hour.items()
        if files >= SMALL_FILES and hour + 1 <= limit and rows_per_hour[hour] <= COMPACT_MAX_ROWS
    ]
    for hour in sorted(hours):
        commit_change(table, partial(_rewrite_hour, hour=hour))
    return len(hours)


def _rewrite_hour(table: Table, positions: dict[str, str], hour: int) -> None:
    condition = hour_filter(hour)
    rows: pa.Table = table.scan(row_filter=condition).to_arrow()
    table.overwrite(
        rows.sort_by(SORT_KEYS), overwrite_filter=condition, snapshot_properties=positions
    )


def expire_old_snapshots(table: Table) -> tuple[set[str], int]:
    """Expire every snapshot but the current one; return the files only they referenced."""
    table.refresh()
    current = table.current_snapshot()
    old = [s for s in table.snapshots() if current is None or s.snapshot_id != current.snapshot_id]
    if not old:
        return set(), 0
    files: set[str] = set()
    for snapshot in old:
        files |= referenced(table, snapshot)
    table.maintenance.expire_snapshots().by_ids([s.snapshot_id for s in old]).commit()
    table.refresh()
    return files - referenced(table, table.current_snapshot()), len(old)


def remove_unreferenced(table: Table, expired_files: set[str], now_seconds: float) -> int:
    table.refresh()
    keep = set()
    for snapshot in table.snapshots():
        keep |= referenced(table, snapshot)
    removed = 0
    for stored_file in stored(table):
        location = stored_file.location
        if location in keep or location.endswith(".metadata.json"):
            continue
        young = now_seconds - stored_file.modified_seconds < ORPHAN_GRACE_SECONDS
        if young and location not in expired_files:
            continue
        table.io.delete(location)
        removed += 1
    return removed
