"""Prometheus metrics of one consumer process, served on CONSUMER_METRICS_PORT."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

disable_created_metrics()  # type: ignore[no-untyped-call]

BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ConsumerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.records = Counter("consumer_records", "Kinesis records processed", registry=r)
        self.events_written = Counter(
            "consumer_events_written",
            "Events written to DynamoDB (including re-deliveries)",
            registry=r,
        )
        self._define_privacy_metrics(r)
        self._define_lake_metrics(r)
        self.programs_applied = Counter(
            "consumer_program_updates", "Program updates by result", ["result"], registry=r
        )
        self.dead_letters = Counter(
            "consumer_dead_letters", "Records sent to the dead-letter table", registry=r
        )
        self.unprocessed_retried = Counter(
            "consumer_unprocessed_items_retried",
            "BatchWriteItem UnprocessedItems re-sent",
            registry=r,
        )
        self.write_errors = Counter(
            "consumer_write_errors", "Failed DynamoDB or Redis calls (retried)", registry=r
        )
        self._define_rollup_metrics(r)
        self._define_attribution_metrics(r)
        self.batch_seconds = Histogram(
            "consumer_batch_seconds",
            "Time to persist one GetRecords batch",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.leases_held = Gauge(
            "consumer_leases_held", "Shard leases this worker holds", registry=r
        )
        self.leases_lost = Counter(
            "consumer_leases_lost", "Leases taken over by another worker while held", registry=r
        )
        self.iterator_age = Gauge(
            "consumer_iterator_age_milliseconds",
            "MillisBehindLatest per shard",
            ["shard"],
            registry=r,
        )

    def _define_privacy_metrics(self, r: CollectorRegistry) -> None:
        self.events_suppressed = Counter(
            "consumer_events_suppressed",
            "Events not stored (or removed again) because their user is suppressed",
            registry=r,
        )
        self.suppression_lookups = Counter(
            "consumer_suppression_lookups",
            "User keys looked up in the privacy table (cache misses)",
            registry=r,
        )

    def _define_rollup_metrics(self, r: CollectorRegistry) -> None:
        self.rollup_writes = Counter(
            "consumer_rollup_writes",
            "Rollup items written (one per program and bucket)",
            registry=r,
        )
        self.rollup_conflicts = Counter(
            "consumer_rollup_conflicts",
            "Rollup writes that lost to another writer and were read again",
            registry=r,
        )
        self.rollup_events_seen = Counter(
            "consumer_rollup_events_seen",
            "Events a rollup item had counted already (a record delivered again)",
            registry=r,
        )
        self.duplicate_events = Counter(
            "consumer_duplicate_events",
            "Events whose message id was stored before from another record (not counted again)",
            registry=r,
        )

    def _define_lake_metrics(self, r: CollectorRegistry) -> None:
        self.lake_rows = Counter(
            "consumer_lake_rows_committed", "Events committed to the lake as rows", registry=r
        )
        self.lake_copies = Counter(
            "consumer_lake_copies_dropped",
            "Events read but not committed: committed already, or a copy of a stored event",
            registry=r,
        )
        self.lake_commits = Counter(
            "consumer_lake_commits", "Lake commits by outcome", ["outcome"], registry=r
        )
        self.lake_pending = Gauge(
            "consumer_lake_pending_rows", "Events read and not yet committed", registry=r
        )
        self.lake_skipped = Counter(
            "consumer_lake_records_skipped",
            "Records that are no TrackingEvent (kept by `consumers events` as dead letters)",
            registry=r,
        )

    def _define_attribution_metrics(self, r: CollectorRegistry) -> None:
        self.conversions_decided = Counter(
            "consumer_conversions_decided",
            "Conversions given a final attribution, by attribution and by who decided "
            "(stream: as read; match: after waiting for the click)",
            ["attribution", "by"],
            registry=r,
        )
        self.conversions_parked = Counter(
            "consumer_conversions_parked",
            "Conversions parked to wait for their click",
            registry=r,
        )
        self.conversions_waiting = Gauge(
            "consumer_conversions_waiting",
            "Parked conversions seen in the last look (all workers' together)",
            registry=r,
        )
        self.match_conflicts = Counter(
            "consumer_match_conflicts",
            "Decisions of parked conversions that lost a race and were looked at again",
            registry=r,
        )
