"""The consumers' settings, read once from the environment into a frozen object."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tracker.envconfig import LOG_LEVELS, EnvReader, SettingsError
from tracker.schema.tracking.v1 import tracking_pb2 as pb
from tracker.settings import AwsSettings, redis_url, user_id_key

DAYS_MAX = 36_500
# Partitions per program in the events table (consumers/event_items.py). Readers query buckets
# 0..N-1, so N may be raised but never lowered: items in a higher bucket would be invisible.
# Every writer must use the same N: a record redelivered under another N is a second item.
EVENTS_TABLE_BUCKETS_DEFAULT = 8  # ~8,000 writes a second per program
EVENTS_TABLE_BUCKETS_MAX = 256


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    worker_id: str
    duration_seconds: float  # a lease whose counter has not moved for this long is expired
    renew_seconds: float
    discovery_seconds: float


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    table: str  # suppression markers and the audit trail
    # USER_ID_KEY, UTF-8 encoded: the secret the tracker hashes `uid` with. Kept out of repr so
    # that no log line or traceback that prints the settings can show it.
    user_id_key: bytes | None = field(repr=False)
    audit_ttl_days: int  # audit records are kept for accountability, then expire
    # How long a worker trusts a "not suppressed" answer. It bounds how late after an erase or
    # restrict a worker can still store the user's events, so erase waits it out.
    suppression_cache_seconds: float
    # What erase waits beyond the cache time before its second pass: for a write already in
    # flight to land and for the user_key index (eventually consistent) to show it.
    erase_margin_seconds: float


@dataclass(frozen=True, slots=True)
class RedriveSettings:
    """`consumers redrive`: where Lambda's on-failure destination puts failed batches."""

    queue_url: str | None  # FAILURE_QUEUE_URL, the SQS queue; unset: redrive refuses to run
    sqs_endpoint: str | None  # AWS_ENDPOINT_URL_SQS, else AWS_ENDPOINT_URL (an emulator)


@dataclass(frozen=True, slots=True)
class AttributionSettings:
    """Conversion attribution (docs/attribution.md)."""

    table: str  # ATTRIBUTION_TABLE: click records, dedupe markers, parked conversions
    match_wait_seconds: int  # MATCH_WAIT_SECONDS: how long a conversion waits for its click
    match_poll_seconds: float  # MATCH_POLL_MS: how often a worker looks at parked conversions


@dataclass(frozen=True, slots=True)
class LakeSettings:
    """The event lake (docs/lake.md)."""

    # LAKE_DIR: the SQLite catalog and file warehouse, used when no pyiceberg catalog named
    # `adtracker` is configured
    directory: Path
    table: str  # LAKE_TABLE: namespace.table
    commit_seconds: float  # LAKE_COMMIT_SECONDS: a worker commits at least this often
    retention_days: int  # LAKE_RETENTION_DAYS: older rows are removed by `lake maintain`

    @property
    def namespace(self) -> str:
        return self.table.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class ConsumerSettings:
    aws: AwsSettings
    redis_url: str
    event_stream: str
    program_stream: str
    program_channel: str
    events_table: str
    events_table_buckets: int
    dead_letter_table: str
    lease_table: str
    rollup_table: str
    report_keys_table: str  # `consumers init` creates it; `reports` uses it
    event_stream_shards: int
    events_ttl_days: int
    dead_letter_ttl_days: int
    privacy: PrivacySettings
    attribution: AttributionSettings
    lake: LakeSettings
    # EVENTS_TABLE_TYPES: the event types (EventType values) stored as DynamoDB items
    events_table_types: frozenset[int]
    leases: LeaseSettings
    redrive: RedriveSettings
    poll_seconds: float
    tip_wait_seconds: float
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
            events_table_buckets=env.integer(
                "EVENTS_TABLE_BUCKETS",
                EVENTS_TABLE_BUCKETS_DEFAULT,
                minimum=1,
                maximum=EVENTS_TABLE_BUCKETS_MAX,
            ),
            dead_letter_table=env.name("DEAD_LETTER_TABLE", "tracking-dead-letters"),
            lease_table=env.name("LEASE_TABLE", "tracking-consumer-leases"),
            rollup_table=env.name("ROLLUP_TABLE", "tracking-rollups"),
            report_keys_table=env.name("REPORT_KEYS_TABLE", "tracking-report-keys"),
            event_stream_shards=env.integer("EVENT_STREAM_SHARDS", 2, minimum=1, maximum=500),
            events_ttl_days=env.integer("EVENTS_TTL_DAYS", 90, minimum=1, maximum=DAYS_MAX),
            dead_letter_ttl_days=env.integer(
                "DEAD_LETTER_TTL_DAYS", 14, minimum=1, maximum=DAYS_MAX
            ),
            privacy=_privacy_settings(env),
            attribution=_attribution_settings(env),
            lake=_lake_settings(env),
            events_table_types=_event_types(env, "EVENTS_TABLE_TYPES"),
            leases=_lease_settings(env),
            redrive=_redrive_settings(env),
            poll_seconds=env.integer("CONSUMER_POLL_MS", 1000, minimum=10, maximum=60_000) / 1000,
            tip_wait_seconds=env.integer("CONSUMER_TIP_WAIT_MS", 2000, minimum=0, maximum=60_000)
            / 1000,
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


def _lake_settings(env: EnvReader) -> LakeSettings:
    table = env.name("LAKE_TABLE", "adtracker.events")
    if table.count(".") != 1 or "" in table.split("."):
        raise SettingsError(f"LAKE_TABLE: {table!r} is not namespace.table")
    return LakeSettings(
        directory=Path(env.text("LAKE_DIR", ".adtracker/lake")),
        table=table,
        commit_seconds=env.number("LAKE_COMMIT_SECONDS", 60, minimum=0.1, maximum=3600),
        retention_days=env.integer("LAKE_RETENTION_DAYS", 395, minimum=1, maximum=DAYS_MAX),
    )


def _event_types(env: EnvReader, key: str) -> frozenset[int]:
    """A comma-separated list of EventType names, e.g. CLICK,CONVERSION; none at all is an error
    (a deployment without items would have nothing to attribute or erase)."""
    text = env.text(key, "IMPRESSION,CLICK,EVENT,CONVERSION")
    names = [name.strip() for name in text.split(",") if name.strip()]
    known = {name: number for name, number in pb.EventType.items() if number}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise SettingsError(f"{key}: {text!r} is not a list of {', '.join(known)}")
    return frozenset(known[name] for name in names)


def _attribution_settings(env: EnvReader) -> AttributionSettings:
    return AttributionSettings(
        table=env.name("ATTRIBUTION_TABLE", "tracking-attribution"),
        match_wait_seconds=env.integer("MATCH_WAIT_SECONDS", 900, minimum=0, maximum=86_400),
        match_poll_seconds=env.integer("MATCH_POLL_MS", 5000, minimum=10, maximum=600_000) / 1000,
    )


def _redrive_settings(env: EnvReader) -> RedriveSettings:
    schemes = ("http", "https")
    common = env.url("AWS_ENDPOINT_URL", None, schemes=schemes)
    return RedriveSettings(
        queue_url=env.url("FAILURE_QUEUE_URL", None, schemes=schemes),
        sqs_endpoint=env.url("AWS_ENDPOINT_URL_SQS", common, schemes=schemes),
    )


def _privacy_settings(env: EnvReader) -> PrivacySettings:
    return PrivacySettings(
        table=env.name("PRIVACY_TABLE", "tracking-privacy"),
        user_id_key=user_id_key(env),
        audit_ttl_days=env.integer("PRIVACY_AUDIT_TTL_DAYS", 1095, minimum=1, maximum=DAYS_MAX),
        suppression_cache_seconds=env.number(
            "SUPPRESSION_CACHE_SECONDS", 5, minimum=0, maximum=300
        ),
        erase_margin_seconds=env.number("ERASE_MARGIN_SECONDS", 10, minimum=0, maximum=3600),
    )
