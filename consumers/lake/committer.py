"""One lake commit: the rows read, less what is stored, appended with the positions they reach.

Optimistic and exactly once: the table is reloaded, the committed positions are read from its
current snapshot, rows at or before them are left out (another worker committed them), then
rows whose message id the table holds already (copies on the stream), and the rest is appended
with the new positions in the same snapshot. The append names the snapshot it was built on; if
another commit came first it fails, and the whole check runs again on the new state. So two
workers that read one shard (a stolen lease) never both commit a record.
"""

from __future__ import annotations

import logging
import random
import time
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from consumers.lake.known_ids import KnownIds
from consumers.lake.pending import Pending
from consumers.lake.positions import advanced, as_properties, committed
from consumers.lake.rights import erase_user
from consumers.lake.schema import arrow_schema

log = logging.getLogger(__name__)

# Conflicts within one call before it gives up (the caller keeps the rows and tries later).
CONFLICT_ATTEMPTS = 20
# Rows are sorted so that a file's low-cardinality columns compress to runs.
SORT_KEYS = [("programid", "ascending"), ("event_type", "ascending"), ("event_time", "ascending")]


class Outcome(NamedTuple):
    rows: int  # rows appended
    copies: int  # rows left out: committed already, or copies of stored events
    conflicts: int  # commits that lost to another and were checked again


class CommitConflictError(Exception):
    """Other commits kept winning; nothing of this batch is committed."""


# Every table commit rewrites the metadata, which lists every snapshot: each one kept costs
# ~0.7 ms a commit (docs/benchmarks.md, "Event lake"). Every EXPIRE_EVERY commits a worker expires
# the snapshots older than HISTORY_SECONDS (metadata only: their files stay for `lake maintain`,
# which removes files no snapshot references; these are all older than its grace period).
EXPIRE_EVERY = 20
HISTORY_SECONDS = 3600


class Committer:
    def __init__(self, table: Table) -> None:
        self._table = table
        self._known = KnownIds()
        self._commits = 0

    def position(self, shard_id: str) -> int | None:
        """Where the table's rows of a shard end."""
        self._table.refresh()
        return committed(self._table).get(shard_id)

    def erase(self, user_key: str) -> int:
        return erase_user(self._table, user_key)

    def commit(self, pending: Pending, suppressed: frozenset[str] = frozenset()) -> Outcome:
        """Commit `pending` less the rows of `suppressed` users (consumers/suppression.py)."""
        for conflicts in range(CONFLICT_ATTEMPTS):
            table = self._table.refresh()
            before = committed(table)
            parts, reached = pending.uncommitted(before)
            after = advanced(before, reached)
            rows = self._known.new_rows(table, _admitted(parts, suppressed)) if parts else None
            added = rows.num_rows if rows is not None else 0
            if added == 0 and after == before:
                return Outcome(0, len(pending), conflicts)
            try:
                table.append(_sorted(rows), snapshot_properties=as_properties(after))
            except CommitFailedException:
                time.sleep(random.uniform(0.01, 0.05) * (conflicts + 1))
                continue
            if rows is not None:
                self._known.remember(table, rows)
            self._commits += 1
            if self._commits % EXPIRE_EVERY == 0:
                expire_history(table, time.time() - HISTORY_SECONDS)
            return Outcome(added, len(pending) - added, conflicts)
        raise CommitConflictError(f"lost {CONFLICT_ATTEMPTS} commits in a row")


def expire_history(table: Table, before_seconds: float) -> int:
    """Expire the snapshots older than `before_seconds` but the current one; 0 when another
    commit came first (the next time, then)."""
    current = table.current_snapshot()
    cutoff_ms = int(before_seconds * 1000)
    old = [
        snapshot.snapshot_id
        for snapshot in table.snapshots()
        if snapshot.timestamp_ms < cutoff_ms
        and (current is None or snapshot.snapshot_id != current.snapshot_id)
    ]
    if not old:
        return 0
    try:
        table.maintenance.expire_snapshots().by_ids(old).commit()
    except CommitFailedException:
        return 0
    return len(old)


def _admitted(parts: list[pa.Table], suppressed: frozenset[str]) -> pa.Table:
    rows = pa.concat_tables(parts)
    if not suppressed:
        return rows
    keep = pc.invert(pc.is_in(rows.column("user_key"), pa.array(list(suppressed), pa.string())))
    return rows.filter(keep)


def _sorted(rows: pa.Table | None) -> pa.Table:
    if rows is None or rows.num_rows == 0:
        return _empty()
    return rows.sort_by(SORT_KEYS)


def _empty() -> pa.Table:
    return arrow_schema().empty_table()
