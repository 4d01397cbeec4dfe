"""The traffic-integrity parts of one tracker process, and the counts of what they found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tracker.integrity.crawlers import CrawlerDetector
from tracker.integrity.duplicates import DuplicateClicks
from tracker.schema.tracking.v1 import tracking_pb2 as pb

if TYPE_CHECKING:
    from tracker.integrity.signing import LinkVerifier


@dataclass(slots=True)
class IntegrityChecks:
    crawlers: CrawlerDetector
    links: LinkVerifier | None  # None: CLICK_SIGNING_KEYS unset, clicks are not checked
    duplicates: DuplicateClicks[Any] | None  # None: DUPLICATE_CLICK_SECONDS=0
    # Recorded events: events_by_ivt[ivt][billable] (plain numbers: counted on every request).
    events_by_ivt: list[list[int]] = field(
        default_factory=lambda: [[0, 0] for _ in pb.InvalidTraffic.values()]
    )

    def counts(self) -> dict[tuple[str, ...], float]:
        """{(ivt name, "true"|"false"): events}, for /metrics."""
        return {
            (name, str(bool(billable)).lower()): self.events_by_ivt[number][billable]
            for name, number in pb.InvalidTraffic.items()
            for billable in (0, 1)
        }
