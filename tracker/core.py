"""The tracker's parts for one process, built in one place and shared by handlers and lifecycle."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tracker.events.buffer import EventBuffer
from tracker.events.builder import EventFactory
from tracker.metrics import TrackerMetrics
from tracker.settings import TrackerSettings
from tracker.validation.cache import ProgramCache
from tracker.validation.store import ProgramStore
from tracker.validation.subscriber import PushSubscriber
from tracker.validation.validator import MissResolver

# /readyz says "shipping cannot keep up" above this share of the buffer, or after a refusal.
BUFFER_HIGH_WATER = 0.8
REFUSAL_MEMORY_SECONDS = 5.0
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
    events: EventFactory
    redis_client: redis.Redis
    pubsub_client: redis.Redis

    def shipping_problem(self) -> str | None:
        """Why shipping is not keeping up, or None."""
        if time.monotonic() - self.buffer.last_refusal < REFUSAL_MEMORY_SECONDS:
            return "event buffer full: events are being dropped"
        if len(self.buffer) >= BUFFER_HIGH_WATER * self.buffer.max_events:
            return "event buffer above high water: Kinesis is not keeping up"
        return None


def build_core(settings: TrackerSettings, metrics: TrackerMetrics | None = None) -> TrackerCore:
    metrics = metrics or TrackerMetrics()
    cache_settings = settings.cache
    cache = ProgramCache(
        cache_settings.max_entries,
        cache_settings.ttl_seconds,
        cache_settings.negative_max_entries,
        cache_settings.negative_ttl_seconds,
    )
    redis_client = _request_path_client(settings)
    # Subscription and resync: patient timeouts, errors surface at once so the supervisor sees them.
    pubsub_client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2.0,
        socket_timeout=10.0,
        socket_keepalive=True,
        health_check_interval=10,
        retry=Retry(NoBackoff(), 0),
    )
    store = ProgramStore(redis_client, settings.redis_timeout_seconds, bulk_client=pubsub_client)
    resolver = MissResolver(cache, store, max_in_flight=MAX_CONCURRENT_MISSES)
    subscriber = PushSubscriber(
        pubsub_client, settings.program_channel, cache, store, resolver, metrics
    )
    buffer = EventBuffer(settings.shipping.buffer_max_events)
    metrics.track_gauge("tracker_cache_entries", "Programs in the L1 cache", lambda: len(cache))
    metrics.track_gauge(
        "tracker_ship_buffer_depth", "Events waiting to be shipped", lambda: len(buffer)
    )
    return TrackerCore(
        settings,
        metrics,
        cache,
        store,
        resolver,
        subscriber,
        buffer,
        EventFactory(settings.instance_id),
        redis_client,
        pubsub_client,
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
