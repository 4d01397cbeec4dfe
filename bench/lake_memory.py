"""A lake worker's memory through a backlog: does it grow with the backlog, or only with a commit?

    .venv/bin/python -m bench.lake_memory EVENTS [--without-known-ids]

One fresh process per run (so that its peak RSS is its own): a table in a temporary directory,
the Committer and the CommitLoop as `consumers lake` builds them (no suppression list: no user
is suppressed), and the canned stream (bench/lake_events.py) handed to `process()` a batch at
a time as the shard readers hand it, as fast as the loop takes it: a backlog. The loop commits
whenever MAX_PENDING_ROWS wait and holds the readers meanwhile. A small warm-up commit first
(imports, the catalog, the write path), then the peak RSS (VmHWM) is reset to the RSS of the
moment, and read after the backlog; the RSS before and after each commit is sampled too.

The committer's KnownIds (consumers/lake/known_ids.py) keeps every committed message id of
the last KEEP_HOURS hours; the backlog's events all fall in one hour, so those ids grow with the
backlog by design. `--without-known-ids` replaces them with a check that keeps nothing (every
row new), to show what the rest of the worker needs; the ids' own size is counted at the end of
the normal run (`known_id_bytes`: the strings and the sets that hold them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.table import Table

from bench.lake_events import CannedStream, local_table
from consumers.lake.commit_loop import CommitLoop
from consumers.lake.committer import Committer, Outcome
from consumers.lake.known_ids import KnownIds
from consumers.lake.pending import Pending
from consumers.metrics import ConsumerMetrics

MIB = 2**20
WARM_EVENTS = 10_000
PAGE = resource.getpagesize()


class KeepsNothing(KnownIds):
    """A copies check that holds no ids: every row is new."""

    def new_rows(self, table: Table, rows: pa.Table) -> pa.Table:
        return rows

    def remember(self, *args: Any, **kwargs: Any) -> None:
        return None


class SampledCommitter(Committer):
    """The committer, noting the process's RSS after each commit."""

    def __init__(self, table: Table, keep_ids: bool) -> None:
        super().__init__(table)
        if not keep_ids:
            self._known = KeepsNothing()
        self.rss_mib: list[float] = []  # after each commit
        self.pending_rss_mib: list[float] = []  # before each, its rows decoded and waiting

    def commit(self, pending: Pending, suppressed: frozenset[str] = frozenset()) -> Outcome:
        self.pending_rss_mib.append(round(rss_bytes() / MIB, 1))
        outcome = super().commit(pending, suppressed)
        self.rss_mib.append(round(rss_bytes() / MIB, 1))
        return outcome

    def known_id_bytes(self) -> tuple[int, int]:
        """(ids kept, the bytes of their Arrow arrays)."""
        arrays = [
            array
            for hour in self._known._hours.values()
            for chunks in hour.minutes.values()
            for array in chunks
        ]
        return sum(map(len, arrays)), sum(array.nbytes for array in arrays)


def rss_bytes() -> int:
    """The process's resident set now (Linux; 0 elsewhere)."""
    statm = Path("/proc/self/statm")
    return int(statm.read_text().split()[1]) * PAGE if statm.exists() else 0


def peak_rss_bytes() -> int:
    """The process's peak resident set: VmHWM, which `reset_peak` can lower (getrusage's
    ru_maxrss would not do: Linux carries it over from the parent through exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak() -> bool:
    """Set the peak resident set to the current one (Linux 4.0 and later); False if not."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def feed(loop: CommitLoop, stream: CannedStream, events: int) -> None:
    """`events` of the stream through the loop as readers hand them; then the last commit."""
    stopping = asyncio.Event()
    committing = asyncio.create_task(loop.run(stopping))
    for shard, records in stream.batches(events):
        await loop.process(shard, records)
    await loop.flush()
    stopping.set()
    await committing


async def backlog(events: int, keep_ids: bool, directory: Path) -> dict[str, Any]:
    committer = SampledCommitter(local_table(directory), keep_ids)
    loop = CommitLoop(committer, ConsumerMetrics(), commit_seconds=60.0)
    stream = CannedStream()
    await feed(loop, stream, WARM_EVENTS)
    gc.collect()
    committer.rss_mib.clear()
    committer.pending_rss_mib.clear()
    start_rss = rss_bytes()
    start_peak = start_rss if reset_peak() else peak_rss_bytes()
    await feed(loop, stream, events)
    peak = peak_rss_bytes()
    ids, id_bytes = committer.known_id_bytes()
    return {
        "events": events,
        "known_ids": keep_ids,
        "commits": len(committer.rss_mib),
        "max_pending_rows": loop.max_pending,
        "start_rss_mib": round(start_rss / MIB, 1),
        "peak_rss_mib": round(peak / MIB, 1),
        "peak_growth_mib": round((peak - max(start_peak, start_rss)) / MIB, 1),
        "rss_before_commits_mib": committer.pending_rss_mib,
        "rss_after_commits_mib": committer.rss_mib,
        "known_ids_kept": ids,
        "known_id_bytes": id_bytes,
        "known_id_bytes_per_id": round(id_bytes / ids, 1) if ids else None,
    }


def run_in_process(events: int, keep_ids: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="adtracker-lake-memory-") as directory:
        return asyncio.run(backlog(events, keep_ids, Path(directory)))


def start(events: int, keep_ids: bool) -> subprocess.Popen[str]:
    """One run in a fresh process of its own; its JSON on stdout."""
    argv = [sys.executable, "-m", "bench.lake_memory", str(events)]
    return subprocess.Popen(
        argv if keep_ids else [*argv, "--without-known-ids"], stdout=subprocess.PIPE, text=True
    )


def measure(backlogs: tuple[int, ...]) -> list[dict[str, Any]]:
    """Each backlog with and without the known ids, two processes at a time (each uses about
    one core; CPU is not what is measured here)."""
    runs: list[dict[str, Any]] = []
    for keep_ids in (True, False):
        started = [start(events, keep_ids) for events in backlogs]
        for process in started:
            output, _ = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"bench.lake_memory {process.args!r} failed")
            runs.append(json.loads(output))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("events", type=int, help="the backlog: events on the stream")
    parser.add_argument("--without-known-ids", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run_in_process(args.events, not args.without_known_ids)))


if __name__ == "__main__":
    main()
