"""What a lake commit costs as the table's snapshots accumulate.

Every commit adds a snapshot; a worker expires those older than HISTORY_SECONDS every
EXPIRE_EVERY commits (consumers/lake/committer.py), `lake maintain` all but the current one.
pyiceberg copies the whole table metadata, every snapshot in it, many times in each commit, so
a commit's metadata work grows with the snapshots kept. Here: one table, `commits` commits of
ROWS events through the worker's Committer (all within minutes: none is old enough to expire),
each commit's events an hour after the last commit's (so that every hour partition holds one
file, as compaction leaves closed hours, and the copies check's scan does not grow with the
run), the CPU of each commit noted. The growth per snapshot is the slope of a least-squares line
over the commits after the first WINDOW (every few commits one costs more: manifests merged, a
collection); it is projected to the most snapshots a worker at RATE keeps (an hour's commits of
MAX_PENDING_ROWS, and EXPIRE_EVERY more) and, for scale, to a day's (what the table held when
only the daily `lake maintain` expired them).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.lake_events import RATE, CannedStream, local_table
from consumers.lake.commit_loop import MAX_PENDING_ROWS
from consumers.lake.committer import EXPIRE_EVERY, HISTORY_SECONDS, Committer
from consumers.lake.pending import Pending

MILLIS_PER_HOUR = 3_600_000
ROWS = 500
WINDOW = 10  # commits: the median of the WINDOW commits up to each count of SHOWN is reported
SHOWN = (10, 50, 100, 150, 200, 300)


def commit_seconds(commits: int, rows: int) -> list[float]:
    """CPU seconds of each of `commits` commits of `rows` events, on one new table."""
    spent = []
    with tempfile.TemporaryDirectory(prefix="adtracker-lake-snapshots-") as directory:
        committer = Committer(local_table(Path(directory)))
        stream = CannedStream()
        for _ in range(commits):
            pending = Pending()
            for shard, records in stream.batches(rows):
                pending.add(shard, records)
            stream.clock_ms += MILLIS_PER_HOUR
            started = time.process_time()
            committer.commit(pending)
            spent.append(time.process_time() - started)
    return spent


def measure(commits: int, rows: int = ROWS) -> dict[str, Any]:
    spent = [1e3 * seconds for seconds in commit_seconds(commits, rows)]
    snapshots = list(range(WINDOW + 1, commits + 1))
    slope, _ = statistics.linear_regression(snapshots, spent[WINDOW:])
    kept = RATE * HISTORY_SECONDS // MAX_PENDING_ROWS + EXPIRE_EVERY
    per_day = RATE * 86_400 // MAX_PENDING_ROWS

    def added_us(held: int) -> float:
        """Microseconds per event a commit of MAX_PENDING_ROWS spends on `held` snapshots."""
        return round(1e3 * slope * held / MAX_PENDING_ROWS, 2)

    return {
        "commits": commits,
        "rows_per_commit": rows,
        "commit_ms_at_snapshots": {
            str(n): round(statistics.median(spent[n - WINDOW : n]), 1)
            for n in SHOWN
            if n <= commits
        },
        "ms_per_snapshot": round(slope, 3),
        "snapshots_kept_at_rate": kept,
        "added_us_per_event": {
            "snapshots_kept": added_us(kept),
            "a_day_of_snapshots": added_us(per_day),
        },
    }
