"""The consumers' settings, read once from the environment into a frozen object."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from tracker.envconfig import LOG_LEVELS, EnvReader
from tracker.settings import AwsSettings, redis_url


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    worker_id: str
    duration_seconds: float  # a lease whose counter has not moved for this long is expired
    renew_seconds: float
    discovery_seconds: float


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    aws: AwsSettings
    redis_url: str
    event_stream: str
    program_stream: str
    program_channel: str
    events_table: str
    dead_letter_table: str
    lease_table: str
    event_stream_shards: int
    events_ttl_days: int
    leases: LeaseSettings
    poll_seconds: float
    metrics_host: str
    metrics_port: int
    log_level: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConsumerSettings:
        env = EnvReader(os.environ if environ is None else environ)
        return cls(
            aws=AwsSettings.from_reader(env),
            redis_url=redis_url(env),
            event_stream=env.name("EVENT_STREAM", "tracking-events"),
            program_stream=env.name("PROGRAM_STREAM", "program-updates"),
            program_channel=env.name("PROGRAM_CHANNEL", "program-updates"),
            events_table=env.name("EVENTS_TABLE", "tracking-events"),
            dead_letter_table=env.name("DEAD_LETTER_TABLE", "tracking-dead-letters"),
            lease_table=env.name("LEASE_TABLE", "tracking-consumer-leases"),
            event_stream_shards=env.integer("EVENT_STREAM_SHARDS", 2, minimum=1, maximum=500),
            events_ttl_days=env.integer("EVENTS_TTL_DAYS", 90, minimum=1, maximum=36_500),
            leases=_lease_settings(env),
            poll_seconds=env.integer("CONSUMER_POLL_MS", 1000, minimum=10, maximum=60_000) / 1000,
            metrics_host=env.text("CONSUMER_METRICS_HOST", "0.0.0.0"),
            metrics_port=env.integer("CONSUMER_METRICS_PORT", 9101, minimum=0, maximum=65535),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        )


def _lease_settings(env: EnvReader) -> LeaseSettings:
    duration = env.number("LEASE_DURATION_SECONDS", 10, minimum=1, maximum=600)
    return LeaseSettings(
        worker_id=env.text("CONSUMER_WORKER_ID", f"{socket.gethostname()}-{os.getpid()}"),
        duration_seconds=duration,
        renew_seconds=duration / 3,
        discovery_seconds=env.number("SHARD_DISCOVERY_SECONDS", 10, minimum=0.1, maximum=3600),
    )
