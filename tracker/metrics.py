"""Prometheus metrics of one tracker process, in a registry of its own.

Per-request metrics live in `hot` (plain numbers, see hotstats); the rest are ordinary
prometheus_client metrics, with children for known label values bound once here. With
TRACKER_WORKERS > 1 a scrape reports every worker (`shared`, see tracker.workermetrics).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from tracker.hotstats import HotStats

if TYPE_CHECKING:
    from tracker.workermetrics.worker import SharedMetrics

# The *_created series double the exposition size and say nothing a process-start gauge doesn't.
disable_created_metrics()  # type: ignore[no-untyped-call]

BATCH_BUCKETS = (1, 5, 10, 25, 50, 100, 200, 300, 400, 500)
PUT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class TrackerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Per-request counters and the latency histogram: plain numbers, see hotstats.
        self.hot = HotStats()
        self.registry.register(self.hot)
        self._define_cache_metrics()
        self._define_shipping_metrics()
        # Set for a worker of TRACKER_WORKERS > 1 (tracker.server): scrapes merge every worker.
        self.shared: SharedMetrics | None = None

    async def exposition(self) -> bytes:
        """The Prometheus text of /metrics."""
        if self.shared is None:
            return generate_latest(self.registry)
        return await self.shared.exposition()

    def _define_cache_metrics(self) -> None:
        updates = Counter(
            "tracker_program_updates",
            "Pushed program updates by result",
            ["result"],
            registry=self.registry,
        )
        self.updates_applied = updates.labels("applied")
        self.updates_ignored = updates.labels("ignored_stale")
        self.updates_malformed = updates.labels("malformed")
        self.resyncs = Counter(
            "tracker_cache_resyncs", "Cache resyncs after a (re)subscribe", registry=self.registry
        )
        self.cache_purges = Counter(
            "tracker_cache_purges", "Admin cache purges", registry=self.registry
        )
        self.subscription_up = Gauge(
            "tracker_subscription_up",
            "1 while the push subscription is live",
            registry=self.registry,
        )
        self.redis_up = Gauge("tracker_redis_up", "1 while Redis answers", registry=self.registry)

    def _define_shipping_metrics(self) -> None:
        r = self.registry
        self.batch_records = Histogram(
            "tracker_ship_batch_records",
            "Records per PutRecords call",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.put_latency = Histogram(
            "tracker_ship_put_seconds", "PutRecords call latency", buckets=PUT_BUCKETS, registry=r
        )
        self.shipped = Counter(
            "tracker_ship_events_shipped", "Events accepted by Kinesis", registry=r
        )
        self.failed_entries = Counter(
            "tracker_ship_failed_entries",
            "Entries Kinesis rejected or a failed call carried",
            registry=r,
        )
        self.kinesis_records = Counter(
            "tracker_ship_kinesis_records",
            "Kinesis records sent (aggregated ones count once)",
            registry=r,
        )
        self.payload_units = Counter(
            "tracker_ship_payload_units",
            "Kinesis PUT payload units sent (25 KB per record, rounded up)",
            registry=r,
        )
        self.retried_entries = Counter(
            "tracker_ship_retried_entries", "Records sent again", registry=r
        )
        self.drops = Drops(
            Counter(
                "tracker_events_dropped",
                "Events dropped, by reason: buffer_full (memory and the disk writer's queue"
                " full), spill_full (the disk log at SPILL_MAX_BYTES), spill_error (the disk"
                " refused the write)",
                ["reason"],
                registry=r,
            )
        )

    def track_gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge whose value is read at scrape time (buffer depth, cache size)."""
        Gauge(name, doc, registry=self.registry).set_function(read)

    def track_counter(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A counter kept as a plain number elsewhere, read at scrape time."""
        self.registry.register(_ReadCounter(name, doc, lambda: {(): read()}))

    def track_counters(
        self,
        name: str,
        doc: str,
        labels: tuple[str, ...],
        read: Callable[[], Mapping[tuple[str, ...], float]],
    ) -> None:
        """A labelled counter kept as plain numbers elsewhere: read() maps each tuple of label
        values to its count."""
        self.registry.register(_ReadCounter(name, doc, read, labels))


DROP_REASONS = ("buffer_full", "spill_full", "spill_error")


class Drops:
    """Dropped events by reason, and when each reason last struck (for /readyz)."""

    def __init__(self, counter: Counter) -> None:
        self._children = {reason: counter.labels(reason) for reason in DROP_REASONS}
        self.last: dict[str, float] = {}

    def count(self, reason: str, events: int) -> None:
        self._children[reason].inc(events)
        self.last[reason] = time.monotonic()

    def recent(self, within: float) -> list[str]:
        now = time.monotonic()
        return [reason for reason, at in self.last.items() if now - at < within]


class _ReadCounter(Collector):
    def __init__(
        self,
        name: str,
        doc: str,
        read: Callable[[], Mapping[tuple[str, ...], float]],
        labels: tuple[str, ...] = (),
    ) -> None:
        self._name, self._doc, self._read, self._labels = name, doc, read, labels

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=self._labels)
        for values, count in self._read().items():
            family.add_metric(list(values), count)
        yield family
