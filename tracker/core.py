"""The tracker's parts for one process, built in one place and shared by handlers and lifecycle."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tracker.events.buffer import EventBuffer
from tracker.events.builder import EventFactory
from tracker.events.fallback import MemoryFallback
from tracker.events.spill.group_commit import MAX_COMMIT_WAIT
from tracker.events.spill.log import DiskLog
from tracker.integrity.checks import IntegrityChecks
from tracker.integrity.crawlers import CrawlerDetector
from tracker.integrity.duplicates import DuplicateClicks
from tracker.integrity.signing import LinkVerifier
from tracker.metrics import TrackerMetrics
from tracker.privacy.client_fields import ClientFields
from tracker.privacy.consent import ConsentDecider
from tracker.privacy.daily_secret import DailySecrets
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.settings import TrackerSettings
from tracker.validation.cache import ProgramCache
from tracker.validation.store import ProgramStore
from tracker.validation.subscriber import PushSubscriber
from tracker.validation.validator import MissResolver

# /readyz says "shipping cannot keep up" above this share of the buffer or of SPILL_MAX_BYTES,
# and names every drop reason seen in the last few seconds.
BUFFER_HIGH_WATER = 0.8
SPILL_HIGH_WATER = 0.8
DROP_MEMORY_SECONDS = 5.0
# Distinct ids fetched from Redis at once; the request-path pool has room for all of them.
MAX_CONCURRENT_MISSES = 256


@dataclass(slots=True)
class TrackerCore:
    settings: TrackerSettings
    metrics: TrackerMetrics
    cache: ProgramCache
    store: ProgramStore
    resolver: MissResolver
    subscriber: PushSubscriber
    buffer: EventBuffer
    log: DiskLog
    fallback: MemoryFallback
    events: EventFactory
    client_fields: ClientFields
    secrets: DailySecrets
    integrity: IntegrityChecks
    redis_client: redis.Redis
    pubsub_client: redis.Redis
    clock: Callable[[], float]  # epoch seconds; tests inject their own

    def shipping_problem(self) -> str | None:
        """Why shipping is not keeping up, or None."""
        dropping = self.metrics.drops.recent(DROP_MEMORY_SECONDS)
        if dropping:
            return f"events are being dropped ({', '.join(sorted(dropping))})"
        if len(self.buffer) >= BUFFER_HIGH_WATER * self.buffer.max_events:
            return "event buffer above high water: Kinesis is not keeping up"
        return None

    def spill_problem(self) -> str | None:
        """What is wrong with the on-disk event log, or None."""
        if self.log.stalled:
            return (
                f"a disk write has not finished for {MAX_COMMIT_WAIT} s:"
                " answers no longer wait for the disk"
            )
        error = self.log.last_error
        if error is not None and time.monotonic() - error[0] < DROP_MEMORY_SECONDS:
            return f"the disk refused the event log ({error[1]})"
        limit = self.log.settings.max_bytes
        if self.log.total_bytes >= SPILL_HIGH_WATER * limit:
            return f"the event log holds {self.log.total_bytes} of SPILL_MAX_BYTES={limit} bytes"
        return None


def build_core(
    settings: TrackerSettings,
    metrics: TrackerMetrics | None = None,
    clock: Callable[[], float] = time.time,
) -> TrackerCore:
    metrics = metrics or TrackerMetrics()
    cache_settings = settings.cache
    cache = ProgramCache(
        cache_settings.max_entries,
        cache_settings.ttl_seconds,
        cache_settings.negative_max_entries,
        cache_settings.negative_ttl_seconds,
    )
    redis_client = _request_path_client(settings)
    pubsub_client = _patient_client(settings)
    store = ProgramStore(redis_client, settings.redis_timeout_seconds, bulk_client=pubsub_client)
    resolver = MissResolver(cache, store, max_in_flight=MAX_CONCURRENT_MISSES)
    subscriber = PushSubscriber(pubsub_client, settings.program_channel, resolver, metrics)
    buffer, log, fallback = _event_path(settings, metrics)
    metrics.track_gauge("tracker_cache_entries", "Programs in the L1 cache", lambda: len(cache))
    # The day's secret is fetched by a background task, on the patient client.
    secrets = DailySecrets(pubsub_client, clock)
    client_fields = _client_fields(settings, metrics, secrets)
    integrity = _integrity_checks(settings, redis_client, secrets)
    _track_integrity(metrics, integrity)
    return TrackerCore(
        settings,
        metrics,
        cache,
        store,
        resolver,
        subscriber,
        buffer,
        log,
        fallback,
        EventFactory(settings.instance_id),
        client_fields,
        secrets,
        integrity,
        redis_client,
        pubsub_client,
        clock,
    )


def _event_path(
    settings: TrackerSettings, metrics: TrackerMetrics
) -> tuple[EventBuffer, DiskLog, MemoryFallback]:
    """The buffer the request path offers events to, and the on-disk log behind it."""
    buffer = EventBuffer(settings.shipping.buffer_max_events)
    fallback = MemoryFallback(buffer, metrics.drops)
    log = DiskLog(settings.shipping.spill, fallback)
    buffer.overflow = log.append
    if settings.shipping.write_ahead:
        buffer.divert(True)  # every event to the log first ...
        log.mirror = buffer.keep  # ... which hands it back to memory once it is written
    metrics.track_gauge(
        "tracker_ship_buffer_depth", "Events waiting to be shipped", lambda: len(buffer)
    )
    _track_spill(metrics, log)
    return buffer, log, fallback


def _client_fields(
    settings: TrackerSettings, metrics: TrackerMetrics, secrets: DailySecrets
) -> ClientFields:
    privacy = settings.privacy
    client_fields = ClientFields(
        ConsentDecider(privacy.tcf_vendor_id), secrets, privacy.user_id_key
    )
    _track_privacy(metrics, client_fields, secrets)
    return client_fields


def _integrity_checks(
    settings: TrackerSettings, redis_client: redis.Redis, secrets: DailySecrets
) -> IntegrityChecks:
    integrity = settings.integrity
    window = integrity.duplicate_click_seconds
    return IntegrityChecks(
        CrawlerDetector(),
        LinkVerifier(integrity.signing_keys) if integrity.signing_keys else None,
        # On the request-path client: its timeouts are REDIS_TIMEOUT_MS, and it never retries.
        DuplicateClicks[Any](redis_client, secrets, window, settings.redis_timeout_seconds)
        if window
        else None,
    )


def _track_integrity(metrics: TrackerMetrics, integrity: IntegrityChecks) -> None:
    metrics.track_counters(
        "tracker_events_by_ivt",
        "Recorded events by invalid-traffic reason and whether they are billable",
        ("ivt", "billable"),
        integrity.counts,
    )
    duplicates = integrity.duplicates
    if duplicates is not None:
        metrics.track_counters(
            "tracker_duplicate_click_checks",
            "Clicks checked for duplicates in Redis: first, duplicate, or unchecked (Redis down"
            " or slow, or no secret at hand: then not a duplicate)",
            ("result",),
            lambda: {(result,): count for result, count in duplicates.results.items()},
        )


def _track_privacy(metrics: TrackerMetrics, fields: ClientFields, secrets: DailySecrets) -> None:
    metrics.track_counters(
        "tracker_consent_requests",
        "Tracking requests by the consent decided for them (see docs/privacy.md)",
        ("consent",),
        lambda: {(name,): fields.by_consent[number] for name, number in pb.Consent.items()},
    )
    metrics.track_counter(
        "tracker_opted_out_requests",
        "Tracking requests that carried Sec-GPC: 1 or DNT: 1",
        lambda: fields.opted_out,
    )
    metrics.track_counter(
        "tracker_visitor_id_unavailable",
        "Events without visitor_id because no secret for their day was at hand (fail closed)",
        lambda: fields.visitor_id_unavailable,
    )
    metrics.track_counter(
        "tracker_visitor_secret_failures",
        "Failed attempts to fetch or create the day's visitor secret in Redis",
        lambda: secrets.failures,
    )


def _track_spill(metrics: TrackerMetrics, log: DiskLog) -> None:
    metrics.track_gauge(
        "tracker_spill_bytes",
        "Bytes of the on-disk event log this process holds",
        lambda: log.bytes,
    )
    metrics.track_gauge(
        "tracker_spill_events",
        "Events in the on-disk log not yet accepted by Kinesis (adopted logs: as read)",
        lambda: log.waiting_events,
    )
    metrics.track_counter(
        "tracker_spill_replayed",
        "Events from the on-disk log accepted by Kinesis",
        lambda: log.replayed,
    )
    metrics.track_counter(
        "tracker_spill_corrupt_records",
        "Damaged regions of the on-disk log skipped (each one or more records)",
        lambda: log.corrupt,
    )
    metrics.track_counter(
        "tracker_spill_stalls",
        "Writes of the on-disk log that took so long that answers stopped waiting for them",
        lambda: log.stalls,
    )
    metrics.track_counter(
        "tracker_spill_adopted_parts",
        "On-disk logs of stopped processes taken over by this one",
        lambda: log.adopted_parts,
    )


def _request_path_client(settings: TrackerSettings) -> redis.Redis:
    """Redis for lookups on the request path: no client retries, timeouts of tens of ms."""
    timeout = settings.redis_timeout_seconds
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        max_connections=MAX_CONCURRENT_MISSES + 8,
    )


def _patient_client(settings: TrackerSettings) -> redis.Redis:
    """Redis for the subscription and resync: patient timeouts, and errors surface at once so
    that the supervisor sees them."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        socket_keepalive=True,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 0),
    )
