"""The reporting service's settings, read once from the environment into a frozen object."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from tracker.envconfig import LOG_LEVELS, EnvReader
from tracker.settings import AwsSettings, redis_url


@dataclass(frozen=True, slots=True)
class ReportSettings:
    aws: AwsSettings
    redis_url: str
    rollup_table: str
    report_keys_table: str
    host: str
    port: int
    rate_limit: int  # requests per report key per hour; past it 429
    # Bound on every store read of one request (DynamoDB, Redis): a slow store answers 503,
    # never a request that hangs.
    read_timeout_seconds: float
    # Rollup buckets and computed rows kept in memory at most, over all programs (least
    # recently used programs dropped first): ~3 KB each with a dense sketch, so the default
    # is ~150 MB of the task's memory; a 31-day hourly report holds 2,976 + 745.
    cache_buckets: int
    log_level: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReportSettings:
        """Read the settings; a bad value raises SettingsError naming the variable."""
        env = EnvReader(os.environ if environ is None else environ)
        return cls(
            aws=AwsSettings.from_reader(env),
            redis_url=redis_url(env),
            rollup_table=env.name("ROLLUP_TABLE", "tracking-rollups"),
            report_keys_table=env.name("REPORT_KEYS_TABLE", "tracking-report-keys"),
            host=env.text("REPORTS_HOST", "0.0.0.0"),
            port=env.integer("REPORTS_PORT", 8090, minimum=0, maximum=65535),
            rate_limit=env.integer("REPORTS_RATE_LIMIT", 600, minimum=1, maximum=10_000_000),
            read_timeout_seconds=env.integer(
                "REPORTS_READ_TIMEOUT_MS", 3000, minimum=1, maximum=600_000
            )
            / 1000,
            cache_buckets=env.integer(
                "REPORTS_CACHE_BUCKETS", 50_000, minimum=0, maximum=10_000_000
            ),
            log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS),
        )
