"""Commits that change rows without reading the stream (erasure, retention, compaction).

Each carries the current stream positions forward (consumers/lake/positions.py) and, since
pyiceberg's own retries are off, is tried again on the new state when a worker's commit came
first; `change` is run again each time, on the reloaded table.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from consumers.lake.positions import carried

ATTEMPTS = 30

Change = Callable[[Table, dict[str, str]], None]


def commit_change(table: Table, change: Change) -> None:
    """Run `change(table, properties)` until its commit lands; `properties` are the positions."""
    for attempt in range(ATTEMPTS):
        table.refresh()
        try:
            change(table, carried(table))
            return
        except CommitFailedException:
            time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
    raise CommitFailedException(f"the lake kept changing: gave up after {ATTEMPTS} attempts")


def delete_where(table: Table, condition: str) -> int:
    """Delete the rows matching `condition` (copy-on-write), positions carried; how many there
    were. No commit when none match."""
    table.refresh()
    count = int(table.scan(row_filter=condition, selected_fields=("message_id",)).count())
    if count:
        commit_change(table, lambda t, positions: t.delete(condition, positions))
    return count
