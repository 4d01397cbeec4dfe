"""The tracker's settings, read once from the environment into a frozen object."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from tracker.envconfig import LOG_LEVELS, EnvReader, SettingsError, aws_endpoints
from tracker.events.spill.log import SpillSettings
from tracker.integrity.signing import SigningKey, parse_signing_keys
from tracker.privacy.keys import MIN_SECRET_BYTES

DURABILITY_MODES = ("overflow", "write-ahead")


@dataclass(frozen=True, slots=True)
class AwsSettings:
    region: str
    kinesis_endpoint: str | None
    dynamodb_endpoint: str | None

    @classmethod
    def from_reader(cls, env: EnvReader) -> AwsSettings:
        common, kinesis, dynamodb = aws_endpoints(env)
        return cls(
            region=env.name("AWS_REGION", "us-east-1"),
            kinesis_endpoint=kinesis or common,
            dynamodb_endpoint=dynamodb or common,
        )


@dataclass(frozen=True, slots=True)
class ShippingSettings:
    buffer_max_events: int
    linger_seconds: float
    max_in_flight: int
    drain_seconds: float
    aggregate: bool  # KPL-aggregated records: far fewer Kinesis records and payload units
    write_ahead: bool  # DURABILITY=write-ahead: every event on disk before its answer
    spill_after_seconds: float  # overflow: no Kinesis progress this long sends events to disk
    spill: SpillSettings


@dataclass(frozen=True, slots=True)
class CacheSettings:
    max_entries: int
    ttl_seconds: float
    negative_max_entries: int
    negative_ttl_seconds: float


@dataclass(frozen=True, slots=True)
class PrivacySettings:
    tcf_vendor_id: int | None  # unset: no TC string can grant consent (fail closed)
    # The key of user_key; never in a repr, so never in a log line or a traceback.
    user_id_key: bytes | None = field(repr=False)

    @classmethod
    def from_reader(cls, env: EnvReader) -> PrivacySettings:
        return cls(tcf_vendor_id=_tcf_vendor_id(env), user_id_key=user_id_key(env))


@dataclass(frozen=True, slots=True)
class IntegritySettings:
    # The first signs (`tracker links sign`), all verify; empty: clicks are not checked.
    signing_keys: tuple[SigningKey, ...] = field(repr=False)
    duplicate_click_seconds: int  # 0: no duplicate check

    @classmethod
    def from_reader(cls, env: EnvReader) -> IntegritySettings:
        return cls(
            signing_keys=signing_keys(env),
            duplicate_click_seconds=env.integer(
                "DUPLICATE_CLICK_SECONDS", 30, minimum=0, maximum=86_400
            ),
        )


def signing_keys(env: EnvReader) -> tuple[SigningKey, ...]:
    text = env.optional_text("CLICK_SIGNING_KEYS")
    if text is None:
        return ()
    try:
        return parse_signing_keys(text)
    except ValueError as exc:  # its message names the key, never the secret
        raise SettingsError(f"CLICK_SIGNING_KEYS: {exc}") from None


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    redis_url: str
    redis_timeout_seconds: float
    aws: AwsSettings
    event_stream: str
    program_stream: str
    program_channel: str
    host: str
    port: int
    workers: int
    cache: CacheSettings
    shipping: ShippingSettings
    admin_token: str | None
    click_fallback_url: str | None
    trust_forwarded_for: bool
    privacy: PrivacySettings
    integrity: IntegritySettings
    instance_id: str
    log_level: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TrackerSettings:
        env = EnvReader(os.environ if environ is None else environ)
        return cls(
            redis_url=redis_url(env),
            redis_timeout_seconds=env.integer("REDIS_TIMEOUT_MS", 50, minimum=1, maximum=10_000)
            / 1000,
            aws=AwsSettings.from_reader(env),
            event_stream=env.name("EVENT_STREAM", "tracking-events"),
            program_stream=env.name("PROGRAM_STREAM", "program-updates"),
            program_channel=env.name("PROGRAM_CHANNEL", "program-updates"),
            host=env.text("TRACKER_HOST", "0.0.0.0"),
            port=env.integer("TRACKER_PORT", 8080, minimum=0, maximum=65535),
            workers=env.integer("TRACKER_WORKERS", 1, minimum=1, maximum=64),
            cache=_cache_settings(env),
            shipping=_shipping_settings(env),
            admin_token=env.optional_text("ADMIN_TOKEN"),
            click_fallback_url=env.url("CLICK_FALLBACK_URL", None, schemes=("http", "https")),
            trust_forwarded_for=env.flag("TRUST_FORWARDED_FOR", False),
            privacy=PrivacySettings.from_reader(env),
            integrity=IntegritySettings.from_reader(env),
            instance_id=env.text("TRACKER_INSTANCE_ID", f"{socket.gethostname()}-{os.getpid()}"),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        )


def redis_url(env: EnvReader) -> str:
    """REDIS_URL, with REDIS_PASSWORD (e.g. an ElastiCache AUTH token injected from a secret
    store) folded in when the URL carries none."""
    url = env.url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes=("redis", "rediss", "unix"))
    assert url is not None  # a default is given
    password = env.optional_text("REDIS_PASSWORD")
    parts = urlsplit(url)
    if password is None or parts.password is not None or parts.scheme == "unix":
        return url
    netloc = f":{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def user_id_key(env: EnvReader) -> bytes | None:
    """USER_ID_KEY as bytes; None when unset (then `uid` is ignored)."""
    value = env.optional_text("USER_ID_KEY")
    if value is None:
        return None
    key = value.encode()
    if len(key) < MIN_SECRET_BYTES:
        # The message never quotes the value: it is a secret.
        raise SettingsError(f"USER_ID_KEY: shorter than {MIN_SECRET_BYTES} bytes")
    return key


def _tcf_vendor_id(env: EnvReader) -> int | None:
    if env.raw("TCF_VENDOR_ID") is None:
        return None
    # Vendor ids are 16-bit in the TC string.
    return env.integer("TCF_VENDOR_ID", 0, minimum=1, maximum=65_535)


def _cache_settings(env: EnvReader) -> CacheSettings:
    return CacheSettings(
        max_entries=env.integer("CACHE_MAX_ENTRIES", 100_000, minimum=1, maximum=10_000_000),
        ttl_seconds=env.number("CACHE_TTL_SECONDS", 600, minimum=0.001, maximum=86_400),
        negative_max_entries=env.integer(
            "NEGATIVE_CACHE_MAX_ENTRIES", 10_000, minimum=1, maximum=1_000_000
        ),
        negative_ttl_seconds=env.number(
            "NEGATIVE_CACHE_TTL_SECONDS", 5, minimum=0.001, maximum=3_600
        ),
    )


def _shipping_settings(env: EnvReader) -> ShippingSettings:
    return ShippingSettings(
        buffer_max_events=env.integer(
            "SHIP_BUFFER_MAX_EVENTS", 200_000, minimum=1, maximum=10_000_000
        ),
        linger_seconds=env.integer("SHIP_LINGER_MS", 50, minimum=0, maximum=10_000) / 1000,
        max_in_flight=env.integer("SHIP_MAX_IN_FLIGHT", 4, minimum=1, maximum=64),
        aggregate=env.flag("SHIP_AGGREGATE", False),
        drain_seconds=env.number("SHIP_DRAIN_SECONDS", 25, minimum=0, maximum=600),
        write_ahead=_durability(env) == "write-ahead",
        spill_after_seconds=env.number("SPILL_AFTER_SECONDS", 5, minimum=0.1, maximum=3_600),
        spill=SpillSettings(
            directory=_spill_dir(env),
            max_bytes=env.integer("SPILL_MAX_BYTES", 1024**3, minimum=1024 * 1024, maximum=1024**5),
            fsync=env.flag("SPILL_FSYNC", False),
        ),
    )


def _durability(env: EnvReader) -> str:
    value = env.text("DURABILITY", "overflow").lower()
    if value not in DURABILITY_MODES:
        raise SettingsError(f"DURABILITY: {value!r} is not one of {', '.join(DURABILITY_MODES)}")
    return value


def _spill_dir(env: EnvReader) -> Path:
    value = env.text("SPILL_DIR", ".adtracker/spill")
    if not value.isprintable():
        raise SettingsError(f"SPILL_DIR: {value!r} contains control characters")
    return Path.cwd() / value
