"""The tracker's resident memory with 100,000 programs in its L1 cache.

The programs are written with `tracker programs load`, which publishes each one: the running
tracker's push subscriber puts every one of them into L1, as in production.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench.metrics_probe import wait_metric
from bench.procstat import rss_mb
from bench.stack import BenchStack, metrics_url


def synthetic_programs(count: int) -> list[dict[str, object]]:
    return [
        {
            "program_id": f"bench-{n:06d}",
            "program_name": f"Benchmark program {n}",
            "customer_id": 10_000 + n % 500,
            "customer_name": f"Customer {n % 500}",
            "checksum": f"{n:08x}",
            "valid": True,
            "version": 1,
            "valid_from": 1_700_000_000,
            "landing_url": f"https://shop.example/campaign/{n}?utm_source=tracker",
        }
        for n in range(count)
    ]


def measure_memory(stack: BenchStack, count: int) -> dict[str, float]:
    tracker = stack.tracker()
    tracker.start()
    try:
        assert tracker.process is not None
        empty = rss_mb(tracker.process.pid)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "programs.json"
            path.write_text(json.dumps(synthetic_programs(count)))
            stack.command("tracker", "programs", "load", str(path))
        wait_metric(metrics_url(tracker), "tracker_cache_entries", count, 120)
        full = rss_mb(tracker.process.pid)
    finally:
        tracker.stop()
    return {"programs": count, "rss_mb_empty": round(empty, 1), "rss_mb_full": round(full, 1)}
