"""Prometheus metrics of one `reports serve` process, in a registry of its own."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# The *_created series double the exposition size and say nothing a process-start gauge doesn't.
disable_created_metrics()  # type: ignore[no-untyped-call]

REPORT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ReportMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "reports_requests",
            "Answered requests by route (the route's pattern, not the path) and status",
            ["route", "status"],
            registry=r,
        )
        self.report_seconds = Histogram(
            "reports_report_seconds",
            "Time to build one report (rollup reads included), successful ones",
            buckets=REPORT_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "reports_store_errors",
            "Calls to a store that failed or timed out, by store (redis, report keys, rollups)",
            ["store"],
            registry=r,
        )
        self.rate_limited = Counter("reports_rate_limited", "Requests refused with 429", registry=r)
        self.auth_failures = Counter(
            "reports_auth_failures", "Requests refused with 401", registry=r
        )
        self.internal_errors = Counter(
            "reports_internal_errors",
            "Unexpected exceptions answered with 503 (a bug: see the log)",
            registry=r,
        )

    def track_gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time (the program directory's size)."""
        Gauge(name, doc, registry=self.registry).set_function(read)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
